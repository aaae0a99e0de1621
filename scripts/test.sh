#!/usr/bin/env bash
# Runs every test of the project: Rust unit and integration tests, then the end-to-end
# suite (real aws CLI, boto3, moto_server, network namespaces) against the built binary.
# Tests that need root report themselves skipped when not run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
export PATH="$PWD/.venv/bin:$PWD/.tools/bin:$PATH"

cargo build --workspace --bins
cargo test --workspace
FUZZ_SECONDS="${FUZZ_SECONDS:-20}" scripts/fuzz.sh   # every cargo-fuzz target under fuzz/*/, bounded

export FLOWLOG_BIN="$PWD/target/debug/flowlog"
.venv/bin/python -m pytest -q tests/
