"""Fixtures of the end-to-end tests: root-only network labs, moto_server, temp dirs."""

from __future__ import annotations

import os

import pytest

from lab import Lab, have, is_root, start_moto


@pytest.fixture
def lab():
    if not is_root():
        pytest.skip("needs root: creates network namespaces, AF_PACKET sockets and nftables rules")
    for tool in ("ip", "nft"):
        if not have(tool):
            pytest.skip(f"`{tool}` is not installed (scripts/setup.sh installs it)")
    # FLOWLOG_LAB_PREFIX keeps names apart when several people run the suite on one host
    # (interface names stay within 15 characters: "fva" + prefix + 5 digits).
    lab = Lab(tag=f"{os.environ.get('FLOWLOG_LAB_PREFIX', '')[:4]}{os.getpid() % 100000}")
    try:
        yield lab.up()
    finally:
        lab.down()


@pytest.fixture
def moto(tmp_path):
    proc, url = start_moto(tmp_path)
    try:
        yield url
    finally:
        proc.stop()
