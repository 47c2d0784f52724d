#!/usr/bin/env bash
# install-deps.sh - install the Debian 12 packages smtphook needs.
#
#   docker/install-deps.sh          build and run: compiler, CMake, libuv, libcurl, OpenSSL, jansson,
#                                   libmicrohttpd (the admin port), libsodium (Ed25519, v1a)
#   docker/install-deps.sh --test   also what the test suites use: cmocka, Python, swaks,
#                                   Postfix (smtp-source, and the relay in the TLS tests),
#                                   openssl, curl, python3-cryptography (test certificates),
#                                   Net::SSLeay (swaks --tls), the receivers the presets are
#                                   for (Django with django-anymail, Rails with Action
#                                   Mailbox, SQLite and WEBrick), nginx (in front of a
#                                   receiver for the streamed requests), HAProxy (PROXY
#                                   protocol in front of replicas), Prometheus (promtool checks
#                                   the metrics), Node.js with npm
#                                   for the Standard Webhooks and busboy receiver (unless a
#                                   node is already installed), and Docker (docker.io,
#                                   docker-compose, debootstrap for the base images: the
#                                   container test starts its own dockerd)
#   (the build list has libcap2-bin too: setcap in docker/Dockerfile's build stage)
#
# As root it installs whatever is missing with apt-get; otherwise it prints the exact
# apt-get command to run and fails if something is missing.
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config libuv1-dev libcurl4-openssl-dev libssl-dev
            libmicrohttpd-dev libsodium-dev
            libjansson-dev ca-certificates python3 libcap2-bin)
test_pkgs=(libcmocka-dev swaks postfix openssl curl python3-cryptography libnet-ssleay-perl
           python3-django python3-django-anymail ruby-rails ruby-sqlite3 ruby-webrick
           nginx-light haproxy prometheus python3-yaml docker.io docker-compose debootstrap)

pkgs=("${build_pkgs[@]}")
if [[ "${1:-}" == "--test" ]]; then
    pkgs+=("${test_pkgs[@]}")
    # A node from elsewhere (nodesource) brings its own npm and conflicts with Debian's.
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        pkgs+=(nodejs npm)
    fi
fi

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "smtphook needs these Debian packages: ${missing[*]}" >&2
    echo "install them with:  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi

echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Postfix is installed only for its smtp-source test client: leave it unconfigured so
# no mail system starts on this machine.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
# Nothing installed here may start a service (nginx would listen on port 80): the tests start
# their own on 127.0.0.1 (policy-rc.d, as Debian's container images use it).
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
fi
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
