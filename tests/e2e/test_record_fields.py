"""Issue 12: every later record field proven on real traffic between two namespaces.

Both ends of one veth pair are ENIs of one VPC (10.77.0.0/16), each in its own namespace and
captured by `flowlog serve`; the inventory gives ENI A an instance and its subnet a zone id.
Four flow logs: on the VPC, S3 text with every VPC field, and S3 Parquet (Hive, per hour) with
the same fields; on ENI A, CloudWatch Logs with a v5 custom format; on the subnet, REJECT-only
S3 with the v5 format while nftables rejects one TCP port. The traffic: UDP B→A over IPv4,
UDP A→B over IPv6, a rejected TCP connect B→A. A small ip-ranges file names B's address (/32)
and the lab network (AMAZON). The records are read back from moto_server: text lines, Parquet
with pyarrow (schema, row counts, sums) and DuckDB (the same totals over both files).

Names: namespaces f12a*/f12b*, interfaces f12va*/f12vb*; traffic only inside them.
"""

from __future__ import annotations

import io
import json
import os
import re
import time

import boto3
import pytest

from lab import (ACCOUNT, MOTO_KEYS, REGION, ROLE, Lab, aws, config, gunzip_lines, have, is_root, run,
                 start_moto, start_serve)

FIELDS = ("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end "
          "action log-status vpc-id subnet-id instance-id tcp-flags type pkt-srcaddr pkt-dstaddr region az-id "
          "sublocation-type sublocation-id pkt-src-aws-service pkt-dst-aws-service flow-direction traffic-path "
          "ecs-cluster-arn ecs-cluster-name ecs-container-instance-arn ecs-container-instance-id ecs-container-id "
          "ecs-second-container-id ecs-service-name ecs-task-definition-arn ecs-task-arn ecs-task-id "
          "reject-reason").split()
EVERY = " ".join(f"${{{f}}}" for f in FIELDS)
V5 = ("${version} ${interface-id} ${srcaddr} ${dstaddr} ${dstport} ${protocol} ${packets} ${action} "
      "${log-status} ${type} ${flow-direction} ${traffic-path} ${vpc-id} ${region}")
INT32 = {"version", "srcport", "dstport", "protocol", "tcp-flags", "traffic-path"}
INT64 = {"packets", "bytes", "start", "end"}
INSTANCE, AZ_ID = "i-0123456789abcdef0", "use1-az6"
UDP4_COUNT, UDP4_SIZE = 12, 100       # IP length 128
UDP6_COUNT, UDP6_SIZE = 7, 200        # IP length 248
REJECT_PORT, NFLOG_GROUP = 9123, 12
IP6_A, IP6_B = "fd77:12::10", "fd77:12::20"
# Each datagram is seen on both ENIs (egress on one end, ingress on the other).
UDP_PACKETS = 2 * (UDP4_COUNT + UDP6_COUNT)
UDP_BYTES = 2 * (UDP4_COUNT * (UDP4_SIZE + 28) + UDP6_COUNT * (UDP6_SIZE + 48))


class F12Lab(Lab):
    """The e2e Lab with this suite's names, IPv6 on both ends, both ends in the inventory."""

    def up(self) -> "F12Lab":
        self.ns_a, self.ns_b = f"f12a{self.tag}", f"f12b{self.tag}"
        self.if_a, self.if_b = f"f12va{self.tag}", f"f12vb{self.tag}"
        for ns in (self.ns_a, self.ns_b):
            run("ip", "netns", "add", ns)
            self.made.append(ns)
            run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "link", "add", self.if_a, "type", "veth", "peer", "name", self.if_b)
        run("ip", "link", "set", self.if_a, "netns", self.ns_a)
        run("ip", "link", "set", self.if_b, "netns", self.ns_b)
        for ns, ifn, v4, v6 in ((self.ns_a, self.if_a, self.ip_a, IP6_A), (self.ns_b, self.if_b, self.ip_b, IP6_B)):
            run("ip", "-n", ns, "addr", "add", f"{v4}/24", "dev", ifn)
            run("ip", "-n", ns, "addr", "add", f"{v6}/64", "dev", ifn, "nodad")
            run("ip", "-n", ns, "link", "set", ifn, "up")
        return self

    def inventory(self) -> str:
        return f"""
[[vpc]]
name = "lab"
cidr_block = "10.77.0.0/16"
[[subnet]]
name = "lab-a"
vpc = "lab"
cidr_block = "10.77.1.0/24"
availability_zone_id = "{AZ_ID}"
[[network_interface]]
subnet = "lab-a"
interface = "{self.if_a}"
netns = "{self.ns_a}"
private_ip = "{self.ip_a}"
instance_id = "{INSTANCE}"
[[network_interface]]
subnet = "lab-a"
interface = "{self.if_b}"
netns = "{self.ns_b}"
private_ip = "{self.ip_b}"
"""


def wait_until(pred, timeout=40.0, what="condition"):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        last = pred()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last={last!r}")


def objects(s3, prefix):
    """The flow-log objects under `prefix` (not the zero-byte `<prefix>AWSLogs/` folder marker
    the bucket check leaves, as on AWS)."""
    return [o["Key"] for o in s3.list_objects_v2(Bucket="f12", Prefix=prefix).get("Contents", [])
            if not o["Key"].endswith("/")]


def text_records(s3, prefix, header):
    out = []
    for k in objects(s3, prefix):
        lines = gunzip_lines(s3.get_object(Bucket="f12", Key=k)["Body"].read())
        assert lines[0] == header, lines[:1]
        out.extend(dict(zip(header.split(), line.split(" "))) for line in lines[1:])
    return out


def total(recs, **match):
    """(packets, bytes) of OK records whose fields equal `match` (dashes in names as `_`)."""
    pk = by = 0
    for r in recs:
        if r["log-status"] == "OK" and all(r[k.replace("_", "-")] == v for k, v in match.items()):
            pk += int(r["packets"])
            by += int(r.get("bytes", 0))
    return pk, by


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    if not is_root():
        pytest.skip("needs root: creates network namespaces, AF_PACKET sockets and nftables rules")
    for tool in ("ip", "nft"):
        if not have(tool):
            pytest.skip(f"`{tool}` is not installed (scripts/setup.sh installs it)")
    tmp = tmp_path_factory.mktemp("f12")
    lab = F12Lab(tag=f"{os.getpid() % 100000}")
    moto = serve = None
    try:
        lab.up()
        moto, moto_url = start_moto(tmp)
        s3 = boto3.client("s3", endpoint_url=moto_url, region_name=REGION,
                          aws_access_key_id=MOTO_KEYS[0], aws_secret_access_key=MOTO_KEYS[1])
        s3.create_bucket(Bucket="f12")
        rules = f"""
table inet f12test {{
  chain input {{
    type filter hook input priority 0; policy accept;
    tcp dport {REJECT_PORT} log group {NFLOG_GROUP} reject with tcp reset
  }}
}}
"""
        lab.in_ns(lab.ns_a, "nft", "-f", "-", input=rules)
        ranges = {"syncToken": "1", "createDate": "2026-12-01-00-00-00",
                  "prefixes": [{"ip_prefix": "10.77.1.0/24", "region": REGION, "service": "AMAZON",
                                "network_border_group": REGION},
                               {"ip_prefix": f"{lab.ip_b}/32", "region": REGION, "service": "S3",
                                "network_border_group": REGION}],
                  "ipv6_prefixes": []}
        (tmp / "ip-ranges.json").write_text(json.dumps(ranges))
        cfg = config(tmp, moto=moto_url, inventory=lab.inventory(), nflog_group=NFLOG_GROUP)
        cfg.write_text(cfg.read_text().replace("[agent]\n", f'[agent]\naws_ip_ranges = "{tmp / "ip-ranges.json"}"\n'))
        serve, ep = start_serve(tmp, cfg)
        enis = aws(ep, "ec2", "describe-network-interfaces")["NetworkInterfaces"]
        eni_a = next(e for e in enis if e["PrivateIpAddress"] == lab.ip_a)
        eni_b = next(e for e in enis if e["PrivateIpAddress"] == lab.ip_b)
        vpc_id, subnet_id = eni_a["VpcId"], eni_a["SubnetId"]

        def create(*args):
            out = aws(ep, "ec2", "create-flow-logs", "--traffic-type", "ALL", *args)
            assert out["Unsuccessful"] == [], out
            return out["FlowLogIds"][0]

        fl_text = create("--resource-type", "VPC", "--resource-ids", vpc_id, "--log-destination-type", "s3",
                         "--log-destination", "arn:aws:s3:::f12/text/", "--log-format", EVERY)
        fl_pq = create("--resource-type", "VPC", "--resource-ids", vpc_id, "--log-destination-type", "s3",
                       "--log-destination", "arn:aws:s3:::f12/pq/", "--log-format", EVERY,
                       "--destination-options", "FileFormat=parquet,HiveCompatiblePartitions=true,PerHourPartition=true")
        fl_cwl = create("--resource-type", "NetworkInterface", "--resource-ids", eni_a["NetworkInterfaceId"],
                        "--log-group-name", "f12-group", "--deliver-logs-permission-arn", ROLE, "--log-format", V5)
        out = aws(ep, "ec2", "create-flow-logs", "--traffic-type", "REJECT", "--resource-type", "Subnet",
                  "--resource-ids", subnet_id, "--log-destination-type", "s3",
                  "--log-destination", "arn:aws:s3:::f12/rej/", "--log-format", V5)
        fl_rej = out["FlowLogIds"][0]
        for e in (eni_a, eni_b):
            serve.wait_for(r"capture started eni=\S*" + e["NetworkInterfaceId"], timeout=15)

        sink = lab.spawn_py(lab.ns_a, "sink", lab.ip_a, "8080", "5000", "8")
        assert sink.stdout.readline().strip() == "ready"
        try:
            lab.py(lab.ns_b, "udp", lab.ip_a, "5000", str(UDP4_COUNT), str(UDP4_SIZE))
            six = ("import socket,time\ns=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\n"
                   f"for _ in range({UDP6_COUNT}):\n s.sendto(b'z'*{UDP6_SIZE},('{IP6_B}',5006)); time.sleep(0.01)\n")
            lab.in_ns(lab.ns_a, "python3", "-c", six)
            lab.py(lab.ns_b, "connect", lab.ip_a, str(REJECT_PORT))
        finally:
            sink.kill()
            sink.wait()

        def text_done():
            recs = text_records(s3, "text/", " ".join(FIELDS))
            seen = total(recs, srcaddr=lab.ip_b, dstaddr=lab.ip_a, protocol="17", interface_id=eni_a["NetworkInterfaceId"])
            v6 = total(recs, srcaddr=IP6_A, dstaddr=IP6_B, protocol="17", interface_id=eni_b["NetworkInterfaceId"])
            rej = total(recs, dstport=str(REJECT_PORT), action="REJECT")
            return recs if seen[0] == UDP4_COUNT and v6[0] == UDP6_COUNT and rej[0] >= 1 else None
        recs = wait_until(text_done, what="S3 text objects with all the traffic")
        def parquet_done():
            keys = objects(s3, "pq/")
            rows = [r for _, t in parquet_tables(s3, keys) for r in t.to_pylist()]
            udp = sum(r["packets"] for r in rows if r["protocol"] == 17)
            return keys if udp == UDP_PACKETS else None
        parquet_keys = wait_until(parquet_done, what="Parquet objects with all the UDP traffic")
        yield {"lab": lab, "s3": s3, "moto": moto_url, "ep": ep, "recs": recs, "tmp": tmp,
               "eni_a": eni_a["NetworkInterfaceId"], "eni_b": eni_b["NetworkInterfaceId"], "vpc": vpc_id,
               "subnet": subnet_id, "fl_text": fl_text, "fl_pq": fl_pq, "fl_cwl": fl_cwl, "fl_rej": fl_rej,
               "parquet_keys": parquet_keys}
    finally:
        if serve is not None:
            serve.stop()
        if moto is not None:
            moto.stop()
        lab.down()


def ok(recs, **match):
    return [r for r in recs if r["log-status"] == "OK" and all(r[k.replace("_", "-")] == v for k, v in match.items())]


def test_flow_direction_on_both_veth_ends(world):
    lab, recs = world["lab"], world["recs"]
    a = ok(recs, srcaddr=lab.ip_b, dstaddr=lab.ip_a, protocol="17", interface_id=world["eni_a"])
    b = ok(recs, srcaddr=lab.ip_b, dstaddr=lab.ip_a, protocol="17", interface_id=world["eni_b"])
    assert a and b
    assert {r["flow-direction"] for r in a} == {"ingress"}
    assert {r["flow-direction"] for r in b} == {"egress"}
    assert total(a) == total(b) == (UDP4_COUNT, UDP4_COUNT * (UDP4_SIZE + 28))
    assert all(r["version"] == "8" for r in recs)  # the highest version among the fields


def test_type_pkt_addresses_and_tcp_flags(world):
    lab, recs = world["lab"], world["recs"]
    v4 = ok(recs, srcaddr=lab.ip_b, dstaddr=lab.ip_a, protocol="17")
    v6 = ok(recs, srcaddr=IP6_A, dstaddr=IP6_B, protocol="17")
    assert v4 and v6
    assert {r["type"] for r in v4} == {"IPv4"} and {r["type"] for r in v6} == {"IPv6"}
    assert all(r["pkt-srcaddr"] == r["srcaddr"] and r["pkt-dstaddr"] == r["dstaddr"] for r in v4 + v6)
    assert total(v6, interface_id=world["eni_a"]) == (UDP6_COUNT, UDP6_COUNT * (UDP6_SIZE + 48))
    assert {r["tcp-flags"] for r in v4} == {"0"}


def test_inventory_fields(world):
    recs = world["recs"]
    for r in recs:
        assert (r["vpc-id"], r["subnet-id"], r["region"], r["az-id"]) == (world["vpc"], world["subnet"], REGION, AZ_ID), r
        assert r["instance-id"] == (INSTANCE if r["interface-id"] == world["eni_a"] else "-"), r
        for f in FIELDS[FIELDS.index("ecs-cluster-arn"):] + ["sublocation-type", "sublocation-id"]:
            assert r[f] == "-", (f, r)


def test_traffic_path_for_same_vpc_egress(world):
    lab, recs = world["lab"], world["recs"]
    egress4 = ok(recs, srcaddr=lab.ip_b, dstaddr=lab.ip_a, interface_id=world["eni_b"])
    assert egress4 and {r["traffic-path"] for r in egress4} == {"1"}
    ingress = ok(recs, flow_direction="ingress")
    assert ingress and {r["traffic-path"] for r in ingress} == {"-"}
    # IPv6 is outside the VPC's (IPv4) CIDR: the path is unknown.
    assert {r["traffic-path"] for r in ok(recs, srcaddr=IP6_A, flow_direction="egress")} == {"-"}


def test_aws_service_names_from_the_ip_ranges_file(world):
    lab, recs = world["lab"], world["recs"]
    from_b = ok(recs, srcaddr=lab.ip_b, dstaddr=lab.ip_a)
    assert {(r["pkt-src-aws-service"], r["pkt-dst-aws-service"]) for r in from_b} == {("S3", "AMAZON")}
    assert {r["pkt-src-aws-service"] for r in ok(recs, srcaddr=IP6_A)} == {"-"}


def test_reject_with_the_v5_format(world):
    lab, s3 = world["lab"], world["s3"]
    header = V5.replace("${", "").replace("}", "")

    def done():
        recs = text_records(s3, "rej/", header)
        return recs if ok(recs, dstport=str(REJECT_PORT), action="REJECT") else None
    recs = wait_until(done, what="the REJECT flow log's objects")
    rej = ok(recs, dstport=str(REJECT_PORT))
    assert {(r["action"], r["flow-direction"], r["version"], r["type"], r["vpc-id"]) for r in rej} == \
        {("REJECT", "ingress", "5", "IPv4", world["vpc"])}
    assert all(r["action"] in ("REJECT", "-") for r in recs)
    assert {r["interface-id"] for r in rej} == {world["eni_a"]}


def test_cloudwatch_logs_custom_format(world):
    logs = boto3.client("logs", endpoint_url=world["moto"], region_name=REGION,
                        aws_access_key_id=MOTO_KEYS[0], aws_secret_access_key=MOTO_KEYS[1])
    names = V5.replace("${", "").replace("}", "").split()

    def done():
        try:
            ev = logs.get_log_events(logGroupName="f12-group", logStreamName=f"{world['eni_a']}-all",
                                     startFromHead=True)["events"]
        except logs.exceptions.ResourceNotFoundException:
            return None
        recs = [dict(zip(names, e["message"].split(" "))) for e in ev]
        return recs if total(ok(recs, srcaddr=world["lab"].ip_b, protocol="17"))[0] == UDP4_COUNT else None
    recs = wait_until(done, what="CloudWatch Logs events")
    assert all(len(r) == len(names) for r in recs)
    assert {r["flow-direction"] for r in ok(recs, srcaddr=world["lab"].ip_b)} == {"ingress"}


def parquet_tables(s3, keys):
    import pyarrow.parquet as pq
    out = []
    for k in keys:
        out.append((k, pq.read_table(io.BytesIO(s3.get_object(Bucket="f12", Key=k)["Body"].read()))))
    return out


def test_parquet_schema_keys_and_sums(world):
    import pyarrow as pa
    tables = parquet_tables(world["s3"], world["parquet_keys"])
    assert tables
    key_re = (r"^pq/AWSLogs/aws-account-id=123456789012/aws-service=vpcflowlogs/aws-region=us-east-1/"
              r"year=\d{4}/month=\d{2}/day=\d{2}/hour=\d{2}/123456789012_vpcflowlogs_us-east-1_"
              + world["fl_pq"] + r"_\d{8}T\d{4}Z_[0-9a-f]{8}\.log\.parquet$")
    for k, t in tables:
        assert re.match(key_re, k), k
        want = [(f.replace("-", "_"), pa.int32() if f in INT32 else pa.int64() if f in INT64 else pa.string())
                for f in FIELDS]
        assert [(f.name, f.type) for f in t.schema] == want
    rows = [r for _, t in tables for r in t.to_pylist()]
    lab = world["lab"]
    ingress = [r for r in rows if r["srcaddr"] == lab.ip_b and r["interface_id"] == world["eni_a"]
               and r["protocol"] == 17]
    assert sum(r["packets"] for r in ingress) == UDP4_COUNT
    assert sum(r["bytes"] for r in ingress) == UDP4_COUNT * (UDP4_SIZE + 28)
    assert {r["flow_direction"] for r in ingress} == {"ingress"}
    assert {r["traffic_path"] for r in rows if r["flow_direction"] == "egress" and r["type"] == "IPv4"} == {1}
    # `-` is a null in Parquet.
    assert all(r["ecs_task_id"] is None for r in rows)
    # Same traffic, same totals as the text flow log of the same VPC (UDP: what the test sent,
    # seen on both ENIs; other traffic such as IPv6 neighbour discovery goes on in later windows).
    text = world["recs"]
    assert sum(r["packets"] for r in rows if r["protocol"] == 17) == UDP_PACKETS
    assert sum(r["bytes"] for r in rows if r["protocol"] == 17) == \
        sum(int(r["bytes"]) for r in text if r["protocol"] == "17") == UDP_BYTES


def test_parquet_gzip_compressed(world):
    import pyarrow.parquet as pq
    s3 = world["s3"]
    k = world["parquet_keys"][0]
    md = pq.ParquetFile(io.BytesIO(s3.get_object(Bucket="f12", Key=k)["Body"].read())).metadata
    assert md.row_group(0).column(0).compression == "GZIP"


def test_duckdb_same_totals_over_text_and_parquet(world):
    import duckdb
    tmp = world["tmp"] / "dl"
    s3 = world["s3"]
    for prefix in ("text/", "pq/"):
        for k in objects(s3, prefix):
            p = tmp / k
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(s3.get_object(Bucket="f12", Key=k)["Body"].read())
    con = duckdb.connect()
    text = con.sql(f"""select sum(try_cast(packets as bigint)), sum(try_cast(bytes as bigint)), count(*)
        from read_csv('{tmp}/text/**/*.log.gz', delim=' ', header=true, all_varchar=true)
        where "log-status" = 'OK' and protocol = '17'""").fetchall()
    pq = con.sql(f"""select sum(packets), sum(bytes), count(*) from read_parquet('{tmp}/pq/**/*.parquet',
        hive_partitioning=true) where log_status = 'OK' and protocol = 17""").fetchall()
    assert text == pq and text[0][:2] == (UDP_PACKETS, UDP_BYTES), (text, pq)


def test_flowlog_ddl_views_give_the_same_totals_in_duckdb(world):
    """`flowlog ddl` for each flow log (from the aws CLI's describe output) → DuckDB view over
    the delivered files (local copies) → the same UDP totals from text and Parquet."""
    import subprocess

    import duckdb
    from lab import FLOWLOG_BIN
    tmp = world["tmp"] / "ddl"
    s3 = world["s3"]
    con = duckdb.connect()
    totals = {}
    for name, fl, prefix in (("text_fl", world["fl_text"], "text/"), ("pq_fl", world["fl_pq"], "pq/")):
        for k in objects(s3, prefix):
            p = tmp / k
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(s3.get_object(Bucket="f12", Key=k)["Body"].read())
        desc = aws(world["ep"], "ec2", "describe-flow-logs", "--flow-log-ids", fl)
        (tmp / f"{name}.json").write_text(json.dumps(desc))
        ddl = subprocess.run([FLOWLOG_BIN, "ddl", "--describe", str(tmp / f"{name}.json"), "--engine", "duckdb",
                              "--account", ACCOUNT, "--region", REGION, "--table", name,
                              "--root", str(tmp / prefix)], capture_output=True, text=True, check=True).stdout
        con.execute(ddl)
        totals[name] = con.sql(f"""select sum(packets), sum(bytes), count(distinct interface_id)
            from {name} where log_status = 'OK' and protocol = 17""").fetchall()
        athena = subprocess.run([FLOWLOG_BIN, "ddl", "--describe", str(tmp / f"{name}.json"), "--engine", "athena",
                                 "--account", ACCOUNT], capture_output=True, text=True, check=True).stdout
        assert athena.startswith(f"CREATE EXTERNAL TABLE IF NOT EXISTS `vpc_flow_logs` (\n  `version` int,"), athena
        assert ("ParquetHiveSerDe" in athena) == (prefix == "pq/")
    assert totals["text_fl"] == totals["pq_fl"] == [(UDP_PACKETS, UDP_BYTES, 2)], totals
    # The README's queries (top talkers, rejected traffic, SSH/RDP) run on both views.
    from lab import REPO
    readme = (REPO / "README.md").read_text()
    block = readme.split("```sql\n", 1)[1].split("```", 1)[0]
    queries = [q.strip() for q in block.split(";") if q.strip()]
    assert len(queries) == 3
    for view in ("text_fl", "pq_fl"):
        top, rejected, ssh = (con.sql(q.replace("vpc_flow_logs", view)).fetchall() for q in queries)
        assert top and all(row[2] > 0 for row in top), (view, top)
        assert any(row[2] == REJECT_PORT for row in rejected), (view, rejected)
        assert ssh == [], (view, ssh)  # no SSH or RDP was sent
