#!/usr/bin/env python3
"""Agent sync at scale: --hosts simulated agents (default 1000) with --enis ENIs each (default
100), every one a real signed `RemoteControlPlane` syncing every --every seconds (default 2),
against one `flowlog serve` on SQLite or on a throwaway PostgreSQL cluster.

  1. every host syncs once (registers its VPC, subnet and ENIs; each host distinct),
  2. one flow log per host VPC is created with boto3 (so every sync answers --enis assignments),
  3. all agents sync for --seconds; the load generator (crates/flowlog-agent/examples/
     sync_bench.rs) reports syncs/s, p50/p99 latency, errors and late syncs;
  4. with PostgreSQL: rows read per sync = delta of pg_stat_database tup_returned +
     tup_fetched over the run / syncs (the server's other readers are idle meanwhile).

  cargo build -p flowlog-cli -p flowlog-agent --example sync_bench
  .venv/bin/python bench/sync_bench.py --store sqlite
  .venv/bin/python bench/sync_bench.py --store pg
  .venv/bin/python bench/sync_bench.py --store sqlite --bin target/flowlog-c19583b   # before

Loopback only. Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import boto3
import botocore.config

REPO = Path(__file__).resolve().parents[1]
KEY, SECRET = "AKIABENCHSYNC0000001", "bench-sync-secret-000000000000000000000"
ROLE = "arn:aws:iam::123456789012:role/bench"


def start_server(binary: str, workdir: Path, store: str | None) -> tuple[subprocess.Popen, str]:
    cfg = workdir / "flowlog.toml"
    cfg.write_text(
        'account_id = "123456789012"\nregion = "us-east-1"\n\n[[credentials]]\n'
        f'access_key_id = "{KEY}"\nsecret_access_key = "{SECRET}"\nallow = ["ec2:*", "flowlog:*"]\n\n'
        "[api]\nmax_flow_logs_per_resource = 100000\n\n"
        # every simulated agent keeps its own connection
        "[server]\nmax_connections = 4096\n")
    cmd = [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(workdir / "data"),
           "--config", str(cfg)]
    if store:
        cmd += ["--store", store]
    log = open(workdir / "serve.log", "wb")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log)
    url = None
    deadline = time.time() + 60
    for raw in p.stdout:
        m = re.search(r"listening on (https?://[0-9.]+:\d+)", raw.decode("utf-8", "replace"))
        if m:
            url = m.group(1)
            break
        if time.time() > deadline:
            break
    if url is None:
        p.kill()
        raise SystemExit(f"flowlog serve did not start; see {workdir / 'serve.log'}")
    threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
    return p, url


def stop(p: subprocess.Popen):
    if p.poll() is None:
        os.kill(p.pid, signal.SIGTERM)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()


def gen(args, url, *extra, threads=None) -> dict:
    cmd = [args.gen, "--url", url, "--key", KEY, "--secret", SECRET, "--hosts", str(args.hosts),
           "--enis", str(args.enis), "--every", str(args.every), "--threads", str(threads or args.threads),
           *extra]
    cp = subprocess.run(cmd, capture_output=True, text=True)
    if cp.returncode != 0:
        raise SystemExit(f"sync_bench failed: {cp.stderr[-2000:]}")
    return json.loads(cp.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.environ.get("FLOWLOG_BIN", str(REPO / "target/debug/flowlog")))
    ap.add_argument("--gen", default=str(REPO / "target/debug/examples/sync_bench"))
    ap.add_argument("--store", default="sqlite", help="sqlite or pg (throwaway cluster)")
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--enis", type=int, default=100)
    ap.add_argument("--every", type=float, default=2.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--threads", type=int, default=64)
    args = ap.parse_args()

    pg = None
    store = None
    if args.store == "pg":
        sys.path.insert(0, str(REPO / "tests"))
        from pgcluster import PgCluster, unavailable_reason
        if unavailable_reason():
            raise SystemExit(unavailable_reason())
        pg = PgCluster(prefix="sync_bench_pg_").start()
        store = pg.createdb("syncbench")
    try:
        with tempfile.TemporaryDirectory(prefix="sync_bench_") as tmp:
            p, url = start_server(args.bin, Path(tmp), store)
            try:
                t0 = time.time()
                # few at a time: a first registration writes --enis ENIs in one transaction
                reg = gen(args, url, "--register", threads=4)
                print(f"registered {reg['syncs']} hosts x {args.enis} ENIs in {time.time() - t0:.1f}s "
                      f"({reg['errors']} errors{': ' + str(reg['first_error']) if reg['errors'] else ''})",
                      flush=True)
                ec2 = boto3.client("ec2", endpoint_url=url, region_name="us-east-1",
                                   aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                                   config=botocore.config.Config(read_timeout=300, retries={"max_attempts": 1}))
                vpcs = sorted(v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"])
                for i in range(0, len(vpcs), 1000):
                    r = ec2.create_flow_logs(ResourceType="VPC", ResourceIds=vpcs[i:i + 1000],
                                             TrafficType="ALL", LogGroupName=f"sync-bench-{i}",
                                             DeliverLogsPermissionArn=ROLE)
                    assert not r.get("Unsuccessful"), r["Unsuccessful"][:3]
                print(f"{len(vpcs)} VPCs, one flow log each", flush=True)
                before = pg.rows_read("syncbench") if pg else None
                res = gen(args, url, "--seconds", str(args.seconds))
                if pg:
                    time.sleep(1.5)  # statistics are flushed about once a second
                    res["rows_read_per_sync"] = (pg.rows_read("syncbench") - before) / max(1, res["syncs"])
                try:
                    with open(f"/proc/{p.pid}/status") as f:
                        res["server_rss_mib"] = next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024
                except (OSError, StopIteration):
                    pass
                res["binary"] = args.bin
                res["store"] = args.store
                print(json.dumps(res))
            finally:
                stop(p)
    finally:
        if pg:
            pg.stop()


if __name__ == "__main__":
    main()
