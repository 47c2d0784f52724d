"""docker_engine.py - a private Docker engine for the container tests (Python standard library).

Engine starts Debian's dockerd (docker.io: /usr/sbin/dockerd, driven with /usr/bin/docker, not
whatever docker client is first on PATH) on its own socket, data root and exec root in a
temporary directory, with no bridge and no iptables rules: containers run with
--network host, so everything stays on 127.0.0.1 and the machine's network is not touched.
stop() removes every container, stops the daemon (and the containerd it started) and deletes
the directory.

No registry is reachable on the test machines, so the base images the Dockerfiles name
(debian:bookworm, debian:bookworm-slim) are made by debootstrap --variant=minbase from the
machine's Debian mirror and imported; the root file system tarball is cached in
$SMTPHOOK_TEST_CACHE (default /var/cache/smtphook-test), one per mirror, remade after
CACHE_MAX_AGE.
"""

import glob
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

DOCKER = "/usr/bin/docker"
DOCKERD = "/usr/sbin/dockerd"
COMPOSE = "/usr/bin/docker-compose"
DEBOOTSTRAP = "/usr/sbin/debootstrap"
CACHE_DIR = os.environ.get("SMTPHOOK_TEST_CACHE", "/var/cache/smtphook-test")
CACHE_MAX_AGE = 30 * 86400  # seconds before the debootstrap tarball is made again
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
START_TIMEOUT = 60.0  # seconds for dockerd to answer
PROXY_VARS = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


class EngineUnavailable(Exception):
    """No Docker engine can run here; the message says why."""


def missing_tools():
    """Why the container tests cannot run at all (None if they can)."""
    if os.geteuid() != 0:
        return "not root: dockerd needs root"
    missing = [p for p in (DOCKER, DOCKERD, COMPOSE, DEBOOTSTRAP) if not os.access(p, os.X_OK)]
    if missing:
        return ("missing %s (bash docker/install-deps.sh --test installs docker.io, "
                "docker-compose and debootstrap)" % ", ".join(missing))
    return None


def debian_mirror():
    """The first Debian mirror in the machine's APT sources that serves SUITE."""
    paths = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*"))
    for path in paths:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        # one-line style: deb [opts] URI SUITE components
        for m in re.finditer(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", text, re.M):
            if m.group(2) == SUITE and m.group(1).rstrip("/").endswith("/debian"):
                return m.group(1).rstrip("/")
        # deb822 style: stanzas of Types/URIs/Suites
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(.+)$", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if uris and suites and SUITE in suites.group(1).split():
                for uri in uris.group(1).split():
                    if uri.rstrip("/").endswith("/debian"):
                        return uri.rstrip("/")
    return DEFAULT_MIRROR


def base_tarball(log=print):
    """The cached minbase root file system of SUITE (made by debootstrap when missing or
    older than CACHE_MAX_AGE); raises EngineUnavailable when debootstrap fails."""
    mirror = debian_mirror()
    key = hashlib.sha256(mirror.encode()).hexdigest()[:12]
    path = os.path.join(CACHE_DIR, "%s-minbase-%s.tar" % (SUITE, key))
    if os.path.exists(path) and time.time() - os.path.getmtime(path) < CACHE_MAX_AGE:
        return path
    os.makedirs(CACHE_DIR, exist_ok=True)
    root = tempfile.mkdtemp(prefix="rootfs-", dir=CACHE_DIR)
    try:
        log("debootstrap --variant=minbase %s from %s (cached in %s)" % (SUITE, mirror, path))
        t0 = time.monotonic()
        r = subprocess.run([DEBOOTSTRAP, "--variant=minbase", SUITE, root, mirror],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=1200)
        if r.returncode != 0:
            raise EngineUnavailable("debootstrap %s %s failed:\n%s"
                                    % (SUITE, mirror, r.stdout.decode(errors="replace")[-2000:]))
        tmp = path + ".tmp"
        subprocess.run(["tar", "-C", root, "-cf", tmp, "."], check=True)
        os.replace(tmp, path)
        log("debootstrap took %.0f s" % (time.monotonic() - t0))
        return path
    finally:
        shutil.rmtree(root, ignore_errors=True)


class Engine:
    """A dockerd of our own: start(), docker(...), compose(...), stop()."""

    def __init__(self):
        self.dir = None
        self.proc = None
        self.env = None

    def start(self):
        # a short path: the socket's name must fit in sun_path
        self.dir = tempfile.mkdtemp(prefix="shdk-", dir="/tmp")
        sock = os.path.join(self.dir, "docker.sock")
        self.env = dict(os.environ, DOCKER_HOST="unix://" + sock)
        self.env.pop("DOCKER_CONTEXT", None)
        self.env.pop("DOCKER_CONFIG", None)
        self.env["DOCKER_CONFIG"] = os.path.join(self.dir, "client")  # no user config
        self.log_path = os.path.join(self.dir, "dockerd.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [DOCKERD, "--data-root", os.path.join(self.dir, "data"),
                 "--host", "unix://" + sock, "--exec-root", os.path.join(self.dir, "exec"),
                 "--pidfile", os.path.join(self.dir, "docker.pid"),
                 "--bridge=none", "--iptables=false", "--ip6tables=false"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EngineUnavailable("dockerd exited with %s:\n%s"
                                        % (self.proc.returncode, self.log_tail()))
            r = subprocess.run([DOCKER, "version", "--format", "{{.Server.Version}}"],
                               env=self.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            if r.returncode == 0:
                return r.stdout.decode().strip()
            time.sleep(0.3)
        raise EngineUnavailable("dockerd did not answer within %.0f s:\n%s"
                                % (START_TIMEOUT, self.log_tail()))

    def log_tail(self, n=3000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-n:]
        except (OSError, AttributeError):
            return ""

    def _run(self, tool, args, env, check, timeout, input=None):
        """Run tool (DOCKER or COMPOSE) against this engine; returns the CompletedProcess
        (bytes), or fails with its output when check and it exited non-zero."""
        r = subprocess.run([tool] + list(args), env=env, input=input,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("%s %s exited with %s:\n%s%s"
                                 % (os.path.basename(tool), " ".join(args), r.returncode,
                                    r.stdout.decode(errors="replace")[-3000:],
                                    r.stderr.decode(errors="replace")[-3000:]))
        return r

    def docker(self, *args, check=True, timeout=300, input=None):
        return self._run(DOCKER, args, self.env, check, timeout, input)

    def out(self, *args, **kw):
        return self.docker(*args, **kw).stdout.decode().strip()

    def compose(self, *args, env=None, check=True, timeout=300):
        return self._run(COMPOSE, args, dict(self.env, **(env or {})), check, timeout)

    def import_base_images(self, log=print):
        """debian:bookworm and debian:bookworm-slim from the cached debootstrap tarball."""
        tarball = base_tarball(log)
        with open(tarball, "rb") as f:
            r = subprocess.run([DOCKER, "import", "-", "debian:bookworm"], env=self.env,
                               stdin=f, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if r.returncode != 0:
            raise AssertionError("docker import: %s" % r.stderr.decode(errors="replace"))
        self.docker("tag", "debian:bookworm", "debian:bookworm-slim")

    def build(self, tag, dockerfile, context, extra=()):
        """docker build on the host's network (the daemon has no bridge; apt-get in the
        build needs the mirror), passing the proxy settings of this environment."""
        args = ["build", "--network", "host", "-f", dockerfile, "-t", tag]
        for v in PROXY_VARS:
            if os.environ.get(v):
                args += ["--build-arg", v]
        self.docker(*(args + list(extra) + [context]), timeout=1800)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            ids = self.out("ps", "-aq", check=False, timeout=60).split()
            if ids:
                self.docker("rm", "-f", *ids, check=False, timeout=120)
            # user-defined bridges are host interfaces that outlive the daemon
            self.docker("network", "prune", "-f", check=False, timeout=60)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None
        # whatever dockerd left mounted under its directory (overlay, shm, netns)
        with open("/proc/mounts") as f:
            mounts = [line.split()[1] for line in f]
        for m in sorted((m for m in mounts if m.startswith(self.dir + "/")), reverse=True):
            subprocess.run(["umount", "-l", m], stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)
