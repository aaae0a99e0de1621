#!/usr/bin/env bash
# Installs everything the tests need that is not a Rust crate: Debian packages (nftables,
# iproute2, ...) and a Python venv in .venv with boto3, the aws CLI, moto[server] and pytest.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_pkgs=(nftables iproute2 iputils-ping python3-venv postgresql)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: not root, cannot install ${missing[*]}; tests that need them will skip" >&2
  fi
fi

if [ ! -x .venv/bin/python ] || ! cmp -s scripts/requirements-test.txt .venv/.requirements; then
  echo "setup: creating .venv from scripts/requirements-test.txt"
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r scripts/requirements-test.txt
  cp scripts/requirements-test.txt .venv/.requirements
fi

# s3s-fs: an S3 server that verifies SigV4, for the delivery tests (skipped when absent).
# 0.14.1 is the newest release that builds with the toolchain here (0.17 wants rustc 1.96).
if [ ! -x .tools/bin/s3s-fs ]; then
  echo "setup: installing s3s-fs into .tools (a few minutes, once)"
  # --debug: a test peer needs no optimisation, and it builds in about half the time.
  cargo install -q --debug s3s-fs@0.14.1 --features binary --root .tools \
    || echo "setup: s3s-fs install failed; the tests that need it will skip" >&2
fi
