"""The database restarts while an agent syncs and records flow (root: namespaces + veth).

`flowlog serve --store postgres://…` on the host, its in-process agent capturing a veth end in
namespace A (inventory file), S3 on moto_server. One flow log on the VPC. UDP traffic of known
count crosses the veth before, during and after a PostgreSQL outage (immediate stop, a few
seconds down, start on the same port):
- API calls during the outage answer 503 (retryable by SDKs), quickly: not 500, not a hang;
- the agent keeps capturing and delivering (delivery needs no database);
- after the database is back, the API answers again without a restart, and every datagram of
  all three phases is in the S3 records.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import boto3
import botocore.config
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from lab import (ADMIN, FLOWLOG_BIN, MOTO_KEYS, REGION, Lab, Proc, aws, config, flow_sum,  # noqa: E402
                 gunzip_lines, have, is_root, parse_lines, start_moto)

COUNT = 10


@pytest.fixture
def lab():
    if not is_root():
        pytest.skip("needs root: creates network namespaces and AF_PACKET sockets")
    if not have("ip"):
        pytest.skip("`ip` is not installed (scripts/setup.sh installs it)")
    lab = Lab(tag=f"b13{os.getpid() % 10000}")
    try:
        yield lab.up()
    finally:
        lab.down()


@pytest.fixture
def moto(tmp_path):
    proc, url = start_moto(tmp_path)
    try:
        yield url
    finally:
        proc.stop()


def records(s3, fl_id):
    lines = []
    for o in s3.list_objects_v2(Bucket="restart").get("Contents", []):
        if f"_{fl_id}_" in o["Key"]:
            lines += gunzip_lines(s3.get_object(Bucket="restart", Key=o["Key"])["Body"].read())[1:]
    return parse_lines("\n".join(lines))


def test_database_restart_while_agent_syncs(lab, moto, pg, tmp_path):
    s3 = boto3.client("s3", endpoint_url=moto, region_name=REGION,
                      aws_access_key_id=MOTO_KEYS[0], aws_secret_access_key=MOTO_KEYS[1])
    s3.create_bucket(Bucket="restart")
    cfg = config(tmp_path, moto=moto, inventory=lab.inventory(), agent=True)
    serve = Proc([FLOWLOG_BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "data"),
                  "--config", str(cfg), "--store", pg.createdb()], tmp_path / "serve.log",
                 env={"FLOWLOG_LOG": "info"})
    try:
        url = serve.wait_for(r"listening on (http://[0-9.:]+)").group(1)
        ec2 = boto3.client("ec2", endpoint_url=url, region_name=REGION, aws_access_key_id=ADMIN[0],
                           aws_secret_access_key=ADMIN[1],
                           config=botocore.config.Config(retries={"max_attempts": 1}, read_timeout=20,
                                                         connect_timeout=5))
        deadline = time.time() + 20
        while not ec2.describe_vpcs()["Vpcs"] and time.time() < deadline:
            time.sleep(0.2)  # the agent's first sync registers the inventory
        vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
        fl = aws(url, "ec2", "create-flow-logs", "--resource-type", "VPC", "--resource-ids", vpc,
                 "--traffic-type", "ALL", "--log-destination-type", "s3",
                 "--log-destination", "arn:aws:s3:::restart")["FlowLogIds"][0]
        time.sleep(2)  # a sync (every 0.5 s) gives the agent the flow log

        lab.py(lab.ns_b, "udp", lab.ip_a, "5001", str(COUNT), "100")
        pg.stop_server()
        try:
            # the API during the outage: 503, answered in bounded time
            for _ in range(3):
                t0 = time.time()
                try:
                    ec2.describe_flow_logs()
                    raise AssertionError("DescribeFlowLogs succeeded with the database down")
                except ec2.exceptions.ClientError as e:
                    status = e.response["ResponseMetadata"]["HTTPStatusCode"]
                    assert status == 503, (status, e.response.get("Error"))
                assert time.time() - t0 < 15, "the API hung while the database was down"
            lab.py(lab.ns_b, "udp", lab.ip_a, "5002", str(COUNT), "100")
            time.sleep(3)
        finally:
            pg.start()
        # back without a restart of flowlog
        deadline = time.time() + 30
        while True:
            try:
                ec2.describe_flow_logs(FlowLogIds=[fl])
                break
            except ec2.exceptions.ClientError:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)
        lab.py(lab.ns_b, "udp", lab.ip_a, "5003", str(COUNT), "100")

        deadline = time.time() + 40
        while True:
            recs = records(s3, fl)
            got = {p: flow_sum(recs, lab.ip_b, lab.ip_a, "17", p)[0] for p in ("5001", "5002", "5003")}
            if all(v >= COUNT for v in got.values()) or time.time() > deadline:
                break
            time.sleep(1)
        assert got == {"5001": COUNT, "5002": COUNT, "5003": COUNT}, (got, serve.log.read_text()[-3000:])
        assert serve.p.poll() is None, "flowlog serve exited during the outage"
    finally:
        serve.stop()
