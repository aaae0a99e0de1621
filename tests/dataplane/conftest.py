"""Fixtures for the data-plane end-to-end tests: the flowlog binary and the bench generator."""

import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def flowlog_bin():
    path = pathlib.Path(os.environ.get("FLOWLOG_BIN", REPO / "target" / "debug" / "flowlog"))
    if not path.exists():
        pytest.skip(f"flowlog binary not built: {path}")
    return str(path)


@pytest.fixture(scope="session")
def flowgen():
    """Builds ../shared/bench/gen (flowgen) once into target/flowgen and returns its path."""
    gen_dir = SHARED / "bench" / "gen"
    if not (gen_dir / "Cargo.toml").exists():
        pytest.skip(f"generator not found at {gen_dir}")
    target = REPO / "target" / "flowgen"
    subprocess.run(
        ["cargo", "build", "--release", "-q"],
        cwd=gen_dir,
        env={**os.environ, "CARGO_TARGET_DIR": str(target)},
        check=True,
    )
    return str(target / "release" / "flowgen")


@pytest.fixture
def shared_data():
    d = SHARED / "data"
    if not (d / "real-h1.pcap").exists():
        pytest.skip(f"real captures not found in {d}")
    return d
