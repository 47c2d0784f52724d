# The demo web app of docker-compose.yml: docker/demo-receiver.py (Python standard library
# only) on Debian 12, printing every POST smtphook sends it.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/*
COPY docker/demo-receiver.py /usr/local/bin/demo-receiver.py
USER nobody
EXPOSE 8080
STOPSIGNAL SIGINT
ENTRYPOINT ["python3", "-u", "/usr/local/bin/demo-receiver.py"]
CMD ["--host", "0.0.0.0", "--port", "8080"]
