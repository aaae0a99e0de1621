"""CPU of an idle `flowlog serve` with N namespaces in its inventory (root; names o10*),
its discovery children included:
first with no flow log (discovery only, every sync), then
with a VPC flow log capturing all N interfaces. Prints CPU seconds per wall second.

    FLOWLOG_BIN=target/debug/flowlog .venv/bin/python bench/idle_cpu.py --namespaces 50
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

from lab import aws, config, run, start_serve  # noqa: E402


def cpu_s(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime + stime + the waited-for children's (the `ip` subprocesses of discovery)
    return (int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])) / os.sysconf("SC_CLK_TCK")


def measure(pid: int, secs: float) -> float:
    c0, t0 = cpu_s(pid), time.time()
    time.sleep(secs)
    return (cpu_s(pid) - c0) / (time.time() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--namespaces", type=int, default=50)
    ap.add_argument("--secs", type=float, default=20)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="o10cpu"))
    tag = os.getpid() % 10000
    made = []
    serve = None
    try:
        inv = ['[[vpc]]\nname = "v"\ncidr_block = "10.79.0.0/16"\n[[subnet]]\nname = "s"\nvpc = "v"\ncidr_block = "10.79.0.0/16"\n']
        for i in range(a.namespaces):
            ns = f"o10c{tag}x{i}"
            run("ip", "netns", "add", ns)
            made.append(ns)
            run("ip", "-n", ns, "link", "add", "o10p", "type", "veth", "peer", "name", "o10q")
            run("ip", "-n", ns, "addr", "add", f"10.79.{i // 200}.{i % 200 + 10}/16", "dev", "o10p")
            run("ip", "-n", ns, "link", "set", "o10p", "up")
            run("ip", "-n", ns, "link", "set", "o10q", "up")
            inv.append(f'[[network_interface]]\nsubnet = "s"\ninterface = "o10p"\nnetns = "{ns}"\n'
                       f'private_ip = "10.79.{i // 200}.{i % 200 + 10}"\n')
        cfg = config(tmp, moto=None, inventory="\n".join(inv))
        # default sync (2 s) and windows, as a real deployment would run
        text = cfg.read_text().replace("window_secs = 2\nsync_secs = 0.5\n", "window_secs = 600\nsync_secs = 2\n")
        cfg.write_text(text)
        serve, ep = start_serve(tmp, cfg)
        time.sleep(3)
        idle = measure(serve.p.pid, a.secs)
        vpc = aws(ep, "ec2", "describe-vpcs")["Vpcs"][0]["VpcId"]
        aws(ep, "ec2", "create-flow-logs", "--resource-type", "VPC", "--resource-ids", vpc, "--traffic-type", "ALL",
            "--log-destination-type", "s3", "--log-destination", "arn:aws:s3:::o10cpu/")
        deadline = time.time() + 30
        while serve.log.read_text().count("capture started") < a.namespaces and time.time() < deadline:
            time.sleep(0.5)
        started = serve.log.read_text().count("capture started")
        time.sleep(2)
        capturing = measure(serve.p.pid, a.secs)
        print(f"MEASURE idle CPU, {a.namespaces} namespaces, discovery (sync every 2 s): "
              f"{idle * 100:.1f}% of a core without flow logs; {capturing * 100:.1f}% with {started} idle captures")
    finally:
        if serve:
            serve.stop()
        for ns in made:
            run("ip", "netns", "del", ns, check=False)


if __name__ == "__main__":
    main()
