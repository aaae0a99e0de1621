"""pytest fixtures of the API suite. The harness (Server, Reply, Moto, helpers) lives in
apiharness.py, which test modules import under that unique name: several test directories of
this repository have a conftest.py, so `from conftest import ...` would be ambiguous."""

import pytest

from apiharness import Moto, Server, _start


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server per test module (state shared inside the module)."""
    srv = _start(tmp_path_factory, "srv")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def fresh_server(tmp_path_factory):
    """A server of its own, for tests where isolation matters."""
    srv = _start(tmp_path_factory, "fresh")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def make_server(tmp_path_factory):
    """Factory: make_server(config_extra=..., max_per_resource=..., use_config=...)."""
    made: list[Server] = []

    def make(start: bool = True, **kw) -> Server:
        srv = Server(tmp_path_factory.mktemp("custom"), **kw)
        made.append(srv)
        if start:
            srv.start()
        return srv

    try:
        yield make
    finally:
        for srv in made:
            srv.stop()


@pytest.fixture(scope="module")
def world(server):
    """The spec's §15 conventions on the module server: V1, V2 VPCs, S1 in V1, E1 in S1."""
    v1 = server.vpc("10.0.0.0/16")
    v2 = server.vpc("10.1.0.0/16")
    s1 = server.subnet(v1, "10.0.1.0/24")
    e1 = server.eni(s1)
    return {"V1": v1, "V2": v2, "S1": s1, "E1": e1}


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    m = Moto(tmp_path_factory.mktemp("moto"))
    try:
        yield m
    finally:
        m.stop()

