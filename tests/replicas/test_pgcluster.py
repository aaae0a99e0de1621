"""The throwaway PostgreSQL harness itself (tests/pgcluster.py): password auth on loopback only,
data survives an immediate restart on the same port, and stop() leaves nothing behind."""

import os
import socket
import subprocess

import pytest

from pgcluster import PgCluster, pg_cluster, require_postgres


def test_cluster_lifecycle():
    with pg_cluster() as pg:
        root, pid = pg.root, pg._pid
        assert pg.running()
        url = pg.createdb("lifecycle")
        assert url.startswith(f"postgres://flowlog:{pg.password}@127.0.0.1:{pg.port}/lifecycle")
        pg.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2)", db="lifecycle")
        # as root the server runs as the postgres OS user, never as root
        if os.geteuid() == 0:
            owner = subprocess.run(["ps", "-o", "user=", "-p", str(pid)], capture_output=True,
                                   text=True).stdout.strip()
            assert owner == "postgres", owner
        # a wrong password is refused over TCP (scram), so URLs really carry credentials
        env = {"PGPASSWORD": "wrong", "PATH": os.environ.get("PATH", "")}
        cp = subprocess.run([str(pg.bindir / "psql"), "-X", "-h", "127.0.0.1", "-p", str(pg.port),
                             "-U", "flowlog", "-d", "lifecycle", "-c", "SELECT 1"],
                            capture_output=True, text=True, env=env, timeout=30)
        assert cp.returncode != 0 and "password authentication failed" in cp.stderr, cp.stderr
        port = pg.port
        pg.restart(down_for=0.5)
        assert pg.port == port and pg.running() and pg._pid != pid
        assert pg.psql("SELECT sum(x) FROM t", db="lifecycle") == "3"
        pg.stop_server()
        assert not pg.running()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        pg.start()
        assert pg.psql("SELECT count(*) FROM t", db="lifecycle") == "2"
    assert not root.exists()
    assert not pg.running()


def test_removed_on_failure():
    require_postgres()
    roots = []
    with pytest.raises(ZeroDivisionError):
        with pg_cluster() as pg:
            roots.append((pg.root, pg._pid))
            1 / 0
    root, pid = roots[0]
    assert not root.exists()
    assert not PgCluster._alive(pid)
