"""Kinesis Data Firehose end to end (issue 11): real traffic between two namespaces is captured
by `flowlog serve`, delivered with PutRecordBatch to a delivery stream in moto_server, which
writes every call's records to an object in moto's S3; the objects are read back and every
flow's packets and bytes are checked against what was sent.

Also: a stream that does not exist yet makes the flow log FAILED until it is created (then the
spooled records arrive and it is SUCCESS again), and without a `[firehose]` section the flow log
is FAILED with a log line naming the section (there is no embedded Firehose).
"""

from __future__ import annotations

import re
import time
import urllib.request

import boto3

from lab import ACCOUNT, MOTO_KEYS, REGION, aws, config, flow_sum, parse_lines, start_serve

UDP_COUNT, UDP_PAYLOAD = 12, 150          # IP length 178 each
PINGS = 4                                 # 84 bytes each way
TCP_BYTES = 100_000
CUSTOM = "${interface-id} ${srcaddr} ${dstaddr} ${dstport} ${protocol} ${packets} ${bytes} ${action} ${log-status}"


def clients(moto):
    kw = dict(endpoint_url=moto, region_name=REGION,
              aws_access_key_id=MOTO_KEYS[0], aws_secret_access_key=MOTO_KEYS[1])
    return boto3.client("s3", **kw), boto3.client("firehose", **kw)


def stream_arn(name):
    return f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/{name}"


def make_stream(fh, name, bucket, prefix):
    fh.create_delivery_stream(
        DeliveryStreamName=name, DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": f"arn:aws:iam::{ACCOUNT}:role/firehose-to-s3",
            "BucketARN": f"arn:aws:s3:::{bucket}", "Prefix": prefix,
        })


def firehose_section(moto):
    return (f'\n[firehose]\nendpoint = "{moto}"\nregion = "{REGION}"\n'
            f'access_key_id = "{MOTO_KEYS[0]}"\nsecret_access_key = "{MOTO_KEYS[1]}"\n')


def objects(s3, bucket, prefix):
    """Bodies of every object under prefix (one per PutRecordBatch call in moto)."""
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    return [s3.get_object(Bucket=bucket, Key=k)["Body"].read().decode() for k in sorted(keys)]


def wait_until(pred, timeout=60.0, what="condition"):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        last = pred()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last={last!r}")


def send_traffic(lab):
    sink = lab.spawn_py(lab.ns_a, "sink", lab.ip_a, "8080", "5000", "10")
    assert sink.stdout.readline().strip() == "ready"
    try:
        lab.py(lab.ns_b, "udp", lab.ip_a, "5000", str(UDP_COUNT), str(UDP_PAYLOAD))
        lab.in_ns(lab.ns_b, "ping", "-c", str(PINGS), "-i", "0.2", "-W", "1", lab.ip_a)
        lab.py(lab.ns_b, "tcp", lab.ip_a, "8080", str(TCP_BYTES))
    finally:
        sink.kill()
        sink.wait()


def the_eni(ep, lab):
    enis = aws(ep, "ec2", "describe-network-interfaces")["NetworkInterfaces"]
    eni = next(e for e in enis if e["PrivateIpAddress"] == lab.ip_a)
    return eni["NetworkInterfaceId"], eni["SubnetId"]


def status(ep, *ids):
    fls = aws(ep, "ec2", "describe-flow-logs", "--flow-log-ids", *ids)["FlowLogs"]
    return {f["FlowLogId"]: (f["DeliverLogsStatus"], f.get("DeliverLogsErrorMessage")) for f in fls}


def test_firehose_delivers_real_traffic_to_moto_s3(lab, moto, tmp_path):
    s3, fh = clients(moto)
    s3.create_bucket(Bucket="fh-dest")
    make_stream(fh, "flowlog-fh", "fh-dest", "flows/")
    make_stream(fh, "flowlog-fh-custom", "fh-dest", "custom/")
    cfg = config(tmp_path, moto=moto, inventory=lab.inventory())
    cfg.write_text(cfg.read_text() + firehose_section(moto))
    serve, ep = start_serve(tmp_path, cfg)
    try:
        eni_id, subnet_id = the_eni(ep, lab)
        out = aws(ep, "ec2", "create-flow-logs", "--resource-type", "NetworkInterface", "--resource-ids", eni_id,
                  "--traffic-type", "ALL", "--log-destination-type", "kinesis-data-firehose",
                  "--log-destination", stream_arn("flowlog-fh"))
        assert out["Unsuccessful"] == [], out
        fl_default = out["FlowLogIds"][0]
        # The API reference's spelling of the ARN, and a custom format, on the subnet.
        out = aws(ep, "ec2", "create-flow-logs", "--resource-type", "Subnet", "--resource-ids", subnet_id,
                  "--traffic-type", "ALL", "--log-destination-type", "kinesis-data-firehose",
                  "--log-destination", f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream:flowlog-fh-custom",
                  "--log-format", CUSTOM)
        assert out["Unsuccessful"] == [], out
        fl_custom = out["FlowLogIds"][0]

        serve.wait_for(r"capture started eni=\S*" + eni_id, timeout=10)
        send_traffic(lab)

        def records(prefix):
            bodies = objects(s3, "fh-dest", prefix)
            for b in bodies:
                # Every Firehose record is one line ending in a newline: objects are whole lines.
                assert b.endswith("\n"), b[-200:]
            return parse_lines("".join(bodies))

        def default_done():
            recs = records("flows/")
            return recs if flow_sum(recs, lab.ip_b, lab.ip_a, "6", "8080")[1] >= TCP_BYTES else None
        recs = wait_until(default_done, what="Firehose records of the default-format flow log in moto's S3")
        for r in recs:
            assert len(r) == 14 and r[0] == "2" and r[1] == ACCOUNT and r[2] == eni_id, r
        assert "version" not in {r[0] for r in recs}, "Firehose records carry no header line"
        assert flow_sum(recs, lab.ip_b, lab.ip_a, "17", "5000") == (UDP_COUNT, UDP_COUNT * (UDP_PAYLOAD + 28))
        assert flow_sum(recs, lab.ip_b, lab.ip_a, "1") == (PINGS, PINGS * 84)
        assert flow_sum(recs, lab.ip_a, lab.ip_b, "1") == (PINGS, PINGS * 84)
        tcp_pk, tcp_by = flow_sum(recs, lab.ip_b, lab.ip_a, "6", "8080")
        assert tcp_by >= TCP_BYTES + 40 * tcp_pk and tcp_pk >= TCP_BYTES // 65536, (tcp_pk, tcp_by)

        # The custom format: 9 fields per line; the same flows, the same counts.
        def custom_sum(recs, src, dst, proto, dport=None):
            pk = by = 0
            for r in recs:
                assert len(r) == 9, r
                if r[8] == "OK" and r[1] == src and r[2] == dst and r[4] == proto and (dport is None or r[3] == dport):
                    pk += int(r[5])
                    by += int(r[6])
            return pk, by

        def custom_done():
            recs = records("custom/")
            return recs if custom_sum(recs, lab.ip_b, lab.ip_a, "6", "8080")[1] >= TCP_BYTES else None
        crecs = wait_until(custom_done, what="Firehose records of the custom-format flow log")
        assert all(r[0] == eni_id for r in crecs), crecs[:3]
        assert custom_sum(crecs, lab.ip_b, lab.ip_a, "17", "5000") == (UDP_COUNT, UDP_COUNT * (UDP_PAYLOAD + 28))
        assert custom_sum(crecs, lab.ip_b, lab.ip_a, "1") == (PINGS, PINGS * 84)

        assert status(ep, fl_default, fl_custom) == {fl_default: ("SUCCESS", None), fl_custom: ("SUCCESS", None)}
        metrics = urllib.request.urlopen(f"{ep}/metrics").read().decode()
        delivered = dict(re.findall(r'^flowlog_delivery_records_delivered_total\{sink="(\w+)"\} (\d+)$', metrics, re.M))
        assert int(delivered["firehose"]) >= len(recs) + len(crecs), delivered
    finally:
        serve.stop()


def test_missing_stream_fails_then_recovers(lab, moto, tmp_path):
    s3, fh = clients(moto)
    s3.create_bucket(Bucket="fh-late")
    cfg = config(tmp_path, moto=moto, inventory=lab.inventory())
    cfg.write_text(cfg.read_text() + firehose_section(moto))
    serve, ep = start_serve(tmp_path, cfg)
    try:
        eni_id, _ = the_eni(ep, lab)
        out = aws(ep, "ec2", "create-flow-logs", "--resource-type", "NetworkInterface", "--resource-ids", eni_id,
                  "--traffic-type", "ALL", "--log-destination-type", "kinesis-data-firehose",
                  "--log-destination", stream_arn("not-yet"))
        fl = out["FlowLogIds"][0]
        serve.wait_for(r"capture started eni=\S*" + eni_id, timeout=10)
        send_traffic(lab)
        wait_until(lambda: status(ep, fl)[fl][0] == "FAILED", what="FAILED while the stream is missing")
        assert objects(s3, "fh-late", "") == []
        make_stream(fh, "not-yet", "fh-late", "")

        def arrived():
            recs = parse_lines("".join(objects(s3, "fh-late", "")))
            return recs if flow_sum(recs, lab.ip_b, lab.ip_a, "17", "5000")[0] == UDP_COUNT else None
        recs = wait_until(arrived, what="the spooled records once the stream exists")
        assert flow_sum(recs, lab.ip_b, lab.ip_a, "1") == (PINGS, PINGS * 84)
        wait_until(lambda: status(ep, fl)[fl] == ("SUCCESS", None), what="SUCCESS after recovery")
    finally:
        serve.stop()


def test_without_firehose_section_the_flow_log_fails_and_says_why(lab, moto, tmp_path):
    cfg = config(tmp_path, moto=moto, inventory=lab.inventory())
    assert "[firehose]" not in cfg.read_text()
    serve, ep = start_serve(tmp_path, cfg)
    try:
        eni_id, _ = the_eni(ep, lab)
        out = aws(ep, "ec2", "create-flow-logs", "--resource-type", "NetworkInterface", "--resource-ids", eni_id,
                  "--traffic-type", "ALL", "--log-destination-type", "kinesis-data-firehose",
                  "--log-destination", stream_arn("anything"))
        fl = out["FlowLogIds"][0]
        serve.wait_for(r"capture started eni=\S*" + eni_id, timeout=10)
        send_traffic(lab)
        wait_until(lambda: status(ep, fl)[fl] == ("FAILED", "Unknown error"), what="FAILED without [firehose]")
        serve.wait_for(r"no \[firehose\] section", timeout=10)
    finally:
        serve.stop()
