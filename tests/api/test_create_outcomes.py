"""CreateFlowLogs success and per-item outcomes: spec §15 scenarios 16-27 (§3.1, §3.5, §7, §14 Q2)."""

import re

import pytest

from apiharness import FL_ID, ISO_MS, NS, REPO, ROLE, Server, expect_ok, free_port, s3_config

DUP_MSG = "Error. There is an existing Flow Log with the same configuration and log destination."


def by_id(server, fl_id):
    fls = server.all_flow_logs({"FlowLogId.1": fl_id})
    assert len(fls) == 1, fls
    return fls[0]


def test_s16_vpc_to_s3(server):
    """Scenario 16: VPC -> S3 bucket ARN: 200, one fl-<17 hex>, empty <unsuccessful/>, generated clientToken."""
    v = server.vpc()
    r = expect_ok(server.create_fl([v], dest="arn:aws:s3:::b1"), "CreateFlowLogs")
    ids = r.ids()
    assert len(ids) == 1 and FL_ID.match(ids[0]), r
    un = r.raw_root.find(f"{{{NS}}}unsuccessful")
    assert un is not None and len(un) == 0, f"<unsuccessful/> must be present and empty: {r!r}"
    tok = r.xml.findtext("clientToken")
    assert tok, f"a clientToken must be generated when none is sent: {r!r}"
    assert r.xml.findtext("requestId"), r
    fl = by_id(server, ids[0])
    assert fl["resourceId"] == v and fl["logDestination"] == "arn:aws:s3:::b1"
    assert fl["logDestinationType"] == "s3" and fl["trafficType"] == "ALL"
    assert fl["flowLogStatus"] == "ACTIVE" and fl["deliverLogsStatus"] == "SUCCESS"
    assert ISO_MS.match(fl["creationTime"]), fl


def test_s16b_generated_tokens_differ(server):
    """§9: a token is generated per request when none is sent (two creates -> two tokens)."""
    a, b = server.vpc(), server.vpc()
    t1 = server.create_fl([a]).xml.findtext("clientToken")
    t2 = server.create_fl([b]).xml.findtext("clientToken")
    assert t1 and t2 and t1 != t2


def test_s17_two_vpcs_in_request_order(server):
    """Scenario 17: ResourceId.1=V1&ResourceId.2=V2 -> two distinct IDs in request order."""
    v1, v2 = server.vpc(), server.vpc()
    ids = server.fl_ok([v1, v2], dest="arn:aws:s3:::b1/s17/")
    assert len(ids) == 2 and len(set(ids)) == 2
    assert by_id(server, ids[0])["resourceId"] == v1
    assert by_id(server, ids[1])["resourceId"] == v2
    # and the reverse order gives the reverse mapping
    ids2 = server.fl_ok([v2, v1], dest="arn:aws:s3:::b1/s17b/")
    assert by_id(server, ids2[0])["resourceId"] == v2
    assert by_id(server, ids2[1])["resourceId"] == v1


def test_s18_subnet_to_cwl_group_name(server, world):
    """Scenario 18: Subnet -> CWL group g + role: logGroupName=g, role shown, no logDestination."""
    v = server.vpc("10.9.0.0/16")
    s = server.subnet(v, "10.9.1.0/24")
    ids = server.fl_ok([s], resource_type="Subnet", dest="g")
    r = expect_ok(server.describe({"FlowLogId.1": ids[0]}), "DescribeFlowLogs")
    fl = r.flow_logs()[0]
    assert fl["logGroupName"] == "g"
    assert fl["deliverLogsPermissionArn"] == ROLE
    assert fl["logDestinationType"] == "cloud-watch-logs"
    assert fl["resourceId"] == s
    assert "logDestination" not in fl, f"name-created CWL flow log must not report logDestination: {fl}"


def test_s18b_subnet_to_cwl_group_arn(server):
    """Scenario 18 (second half): created with a log-group ARN -> that logDestination and logGroupName=g."""
    v = server.vpc("10.9.0.0/16")
    s = server.subnet(v, "10.9.2.0/24")
    arn = "arn:aws:logs:us-east-1:123456789012:log-group:g"
    r = expect_ok(server.call("CreateFlowLogs", {
        "ResourceType": "Subnet", "ResourceId.1": s, "TrafficType": "ALL",
        "LogDestinationType": "cloud-watch-logs", "LogDestination": arn,
        "DeliverLogsPermissionArn": ROLE}), "CreateFlowLogs")
    assert r.unsuccessful() == [] and len(r.ids()) == 1, r
    fl = by_id(server, r.ids()[0])
    assert fl["logDestination"] == arn
    assert fl["logGroupName"] == "g"
    assert fl["logDestinationType"] == "cloud-watch-logs"


def test_s19_eni_to_s3_subfolder(server, world):
    """Scenario 19: ENI -> arn:aws:s3:::b1/my-logs/ -> logDestination exactly as given."""
    ids = server.fl_ok([world["E1"]], resource_type="NetworkInterface", dest="arn:aws:s3:::b1/my-logs/")
    fl = by_id(server, ids[0])
    assert fl["logDestination"] == "arn:aws:s3:::b1/my-logs/"
    assert fl["resourceId"] == world["E1"]


def test_s21_one_missing_vpc(server):
    """Scenario 21: V1 + vpc-0000000000000dead -> one ID for V1, one InvalidVpcID.NotFound item."""
    v = server.vpc()
    r = expect_ok(server.create_fl([v, "vpc-0000000000000dead"], dest="arn:aws:s3:::b1/s21/"), "CreateFlowLogs")
    assert len(r.ids()) == 1, r
    assert by_id(server, r.ids()[0])["resourceId"] == v
    un = r.unsuccessful()
    assert len(un) == 1, r
    assert un[0]["resourceId"] == "vpc-0000000000000dead"
    assert un[0]["code"] == "InvalidVpcID.NotFound"
    assert "vpc-0000000000000dead" in (un[0]["message"] or ""), un


@pytest.mark.parametrize("rtype,missing,code", [
    ("Subnet", "subnet-0000000000000dead", "InvalidSubnetID.NotFound"),
    ("NetworkInterface", "eni-0000000000000dead", "InvalidNetworkInterfaceID.NotFound"),
])
def test_s21b_missing_subnet_and_eni(server, rtype, missing, code):
    """Scenario 21 for the other resource types (§3.5 codes)."""
    r = expect_ok(server.create_fl([missing], resource_type=rtype, dest="arn:aws:s3:::b1"), "CreateFlowLogs")
    assert r.ids() == []
    un = r.unsuccessful()
    assert [(u["resourceId"], u["code"]) for u in un] == [(missing, code)], r


def test_s22_type_mismatch(server):
    """Scenario 22: ResourceType=Subnet with a VPC ID -> 400 InvalidParameter
    `Invalid Resource id <vpc> for resource-type Subnet`, or an Unsuccessful InvalidSubnetID.NotFound;
    nothing created either way."""
    v = server.vpc()
    r = server.create_fl([v], resource_type="Subnet")
    if r.status == 200:
        assert r.ids() == [], r
        assert [(u["resourceId"], u["code"]) for u in r.unsuccessful()] == [(v, "InvalidSubnetID.NotFound")], r
    else:
        assert r.status == 400 and r.code == "InvalidParameter", r
        assert r.message == f"Invalid Resource id {v} for resource-type Subnet", r
    assert server.fl_ids_for(v) == []


def test_s23_duplicate(server):
    """Scenario 23: repeating scenario 16 exactly (no token) -> Unsuccessful FlowLogAlreadyExists."""
    v = server.vpc()
    server.fl_ok([v], dest="arn:aws:s3:::b1")
    r = expect_ok(server.create_fl([v], dest="arn:aws:s3:::b1"), "CreateFlowLogs")
    assert r.ids() == [], r
    assert r.unsuccessful() == [{"resourceId": v, "code": "FlowLogAlreadyExists", "message": DUP_MSG}]
    assert len(server.fl_ids_for(v)) == 1


def test_s23b_duplicate_trailing_slash_normalised(server):
    """§14 Q2: only a missing trailing '/' is normalised: b1/x and b1/x/ are the same destination."""
    v = server.vpc()
    server.fl_ok([v], dest="arn:aws:s3:::b1/x/")
    r = expect_ok(server.create_fl([v], dest="arn:aws:s3:::b1/x"), "CreateFlowLogs")
    assert [u["code"] for u in r.unsuccessful()] == ["FlowLogAlreadyExists"], r


def test_s23c_duplicate_cwl_name_vs_arn(server):
    """§14 Q2: a CWL destination is normalised to the group name: name g vs ARN of g is a duplicate."""
    v = server.vpc()
    server.fl_ok([v], dest="g-dup")
    r = expect_ok(server.call("CreateFlowLogs", {
        "ResourceType": "VPC", "ResourceId.1": v, "TrafficType": "ALL",
        "LogDestinationType": "cloud-watch-logs",
        "LogDestination": "arn:aws:logs:us-east-1:123456789012:log-group:g-dup",
        "DeliverLogsPermissionArn": ROLE}), "CreateFlowLogs")
    assert [u["code"] for u in r.unsuccessful()] == ["FlowLogAlreadyExists"], r


def test_s23d_duplicate_within_one_request(server):
    """The same resource twice in one request: the second is a duplicate of the first."""
    v = server.vpc()
    r = expect_ok(server.create_fl([v, v], dest="arn:aws:s3:::b1/s23d/"), "CreateFlowLogs")
    assert len(r.ids()) == 1, r
    assert [u["code"] for u in r.unsuccessful()] == ["FlowLogAlreadyExists"], r
    assert len(server.fl_ids_for(v)) == 1


def test_s24_other_bucket_not_duplicate(server):
    """Scenario 24: V1 -> b1 then V1 -> b2 -> a new flow log; also b1 vs b1/subfolder/ [LSNAP]."""
    v = server.vpc()
    server.fl_ok([v], dest="arn:aws:s3:::b1")
    server.fl_ok([v], dest="arn:aws:s3:::b2")
    assert len(server.fl_ids_for(v)) == 2
    w = server.vpc()
    server.fl_ok([w], dest="arn:aws:s3:::b1")
    server.fl_ok([w], dest="arn:aws:s3:::b1/subfolder/")
    assert len(server.fl_ids_for(w)) == 2


def test_s25_accept_and_reject_same_group(server, world):
    """Scenario 25: E1 -> g ACCEPT, then E1 -> g REJECT: both succeed (traffic type is in the key)."""
    v = server.vpc("10.20.0.0/16")
    s = server.subnet(v, "10.20.0.0/24")
    e = server.eni(s)
    a = server.fl_ok([e], resource_type="NetworkInterface", traffic="ACCEPT", dest="g")
    b = server.fl_ok([e], resource_type="NetworkInterface", traffic="REJECT", dest="g")
    assert a != b
    got = {f["trafficType"] for f in server.all_flow_logs({"Filter.1.Name": "resource-id", "Filter.1.Value.1": e})}
    assert got == {"ACCEPT", "REJECT"}


def test_s26_limit_two_per_resource(server):
    """Scenario 26 (2018 limit mode, the default 2): third flow log on a VPC -> FlowLogsLimitExceeded item."""
    v = server.vpc()
    server.fl_ok([v], dest="arn:aws:s3:::b1/l1/")
    server.fl_ok([v], dest="arn:aws:s3:::b1/l2/")
    w = server.vpc()
    r = expect_ok(server.create_fl([v, w], dest="arn:aws:s3:::b1/l3/"), "CreateFlowLogs")
    assert len(r.ids()) == 1, "the other resource of the request must still succeed"
    un = r.unsuccessful()
    assert [(u["resourceId"], u["code"]) for u in un] == [(v, "FlowLogsLimitExceeded")], r
    assert len(server.fl_ids_for(v)) == 2


def test_s26b_limit_counts_per_resource_not_per_vpc(server):
    """§7: the limit is per single resource: 2 on the VPC plus 2 on its subnet plus 2 on its ENI."""
    v = server.vpc("10.30.0.0/16")
    s = server.subnet(v, "10.30.0.0/24")
    e = server.eni(s)
    for rid, rt in ((v, "VPC"), (s, "Subnet"), (e, "NetworkInterface")):
        server.fl_ok([rid], resource_type=rt, dest="arn:aws:s3:::b1/a/")
        server.fl_ok([rid], resource_type=rt, dest="arn:aws:s3:::b1/b/")


def test_s26c_limit_after_delete(server):
    """Deleting a flow log frees its slot under the per-resource limit."""
    v = server.vpc()
    a = server.fl_ok([v], dest="arn:aws:s3:::b1/d1/")
    server.fl_ok([v], dest="arn:aws:s3:::b1/d2/")
    expect_ok(server.call("DeleteFlowLogs", {"FlowLogId.1": a[0]}), "DeleteFlowLogs")
    server.fl_ok([v], dest="arn:aws:s3:::b1/d3/")


def test_s26d_configured_limit(make_server):
    """Q14: the limit is configurable ([api] max_flow_logs_per_resource)."""
    srv = make_server(max_per_resource=3)
    v = srv.vpc()
    for i in range(3):
        srv.fl_ok([v], dest=f"arn:aws:s3:::b1/c{i}/")
    r = expect_ok(srv.create_fl([v], dest="arn:aws:s3:::b1/c9/"), "CreateFlowLogs")
    assert [u["code"] for u in r.unsuccessful()] == ["FlowLogsLimitExceeded"], r


def test_s27_cwl_group_missing_is_fine(server):
    """Scenario 27: CWL to a log group that does not exist -> 200, ACTIVE, SUCCESS."""
    v = server.vpc()
    ids = server.fl_ok([v], dest="no-such-group-anywhere")
    fl = by_id(server, ids[0])
    assert fl["flowLogStatus"] == "ACTIVE" and fl["deliverLogsStatus"] == "SUCCESS", fl


def test_s11_default_destination_type(server):
    """Scenario 11: no LogDestinationType, LogGroupName=g + role -> 200; describe shows cloud-watch-logs."""
    v = server.vpc()
    r = expect_ok(server.call("CreateFlowLogs", {"ResourceType": "VPC", "ResourceId.1": v, "TrafficType": "ALL",
                                                 "LogGroupName": "g", "DeliverLogsPermissionArn": ROLE}),
                  "CreateFlowLogs")
    assert len(r.ids()) == 1, r
    assert by_id(server, r.ids()[0])["logDestinationType"] == "cloud-watch-logs"


# --------------------------------------------------------------------------------------------
# Scenario 20: a configured S3 endpoint (moto_server) is asked about the bucket.


@pytest.fixture(scope="module")
def s3_server(moto, tmp_path_factory):

    moto.s3().create_bucket(Bucket="bucket-b1")
    srv = Server(tmp_path_factory.mktemp("s3srv"), config_extra=s3_config(moto.url), name="s3srv")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_s20_missing_bucket(s3_server):
    """Scenario 20: bucket missing on the configured S3 endpoint -> 200, empty flowLogIdSet,
    unsuccessful item code "400", message `LogDestination: <bucket> does not exist` (no final period)."""
    v1, v2 = s3_server.vpc(), s3_server.vpc()
    r = expect_ok(s3_server.create_fl([v1, v2], dest="arn:aws:s3:::no-such-bucket-xyz/sub/"), "CreateFlowLogs")
    assert r.ids() == [], r
    msg = "LogDestination: no-such-bucket-xyz does not exist"
    assert r.unsuccessful() == [
        {"resourceId": v1, "code": "400", "message": msg},
        {"resourceId": v2, "code": "400", "message": msg},
    ], r
    assert s3_server.fl_ids_for(v1) == []


def test_s20_existing_bucket(s3_server, moto):
    """Scenario 20 control: an existing bucket (with a subfolder) on the endpoint is accepted,
    and the writability check leaves its zero-byte folder marker under the subfolder, where the
    objects will go (`my-logs/AWSLogs/`), not at the bucket root."""
    v = s3_server.vpc()
    ids = s3_server.fl_ok([v], dest="arn:aws:s3:::bucket-b1/my-logs/")
    assert len(ids) == 1
    keys = [o["Key"] for o in moto.s3().list_objects_v2(Bucket="bucket-b1").get("Contents", [])]
    assert "my-logs/AWSLogs/" in keys, keys
    assert "AWSLogs/" not in keys, keys


def test_s20_no_endpoint_accepts_any_bucket(server):
    """Scenario 20 (last sentence): with no S3 endpoint configured the bucket is accepted."""
    v = server.vpc()
    assert len(server.fl_ok([v], dest="arn:aws:s3:::bucket-nobody-made-s20")) == 1


def test_s20_access_denied(moto, make_server):
    """Scenario 20: a bucket that exists but may not be written -> code "400",
    `Access Denied for LogDestination: <bucket>. Please check LogDestination permission`.

    moto does not enforce permissions, so the denial comes from an S3 peer that checks SigV4
    (s3s-fs from .tools/bin) given a secret other than the one flowlog signs with."""
    import os
    import shutil
    import signal
    import subprocess
    import time

    import boto3
    import requests


    exe = shutil.which("s3s-fs") or str(REPO / ".tools" / "bin" / "s3s-fs")
    if not os.path.exists(exe):
        pytest.skip("s3s-fs not installed (needed for the access-denied half of scenario 20)")
    probe = make_server(start=False)
    root = probe.workdir / "s3root"
    (root / "deny-bucket").mkdir(parents=True)
    port = free_port()
    proc = subprocess.Popen([exe, "--host", "127.0.0.1", "--port", str(port), "--access-key", "RIGHTKEY",
                             "--secret-key", "rightsecret", str(root)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                requests.get(url, timeout=0.5)
                break
            except requests.RequestException:
                time.sleep(0.1)
        # sanity: the bucket exists for the right key
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id="RIGHTKEY", aws_secret_access_key="rightsecret")
        s3.head_bucket(Bucket="deny-bucket")
        srv = make_server(config_extra=s3_config(url, "RIGHTKEY", "wrongsecret"))
        v = srv.vpc()
        r = expect_ok(srv.create_fl([v], dest="arn:aws:s3:::deny-bucket/x/"), "CreateFlowLogs")
        assert r.ids() == [], r
        assert r.unsuccessful() == [{
            "resourceId": v, "code": "400",
            "message": "Access Denied for LogDestination: deny-bucket. Please check LogDestination permission"}], r
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(10)
