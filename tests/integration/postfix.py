"""postfix.py - a private Postfix instance that relays mail to smtphook (integration tests).

Postfix is the sending MTA here: a test injects a message into its smtpd over SMTP, Postfix
queues it and its smtp client relays it to smtphook (relayhost = [127.0.0.1]:<port>), in
plain text or over STARTTLS at the security level the test picks.

Each instance lives in its own temporary directory: config directory (main.cf and master.cf
written here, every service with chroot = n), queue_directory, data_directory and the log
(maillog_file, written by the instance's postlogd). It listens on 127.0.0.1 only and never
touches /etc/postfix/main.cf, /var/spool/postfix or a system Postfix: on CI the package is
installed with "No configuration", so the default instance has no main.cf and is not
running. Postfix creates its queue directories (owned by the postfix user) itself on
"postfix -c DIR start" (post-install create-missing). Running Postfix needs root; run by
root, "postfix -c DIR" needs no alternate_config_directories entry in a default main.cf
(checked on Debian 12 without /etc/postfix/main.cf).

stop() runs "postfix -c DIR stop", then waits for every process of the instance to be gone
(killing, by pid, any left after a grace period) and reaps them: the test process makes
itself the child subreaper, so the orphaned master is its child, not init's.

Standard library only; the test CA comes from certs.py.
"""

import atexit
import ctypes
import os
import re
import shutil
import signal
import smtplib
import subprocess
import tempfile
import time
import unittest

from helpers import HOST, free_port

POSTFIX = "/usr/sbin/postfix"
POSTFIX_PROGRAM_DIRS = ("/usr/lib/postfix/", "/usr/sbin/")  # daemons, commands (Debian)
HOSTNAME = "relay.postfix.test"  # the instance's myhostname: its EHLO name, in Received:
SYSLOG_NAME = "postfix-itest"  # log tag, so the lines are told from any system Postfix's
TLS_LEVELS = ("none", "may", "encrypt", "verify", "secure")  # smtp_tls_security_level
START_TIMEOUT = 60.0  # seconds for "postfix start" (it checks and creates the queue first)
STOP_TIMEOUT = 30.0  # seconds for "postfix stop" (it waits up to 5 s, then kills)
GONE_TIMEOUT = 10.0  # seconds for the master's children to exit after it did
READY_TIMEOUT = 10.0  # seconds for the smtpd listener to greet
DELIVERY_TIMEOUT = 30.0  # seconds from injection to the relayed message; then the test fails
LOG_TAIL_LINES = 80  # log lines shown with a failure
CONFIG_AGE = 10  # seconds main.cf and master.cf are dated back (see _write_config)
PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>

# Queue IDs: the short form (hex) or the long form (long_queue_ids = yes).
QUEUED_RE = re.compile(r"queued as ([0-9A-Za-z]+)")

# The services this instance runs (master.cf): no local delivery, no pipes, no chroot.
# Columns: service type private unpriv chroot wakeup maxproc command.
MASTER_SERVICES = (
    ("cleanup", "unix", "n", "-", "n", "-", "0", "cleanup"),
    ("qmgr", "unix", "n", "-", "n", "300", "1", "qmgr"),
    ("tlsmgr", "unix", "-", "-", "n", "1000?", "1", "tlsmgr"),
    ("rewrite", "unix", "-", "-", "n", "-", "-", "trivial-rewrite"),
    ("bounce", "unix", "-", "-", "n", "-", "0", "bounce"),
    ("defer", "unix", "-", "-", "n", "-", "0", "bounce"),
    ("trace", "unix", "-", "-", "n", "-", "0", "bounce"),
    ("verify", "unix", "-", "-", "n", "-", "1", "verify"),
    ("flush", "unix", "n", "-", "n", "1000?", "0", "flush"),
    ("proxymap", "unix", "-", "-", "n", "-", "-", "proxymap"),
    ("smtp", "unix", "-", "-", "n", "-", "-", "smtp"),
    ("relay", "unix", "-", "-", "n", "-", "-", "smtp"),
    ("showq", "unix", "n", "-", "n", "-", "-", "showq"),
    ("error", "unix", "-", "-", "n", "-", "-", "error"),
    ("retry", "unix", "-", "-", "n", "-", "-", "error"),
    ("discard", "unix", "-", "-", "n", "-", "-", "discard"),
    ("anvil", "unix", "-", "-", "n", "-", "1", "anvil"),
    ("scache", "unix", "-", "-", "n", "-", "1", "scache"),
    ("postlog", "unix-dgram", "n", "-", "n", "-", "1", "postlogd"),
)


def require_root():
    """Skip (with the reason) unless running as root: Postfix's master starts as root and
    its daemons switch to the postfix user. A missing postfix package fails instead: CI
    installs it (docker/install-deps.sh --test)."""
    if os.geteuid() != 0:
        raise unittest.SkipTest("the Postfix relay tests start a private Postfix instance, "
                                "which needs root (CI runs the suite as root)")
    if not os.access(POSTFIX, os.X_OK):
        raise AssertionError("%s is not installed (apt-get install postfix)" % POSTFIX)


def _become_subreaper():
    """Make this process the child subreaper (Linux prctl): the Postfix master, orphaned
    when "postfix start" returns, becomes our child instead of init's, so stop() can reap
    it and its daemons and leaves not even a zombie behind. Only those pids are ever
    waited for, so other children (smtphook, tools) keep their exit status. False where
    the call is not available: then init reaps them."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _is_postfix_program(pid):
    """The process runs a Postfix program (a daemon or a command), not a stranger that
    happens to share a reused process group id."""
    try:
        exe = os.readlink("/proc/%s/exe" % pid)
    except OSError:
        return False
    return exe.startswith(POSTFIX_PROGRAM_DIRS)


class DeliveryFailed(AssertionError):
    """Postfix did not relay the message: deferred, bounced or nothing in time."""


class Postfix:
    """One private Postfix instance relaying everything to [127.0.0.1]:relay_port.

    tls_level: smtp_tls_security_level ("none" ... "secure"); ca_file: the CA that signs
    smtphook's certificate (copied into the instance, the smtp client reads it as the
    postfix user); verify_match: smtp_tls_verify_cert_match for "verify" (with the
    bracketed IP relayhost, "hostname" and "nexthop" both mean 127.0.0.1, which Postfix
    3.7 checks against the certificate's IP address SANs: "IP address mismatch" without
    one; a DNS name given here is checked against its DNS names); servername:
    smtp_tls_servername, the SNI name sent (none by default); settings: more main.cf
    lines."""

    def __init__(self, relay_port, tls_level="none", ca_file=None, verify_match=None,
                 servername=None, settings=None):
        if tls_level not in TLS_LEVELS:
            raise ValueError("unknown smtp_tls_security_level %r" % tls_level)
        self.relay_port = relay_port
        self.tls_level = tls_level
        self.ca_file = ca_file
        self.verify_match = verify_match
        self.servername = servername
        self.settings = dict(settings or {})
        self.port = None  # the smtpd listener for injection
        self.dir = None
        self.config_dir = None
        self.queue_dir = None
        self.log_path = None
        self.master_pid = None  # also its process group: master is a session leader
        self.output = ""  # what "postfix start" and "postfix stop" printed

    # -- configuration ------------------------------------------------------------------

    def main_cf(self):
        """main.cf as a dict, in the order written."""
        d = self.dir
        cf = {
            "compatibility_level": "3.6",
            "config_directory": self.config_dir,
            "queue_directory": self.queue_dir,
            "data_directory": os.path.join(d, "data"),
            "syslog_name": SYSLOG_NAME,
            # The log goes to a file of the instance (through postlogd), not to syslog.
            "maillog_file": self.log_path,
            "maillog_file_prefixes": d,
            "myhostname": HOSTNAME,
            "mydomain": "postfix.test",
            "myorigin": "$myhostname",
            # Loopback only, IPv4 only (CI containers may have no IPv6).
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            # Nothing is delivered locally: every recipient is relayed to smtphook.
            "mydestination": "",
            "relay_domains": "",
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "relayhost": "[%s]:%d" % (HOST, self.relay_port),
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "smtpd_peername_lookup": "no",  # no DNS for the injecting client
            # Headers are left as they came: no address rewriting, no added headers, so
            # the relayed message is the injected one plus Postfix's Received: line.
            "local_header_rewrite_clients": "",
            "always_add_missing_headers": "no",
            "append_dot_mydomain": "no",
            "biff": "no",
            "smtputf8_enable": "yes",
            # New mail goes out at once (qmgr is woken by cleanup); should an attempt fail
            # anyway, the retry comes within seconds, not after the default minutes.
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "delay_warning_time": "0h",
            "smtp_connect_timeout": "10s",
            "smtp_tls_security_level": self.tls_level,
        }
        if self.tls_level != "none":
            cf["smtp_tls_loglevel"] = "1"
            if self.ca_file is not None:
                cf["smtp_tls_CAfile"] = os.path.join(self.config_dir, "tls-ca.pem")
            if self.verify_match is not None:
                cf["smtp_tls_verify_cert_match"] = self.verify_match
            if self.servername is not None:
                cf["smtp_tls_servername"] = self.servername
        cf.update(self.settings)
        return cf

    def master_cf(self):
        """master.cf text: an smtpd on 127.0.0.1:port for injection, then the services."""
        rows = [("%s:%d" % (HOST, self.port), "inet", "n", "-", "n", "-", "-", "smtpd")]
        rows += MASTER_SERVICES
        return "".join("%-18s %-10s %-3s %-3s %-3s %-6s %-3s %s\n" % r for r in rows)

    def _write_config(self):
        os.mkdir(self.config_dir, 0o755)
        # Postfix creates the subdirectories, the queue directory itself must exist.
        os.mkdir(self.queue_dir, 0o755)
        if self.ca_file is not None:
            shutil.copyfile(self.ca_file, os.path.join(self.config_dir, "tls-ca.pem"))
            os.chmod(os.path.join(self.config_dir, "tls-ca.pem"), 0o644)
        with open(os.path.join(self.config_dir, "main.cf"), "w", encoding="utf-8") as f:
            f.write("# written by tests/integration/postfix.py\n")
            for name, value in self.main_cf().items():
                f.write("%s = %s\n" % (name, value))
        with open(os.path.join(self.config_dir, "master.cf"), "w", encoding="utf-8") as f:
            f.write(self.master_cf())
        # Postfix waits (300 ms at a time) until a file it loads is more than a second old,
        # in case it is still being edited: date them back instead of waiting.
        past = time.time() - CONFIG_AGE
        for name in os.listdir(self.config_dir):
            os.utime(os.path.join(self.config_dir, name), (past, past))

    # -- start and stop -----------------------------------------------------------------

    def _postfix(self, command, timeout):
        p = subprocess.run([POSTFIX, "-c", self.config_dir, command], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, errors="replace", timeout=timeout)
        self.output += "$ postfix -c %s %s (exit %d)\n%s%s" % (self.config_dir, command,
                                                               p.returncode, p.stdout, p.stderr)
        return p.returncode

    def start(self):
        """Write the configuration, start the instance and wait until its smtpd greets."""
        self.dir = tempfile.mkdtemp(prefix="smtphook-postfix-")
        # Postfix's daemons run as the postfix user and must reach their files.
        os.chmod(self.dir, 0o755)
        self.config_dir = os.path.join(self.dir, "etc")
        self.queue_dir = os.path.join(self.dir, "queue")
        self.log_path = os.path.join(self.dir, "maillog")
        # Not the port smtphook is to listen on: the relay port is only reserved by number,
        # and free_port can hand the same one out again before smtphook binds it.
        self.port = free_port()
        while self.port == self.relay_port:
            self.port = free_port()
        self._write_config()
        atexit.register(self.stop)  # a test run that dies half way leaves no Postfix
        _become_subreaper()
        rc = self._postfix("start", START_TIMEOUT)
        self.master_pid = self._read_master_pid()
        if rc != 0 or self.master_pid is None:
            raise RuntimeError("postfix did not start:\n%s\n%s" % (self.output, self.log_tail()))
        self._wait_ready()
        return self

    def _read_master_pid(self):
        try:
            with open(os.path.join(self.queue_dir, "pid", "master.pid"), encoding="ascii") as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            try:
                s = smtplib.SMTP(HOST, self.port, local_hostname="probe.test", timeout=5)
            except (OSError, smtplib.SMTPException) as e:
                last = e
                time.sleep(0.05)
                continue
            try:
                s.quit()
            except (OSError, smtplib.SMTPException):
                pass
            return
        raise RuntimeError("Postfix's smtpd on port %d did not greet within %ss (%s):\n%s"
                           % (self.port, READY_TIMEOUT, last, self.log_tail()))

    def stop(self):
        """Stop the instance ("postfix stop"), make sure none of its processes is left (any
        left over after the master exited is killed by its pid) and remove the directory.
        Safe to call more than once, and after a failed start."""
        if self.dir is None:
            return
        atexit.unregister(self.stop)
        try:
            if self.master_pid is not None or self._read_master_pid() is not None:
                try:
                    self._postfix("stop", STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    pass  # _reap kills what is left
            self._reap()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def _group_pids(self, zombies=False):
        """Processes of the instance: the master's process group (it is a session leader,
        its daemons inherit the group). Live ones, or (zombies=True) exited ones that are
        our children, waiting to be reaped."""
        pgid = self.master_pid or self._read_master_pid()
        if pgid is None:
            return []
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % entry, "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            # Fields after the command name (which may hold spaces): state ppid pgrp ...
            fields = stat[stat.rindex(b")") + 2:].split()
            if int(fields[2]) != pgid:
                continue
            if zombies:
                if fields[0] == b"Z" and int(fields[1]) == os.getpid():
                    pids.append(int(entry))
            elif fields[0] != b"Z" and _is_postfix_program(entry):
                pids.append(int(entry))
        return pids

    def _reap(self):
        """Wait for the instance's processes to exit, kill (by pid) any still there after
        GONE_TIMEOUT, and reap those that became our children."""
        deadline = time.monotonic() + GONE_TIMEOUT
        while self._group_pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in self._group_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        deadline = time.monotonic() + GONE_TIMEOUT
        while self._group_pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in self._group_pids(zombies=True):
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass

    def running(self):
        """The instance's processes still run."""
        return bool(self._group_pids())

    # -- mail -----------------------------------------------------------------------------

    def inject(self, mail_from, rcpts, message, mail_options=()):
        """Submit message (bytes, CRLF line ends, sent as is after dot-stuffing) to the
        instance's smtpd; return Postfix's queue ID."""
        with smtplib.SMTP(HOST, self.port, local_hostname="injector.test", timeout=30) as s:
            code, text = s.ehlo()
            if code != 250:
                raise AssertionError("Postfix EHLO: %d %r" % (code, text))
            code, text = s.mail(mail_from, list(mail_options))
            if code != 250:
                raise AssertionError("Postfix MAIL: %d %r\n%s" % (code, text, self.log_tail()))
            for r in rcpts:
                code, text = s.rcpt(r)
                if code != 250:
                    raise AssertionError("Postfix RCPT %s: %d %r\n%s"
                                         % (r, code, text, self.log_tail()))
            code, text = s.data(message)
            if code != 250:
                raise AssertionError("Postfix DATA: %d %r\n%s" % (code, text, self.log_tail()))
        m = QUEUED_RE.search(text.decode("utf-8", "replace"))
        if m is None:
            raise AssertionError("no queue ID in Postfix's reply %r" % text)
        return m.group(1)

    def outcomes(self, queue_id):
        """The delivery attempts logged for queue_id: a list of (recipient, status, line),
        status being "sent", "deferred", "bounced" or the like."""
        rx = re.compile(r"\b%s: to=<([^>]*)>,.*\bstatus=(\w+)" % re.escape(queue_id))
        found = []
        for line in self.log_lines():
            m = rx.search(line)
            if m:
                found.append((m.group(1), m.group(2), line))
        return found

    def wait_sent(self, queue_id, n_rcpts, timeout=DELIVERY_TIMEOUT):
        """Wait until the log shows all n_rcpts recipients of queue_id as sent; return those
        log lines. Any other outcome (deferred, bounced) fails at once, with the log."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.outcomes(queue_id)
            bad = [line for _, status, line in got if status != "sent"]
            if bad:
                raise DeliveryFailed("Postfix did not relay %s:\n%s\n--- Postfix log ---\n%s"
                                     % (queue_id, "\n".join(bad), self.log_tail()))
            sent = {rcpt: line for rcpt, _, line in got}
            if len(sent) >= n_rcpts:
                return list(sent.values())
            if time.monotonic() >= deadline:
                raise DeliveryFailed("Postfix logged no delivery of %s within %ss\n"
                                     "--- Postfix log ---\n%s"
                                     % (queue_id, timeout, self.log_tail()))
            time.sleep(0.05)

    def tls_lines(self, sent_line):
        """The smtp client's "... TLS connection established" lines logged by the process
        that wrote sent_line, before it."""
        m = re.search(r"/smtp\[(\d+)\]:", sent_line)
        if m is None:
            return []
        tag = "/smtp[%s]:" % m.group(1)
        lines = []
        for line in self.log_lines():
            if line == sent_line:
                break
            if tag in line and "TLS connection established" in line:
                lines.append(line)
        return lines

    # -- log ------------------------------------------------------------------------------

    def log_lines(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace").splitlines()
        except (OSError, TypeError):
            return []

    def log_tail(self, n=LOG_TAIL_LINES):
        return "\n".join(self.log_lines()[-n:])

