# SPDX-License-Identifier: Apache-2.0
"""The local stack for system tests, benchmarks and the demo.

Starts throwaway servers on free loopback ports inside one temporary directory:

    with Stack() as s:
        pg = s.start_postgres()             # "postgresql://otp@127.0.0.1:PORT/otp"
        bs = s.start_kafka(brokers=3)       # "127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3"
        s.kafka.control("down 1")           # -> "ok down 1"
        sim = s.start_sim()                 # VoIPBin simulator (tests/simctl.py)
        w = s.spawn("worker", [s.bin("otp-worker")], env={...}, ready_line=r"ready")

Everything a Stack starts is ended by stop(): on leaving the `with` block, at interpreter exit
(atexit), and on SIGINT/SIGTERM. Logs go to `log_dir/<name>.log`.

Standard library only; runs under Debian's /usr/bin/python3.
"""

import atexit
import ctypes
import os
import pwd
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request

import simctl
from testkit import WaitTimeout, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN_DIR = os.path.join(ROOT, "bin")
PG_BIN = "/usr/lib/postgresql/15/bin"

DEFAULT_TOPICS = "otp.requested:6,otp.call_status:6,otp.requested.dlq:1"


class StackError(RuntimeError):
    """A server of the stack could not be started or controlled."""


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path, lines=40):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _is_root():
    return os.geteuid() == 0


# A child started from the main thread dies with us even if we are SIGKILLed (PR_SET_PDEATHSIG
# fires when the creating *thread* ends, so children of other threads do not get it).
_libc = None


def _set_pdeathsig():
    try:
        _libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort, never fail the child over it
        pass


def _preexec_for_current_thread():
    global _libc
    if threading.current_thread() is not threading.main_thread():
        return None
    if _libc is None:
        try:
            _libc = ctypes.CDLL(None, use_errno=True)
        except OSError:
            return None
    return _set_pdeathsig


class Proc:
    """A program started by Stack.spawn().

    proc: the subprocess.Popen; log_path: its stdout+stderr; ready_match: the re.Match of
    ready_line, if one was given (e.g. to read a port the program printed).
    """

    def __init__(self, name, argv, popen, log_path):
        self.name = name
        self.argv = list(argv)
        self.proc = popen
        self.log_path = log_path
        self.ready_match = None
        self._group_killed = False

    @property
    def pid(self):
        return self.proc.pid

    @property
    def returncode(self):
        return self.proc.poll()

    def alive(self):
        return self.proc.poll() is None

    def poll(self):
        """As subprocess.Popen.poll(): the exit status, or None while it runs."""
        return self.proc.poll()

    def kill(self, sig=signal.SIGKILL):
        """Send a signal (default SIGKILL) to the program, if it still runs."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout=None):
        """Wait for the program to end; returns its exit status (negative: killed by signal)."""
        return self.proc.wait(timeout)

    def stop(self, timeout=10):
        """SIGTERM, wait up to timeout seconds, then SIGKILL. Returns the exit status."""
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left of its process group (the program itself after the timeout,
        # or children it forked and did not end) is killed.
        self._kill_group()
        self.proc.wait()
        self._close()
        return self.proc.returncode

    def _kill_group(self):
        # The program leads its own process group (start_new_session), so this also ends
        # whatever it forked. Once stop() has killed the group, it does not do so again.
        if self._group_killed:
            return
        self._group_killed = True
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            self.kill(signal.SIGKILL)

    def _close(self):
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def log(self):
        """The whole log so far, as text."""
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def __repr__(self):
        return "<Proc %s pid=%d rc=%r>" % (self.name, self.proc.pid, self.proc.poll())


class KafkaBroker:
    """The otp-kafka-broker process: bootstrap servers and its fault-injection commands."""

    def __init__(self, proc, bootstrap, replies):
        self.proc = proc
        self.bootstrap = bootstrap
        self._replies = replies
        self._lock = threading.Lock()

    def control(self, command, timeout=10, check=False):
        """Send one command ("down 1", "up 1", "rtt 1 200", "error 0 6 3", "clear", ...) and
        return the broker's answer line ("ok ..." or "error ..."). check=True raises on "error"."""
        command = command.strip()
        if not command or "\n" in command:
            raise ValueError("one non-empty command line expected")
        with self._lock:
            if not self.proc.alive():
                raise StackError("kafka broker is not running; see %s" % self.proc.log_path)
            while not self._replies.empty():  # a late answer to a command that timed out
                self._replies.get_nowait()
            self.proc.proc.stdin.write((command + "\n").encode())
            self.proc.proc.stdin.flush()
            try:
                reply = self._replies.get(timeout=timeout)
            except queue.Empty:
                raise StackError("kafka broker did not answer %r within %ss" % (command, timeout))
        if check and not reply.startswith("ok"):
            raise StackError("kafka broker: %r -> %r" % (command, reply))
        return reply


def _topics_spec(topics):
    if topics is None:
        return DEFAULT_TOPICS
    if isinstance(topics, str):
        return topics
    if isinstance(topics, dict):
        topics = topics.items()
    parts = []
    for t in topics:
        if isinstance(t, str):
            parts.append(t)
        else:
            name, n = t
            parts.append("%s:%d" % (name, n))
    return ",".join(parts)


_live_stacks = set()  # strong refs: a dropped Stack is still stopped at exit
_hooks_installed = False


def _stop_all():
    for s in list(_live_stacks):
        try:
            s.stop()
        except Exception as e:  # noqa: BLE001 - keep stopping the others
            print("stack: stop failed: %s" % e, file=sys.stderr)


def _on_signal(signum, frame):
    _stop_all()
    prev = _prev_handlers.get(signum)
    if callable(prev):
        prev(signum, frame)
        return
    # Default action: die by the same signal, so the parent sees the real cause.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


_prev_handlers = {}


def _install_hooks():
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_stop_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            prev = signal.getsignal(sig)
            # An ignored signal stays ignored (e.g. SIGINT in a background job).
            if prev is _on_signal or prev == signal.SIG_IGN or prev is None:
                continue
            _prev_handlers[sig] = prev
            signal.signal(sig, _on_signal)


class Stack:
    """Throwaway PostgreSQL, Kafka broker, VoIPBin simulator and programs under test.

    root: the directory for data and logs; by default a new temporary directory that stop()
    removes unless keep=True (or OTP_STACK_KEEP=1). A root you pass in is never removed.
    """

    def __init__(self, root=None, keep=False):
        self.keep = keep or os.environ.get("OTP_STACK_KEEP") == "1"
        if root is None:
            self.root_dir = tempfile.mkdtemp(prefix="otp-stack-")
            self._owns_root = True
        else:
            self.root_dir = os.path.abspath(root)
            os.makedirs(self.root_dir, exist_ok=True)
            self._owns_root = False
        self.log_dir = os.path.join(self.root_dir, "logs")
        os.makedirs(self.log_dir, exist_ok=True)
        if _is_root():
            # mkdtemp makes 0700; the postgres user must be able to pass through.
            os.chmod(self.root_dir, 0o711)
            os.chmod(self.log_dir, 0o755)
        self._procs = []  # every Proc spawned, in start order
        self._stopped = False
        self.kafka = None
        self.kafka_bootstrap = None
        self.pg_url = None
        self.pg_admin_url = None
        self.pg_port = None
        self.pg_data = None
        self.pg_socket_dir = None
        self._pg_running = False
        self._pg_dir = os.path.join(self.root_dir, "pg")
        self._pg_log = os.path.join(self.log_dir, "postgres.log")
        self._pg_tool_log = os.path.join(self.log_dir, "postgres-tools.log")
        _live_stacks.add(self)
        _install_hooks()

    # ---- context manager ----
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    @staticmethod
    def bin(name):
        """Path of a program built into ROOT/bin; raises if it was not built."""
        path = os.path.join(BIN_DIR, name)
        if not os.access(path, os.X_OK):
            raise StackError("%s is not built; run `make` in %s" % (path, ROOT))
        return path

    # ---- programs ----
    def _log_path(self, name):
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        path = os.path.join(self.log_dir, safe + ".log")
        n = 2
        while os.path.exists(path):
            path = os.path.join(self.log_dir, "%s-%d.log" % (safe, n))
            n += 1
        return path

    def spawn(self, name, argv, env=None, ready_line=None, ready_url=None, timeout=30,
              stdin=None, cwd=None, _stdout_lines=None):
        """Start argv with stdout and stderr in log_dir/<name>.log (name-2.log for a second
        one), and wait until it is ready: a line of its output matches the regex ready_line
        and/or an HTTP GET of ready_url answers 200 (both, when both are given).

        env: variables added to this process's environment (a None value removes one).
        stdin: None (/dev/null), subprocess.PIPE or a file. Raises StackError, with the end of
        the log, when the program exits or is not ready within timeout seconds.
        """
        if self._stopped:
            raise StackError("stack already stopped")
        full_env = dict(os.environ)
        for k, v in (env or {}).items():
            if v is None:
                full_env.pop(k, None)
            else:
                full_env[k] = str(v)
        log_path = self._log_path(name)
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(
                [str(a) for a in argv],
                stdin=subprocess.DEVNULL if stdin is None else stdin,
                stdout=subprocess.PIPE if _stdout_lines is not None else log,
                stderr=log,
                env=full_env,
                cwd=cwd or ROOT,
                start_new_session=True,  # a terminal's Ctrl-C reaches us, and we stop them
                preexec_fn=_preexec_for_current_thread(),
            )
        p = Proc(name, argv, popen, log_path)
        self._procs.append(p)
        if _stdout_lines is not None:
            t = threading.Thread(target=_pump_stdout, args=(popen.stdout, log_path, _stdout_lines),
                                 name="stack-" + name, daemon=True)
            t.start()
        try:
            self._wait_ready(p, ready_line, ready_url, timeout)
        except BaseException:
            p.stop(timeout=5)
            raise
        return p

    def _wait_ready(self, p, ready_line, ready_url, timeout):
        line_re = re.compile(ready_line) if ready_line else None
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        st = {"offset": 0, "pending": b"", "line": line_re is None, "url": ready_url is None}

        def ready():
            if not st["line"]:
                with open(p.log_path, "rb") as f:
                    f.seek(st["offset"])
                    chunk = f.read()
                st["offset"] += len(chunk)
                lines = (st["pending"] + chunk).split(b"\n")
                st["pending"] = lines.pop()
                for raw in lines:
                    m = line_re.search(raw.decode("utf-8", "replace").rstrip("\r"))
                    if m:
                        p.ready_match = m
                        st["line"] = True
                        break
            if not st["url"]:
                try:
                    with opener.open(ready_url, timeout=1) as r:
                        st["url"] = r.status == 200
                except (urllib.error.URLError, OSError, ValueError):
                    pass
            if st["line"] and st["url"]:
                return True
            if p.proc.poll() is not None:
                raise StackError("%s exited with status %s before it was ready; log %s:\n%s" % (
                    p.name, p.proc.returncode, p.log_path, _tail(p.log_path)))
            return False

        try:
            wait_until(ready, timeout, p.name + " ready", interval=0.02)
        except WaitTimeout:
            raise StackError("%s not ready within %ss; log %s:\n%s" % (
                p.name, timeout, p.log_path, _tail(p.log_path))) from None

    # ---- Kafka ----
    def start_kafka(self, brokers=1, topics=None, timeout=30):
        """Start otp-kafka-broker with `brokers` brokers (ids 1..brokers) and the topics (a
        "name:partitions,..." string, a {name: partitions} dict or a list; default: the OTP
        topics). Returns the bootstrap servers; self.kafka.control() injects faults."""
        if self.kafka is not None:
            raise StackError("kafka already started: %s" % self.kafka_bootstrap)
        replies = queue.Queue()
        argv = [self.bin("otp-kafka-broker"), "--brokers", str(brokers),
                "--topics", _topics_spec(topics)]
        p = self.spawn("kafka", argv, stdin=subprocess.PIPE, timeout=timeout,
                       ready_line=r"^otp-kafka-broker bootstrap\.servers=(\S+)$",
                       _stdout_lines=replies)
        self.kafka_bootstrap = p.ready_match.group(1)
        self.kafka = KafkaBroker(p, self.kafka_bootstrap, replies)
        return self.kafka_bootstrap

    # ---- VoIPBin simulator ----
    def start_sim(self, extra_args=(), access_key=simctl.DEFAULT_ACCESS_KEY,
                  webhook_secret=simctl.DEFAULT_WEBHOOK_SECRET, webhook_uri=None, timeout=10,
                  name="sim", bin_path=None):
        """Start the VoIPBin simulator (bin/voipbin-sim, or bin_path) on a free loopback port
        with extra_args added to its command line; returns a simctl.Sim to drive it."""
        argv = simctl.sim_argv(bin_path or self.bin("voipbin-sim"), extra_args, access_key,
                               webhook_secret, webhook_uri)
        p = self.spawn(name, argv, ready_line=simctl.READY_LINE, timeout=timeout)
        return simctl.Sim(p, int(p.ready_match.group(1)), access_key, webhook_secret)

    # ---- PostgreSQL ----
    def _pg_cmd(self, argv):
        if _is_root():
            return ["runuser", "-u", "postgres", "--"] + argv
        return argv

    def _pg_run(self, argv, timeout=120, check=True):
        """Run a PostgreSQL tool (as postgres when we are root), output appended to the log."""
        with open(self._pg_tool_log, "ab") as log:
            log.write(("$ %s\n" % " ".join(argv)).encode())
            log.flush()
            r = subprocess.run(self._pg_cmd(argv), stdin=subprocess.DEVNULL, stdout=log,
                               stderr=log, cwd=self._pg_dir, timeout=timeout)
        if check and r.returncode != 0:
            raise StackError("%s failed (%d); logs %s, %s:\n%s\n%s" % (
                os.path.basename(argv[0]), r.returncode, self._pg_tool_log, self._pg_log,
                _tail(self._pg_tool_log, 20), _tail(self._pg_log, 20)))
        return r.returncode

    def _check_traversable(self, path):
        """As root, the postgres user must be able to reach path through every parent."""
        d = os.path.dirname(path)
        while True:
            st = os.stat(d)
            if not st.st_mode & 0o001:
                raise StackError("postgres cannot enter %s (mode %o); use a root under /tmp" % (
                    d, st.st_mode & 0o7777))
            parent = os.path.dirname(d)
            if parent == d:
                return
            d = parent

    def start_postgres(self, fast=False, timeout=60):
        """initdb (first time) and start PostgreSQL 15 on a free 127.0.0.1 port, with role and
        database `otp`. fast=True turns off fsync, synchronous_commit and full_page_writes (not
        for crash tests). Returns "postgresql://otp@127.0.0.1:PORT/otp"."""
        if self._pg_running:
            return self.pg_url
        for tool in ("initdb", "pg_ctl", "psql"):
            if not os.access(os.path.join(PG_BIN, tool), os.X_OK):
                raise StackError("%s/%s missing; run scripts/install-deps.sh" % (PG_BIN, tool))
        self.pg_data = os.path.join(self._pg_dir, "data")
        self.pg_socket_dir = os.path.join(self._pg_dir, "run")
        os.makedirs(self.pg_socket_dir, exist_ok=True)
        for path in (self._pg_log, self._pg_tool_log):
            open(path, "ab").close()
        if _is_root():
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise StackError("no postgres user; run scripts/install-deps.sh")
            self._check_traversable(self._pg_dir)
            for dirpath, dirnames, filenames in os.walk(self._pg_dir):
                os.chown(dirpath, pw.pw_uid, pw.pw_gid)
                for fn in filenames:
                    os.chown(os.path.join(dirpath, fn), pw.pw_uid, pw.pw_gid)
            os.chown(self._pg_log, pw.pw_uid, pw.pw_gid)
        if not os.path.exists(os.path.join(self.pg_data, "PG_VERSION")):
            self._pg_run([os.path.join(PG_BIN, "initdb"), "-D", self.pg_data, "--nosync",
                          "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C"])
            with open(os.path.join(self.pg_data, "postgresql.conf"), "a") as f:
                f.write("\ninclude_if_exists = 'otp-stack.conf'\n")
        for attempt in range(3):
            self.pg_port = free_port()
            self._write_pg_conf(fast)
            rc = self._pg_run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.pg_data, "-l",
                               self._pg_log, "-w", "-t", str(timeout), "start"],
                              timeout=timeout + 10, check=False)
            if rc == 0:
                break
            # Someone took the port between our probe and the server's bind: try another.
            if attempt == 2 or "could not bind" not in _tail(self._pg_log, 20):
                raise StackError("pg_ctl start failed; log %s:\n%s" % (
                    self._pg_log, _tail(self._pg_log, 20)))
        self._pg_running = True
        self.pg_admin_url = "postgresql://postgres@127.0.0.1:%d/postgres" % self.pg_port
        self.pg_url = "postgresql://otp@127.0.0.1:%d/otp" % self.pg_port
        # otp owns the tables and runs the migrations, which create the programs' group roles
        # (sql/031_roles.sql): CREATEROLE. The tests read pg_stat_activity as otp, and the
        # programs run as other roles: pg_read_all_stats.
        self.psql("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'otp') "
                  "THEN CREATE ROLE otp LOGIN CREATEROLE; END IF; END $$;"
                  " ALTER ROLE otp CREATEROLE; GRANT pg_read_all_stats TO otp;",
                  user="postgres", db="postgres")
        if self.psql("SELECT 1 FROM pg_database WHERE datname = 'otp'", user="postgres",
                     db="postgres").strip() != "1":
            self.psql("CREATE DATABASE otp OWNER otp", user="postgres", db="postgres")
        return self.pg_url

    def _write_pg_conf(self, fast):
        lines = [
            "listen_addresses = '127.0.0.1'",
            "port = %d" % self.pg_port,
            "unix_socket_directories = '%s'" % self.pg_socket_dir,
            "max_connections = 200",
            "logging_collector = off",
            "log_line_prefix = '%m [%p] %q%u@%d '",
        ]
        if fast:
            lines += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        path = os.path.join(self.pg_data, "otp-stack.conf")
        with open(path, "w") as f:
            f.write("# written by tests/stack.py on every start\n" + "\n".join(lines) + "\n")
        if _is_root():
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def login_url(self, group):
        """A LOGIN role `<group>_login` (no password: the test cluster trusts loopback) that is a
        member of the group role `group` (otp_worker, otp_verifier, otp_admin, made by the
        migrations), and its URL: a program run with it has only that role's rights."""
        login = group + "_login"
        self.psql("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '%s') "
                  "THEN CREATE ROLE %s LOGIN IN ROLE %s; END IF; END $$;" % (login, login, group),
                  user="postgres", db="postgres")
        return "postgresql://%s@127.0.0.1:%d/otp" % (login, self.pg_port)

    def psql(self, sql, db="otp", user="otp", timeout=60):
        """Run SQL through psql over the unix socket; returns its unaligned, tuples-only output.
        Raises StackError on any SQL error."""
        if not self._pg_running:
            raise StackError("postgres is not running")
        argv = [os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-h", self.pg_socket_dir, "-p", str(self.pg_port), "-U", user, "-d", db,
                "-c", sql]
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                           env=dict(os.environ, PGCONNECT_TIMEOUT="10"))
        if r.returncode != 0:
            raise StackError("psql failed: %s" % r.stderr.decode("utf-8", "replace").strip())
        return r.stdout.decode("utf-8", "replace")

    def restart_postgres(self, mode="fast", timeout=60):
        """Restart PostgreSQL on the same port. mode "fast" is pg_ctl restart -m fast;
        "immediate" stops without a checkpoint (crash recovery on the way up)."""
        if not self._pg_running:
            raise StackError("postgres is not running")
        self._pg_run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.pg_data, "-l", self._pg_log,
                      "-w", "-t", str(timeout), "-m", mode, "restart"], timeout=timeout + 10)

    def stop_postgres(self, timeout=60):
        if not self._pg_running:
            return
        self._pg_running = False
        pg_ctl = os.path.join(PG_BIN, "pg_ctl")
        rc = self._pg_run([pg_ctl, "-D", self.pg_data, "-w", "-t", str(timeout), "-m", "fast",
                           "stop"], timeout=timeout + 10, check=False)
        if rc != 0:
            self._pg_run([pg_ctl, "-D", self.pg_data, "-w", "-m", "immediate", "stop"],
                         check=False)

    # ---- shutdown ----
    def stop(self):
        """End everything this stack started (programs, simulators and the broker in reverse
        start order, then PostgreSQL) and remove the temporary root unless keep. Safe to call
        twice."""
        self._stopped = True
        errors = []
        while self._procs:
            p = self._procs.pop()
            try:
                p.stop(timeout=10)
            except Exception as e:  # noqa: BLE001
                errors.append("%s: %s" % (p.name, e))
        try:
            self.stop_postgres()
        except Exception as e:  # noqa: BLE001
            errors.append("postgres: %s" % e)
        _live_stacks.discard(self)
        if self._owns_root and os.path.isdir(self.root_dir):
            if self.keep:
                print("stack: kept %s" % self.root_dir, file=sys.stderr)
            else:
                shutil.rmtree(self.root_dir, ignore_errors=True)
        if errors:
            raise StackError("; ".join(errors))


def _pump_stdout(pipe, log_path, replies):
    """Copy a program's stdout to its log; answers to commands ("ok ...", "error ...") also go
    to the replies queue."""
    with open(log_path, "ab", buffering=0) as log:
        for raw in iter(pipe.readline, b""):
            log.write(raw)
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith("ok") or line.startswith("error"):
                replies.put(line)
    pipe.close()
