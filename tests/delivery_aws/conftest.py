"""Fixtures of the AWS-credential delivery suite (issue 11): a lab (two namespaces, root only),
moto_server, and the recording proxy in front of it. Each is removed in `finally`."""

from __future__ import annotations

import os
import shutil

import pytest

from awsrig import VENV_BIN, Lab, RecordingProxy, start_moto


@pytest.fixture
def lab():
    if os.geteuid() != 0:
        pytest.skip("needs root: creates network namespaces and captures with AF_PACKET")
    if shutil.which("ip") is None:
        pytest.skip("`ip` is not installed (scripts/setup.sh installs it)")
    lab = Lab(tag=f"{os.environ.get('FLOWLOG_LAB_PREFIX', '')[:4]}{os.getpid() % 100000}")
    try:
        yield lab.up()
    finally:
        lab.down()


@pytest.fixture
def moto(tmp_path):
    if not (VENV_BIN / "moto_server").exists():
        pytest.skip("moto_server not installed (scripts/setup.sh)")
    proc, url = start_moto(tmp_path)
    try:
        yield url
    finally:
        proc.stop()


@pytest.fixture
def proxy(moto):
    p = RecordingProxy(moto).start()
    try:
        yield p
    finally:
        p.stop()
