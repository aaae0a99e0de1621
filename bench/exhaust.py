#!/usr/bin/env python3
"""Unauthenticated exhaustion, measured: RSS of `flowlog serve` and the latency of one honest
signed request while strangers hold the server's resources. Loopback only, bounded in time.

  slow-bodies  N clients announce a 2 MiB body, send all of it but the last byte, and hold
  idle         N TCP connections that never send a byte

  .venv/bin/python bench/exhaust.py --bin target/debug/flowlog --slow 300 --idle 2000

Prints, per scenario: the server's RSS before and while attacked (VmRSS, and VmHWM = peak), and
whether (and how fast) an honest DescribeFlowLogs was answered meanwhile. Run it once with the
binary before a change and once after, on the same machine.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import requests

KEY, SECRET = "AKIAEXHAUSTADMIN0001", "exhaust-secret-key-00000000000000000000"
REGION = "us-east-1"


def rss(pid: int) -> tuple[float, float]:
    vals = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                vals[k] = int(v.split()[0]) / 1024
    return vals.get("VmRSS", float("nan")), vals.get("VmHWM", float("nan"))


def honest_call(url: str, timeout: float) -> str:
    body = urllib.parse.urlencode([("Action", "DescribeFlowLogs"), ("Version", "2016-11-15")])
    req = botocore.awsrequest.AWSRequest(method="POST", url=url + "/", data=body,
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(KEY, SECRET), "ec2", REGION).add_auth(req)
    p = req.prepare()
    t0 = time.time()
    try:
        r = requests.post(p.url, headers=dict(p.headers.items()), data=p.body, timeout=timeout)
        return f"HTTP {r.status_code} in {(time.time() - t0) * 1000:.0f} ms"
    except requests.RequestException as e:
        return f"no answer within {timeout:.0f} s ({type(e).__name__})"


def start(binary: str, tmp: Path) -> tuple[subprocess.Popen, str]:
    cfg = tmp / "flowlog.toml"
    cfg.write_text(f'[[credentials]]\naccess_key_id = "{KEY}"\nsecret_access_key = "{SECRET}"\n'
                   'allow = ["ec2:*"]\n\n[agent]\nenabled = false\n')
    proc = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp / "d"),
                             "--config", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    for raw in proc.stdout:
        m = re.search(r"listening on (http://[0-9.]+:\d+)", raw.decode())
        if m:
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, m.group(1)
    raise SystemExit("flowlog did not start")


def slow_bodies(addr: tuple[str, int], n: int) -> list[socket.socket]:
    size = 2 * 1024 * 1024
    head = (f"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {size}\r\n\r\n").encode()
    chunk = b"a" * (size - 1)
    socks = []

    def one():
        try:
            s = socket.create_connection(addr, timeout=10)
            s.sendall(head)
            s.sendall(chunk)
            socks.append(s)
        except OSError:
            pass

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return socks


def idle(addr: tuple[str, int], n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        try:
            socks.append(socket.create_connection(addr, timeout=5))
        except OSError:
            break
    return socks


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--slow", type=int, default=300)
    ap.add_argument("--idle", type=int, default=2000)
    ap.add_argument("--hold", type=float, default=3.0, help="seconds to hold before measuring")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.idle + args.slow + 256)), hard))
    for name, attack, n in (("slow-bodies", slow_bodies, args.slow), ("idle", idle, args.idle)):
        with tempfile.TemporaryDirectory(prefix="exhaust_") as tmp:
            proc, url = start(args.bin, Path(tmp))
            try:
                u = urllib.parse.urlsplit(url)
                base, _ = rss(proc.pid)
                before = honest_call(url, 10)
                socks = attack((u.hostname, u.port), n)
                time.sleep(args.hold)
                during = honest_call(url, 10)
                now, peak = rss(proc.pid)
                print(f"{name:<12} n={n:<5} opened={len(socks):<5} RSS {base:.0f} -> {now:.0f} MiB "
                      f"(peak {peak:.0f} MiB); honest call before: {before}; during: {during}", flush=True)
                for s in socks:
                    s.close()
            finally:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()


if __name__ == "__main__":
    sys.exit(main())
