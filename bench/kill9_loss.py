"""Records lost by a kill -9 of `flowlog serve` (root; names o10*): a steady UDP stream
(100 packets/s) into a captured veth, SIGKILL after `--before` seconds, restart, wait for
delivery, compare the packets in S3 (sent before the kill) with what was sent.

    FLOWLOG_BIN=target/debug/flowlog .venv/bin/python bench/kill9_loss.py --window 600 --checkpoint 5
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

import boto3  # noqa: E402

from lab import MOTO_KEYS, REGION, aws, config, flow_sum, start_moto, start_serve  # noqa: E402
from test_end_to_end import s3_records  # noqa: E402
from test_operability import eni_by_ip, o10_lab  # noqa: E402

SENDER = r"""
import socket, sys, time
host, port, rate, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
n, t0 = 0, time.time()
while time.time() - t0 < secs:
    s.sendto(b"x" * 20, (host, port)); n += 1
    time.sleep(1 / rate)
    print(n, flush=True)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--window", type=int, default=600)
    ap.add_argument("--checkpoint", type=float, default=5)
    ap.add_argument("--before", type=float, default=12.0, help="seconds of traffic before the kill")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="o10k9"))
    moto, url = start_moto(tmp)
    lab = o10_lab("m")
    serve = None
    try:
        s3 = boto3.client("s3", endpoint_url=url, region_name=REGION,
                          aws_access_key_id=MOTO_KEYS[0], aws_secret_access_key=MOTO_KEYS[1])
        s3.create_bucket(Bucket="o10m")
        lab.up()
        cfg = config(tmp, moto=url, inventory=lab.inventory())
        cfg.write_text(cfg.read_text().replace(
            "[agent]\nenabled = true\nwindow_secs = 2\n",
            f"[agent]\nenabled = true\nwindow_secs = {a.window}\ncheckpoint_secs = {a.checkpoint}\n"))
        serve, ep = start_serve(tmp, cfg)
        eni = eni_by_ip(ep, lab.ip_a)["NetworkInterfaceId"]
        fl = aws(ep, "ec2", "create-flow-logs", "--resource-type", "NetworkInterface", "--resource-ids", eni,
                 "--traffic-type", "ALL", "--log-destination-type", "s3",
                 "--log-destination", "arn:aws:s3:::o10m/")["FlowLogIds"][0]
        serve.wait_for(r"capture started eni=\S*" + eni, timeout=15)
        sink = lab.spawn_py(lab.ns_a, "sink", lab.ip_a, "6300", "6301", str(a.before + 5))
        sink.stdout.readline()
        sender = subprocess.Popen(["ip", "netns", "exec", lab.ns_b, sys.executable, "-c", SENDER,
                                   lab.ip_a, "6301", "100", str(a.before)],
                                  stdout=subprocess.PIPE, text=True)
        out = sender.communicate()[0].split()
        serve.stop(signal.SIGKILL)  # right after the last packet: the worst case
        sent = int(out[-1]) if out else 0
        sink.kill()
        serve, ep = start_serve(tmp, cfg, name="serve2")
        time.sleep(15)
        got = flow_sum(s3_records(s3, "o10m", "", fl)[1], lab.ip_b, lab.ip_a, "17", "6301")
        print(f"MEASURE kill -9: window={a.window}s checkpoint={a.checkpoint}s: sent {sent} packets "
              f"(100/s for {a.before}s, kill right after the last), delivered after restart {got[0]}, "
              f"lost {sent - got[0]}")
    finally:
        if serve:
            serve.stop()
        lab.down()
        moto.stop()


if __name__ == "__main__":
    main()
