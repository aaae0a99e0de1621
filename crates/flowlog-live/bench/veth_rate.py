#!/usr/bin/env python3
"""Measure live capture at the highest packet rate a veth pair reaches here.

Creates two network namespaces joined by a veth pair (10.201.0.1 <-> 10.201.0.2, only inside
them), floods small UDP datagrams from A to B with `udp_flood` for a bounded time while
`flowlog capture` runs on one end, then compares the flow record with the sender's count and
the interface counters, and reports the capture's CPU use and kernel drops. Removes everything
it created, stops processes by PID. Needs root.

usage: veth_rate.py FLOWLOG_BIN UDP_FLOOD_BIN [--seconds 8] [--payload 18] [--senders 1]
                    [--ring-mb 16] [--side a|b]

Build both first: cargo build --release -p flowlog-cli; cargo build --release -p flowlog-live
--example udp_flood.
"""

import argparse
import os
import re
import secrets
import signal
import subprocess
import sys
import time

A4, B4 = "10.201.0.1", "10.201.0.2"
SPORT, DPORT = 40010, 9000
TICK = os.sysconf("SC_CLK_TCK")


def sh(*cmd, check=True):
    return subprocess.run(list(cmd), check=check, capture_output=True, text=True, timeout=60)


def cpu_s(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


def oncpu_s(pid):
    return int(open(f"/proc/{pid}/schedstat").read().split()[0]) / 1e9


def link_stats(ns, dev):
    out = sh("ip", "-n", ns, "-s", "link", "show", dev).stdout.split("\n")
    rx = out[out.index(next(l for l in out if "RX:" in l)) + 1].split()
    tx = out[out.index(next(l for l in out if "TX:" in l)) + 1].split()
    return {"rx_packets": int(rx[1]), "rx_dropped": int(rx[3]), "tx_packets": int(tx[1]), "tx_dropped": int(tx[3])}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("flowlog")
    ap.add_argument("flood")
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--payload", type=int, default=18)
    ap.add_argument("--senders", type=int, default=1, help="parallel sender processes (distinct source ports)")
    ap.add_argument("--ring-mb", type=int, default=16, help="capture ring size (small rings show drops)")
    ap.add_argument("--baseline", action="store_true", help="no capture: the veth's own rate")
    ap.add_argument("--side", choices=["a", "b"], default="a", help="capture on the sender (a, egress) or receiver (b, ingress)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root")
    sfx = secrets.token_hex(3)
    ns_a, ns_b, va, vb = f"frA{sfx}", f"frB{sfx}", f"fra{sfx}", f"frb{sfx}"
    procs, made = [], []
    try:
        for ns in (ns_a, ns_b):
            sh("ip", "netns", "add", ns)
            made.append(ns)
        sh("ip", "link", "add", va, "netns", ns_a, "type", "veth", "peer", "name", vb, "netns", ns_b)
        macs = {}
        for ns, dev, a in ((ns_a, va, A4), (ns_b, vb, B4)):
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1")
            sh("ip", "-n", ns, "addr", "add", f"{a}/24", "dev", dev)
            macs[dev] = re.search(r"link/ether (\S+)", sh("ip", "-n", ns, "-o", "link", "show", dev).stdout).group(1)
        sh("ip", "-n", ns_a, "neigh", "add", B4, "lladdr", macs[vb], "dev", va, "nud", "permanent")
        sh("ip", "-n", ns_b, "neigh", "add", A4, "lladdr", macs[va], "dev", vb, "nud", "permanent")
        for ns, dev in ((ns_a, va), (ns_b, vb)):
            sh("ip", "-n", ns, "link", "set", dev, "up")
        # A bound receiver that never reads: excess datagrams are dropped silently (no ICMP).
        sink = subprocess.Popen(["ip", "netns", "exec", ns_b, sys.executable, "-c",
                                 f"import socket,time; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('0.0.0.0',{DPORT})); print('ready',flush=True); time.sleep(600)"],
                                stdout=subprocess.PIPE, text=True)
        procs.append(sink)
        sink.stdout.readline()
        if args.baseline:
            before = {"a": link_stats(ns_a, va), "b": link_stats(ns_b, vb)}
            floods = [subprocess.Popen(["ip", "netns", "exec", ns_a, args.flood, f"{B4}:{DPORT}", str(args.payload),
                                        str(args.seconds), str(SPORT + i)], stdout=subprocess.PIPE, text=True)
                      for i in range(args.senders)]
            procs.extend(floods)
            for f in floods:
                print("sender:", f.communicate(timeout=args.seconds + 30)[0].strip())
            after = {"a": link_stats(ns_a, va), "b": link_stats(ns_b, vb)}
            print(f"baseline (no capture): veth A tx {after['a']['tx_packets'] - before['a']['tx_packets']}, "
                  f"veth B rx {after['b']['rx_packets'] - before['b']['rx_packets']} in {args.seconds} s")
            return
        cap_ns, cap_dev = (ns_a, va) if args.side == "a" else (ns_b, vb)
        out, err = f"/tmp/veth_rate_{sfx}.log", f"/tmp/veth_rate_{sfx}.err"
        cap = subprocess.Popen([args.flowlog, "capture", "--interface", cap_dev, "--netns", cap_ns,
                                "--eni", "eni-0bench000000000000", "--interval", "5", "--out", out, "--ring-mb", str(args.ring_mb)],
                               stderr=open(err, "w"))
        procs.append(cap)
        while "listening on" not in open(err).read():
            if cap.poll() is not None:
                sys.exit(open(err).read())
            time.sleep(0.05)
        before = {"a": link_stats(ns_a, va), "b": link_stats(ns_b, vb)}
        cpu0, run0, t0 = cpu_s(cap.pid), oncpu_s(cap.pid), time.time()
        floods = [subprocess.Popen(["ip", "netns", "exec", ns_a, args.flood, f"{B4}:{DPORT}", str(args.payload),
                                    str(args.seconds), str(SPORT + i)], stdout=subprocess.PIPE, text=True)
                  for i in range(args.senders)]
        procs.extend(floods)
        flood_out = [f.communicate(timeout=args.seconds + 30)[0] for f in floods]
        time.sleep(0.5)
        cpu1, run1, t1 = cpu_s(cap.pid), oncpu_s(cap.pid), time.time()
        after = {"a": link_stats(ns_a, va), "b": link_stats(ns_b, vb)}
        cap.send_signal(signal.SIGINT)
        cap.wait(timeout=30)
        summary = open(err).read().strip().splitlines()[-1]
        pk = by = skipdata = 0
        ports = {str(SPORT + i) for i in range(args.senders)}
        for line in open(out):
            f = line.split()
            skipdata += f[-1] == "SKIPDATA"
            if f[3:5] == [A4, B4] and f[5] in ports and f[6:8] == [str(DPORT), "17"]:
                pk += int(f[8])
                by += int(f[9])
        sent = sum(int(re.search(r"sent=(\d+)", o).group(1)) for o in flood_out)
        pps = sum(float(re.search(r"pps=(\d+)", o).group(1)) for o in flood_out)
        d = {side: {k: after[side][k] - before[side][k] for k in after[side]} for side in after}
        for o in flood_out:
            print(f"sender: {o.strip()}")
        print(f"total: sent={sent} pps={pps:.0f}")
        print(f"veth A tx: {d['a']['tx_packets']} (dropped {d['a']['tx_dropped']}), veth B rx: {d['b']['rx_packets']} (dropped {d['b']['rx_dropped']})")
        print(f"capture on {args.side} ({'egress' if args.side == 'a' else 'ingress'}): packets={pk} bytes={by} expected_bytes={sent * (28 + args.payload)} SKIPDATA_records={skipdata}")
        print(f"capture CPU: {cpu1 - cpu0:.2f} s over {t1 - t0:.2f} s = {100 * (cpu1 - cpu0) / (t1 - t0):.1f}% of one core (schedstat on-CPU {run1 - run0:.3f} s)")
        print(summary)
        os.unlink(out)
        os.unlink(err)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
        for ns in made:
            sh("ip", "netns", "del", ns, check=False)


if __name__ == "__main__":
    main()
