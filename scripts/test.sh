#!/usr/bin/env bash
# Runs every test of the project: Rust unit and integration tests, bounded fuzzing, then the
# end-to-end suites (real aws CLI, boto3, moto_server, s3s-fs, network namespaces, throwaway
# PostgreSQL clusters) against the built binary. Tests that need root report themselves
# skipped when not run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
stage() { echo "== test.sh: $1 (at $((SECONDS - started)) s)"; }

stage "setup (Debian packages, Python venv, peer servers)"
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PWD/.tools/bin:$PATH"

stage "format and lints (cargo fmt --check, clippy -D warnings)"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
stage "cargo build"
# --all-targets: the binaries and the tests are built with one feature resolution (dev-dependencies
# included), so `cargo test` below reuses every artifact instead of rebuilding the AWS SDK crates
# with a second feature set.
cargo build --workspace --all-targets
stage "cargo test"
cargo test --workspace
stage "fuzzing"
# every cargo-fuzz target under fuzz/*/, bounded in total
FUZZ_SECONDS="${FUZZ_SECONDS:-15}" FUZZ_TOTAL_SECONDS="${FUZZ_TOTAL_SECONDS:-90}" scripts/fuzz.sh

stage "end-to-end suites"
export FLOWLOG_BIN="$PWD/target/debug/flowlog"
.venv/bin/python -m pytest -q tests/
stage "API suite over TLS, against two replicas on one PostgreSQL (requests alternate)"
FLOWLOG_TEST_TLS=1 FLOWLOG_TEST_STORE=pg2 .venv/bin/python -m pytest -q tests/api
stage "done"
