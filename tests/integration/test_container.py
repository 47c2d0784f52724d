"""test_container.py - the container image and docker-compose.yml, with a real Docker engine.

The class starts its own dockerd (docker_engine.py), imports debian:bookworm(-slim) made by
debootstrap (cached), and builds docker/Dockerfile. The tests run the image with
--network host so smtphook, the receiver and the SMTP client all meet on 127.0.0.1:
the image's layout and size, its default configuration (a file at /etc/smtphook/config.json,
not variables) and a mounted one that replaces it whole, a delivery plus the HEALTHCHECK
turning healthy, the file
capability (a port below 1024 as the non-root user), docker stop during a slow webhook
(the transaction still ends in 250, exit code 0), and docker-compose.yml bringing up smtphook
and the demo app: on the host's network (a merged copy without "ports"), and as written (its
own bridge network, the SMTP port published on 127.0.0.1; this creates a bridge interface
on the machine for the test's duration). Skips, with the reason, where no engine can run (not root, no docker.io,
dockerd does not start, debootstrap cannot reach a mirror).
"""

import json
import os
import shutil
import smtplib
import socket
import tempfile
import threading
import time
import unittest

import docker_engine
from docker_engine import Engine, EngineUnavailable
from helpers import HOST, free_port
from receiver import Receiver
from smtphook_process import SOURCE_DIR

IMAGE = "smtphook:test"
MAX_IMAGE_BYTES = 30 * 1000 * 1000
STOP_TIME = 40  # docker stop --time: longer than limits.shutdown_timeout_ms (30 s)
ADMIN_PORT = 9025  # the HEALTHCHECK probes 127.0.0.1:9025 (exec form: no variables)
MAIL = b"From: alice@example.org\r\nTo: support@example.com\r\nSubject: %s\r\n\r\nIt works.\r\n"


def port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
            return True
        except OSError:
            return False


def wait_smtp(port, timeout=20.0):
    """Wait until something answers SMTP on 127.0.0.1:port (a 220 banner)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=2) as s:
                if s.recv(512).startswith(b"220"):
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def send(port, subject, timeout=60):
    """One mail over smtplib; returns the (code, text) reply to the final dot."""
    c = smtplib.SMTP(HOST, port, timeout=timeout)
    try:
        c.ehlo("client.test")
        c.mail("alice@example.org")
        code, text = c.rcpt("support@example.com")
        if code != 250:
            return code, text
        return c.data(MAIL % subject.encode())
    finally:
        try:  # while stopping, smtphook answers QUIT with 421 after the transaction: fine
            c.quit()
        except smtplib.SMTPException:
            c.close()


class ContainerTest(unittest.TestCase):
    engine = None

    @classmethod
    def setUpClass(cls):
        if os.environ.get("SMTPHOOK_SANITIZE") == "ON":
            # The image is built from the sources, not from this build: once is enough.
            raise unittest.SkipTest("the image does not depend on the sanitizer build; the "
                                    "normal build's run tests it")
        why = docker_engine.missing_tools()
        if why:
            raise unittest.SkipTest(why)
        # an engine of a run that ctest's TIMEOUT killed before its cleanup: stop it now
        docker_engine.reap_stale()
        t0 = time.monotonic()
        engine = Engine()
        cls.addClassCleanup(engine.stop)
        try:
            version = engine.start()
            print("\ndockerd %s up in %.1f s (%s)" % (version, time.monotonic() - t0, engine.dir))
            t1 = time.monotonic()
            engine.import_base_images()
            print("base images imported in %.1f s" % (time.monotonic() - t1))
        except EngineUnavailable as e:
            print("\n%s" % e)
            raise unittest.SkipTest("no Docker engine can run here: %s" % str(e).splitlines()[0])
        t1 = time.monotonic()
        engine.build(IMAGE, os.path.join(SOURCE_DIR, "docker", "Dockerfile"), SOURCE_DIR)
        print("image built in %.1f s" % (time.monotonic() - t1))
        cls.engine = engine

    def start_receiver(self, **kw):
        r = Receiver(**kw).start()
        self.addCleanup(r.stop)
        return r

    def run_container(self, *args, env=None):
        """docker run -d --network host IMAGE with env; removed after the test."""
        cmd = ["run", "-d", "--network", "host"]
        for k, v in (env or {}).items():
            cmd += ["-e", "%s=%s" % (k, v)]
        cid = self.engine.out(*(cmd + list(args) + [IMAGE]))
        self.addCleanup(self.engine.docker, "rm", "-f", cid, check=False)
        return cid

    def inspect(self, cid, fmt):
        return self.engine.out("inspect", "--format", fmt, cid)

    def container_log(self, cid):
        r = self.engine.docker("logs", cid, check=False)
        return (r.stdout + r.stderr).decode(errors="replace")

    def wait_health(self, cid, want="healthy", timeout=30.0):
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            status = self.inspect(cid, "{{.State.Health.Status}}")
            if status == want:
                return status
            time.sleep(0.5)
        return status

    # -- the image ----------------------------------------------------------------------

    def test_image_layout_and_size(self):
        size = int(self.engine.out("image", "inspect", "--format", "{{.Size}}", IMAGE))
        print("\nimage %s: %d bytes (%.1f MB)" % (IMAGE, size, size / 1e6))
        self.assertLess(size, MAX_IMAGE_BYTES)
        cfg = json.loads(self.engine.out("image", "inspect", "--format", "{{json .Config}}",
                                         IMAGE))
        self.assertEqual(cfg["User"], "65532:65532")
        self.assertEqual(cfg["Entrypoint"], ["/usr/local/bin/smtphook"])
        self.assertEqual(cfg["StopSignal"], "SIGTERM")
        self.assertEqual(cfg["Healthcheck"]["Test"],
                         ["CMD", "/usr/local/bin/smtphook", "--probe",
                          "http://127.0.0.1:%d/readyz" % ADMIN_PORT])
        # the defaults are a file, not variables that would replace a mounted file's
        # listeners and admin port
        self.assertIn("SMTPHOOK_CONFIG=/etc/smtphook/config.json", cfg["Env"])
        self.assertFalse([e for e in cfg["Env"] if e.startswith(("SMTPHOOK_LISTEN=",
                                                                 "SMTPHOOK_ADMIN="))], cfg["Env"])
        for label in ("title", "description", "source", "licenses", "version"):
            self.assertIn("org.opencontainers.image." + label, cfg["Labels"])
        # a scratch image: no shell
        r = self.engine.docker("run", "--rm", "--network", "host", "--entrypoint", "/bin/sh",
                               IMAGE, "-c", "true", check=False)
        self.assertNotEqual(r.returncode, 0, "the image should have no shell")
        r = self.engine.docker("run", "--rm", "--network", "host", IMAGE, "--version")
        self.assertRegex(r.stdout.decode(), r"^smtphook \d")

    def check_config(self, *args):
        """smtphook --check-config in the image as docker run would start it: its stdout."""
        r = self.engine.docker(*(["run", "--rm", "--network", "host"] + list(args)
                                 + [IMAGE, "--check-config"]), check=False, timeout=60)
        out = (r.stdout + r.stderr).decode(errors="replace")
        self.assertEqual(r.returncode, 0, out)
        return r.stdout.decode(errors="replace").splitlines(), r.stderr.decode(errors="replace")

    def test_default_configuration_is_the_image_file(self):
        # docker run -e SMTPHOOK_WEBHOOK=... smtphook: the image's file, every domain
        lines, err = self.check_config("-e", "SMTPHOOK_WEBHOOK=http://app:3000/inbound")
        self.assertEqual(lines[:3], ["/etc/smtphook/config.json: configuration ok",
                                     "listener 0.0.0.0:2525: tls none, proxy_protocol none",
                                     "admin 0.0.0.0:%d" % ADMIN_PORT])
        self.assertEqual(err, "")
        with open(os.path.join(SOURCE_DIR, "docker", "config.json"), encoding="utf-8") as f:
            self.assertEqual(json.load(f)["domains"], ["*"])
        # without an endpoint it says what is missing
        r = self.engine.docker("run", "--rm", "--network", "host", IMAGE, "--check-config",
                               check=False, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"--webhook", r.stderr)

    def test_mounted_configuration_keeps_its_listeners(self):
        # a file mounted over the image's: its PROXY protocol listener and admin port stay
        tmp = tempfile.mkdtemp(prefix="smtphook-cfg-")
        self.addCleanup(shutil.rmtree, tmp, True)
        os.chmod(tmp, 0o755)
        path = os.path.join(tmp, "config.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"listeners": [{"address": "0.0.0.0:2525", "proxy_protocol": "any",
                                      "trusted_proxies": ["10.0.0.0/8"]}],
                       "domains": ["example.com"], "admin": {"listen": "0.0.0.0:9026"},
                       "endpoints": {"app": {"url": "http://app:3000/inbound"}}}, f)
        os.chmod(path, 0o644)
        lines, err = self.check_config("-v", "%s:/etc/smtphook/config.json:ro" % path)
        self.assertEqual(lines[1:3], ["listener 0.0.0.0:2525: tls none, proxy_protocol any, "
                                      "trusted_proxies 10.0.0.0/8", "admin 0.0.0.0:9026"])
        self.assertEqual(err, "")

    def test_source_change_rebuilds_only_the_compile_step(self):
        # a copy of the build context with one source file changed: the dependency layer
        # (install-deps.sh) comes from the cache, the compile step runs again
        tmp = tempfile.mkdtemp(prefix="smtphook-ctx-")
        self.addCleanup(shutil.rmtree, tmp, True)
        for name in ("CMakeLists.txt", ".dockerignore", "cmd", "include", "src", "docker"):
            src = os.path.join(SOURCE_DIR, name)
            (shutil.copytree if os.path.isdir(src) else shutil.copy2)(
                src, os.path.join(tmp, name))
        with open(os.path.join(tmp, "src", "log.c"), "a") as f:
            f.write("\n/* changed by test_container */\n")
        out = self.engine.docker("build", "--network", "host", "-f",
                                 os.path.join(tmp, "docker", "Dockerfile"),
                                 "-t", "smtphook:changed", tmp,
                                 timeout=docker_engine.BUILD_TIMEOUT).stdout.decode()
        self.addCleanup(self.engine.docker, "rmi", "smtphook:changed", check=False)
        steps = {}  # step text -> its output
        for block in out.split("Step ")[1:]:
            head, _, body = block.partition("\n")
            steps[head] = body
        deps = next(b for h, b in steps.items() if "install-deps.sh &&" in h)
        build = next(b for h, b in steps.items() if "cmake -S ." in h)
        self.assertIn("Using cache", deps, "the dependency layer was rebuilt:\n" + out[-3000:])
        self.assertNotIn("Using cache", build, "the compile step was not rerun")

    # -- running it ---------------------------------------------------------------------

    def test_delivers_and_turns_healthy(self):
        if not port_free(ADMIN_PORT):
            self.skipTest("port %d (the HEALTHCHECK's admin port) is in use on 127.0.0.1"
                          % ADMIN_PORT)
        rcv = self.start_receiver()
        smtp = free_port()
        cid = self.run_container("--health-interval", "1s", env={
            "SMTPHOOK_WEBHOOK": rcv.url(), "SMTPHOOK_LISTEN": "%s:%d" % (HOST, smtp),
            "SMTPHOOK_ADMIN": "%s:%d" % (HOST, ADMIN_PORT), "SMTPHOOK_HOSTNAME": "mx.test"})
        self.assertTrue(wait_smtp(smtp), "no SMTP banner:\n" + self.container_log(cid))
        code, text = send(smtp, "container delivery")
        self.assertEqual(code, 250, text)
        reqs = rcv.wait_for(1)
        self.assertEqual(len(reqs), 1)
        self.assertIn(b"Subject: container delivery", reqs[0].body)
        self.assertEqual(self.wait_health(cid), "healthy",
                         self.inspect(cid, "{{json .State.Health}}"))
        # PID 1 is smtphook itself (exec-form ENTRYPOINT, no shell)
        pid = int(self.inspect(cid, "{{.State.Pid}}"))
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            self.assertEqual(f.read().split(b"\0")[0], b"/usr/local/bin/smtphook")
        with open("/proc/%d/status" % pid) as f:
            uid = next(line for line in f if line.startswith("Uid:")).split()[1]
        self.assertEqual(uid, "65532")
        self.engine.docker("stop", "--time", str(STOP_TIME), cid)
        self.assertEqual(self.inspect(cid, "{{.State.ExitCode}}"), "0", self.container_log(cid))

    def test_file_capability_binds_a_low_port(self):
        # with --network host the host's net.ipv4.ip_unprivileged_port_start applies: a
        # port below 1024 works for uid 65532 only through the binary's cap_net_bind_service
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
            if int(f.read()) <= 600:
                self.skipTest("unprivileged ports start below 600 on this machine")
        low = next((p for p in range(587, 600) if port_free(p)), None)
        if low is None:
            self.skipTest("no free port in 587..599")
        rcv = self.start_receiver()
        cid = self.run_container(env={
            "SMTPHOOK_WEBHOOK": rcv.url(), "SMTPHOOK_LISTEN": "%s:%d" % (HOST, low),
            "SMTPHOOK_ADMIN": "%s:%d" % (HOST, free_port())})
        self.assertTrue(wait_smtp(low), "no SMTP banner on port %d:\n%s"
                        % (low, self.container_log(cid)))
        self.engine.docker("stop", "--time", str(STOP_TIME), cid)

    def test_file_capability_needs_net_bind_service_in_the_bounding_set(self):
        # documented: --cap-drop ALL alone makes exec fail; add NET_BIND_SERVICE back
        r = self.engine.docker("run", "--rm", "--network", "host", "--cap-drop", "ALL", IMAGE,
                               "--version", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"operation not permitted", r.stdout + r.stderr)
        r = self.engine.docker("run", "--rm", "--network", "host", "--cap-drop", "ALL",
                               "--cap-add", "NET_BIND_SERVICE", IMAGE, "--version")
        self.assertRegex(r.stdout.decode(), r"^smtphook \d")
        # as docker/kubernetes/ runs it: also no privilege escalation (no_new_privs: the file
        # capability is then not gained, but exec works) and a read-only root
        r = self.engine.docker("run", "--rm", "--network", "host", "--cap-drop", "ALL",
                               "--cap-add", "NET_BIND_SERVICE", "--security-opt",
                               "no-new-privileges", "--read-only", "--tmpfs", "/tmp",
                               "-e", "SMTPHOOK_WEBHOOK=http://app:3000/inbound", IMAGE,
                               "--check-config")
        self.assertIn(b"configuration ok", r.stdout)

    def test_read_only_root_needs_a_tmpfs_for_the_spool(self):
        rcv = self.start_receiver()
        env = {"SMTPHOOK_WEBHOOK": rcv.url(), "SMTPHOOK_ADMIN": "%s:%d" % (HOST, free_port())}
        # read-only without a tmpfs: a start-up error naming the key, not a 451 later
        r = self.engine.docker(*["run", "--rm", "--network", "host", "--read-only",
                                 "-e", "SMTPHOOK_LISTEN=%s:%d" % (HOST, free_port())]
                               + ["-e%s=%s" % kv for kv in env.items()] + [IMAGE],
                               check=False, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"spool.directory", r.stdout + r.stderr)
        smtp = free_port()
        cid = self.run_container("--read-only", "--tmpfs", "/tmp:size=64m",
                                 env=dict(env, SMTPHOOK_LISTEN="%s:%d" % (HOST, smtp)))
        self.assertTrue(wait_smtp(smtp), "no SMTP banner:\n" + self.container_log(cid))
        self.assertEqual(send(smtp, "read-only")[0], 250)
        self.engine.docker("stop", "--time", str(STOP_TIME), cid)
        self.assertEqual(self.inspect(cid, "{{.State.ExitCode}}"), "0", self.container_log(cid))

    def test_queue_mode_keeps_messages_on_a_volume_across_containers(self):
        # the image's /var/lib/smtphook/queue belongs to its user, so a named volume there
        # takes queued mail, and a new container on the volume delivers it
        volume = "smtphook-test-queue-%d" % os.getpid()
        self.engine.docker("volume", "create", volume)
        self.addCleanup(self.engine.docker, "volume", "rm", "-f", volume, check=False)
        down = free_port()  # the app is not there yet
        smtp = free_port()
        env = {"SMTPHOOK_WEBHOOK": "http://%s:%d/inbound" % (HOST, down),
               "SMTPHOOK_LISTEN": "%s:%d" % (HOST, smtp),
               "SMTPHOOK_ADMIN": "%s:%d" % (HOST, free_port()), "SMTPHOOK_DELIVERY": "queue"}
        cid = self.run_container("--read-only", "--tmpfs", "/tmp:size=64m",
                                 "-v", "%s:/var/lib/smtphook" % volume, env=env)
        self.assertTrue(wait_smtp(smtp), "no SMTP banner:\n" + self.container_log(cid))
        code, text = send(smtp, "queued in a container")
        self.assertEqual(code, 250, text)
        self.assertIn(b"queued as", text)
        listing = self.engine.out("exec", cid, "/usr/local/bin/smtphook", "queue", "list")
        self.assertIn("1 entry", listing)
        self.engine.docker("stop", "--time", str(STOP_TIME), cid)
        self.assertEqual(self.inspect(cid, "{{.State.ExitCode}}"), "0", self.container_log(cid))
        rcv = self.start_receiver(port=down)  # the app is up; a new container, same volume
        smtp = free_port()
        env["SMTPHOOK_LISTEN"] = "%s:%d" % (HOST, smtp)
        env["SMTPHOOK_ADMIN"] = "%s:%d" % (HOST, free_port())
        cid = self.run_container("--read-only", "--tmpfs", "/tmp:size=64m",
                                 "-v", "%s:/var/lib/smtphook" % volume, env=env)
        self.assertTrue(wait_smtp(smtp), "no SMTP banner:\n" + self.container_log(cid))
        # its next attempt is a minute away (queue.initial_backoff_ms): the operator's retry
        self.engine.out("exec", cid, "/usr/local/bin/smtphook", "queue", "retry", "--all")
        reqs = rcv.wait_for(1, timeout=30)
        self.assertEqual(len(reqs), 1, self.container_log(cid))
        self.assertIn(b"Subject: queued in a container", reqs[0].body)
        self.engine.docker("stop", "--time", str(STOP_TIME), cid)

    def test_stop_during_slow_webhook_finishes_the_transaction(self):
        rcv = self.start_receiver(delay=3.0)
        smtp = free_port()
        cid = self.run_container(env={
            "SMTPHOOK_WEBHOOK": rcv.url(), "SMTPHOOK_LISTEN": "%s:%d" % (HOST, smtp),
            "SMTPHOOK_ADMIN": "%s:%d" % (HOST, free_port())})
        self.assertTrue(wait_smtp(smtp), "no SMTP banner:\n" + self.container_log(cid))
        result = {}

        def deliver():
            try:
                result["reply"] = send(smtp, "slow one")
            except Exception as e:  # noqa: BLE001 - reported below
                result["error"] = e

        t = threading.Thread(target=deliver, daemon=True)
        t.start()
        self.assertEqual(len(rcv.wait_for(1, timeout=15)), 1, "the webhook was never called")
        t0 = time.monotonic()
        self.engine.docker("stop", "--time", str(STOP_TIME), cid, timeout=STOP_TIME + 30)
        took = time.monotonic() - t0
        t.join(30)
        print("\ndocker stop took %.1f s" % took)
        self.assertNotIn("error", result)
        self.assertEqual(result["reply"][0], 250, result["reply"])
        self.assertEqual(self.inspect(cid, "{{.State.ExitCode}}"), "0", self.container_log(cid))
        self.assertLess(took, STOP_TIME - 5, "smtphook was killed, not stopped")

    # -- docker-compose.yml -------------------------------------------------------------

    def test_compose_brings_up_smtphook_and_the_demo_app(self):
        try:
            import yaml  # python3-yaml, a dependency of Debian's docker-compose
        except ImportError:
            self.skipTest("no python3-yaml")
        eng = self.engine
        self.build_compose_images()
        smtp, admin, app = free_port(), free_port(), free_port()
        # the test's override: everything on the host's network (the daemon has no bridge),
        # on free ports of 127.0.0.1 instead of 2525/9025/8080 (SMTPHOOK_LISTEN and
        # SMTPHOOK_ADMIN replace compose-config.json's listener and admin port, which set
        # nothing else)
        override = {
            "version": "3.8",
            "services": {
                "smtphook": {"network_mode": "host",
                             "environment": {
                                 "SMTPHOOK_LISTEN": "%s:%d" % (HOST, smtp),
                                 "SMTPHOOK_ADMIN": "%s:%d" % (HOST, admin),
                                 "SMTPHOOK_APP_URL": "http://%s:%d/inbound" % (HOST, app)}},
                "app": {"network_mode": "host",
                        "command": ["--host", HOST, "--port", str(app)]},
            },
        }
        tmp = tempfile.mkdtemp(prefix="smtphook-compose-")
        self.addCleanup(shutil.rmtree, tmp, True)
        over = os.path.join(tmp, "docker-compose.override.yml")
        with open(over, "w") as f:
            json.dump(override, f)  # JSON is YAML
        base = os.path.join(SOURCE_DIR, "docker", "docker-compose.yml")
        env = {"SMTPHOOK_APP_TOKEN": "compose-test-token"}
        # Compose cannot drop the file's "ports" in an override, and host networking
        # refuses published ports: merge with "docker-compose config", then drop them.
        merged = yaml.safe_load(eng.compose("-f", base, "-f", over, "config",
                                            env=env).stdout)
        for svc in merged["services"].values():
            svc.pop("ports", None)
        path = os.path.join(tmp, "docker-compose.yml")
        with open(path, "w") as f:
            json.dump(merged, f)
        args = ["-p", "smtphooktest", "-f", path,
                "--project-directory", os.path.join(SOURCE_DIR, "docker")]
        self.compose_deliver(args, env, smtp, "via compose")

    def test_compose_file_as_written_on_a_bridge_network(self):
        # docker-compose.yml unchanged: its own bridge network (the app found by name), the
        # SMTP port published on 127.0.0.1 (docker-proxy: this daemon sets no iptables rules)
        self.build_compose_images()
        smtp, admin = free_port(), free_port()
        env = {"SMTPHOOK_APP_TOKEN": "compose-test-token",
               "SMTPHOOK_SMTP_PUBLISH": "%s:%d" % (HOST, smtp),
               "SMTPHOOK_ADMIN_PORT": str(admin)}
        args = ["-p", "smtphookbridge", "-f",
                os.path.join(SOURCE_DIR, "docker", "docker-compose.yml")]
        self.compose_deliver(args, env, smtp, "via the bridge", bridge=True)

    def build_compose_images(self):
        self.engine.build("smtphook-demo-receiver:latest",
                          os.path.join(SOURCE_DIR, "docker", "demo-receiver.Dockerfile"),
                          SOURCE_DIR)
        self.engine.docker("tag", IMAGE, "smtphook:latest")

    def compose_deliver(self, args, env, smtp, subject, bridge=False):
        """compose up, one mail to smtphook, the demo app prints it, compose stop: exit 0."""
        eng = self.engine
        self.addCleanup(eng.compose, *(args + ["down", "-t", str(STOP_TIME)]), env=env,
                        check=False)
        t0 = time.monotonic()
        r = eng.compose(*(args + ["up", "-d", "--no-build"]), env=env, check=not bridge)
        if r.returncode != 0:
            self.skipTest("compose could not create its bridge network here:\n%s"
                          % r.stderr.decode(errors="replace")[-1500:])

        def logs():
            return eng.compose(*(args + ["logs", "--no-color"]), env=env,
                               check=False).stdout.decode(errors="replace")

        self.assertTrue(wait_smtp(smtp), "compose: no SMTP banner:\n" + logs())
        code, text = send(smtp, subject)
        self.assertEqual(code, 250, text)
        deadline = time.monotonic() + 10
        while "Subject: " + subject not in logs() and time.monotonic() < deadline:
            time.sleep(0.3)
        self.assertIn("Subject: " + subject, logs())
        print("\ncompose up and delivered in %.1f s" % (time.monotonic() - t0))
        cid = eng.compose(*(args + ["ps", "-q", "smtphook"]), env=env).stdout.decode().strip()
        eng.compose(*(args + ["stop"]), env=env)  # stop_grace_period from the file
        self.assertEqual(self.inspect(cid, "{{.State.ExitCode}}"), "0", logs())

if __name__ == "__main__":
    unittest.main()
