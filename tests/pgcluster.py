"""A throwaway PostgreSQL cluster for tests: Debian's `postgresql` package, nothing shared.

    from pgcluster import PgCluster, pg_cluster   # tests/ is on sys.path (tests/conftest.py)

    with pg_cluster() as pg:                       # skips when PostgreSQL is not installed
        url = pg.createdb("t1")                    # postgres://flowlog:<pw>@127.0.0.1:<port>/t1
        pg.psql("SELECT 1", db="t1")
        pg.restart(down_for=2.0)                   # immediate stop, wait, start again (same port)

What it does:
- `initdb` into a fresh temporary directory. initdb refuses to run as root, so as root the
  directory is handed to the `postgres` OS user and every server-side binary runs through
  `runuser -u postgres --`; as another user it runs as that user.
- The superuser is `flowlog` with a random password (scram-sha-256 on TCP, `trust` only on the
  Unix socket, which lives inside the temp directory, mode 0700). Clients connect over TCP to
  127.0.0.1 on a free port, with the password in the URL: nothing listens beyond loopback.
- `fsync=off` (a test cluster does not survive an OS crash, it does not need to), but commits
  stay synchronous: an immediate stop (`restart`, `stop_server`) is a crash of the server
  process, after which every committed transaction must still be there.
- `stop()` = `pg_ctl stop -m immediate` (SIGKILL of the postmaster by PID as a last resort) and
  `rm -rf` of the directory. It is registered with `atexit` as well, and `pg_cluster()` calls it
  in `finally`, so the cluster is removed even when a test fails or is interrupted.

Binaries come from the newest `/usr/lib/postgresql/<major>/bin` (or FLOWLOG_PG_BIN). Without
them `pg_cluster()` / `require_postgres()` skip the test, which under CI=true is a failure
(tests/conftest.py): scripts/setup.sh installs `postgresql`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

SUPERUSER = "flowlog"
OS_USER = "postgres"  # runs the server when the tests run as root


def pg_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin directory, or None."""
    env = os.environ.get("FLOWLOG_PG_BIN")
    if env:
        p = Path(env)
        return p if (p / "initdb").exists() else None
    root = Path("/usr/lib/postgresql")
    if not root.is_dir():
        return None
    found = []
    for d in root.iterdir():
        if (d / "bin" / "initdb").exists() and (d / "bin" / "pg_ctl").exists():
            try:
                found.append((int(d.name.split(".")[0]), d / "bin"))
            except ValueError:
                continue
    return max(found)[1] if found else None


def unavailable_reason() -> str | None:
    """Why a cluster cannot be made here, or None when it can."""
    if pg_bin_dir() is None:
        return ("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); "
                "run scripts/setup.sh as root, which installs Debian's postgresql package")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(OS_USER)
        except KeyError:
            return f"running as root but there is no '{OS_USER}' OS user to run initdb as"
        if shutil.which("runuser") is None:
            return "running as root but runuser(1) is missing"
    return None


def require_postgres():
    """pytest.skip with the reason when no cluster can be made (a failure under CI=true)."""
    reason = unavailable_reason()
    if reason is not None:
        import pytest
        pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_LIVE: set["PgCluster"] = set()


@atexit.register
def _stop_all():
    for c in list(_LIVE):
        c.stop()


class PgCluster:
    """One throwaway cluster. `start()` it (or use `pg_cluster()`), `stop()` removes it."""

    def __init__(self, prefix: str = "b13pg-"):
        bindir = pg_bin_dir()
        if bindir is None:
            raise RuntimeError(unavailable_reason())
        self.bindir = bindir
        self.as_root = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix=prefix))
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self.log = self.root / "postgres.log"
        self.password = secrets.token_hex(16)
        self.port: int | None = None
        self._pid: int | None = None
        _LIVE.add(self)
        try:
            self.sock.mkdir()
            if self.as_root:
                pw = pwd.getpwnam(OS_USER)
                for p in (self.root, self.sock):
                    os.chown(p, pw.pw_uid, pw.pw_gid)
            os.chmod(self.root, 0o700)
            pwfile = self.root / "pwfile"
            pwfile.write_text(self.password + "\n")
            if self.as_root:
                os.chown(pwfile, pw.pw_uid, pw.pw_gid)
            os.chmod(pwfile, 0o600)
            self._run_server_side(
                "initdb", "-D", str(self.data), "-U", SUPERUSER, f"--pwfile={pwfile}",
                "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                "--locale=C", "--no-sync",
            )
            pwfile.unlink()
            with open(self.data / "postgresql.conf", "a") as f:
                f.write(
                    "\n# throwaway test cluster (tests/pgcluster.py)\n"
                    "listen_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{self.sock}'\n"
                    "fsync = off\nfull_page_writes = off\n"
                    "synchronous_commit = on\n"
                    "shared_buffers = 32MB\nmax_connections = 200\n"
                    "log_min_messages = warning\nlogging_collector = off\n"
                )
        except BaseException:
            self.stop()
            raise

    # -- running server-side binaries ----------------------------------------------------------
    def _cmd(self, tool: str, *args: str) -> list[str]:
        cmd = [str(self.bindir / tool), *args]
        return ["runuser", "-u", OS_USER, "--", *cmd] if self.as_root else cmd

    def _run_server_side(self, tool: str, *args: str, timeout: float = 60, check: bool = True):
        cp = subprocess.run(self._cmd(tool, *args), capture_output=True, text=True,
                            timeout=timeout, cwd=self.root, env=self._env())
        if check and cp.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed rc={cp.returncode}:\n"
                               f"{cp.stdout}\n{cp.stderr}\nlog: {self.log_tail()}")
        return cp

    def _env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        return env

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, timeout: float = 30) -> "PgCluster":
        """Starts the server; on the first start picks a free port (retried if taken meanwhile),
        later starts reuse it so URLs handed out stay valid."""
        attempts = 1 if self.port is not None else 3
        last = None
        for _ in range(attempts):
            port = self.port or free_port()
            cp = self._run_server_side(
                "pg_ctl", "start", "-w", "-t", str(int(timeout)), "-D", str(self.data),
                "-l", str(self.log), "-o", f"-p {port}", check=False, timeout=timeout + 10)
            if cp.returncode == 0:
                self.port = port
                self._pid = self._postmaster_pid()
                return self
            last = f"pg_ctl start rc={cp.returncode}: {cp.stdout}{cp.stderr}\nlog: {self.log_tail()}"
        raise RuntimeError(last)

    def stop_server(self):
        """Immediate stop (a crash as far as clients are concerned); the cluster stays on disk."""
        if self._pid is None:
            return
        cp = self._run_server_side("pg_ctl", "stop", "-m", "immediate", "-w", "-D", str(self.data),
                                   check=False, timeout=40)
        if cp.returncode != 0 and self._alive(self._pid):
            os.kill(self._pid, signal.SIGKILL)
            for _ in range(100):
                if not self._alive(self._pid):
                    break
                time.sleep(0.05)
        self._pid = None

    def restart(self, down_for: float = 0.0):
        """Immediate stop, `down_for` seconds without a server, start on the same port."""
        self.stop_server()
        if down_for:
            time.sleep(down_for)
        self.start()

    def running(self) -> bool:
        return self._pid is not None and self._alive(self._pid)

    def stop(self):
        """Stops the server (immediate) and removes the whole directory. Idempotent."""
        try:
            self.stop_server()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            _LIVE.discard(self)

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    @staticmethod
    def _alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        # a zombie is not alive; pg_ctl's child is reaped by init, but check /proc anyway
        try:
            return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
        except OSError:
            return False

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    # -- clients -------------------------------------------------------------------------------
    def url(self, db: str = "postgres", **params: str) -> str:
        """postgres://flowlog:<password>@127.0.0.1:<port>/<db>[?params]"""
        assert self.port is not None, "start() the cluster first"
        u = f"postgres://{SUPERUSER}:{urllib.parse.quote(self.password, safe='')}@127.0.0.1:{self.port}/{db}"
        if params:
            u += "?" + urllib.parse.urlencode(params)
        return u

    def psql(self, sql: str, db: str = "postgres", check: bool = True) -> str:
        """Runs SQL with psql over TCP as the superuser; returns unaligned, tuples-only output."""
        assert self.port is not None, "start() the cluster first"
        env = self._env()
        env["PGPASSWORD"] = self.password
        cp = subprocess.run(
            [str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, "-d", db, "-c", sql],
            capture_output=True, text=True, timeout=60, env=env)
        if check and cp.returncode != 0:
            raise RuntimeError(f"psql {sql!r} on {db} failed rc={cp.returncode}: {cp.stderr}")
        return cp.stdout.strip()

    def createdb(self, name: str | None = None) -> str:
        """A fresh, empty database; returns its URL."""
        name = name or f"t_{secrets.token_hex(6)}"
        assert name.replace("_", "").isalnum(), name
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def rows_read(self, db: str) -> int:
        """tup_returned + tup_fetched of one database (pg_stat_database; the stats collector
        flushes about once a second, so take deltas over a longer run)."""
        out = self.psql(f"SELECT tup_returned + tup_fetched FROM pg_stat_database WHERE datname = '{db}'")
        return int(out or 0)


@contextlib.contextmanager
def pg_cluster(prefix: str = "b13pg-"):
    """A started cluster for the duration of the block, removed in `finally`. Skips (pytest)
    when PostgreSQL is not installed."""
    require_postgres()
    c = PgCluster(prefix)
    try:
        c.start()
        yield c
    finally:
        c.stop()
