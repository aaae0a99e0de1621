"""Interfaces that appear or disappear while `flowlog serve` runs are picked up without a
restart (issue 6): the inventory names a namespace that does not exist yet; once it is created
the capture starts; when it is deleted the capture ends, and when it comes back so does the
capture."""

from __future__ import annotations

import os
import time

import boto3

from lab import MOTO_KEYS, REGION, Lab, aws, config, flow_sum, is_root, have, start_serve
from test_end_to_end import s3_records, wait_until

import pytest


def test_namespace_created_later_and_recreated(moto, tmp_path):
    if not is_root() or not have("ip"):
        pytest.skip("needs root and iproute2: creates network namespaces")
    s3 = boto3.client("s3", endpoint_url=moto, region_name=REGION,
                      aws_access_key_id=MOTO_KEYS[0], aws_secret_access_key=MOTO_KEYS[1])
    s3.create_bucket(Bucket="later")
    lab = Lab(tag=f"{os.getpid() % 100000}l")
    lab.ns_a, lab.if_a = f"fla{lab.tag}", f"fva{lab.tag}"
    cfg = config(tmp_path, moto=moto, inventory=lab.inventory())
    serve, ep = start_serve(tmp_path, cfg)
    try:
        eni = aws(ep, "ec2", "describe-network-interfaces")["NetworkInterfaces"]
        eni = next(e for e in eni if e["PrivateIpAddress"] == lab.ip_a)
        assert eni["Status"] == "available", "the interface does not exist yet"
        fl = aws(ep, "ec2", "create-flow-logs", "--resource-type", "NetworkInterface",
                 "--resource-ids", eni["NetworkInterfaceId"], "--traffic-type", "ALL",
                 "--log-destination-type", "s3", "--log-destination", "arn:aws:s3:::later/")["FlowLogIds"][0]
        time.sleep(1.5)
        assert "capture started" not in serve.log.read_text()

        for round_no, port in ((1, "6001"), (2, "6002")):
            lab.up()
            try:
                serve.wait_for(rf"capture started eni=\S*{eni['NetworkInterfaceId']}(.|\n)*" * round_no, timeout=15)
                lab.py(lab.ns_b, "udp", lab.ip_a, port, "5", "20")
                wait_until(lambda: flow_sum(s3_records(s3, "later", "", fl)[1], lab.ip_b, lab.ip_a, "17", port) == (5, 5 * 48),
                           what=f"records of round {round_no}")
                status = next(e["Status"] for e in aws(ep, "ec2", "describe-network-interfaces")["NetworkInterfaces"]
                              if e["NetworkInterfaceId"] == eni["NetworkInterfaceId"])
                assert status == "in-use"
            finally:
                lab.down()
            serve.wait_for(rf"capture stopped eni=\S*{eni['NetworkInterfaceId']}(.|\n)*" * round_no, timeout=15)
    finally:
        serve.stop()
        lab.down()
