"""A flow log created with the real aws CLI captures real traffic and delivers it (issue 6).

`flowlog serve` runs with an inventory naming a veth end inside a network namespace, S3 and
CloudWatch Logs pointed at moto_server, and short windows. Three flow logs: ALL to S3 with a
subfolder, ALL to CloudWatch Logs, REJECT-only to S3 (on the subnet) while nftables rejects
one TCP port. Real traffic of known size crosses the veth; the S3 objects (key layout, header,
records) and the CloudWatch events are read back and checked against what was sent.
"""

from __future__ import annotations

import re
import time

import boto3
import pytest

from lab import (ACCOUNT, MOTO_KEYS, REGION, ROLE, aws, config, flow_sum, gunzip_lines,
                 parse_lines, start_serve)

KEY_RE = r"^{prefix}AWSLogs/123456789012/vpcflowlogs/us-east-1/\d{{4}}/\d{{2}}/\d{{2}}/123456789012_vpcflowlogs_us-east-1_{fl}_\d{{8}}T\d{{4}}Z_[0-9a-f]{{8}}\.log\.gz$"
HEADER = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status"
UDP_COUNT, UDP_PAYLOAD = 10, 100          # IP length 128 each
PINGS = 5                                 # 84 bytes each way
TCP_BYTES = 200_000
REJECT_PORT, NFLOG_GROUP = 9999, 7


def s3_client(moto):
    return boto3.client("s3", endpoint_url=moto, region_name=REGION,
                        aws_access_key_id=MOTO_KEYS[0], aws_secret_access_key=MOTO_KEYS[1])


def logs_client(moto):
    return boto3.client("logs", endpoint_url=moto, region_name=REGION,
                        aws_access_key_id=MOTO_KEYS[0], aws_secret_access_key=MOTO_KEYS[1])


def s3_records(s3, bucket, prefix, fl_id):
    """Keys and record lines of every object of one flow log; checks key layout and header."""
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    mine = [k for k in keys if f"_{fl_id}_" in k]
    lines = []
    for k in mine:
        assert re.match(KEY_RE.format(prefix=re.escape(prefix), fl=fl_id), k), k
        body = s3.get_object(Bucket=bucket, Key=k)["Body"].read()
        text = gunzip_lines(body)
        assert text[0] == HEADER, text[:2]
        lines.extend(text[1:])
    return mine, parse_lines("\n".join(lines))


def wait_until(pred, timeout=40.0, what="condition"):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        last = pred()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last={last!r}")


def send_traffic(lab):
    sink = lab.spawn_py(lab.ns_a, "sink", lab.ip_a, "8080", "5000", "12")
    assert sink.stdout.readline().strip() == "ready"
    try:
        lab.py(lab.ns_b, "udp", lab.ip_a, "5000", str(UDP_COUNT), str(UDP_PAYLOAD))
        lab.in_ns(lab.ns_b, "ping", "-c", str(PINGS), "-i", "0.2", "-W", "1", lab.ip_a)
        lab.py(lab.ns_b, "tcp", lab.ip_a, "8080", str(TCP_BYTES))
        lab.py(lab.ns_b, "connect", lab.ip_a, str(REJECT_PORT))
    finally:
        sink.kill()
        sink.wait()


def test_flow_logs_capture_and_deliver_to_s3_and_cloudwatch(lab, moto, tmp_path):
    s3 = s3_client(moto)
    s3.create_bucket(Bucket="demo")
    lab.reject_port(REJECT_PORT, NFLOG_GROUP)
    cfg = config(tmp_path, moto=moto, inventory=lab.inventory(), nflog_group=NFLOG_GROUP)
    serve, ep = start_serve(tmp_path, cfg)
    try:
        enis = aws(ep, "ec2", "describe-network-interfaces")["NetworkInterfaces"]
        eni = next(e for e in enis if e["PrivateIpAddress"] == lab.ip_a)
        eni_id, subnet_id = eni["NetworkInterfaceId"], eni["SubnetId"]

        t0 = time.time()
        out = aws(ep, "ec2", "create-flow-logs", "--resource-type", "NetworkInterface", "--resource-ids", eni_id,
                  "--traffic-type", "ALL", "--log-destination-type", "s3",
                  "--log-destination", "arn:aws:s3:::demo/flows/")
        assert out["Unsuccessful"] == [], out
        fl_s3 = out["FlowLogIds"][0]
        out = aws(ep, "ec2", "create-flow-logs", "--resource-type", "NetworkInterface", "--resource-ids", eni_id,
                  "--traffic-type", "ALL", "--log-group-name", "flowlog-e2e",
                  "--deliver-logs-permission-arn", ROLE)
        fl_cwl = out["FlowLogIds"][0]
        out = aws(ep, "ec2", "create-flow-logs", "--resource-type", "Subnet", "--resource-ids", subnet_id,
                  "--traffic-type", "REJECT", "--log-destination-type", "s3",
                  "--log-destination", "arn:aws:s3:::demo/rejects/")
        fl_rej = out["FlowLogIds"][0]

        serve.wait_for(r"capture started eni=\S*" + eni_id, timeout=10)
        send_traffic(lab)

        # S3, ALL: UDP and ICMP exactly; TCP at least the payload; the rejected port as REJECT.
        def s3_done():
            _, recs = s3_records(s3, "demo", "flows/", fl_s3)
            return recs if flow_sum(recs, lab.ip_b, lab.ip_a, "6", str(REJECT_PORT))[0] else None
        recs = wait_until(s3_done, what="S3 objects of the ALL flow log")
        first_delivery = time.time() - t0
        assert flow_sum(recs, lab.ip_b, lab.ip_a, "17", "5000") == (UDP_COUNT, UDP_COUNT * (UDP_PAYLOAD + 28))
        assert flow_sum(recs, lab.ip_b, lab.ip_a, "1") == (PINGS, PINGS * 84)
        assert flow_sum(recs, lab.ip_a, lab.ip_b, "1") == (PINGS, PINGS * 84)
        tcp_pk, tcp_by = flow_sum(recs, lab.ip_b, lab.ip_a, "6", "8080")
        assert tcp_by >= TCP_BYTES + 40 * tcp_pk and tcp_pk >= TCP_BYTES // 65536, (tcp_pk, tcp_by)
        assert flow_sum(recs, lab.ip_a, lab.ip_b, "6")[0] > 0, "the reverse direction is its own record"
        rej_pk, _ = flow_sum(recs, lab.ip_b, lab.ip_a, "6", str(REJECT_PORT), action="REJECT")
        assert rej_pk >= 1
        assert flow_sum(recs, lab.ip_b, lab.ip_a, "6", str(REJECT_PORT), action="ACCEPT") == (0, 0)
        for r in recs:
            assert r[0] == "2" and r[1] == ACCOUNT and r[2] == eni_id, r

        # S3, REJECT-only flow log on the subnet: only REJECT (or NODATA) records.
        def rej_done():
            _, recs = s3_records(s3, "demo", "rejects/", fl_rej)
            return recs if flow_sum(recs, lab.ip_b, lab.ip_a, "6", str(REJECT_PORT))[0] else None
        rej = wait_until(rej_done, what="S3 objects of the REJECT flow log")
        assert all(r[12] in ("REJECT", "-") for r in rej), rej
        assert flow_sum(rej, lab.ip_b, lab.ip_a, "6", str(REJECT_PORT), action="REJECT")[0] == rej_pk

        # CloudWatch Logs: stream <eni>-all, one event per record, timestamp = start * 1000.
        logs = logs_client(moto)
        stream = f"{eni_id}-all"

        def cwl_done():
            try:
                ev = logs.get_log_events(logGroupName="flowlog-e2e", logStreamName=stream, startFromHead=True)["events"]
            except logs.exceptions.ResourceNotFoundException:
                return None
            lines = parse_lines("\n".join(e["message"] for e in ev))
            return ev if flow_sum(lines, lab.ip_b, lab.ip_a, "17", "5000")[0] == UDP_COUNT else None
        events = wait_until(cwl_done, what="CloudWatch Logs events")
        streams = logs.describe_log_streams(logGroupName="flowlog-e2e")["logStreams"]
        assert [s["logStreamName"] for s in streams] == [stream]
        for e in events:
            fields = e["message"].split(" ")
            assert len(fields) == 14 and e["timestamp"] == int(fields[10]) * 1000, e
        lines = parse_lines("\n".join(e["message"] for e in events))
        assert flow_sum(lines, lab.ip_b, lab.ip_a, "1") == (PINGS, PINGS * 84)

        # Status is reported back: every flow log delivered successfully.
        fls = aws(ep, "ec2", "describe-flow-logs", "--flow-log-ids", fl_s3, fl_cwl, fl_rej)["FlowLogs"]
        assert {f["FlowLogId"]: f["DeliverLogsStatus"] for f in fls} == {fl_s3: "SUCCESS", fl_cwl: "SUCCESS", fl_rej: "SUCCESS"}
        # Prometheus metrics count what was delivered, per sink.
        import urllib.request
        metrics = urllib.request.urlopen(f"{ep}/metrics").read().decode()
        delivered = dict(re.findall(r'^flowlog_delivery_records_delivered_total\{sink="(\w+)"\} (\d+)$', metrics, re.M))
        assert int(delivered["s3"]) >= len(recs) and int(delivered["cloudwatch_logs"]) >= len(events), delivered
        print(f"\nCreateFlowLogs → first S3 record delivered: {first_delivery:.1f} s (windows: capture 2 s, S3 file 4 s)")
    finally:
        serve.stop()


def test_lifecycle_sigterm_flush_restart_resume_and_delete(lab, moto, tmp_path):
    s3 = s3_client(moto)
    s3.create_bucket(Bucket="life")
    cfg = config(tmp_path, moto=moto, inventory=lab.inventory())
    serve, ep = start_serve(tmp_path, cfg)
    try:
        eni_id = next(e["NetworkInterfaceId"] for e in aws(ep, "ec2", "describe-network-interfaces")["NetworkInterfaces"]
                      if e["PrivateIpAddress"] == lab.ip_a)
        fl = aws(ep, "ec2", "create-flow-logs", "--resource-type", "NetworkInterface", "--resource-ids", eni_id,
                 "--traffic-type", "ALL", "--log-destination-type", "s3",
                 "--log-destination", "arn:aws:s3:::life/")["FlowLogIds"][0]
        serve.wait_for(r"capture started eni=\S*" + eni_id, timeout=10)

        # SIGTERM right after the traffic: the window in progress is flushed and delivered.
        lab.py(lab.ns_b, "udp", lab.ip_a, "5001", "6", "50")
        assert serve.stop() == 0
        _, recs = s3_records(s3, "life", "", fl)
        assert flow_sum(recs, lab.ip_b, lab.ip_a, "17", "5001") == (6, 6 * 78)

        # Restart on the same data dir: the flow log is still there and capture resumes.
        serve, ep = start_serve(tmp_path, cfg, name="serve2")
        serve.wait_for(r"capture started eni=\S*" + eni_id, timeout=10)
        lab.py(lab.ns_b, "udp", lab.ip_a, "5002", "7", "50")

        def resumed():
            _, recs = s3_records(s3, "life", "", fl)
            return flow_sum(recs, lab.ip_b, lab.ip_a, "17", "5002")
        wait_until(lambda: resumed() == (7, 7 * 78), what="records after restart")

        # DeleteFlowLogs stops the capture; records captured before it may still be delivered
        # (the last window is flushed), but later traffic reaches no object of that flow log.
        out = aws(ep, "ec2", "delete-flow-logs", "--flow-log-ids", fl)
        assert out["Unsuccessful"] == []
        serve.wait_for(r"capture removed eni=\S*" + eni_id, timeout=10)
        time.sleep(7)
        keys_before = sorted(s3_records(s3, "life", "", fl)[0])
        lab.py(lab.ns_b, "udp", lab.ip_a, "5003", "3", "50")
        time.sleep(8)
        keys_after, recs = s3_records(s3, "life", "", fl)
        assert sorted(keys_after) == keys_before
        assert flow_sum(recs, lab.ip_b, lab.ip_a, "17", "5003") == (0, 0)
    finally:
        serve.stop()


def test_delivery_status_failed_access_error_then_success(lab, moto, tmp_path):
    """A CloudWatch Logs flow log whose role has no credential is FAILED / `Access error` in
    DescribeFlowLogs (and the records stay spooled); once the role is configured and the
    service restarted, the spooled records are delivered and the status is SUCCESS again."""
    cfg = config(tmp_path, moto=moto, inventory=lab.inventory())
    unknown_role = "arn:aws:iam::123456789012:role/not-configured"
    serve, ep = start_serve(tmp_path, cfg)
    try:
        eni_id = next(e["NetworkInterfaceId"] for e in aws(ep, "ec2", "describe-network-interfaces")["NetworkInterfaces"]
                      if e["PrivateIpAddress"] == lab.ip_a)
        fl = aws(ep, "ec2", "create-flow-logs", "--resource-type", "NetworkInterface", "--resource-ids", eni_id,
                 "--traffic-type", "ALL", "--log-group-name", "denied",
                 "--deliver-logs-permission-arn", unknown_role)["FlowLogIds"][0]
        serve.wait_for(r"capture started eni=\S*" + eni_id, timeout=10)
        lab.py(lab.ns_b, "udp", lab.ip_a, "5005", "4", "10")

        def status():
            f = aws(ep, "ec2", "describe-flow-logs", "--flow-log-ids", fl)["FlowLogs"][0]
            return f["DeliverLogsStatus"], f.get("DeliverLogsErrorMessage"), f["FlowLogStatus"]
        assert wait_until(lambda: status()[0] == "FAILED" and status(), what="FAILED status") == ("FAILED", "Access error", "ACTIVE")
        failed = aws(ep, "ec2", "describe-flow-logs", "--filter", "Name=deliver-log-status,Values=FAILED")["FlowLogs"]
        assert [f["FlowLogId"] for f in failed] == [fl]
        serve.stop()

        # Fix the configuration: the role now maps to keys moto accepts.
        cfg.write_text(cfg.read_text().replace(ROLE, unknown_role))
        serve, ep = start_serve(tmp_path, cfg, name="serve2")
        assert wait_until(lambda: status()[0] == "SUCCESS" and status(), what="SUCCESS status") == ("SUCCESS", None, "ACTIVE")
        ev = logs_client(moto).get_log_events(logGroupName="denied", logStreamName=f"{eni_id}-all", startFromHead=True)["events"]
        assert flow_sum(parse_lines("\n".join(e["message"] for e in ev)), lab.ip_b, lab.ip_a, "17", "5005") == (4, 4 * 38)
    finally:
        serve.stop()
