"""Fixtures of the replica suite: a throwaway PostgreSQL cluster for the module, and two
`flowlog serve --store postgres://…` replicas on one fresh database per test. The API
harness (tests/api/apiharness.py) is reused for the servers and their clients."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from apiharness import Server  # noqa: E402
from pgcluster import PgCluster, require_postgres  # noqa: E402


@pytest.fixture(scope="module")
def pg():
    require_postgres()
    c = PgCluster()
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture
def replicas(pg, tmp_path):
    """Two replicas on one new database; the first one applies the migrations."""
    url = pg.createdb()
    made = []
    try:
        for name in ("r1", "r2"):
            srv = Server(tmp_path / name, name=name, max_per_resource=2, args=["--store", url])
            made.append(srv)
            srv.start()
        yield made
    finally:
        for srv in made:
            srv.stop()
