"""docker_engine.py - a private Docker engine for the container tests (Python standard library).

Engine starts Debian's dockerd (docker.io: /usr/sbin/dockerd, driven with /usr/bin/docker, not
whatever docker client is first on PATH) on its own socket, data root and exec root in a
temporary directory, with no bridge and no iptables rules: containers run with
--network host, so everything stays on 127.0.0.1 and the machine's network is not touched.
stop() removes every container, stops the daemon (and the containerd it started) and deletes
the directory. The daemon runs in a session of its own, so a test process killed before its
cleanup (ctest's TIMEOUT) leaves it running: reap_stale() stops such an engine, one whose
directory names an owner process that is gone, and leaves the engines of runs still alive.

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
DEBOOTSTRAP_TIMEOUT = 1200  # seconds for debootstrap of the base image (once per cache)
BUILD_TIMEOUT = 1200  # seconds for one docker build (the first compiles smtphook)
ENGINE_PARENT = "/tmp"  # the engines' directories: short paths (sun_path)...
ENGINE_PREFIX = "shdk-"  # ...named shdk-XXXXXXXX
OWNER_FILE = "owner"  # in an engine's directory: "<pid> <start time>" of the test process
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
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=DEBOOTSTRAP_TIMEOUT)
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


def _proc_start(pid):
    """The start time of process pid (clock ticks since boot), None if there is none: with
    the pid it names one process, not a later one given the same number."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


def _read_int(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _owner_alive(d):
    """Does the test process that made engine directory d still run? None when d names no
    owner (made before owners were written, or a moment ago)."""
    try:
        with open(os.path.join(d, OWNER_FILE)) as f:
            pid, start = f.read().split()
    except (OSError, ValueError):
        return None
    return _proc_start(int(pid)) == start


def _unmount_and_remove(d):
    """Whatever dockerd left mounted under d (overlay, shm, netns), then d itself."""
    with open("/proc/mounts") as f:
        mounts = [line.split()[1] for line in f]
    for m in sorted((m for m in mounts if m.startswith(d + "/")), reverse=True):
        subprocess.run(["umount", "-l", m], stderr=subprocess.DEVNULL)
    shutil.rmtree(d, ignore_errors=True)


def _remove_containers(env):
    """Every container of the engine env points at, and the networks they made."""
    r = subprocess.run([DOCKER, "ps", "-aq"], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, timeout=60)
    ids = r.stdout.decode().split()
    if ids:
        subprocess.run([DOCKER, "rm", "-f"] + ids, env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)
    # user-defined bridges are host interfaces that outlive the daemon
    subprocess.run([DOCKER, "network", "prune", "-f"], env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)


def reap_stale(log=print):
    """Stop the engines of earlier runs killed before their cleanup: every engine directory
    whose owner is gone (or, written before owners were, whose dockerd has no test process
    as its parent). Its containers are removed, the daemon stopped, its mounts undone and
    the directory deleted. Returns how many were reaped."""
    reaped = 0
    for d in sorted(glob.glob(os.path.join(ENGINE_PARENT, ENGINE_PREFIX + "*"))):
        pid = _read_int(os.path.join(d, "docker.pid"))
        start = _proc_start(pid) if pid else None
        alive = _owner_alive(d)
        if alive is None:
            if start is not None:  # an old directory: is the dockerd still someone's child?
                try:
                    with open("/proc/%d/status" % pid) as f:
                        ppid = int(re.search(r"^PPid:\s*(\d+)", f.read(), re.M).group(1))
                    with open("/proc/%d/cmdline" % ppid, "rb") as f:
                        alive = b"python" in f.read()
                except (OSError, AttributeError):
                    alive = False
            else:  # no daemon: stale unless just made
                try:
                    alive = time.time() - os.path.getmtime(d) < 2 * START_TIMEOUT
                except OSError:
                    continue
        if alive:
            continue
        log("reaping the Docker engine of an earlier run in %s (dockerd %s)"
            % (d, pid if start is not None else "gone"))
        if start is not None:
            env = dict(os.environ, DOCKER_HOST="unix://" + os.path.join(d, "docker.sock"),
                       DOCKER_CONFIG=os.path.join(d, "client"))
            env.pop("DOCKER_CONTEXT", None)
            try:
                _remove_containers(env)
            except subprocess.TimeoutExpired:
                pass
            for sig, wait in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
                try:
                    os.killpg(pid, sig)  # dockerd leads its session (start_new_session)
                except ProcessLookupError:
                    break
                deadline = time.monotonic() + wait
                while _proc_start(pid) == start and time.monotonic() < deadline:
                    time.sleep(0.2)
                if _proc_start(pid) != start:
                    break
        _unmount_and_remove(d)
        reaped += 1
    return reaped


class Engine:
    """A dockerd of our own: start(), docker(...), compose(...), stop()."""

    def __init__(self):
        self.dir = None
        self.proc = None
        self.env = None

    def start(self):
        # a short path: the socket's name must fit in sun_path
        self.dir = tempfile.mkdtemp(prefix=ENGINE_PREFIX, dir=ENGINE_PARENT)
        with open(os.path.join(self.dir, OWNER_FILE), "w") as f:  # for reap_stale
            f.write("%d %s\n" % (os.getpid(), _proc_start(os.getpid())))
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
        self.docker(*(args + list(extra) + [context]), timeout=BUILD_TIMEOUT)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                _remove_containers(self.env)
            except subprocess.TimeoutExpired:
                pass
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None
        _unmount_and_remove(self.dir)
