"""Idempotency, DryRun, authorization and authentication: spec §15 scenarios 28-36 (§1.5, §9, §10),
plus both SigV4 forms (header and presigned query string), unknown keys and stale timestamps."""

import datetime

import botocore.exceptions
import pytest

from apiharness import CREDENTIALS, FLOWLOG_BIN, ROLE, expect_error, expect_ok

DRYRUN_MSG = "Request would have succeeded, but DryRun flag is set."
UNAUTH_MSG = "You are not authorized to perform this operation."


def expect_unauthorized(r):
    expect_error(r, 403, "UnauthorizedOperation")
    assert r.message.startswith(UNAUTH_MSG), r


# -- Idempotency ------------------------------------------------------------------------------


def test_s28_replay_same_token(server):
    """Scenario 28: same request with ClientToken=t1 twice -> same flowLogIdSet, clientToken=t1, one flow log."""
    v = server.vpc()
    r1 = expect_ok(server.create_fl([v], ClientToken="t1-s28"), "CreateFlowLogs")
    assert len(r1.ids()) == 1 and r1.xml.findtext("clientToken") == "t1-s28"
    r2 = expect_ok(server.create_fl([v], ClientToken="t1-s28"), "CreateFlowLogs")
    assert r2.ids() == r1.ids()
    assert r2.unsuccessful() == [], "a replay must not report FlowLogAlreadyExists"
    assert r2.xml.findtext("clientToken") == "t1-s28"
    assert server.fl_ids_for(v) == r1.ids()


def test_s28b_replay_replays_unsuccessful_too(server):
    """§9: the replay returns the same unsuccessful content as the original."""
    v = server.vpc()
    r1 = expect_ok(server.create_fl([v, "vpc-0000000000000beef"], ClientToken="t-s28b"), "CreateFlowLogs")
    r2 = expect_ok(server.create_fl([v, "vpc-0000000000000beef"], ClientToken="t-s28b"), "CreateFlowLogs")
    assert r2.ids() == r1.ids() and r2.unsuccessful() == r1.unsuccessful() and len(r1.unsuccessful()) == 1


def test_s28c_replay_after_delete(server):
    """§14 Q13: a replay after the created flow log was deleted returns the original answer
    and does not create a new flow log."""
    v = server.vpc()
    r1 = expect_ok(server.create_fl([v], ClientToken="t-s28c"), "CreateFlowLogs")
    expect_ok(server.call("DeleteFlowLogs", {"FlowLogId.1": r1.ids()[0]}), "DeleteFlowLogs")
    r2 = expect_ok(server.create_fl([v], ClientToken="t-s28c"), "CreateFlowLogs")
    assert r2.ids() == r1.ids()
    assert server.fl_ids_for(v) == []


def test_s28d_tokens_are_case_sensitive(server):
    """§9: tokens are case-sensitive: T and t are different tokens."""
    v, w = server.vpc(), server.vpc()
    a = expect_ok(server.create_fl([v], ClientToken="CaseTok"), "CreateFlowLogs").ids()
    b = expect_ok(server.create_fl([w], ClientToken="casetok"), "CreateFlowLogs").ids()
    assert a and b and a != b


def test_s29_token_with_changed_params(server):
    """Scenario 29: same token, TrafficType=REJECT instead of ALL -> 400 IdempotentParameterMismatch."""
    v = server.vpc()
    expect_ok(server.create_fl([v], traffic="ALL", ClientToken="t1-s29"), "CreateFlowLogs")
    r = server.create_fl([v], traffic="REJECT", ClientToken="t1-s29")
    expect_error(r, 400, "IdempotentParameterMismatch")
    assert len(server.fl_ids_for(v)) == 1


def test_s29b_same_token_other_resource(server):
    """Scenario 29 variant: same token, another resource -> mismatch, nothing created on it."""
    v, w = server.vpc(), server.vpc()
    expect_ok(server.create_fl([v], ClientToken="t-s29b"), "CreateFlowLogs")
    expect_error(server.create_fl([w], ClientToken="t-s29b"), 400, "IdempotentParameterMismatch")
    assert server.fl_ids_for(w) == []


def test_s30_dryrun_does_not_consume_token(server):
    """Scenario 30: ClientToken=t2&DryRun=true -> 412; then the real request with t2 -> 200 creates."""
    v = server.vpc()
    r = server.create_fl([v], ClientToken="t2-s30", DryRun="true")
    expect_error(r, 412, "DryRunOperation", DRYRUN_MSG)
    assert server.fl_ids_for(v) == []
    r2 = expect_ok(server.create_fl([v], ClientToken="t2-s30"), "CreateFlowLogs")
    assert len(r2.ids()) == 1 and server.fl_ids_for(v) == r2.ids()


# -- DryRun / authorization -----------------------------------------------------------------


def test_s31_create_dryrun(server):
    """Scenario 31: valid CreateFlowLogs + DryRun=true -> 412 DryRunOperation, nothing created."""
    v = server.vpc()
    expect_error(server.create_fl([v], DryRun="true"), 412, "DryRunOperation", DRYRUN_MSG)
    assert server.fl_ids_for(v) == []


def test_s31b_dryrun_false_is_a_normal_call(server):
    v = server.vpc()
    r = expect_ok(server.create_fl([v], DryRun="false"), "CreateFlowLogs")
    assert len(r.ids()) == 1


def test_s31c_dryrun_after_static_validation(server):
    """§10 order: static validation before DryRun: an invalid request with DryRun gets its 400."""
    v = server.vpc()
    expect_error(server.create_fl([v], traffic="Accept", DryRun="true"), 400, "InvalidParameterValue")


def test_s31d_dryrun_bad_boolean(server):
    """DryRun=yes is not a boolean -> 400, never a silent real create."""
    v = server.vpc()
    r = server.create_fl([v], DryRun="yes")
    assert r.status == 400, r
    assert server.fl_ids_for(v) == []


def test_s32_delete_dryrun(server):
    """Scenario 32: DeleteFlowLogs FlowLogId.1=A&DryRun=true -> 412; A still present."""
    v = server.vpc()
    a = server.fl_ok([v])[0]
    expect_error(server.call("DeleteFlowLogs", {"FlowLogId.1": a, "DryRun": "true"}), 412, "DryRunOperation",
                 DRYRUN_MSG)
    assert server.fl_ids_for(v) == [a]


def test_s33_describe_dryrun(server):
    """Scenario 33: DescribeFlowLogs DryRun=true -> 412."""
    expect_error(server.describe({"DryRun": "true"}), 412, "DryRunOperation", DRYRUN_MSG)


def test_s34_readonly_create_dryrun(server):
    """Scenario 34: caller without ec2:CreateFlowLogs, DryRun=true -> 403 UnauthorizedOperation."""
    v = server.vpc()
    expect_unauthorized(server.create_fl([v], DryRun="true", cred="readonly"))


def test_s34b_readonly_create_real(server):
    """Scenario 34 without DryRun -> 403, nothing created; the read-only key may still describe."""
    v = server.vpc()
    expect_unauthorized(server.create_fl([v], cred="readonly"))
    assert server.fl_ids_for(v) == []
    expect_ok(server.describe(cred="readonly"), "DescribeFlowLogs")
    expect_error(server.describe({"DryRun": "true"}, cred="readonly"), 412, "DryRunOperation")


def test_s34c_readonly_delete(server):
    v = server.vpc()
    a = server.fl_ok([v])[0]
    expect_unauthorized(server.call("DeleteFlowLogs", {"FlowLogId.1": a}, cred="readonly"))
    expect_unauthorized(server.call("DeleteFlowLogs", {"FlowLogId.1": a, "DryRun": "true"}, cred="readonly"))
    assert server.fl_ids_for(v) == [a]


def test_s34d_authorization_before_validation(server):
    """§3.1 rule order: authorization (rule 2) comes before parameter validation (rules 3+)."""
    expect_unauthorized(server.call("CreateFlowLogs", {"ResourceType": "Bogus"}, cred="readonly"))


def test_s35_no_describe_permission(server):
    """Scenario 35: caller without ec2:DescribeFlowLogs -> 403 UnauthorizedOperation (also with DryRun)."""
    expect_unauthorized(server.describe(cred="noflow"))
    expect_unauthorized(server.describe({"DryRun": "true"}, cred="noflow"))
    # the same key is allowed its own actions
    expect_ok(server.call("DescribeVpcs", cred="noflow"), "DescribeVpcs")
    expect_unauthorized(server.call("DeleteVpc", {"VpcId": "vpc-0000000000000dead"}, cred="noflow"))


def test_s35b_wildcard_in_the_middle(server):
    """IAM-style wildcard `ec2:*FlowLogs` grants the three flow-log actions and nothing else."""
    v = server.vpc()
    ids = server.create_fl([v], cred="flowonly")
    assert ids.status == 200 and len(ids.ids()) == 1, ids
    expect_ok(server.describe(cred="flowonly"), "DescribeFlowLogs")
    expect_ok(server.call("DeleteFlowLogs", {"FlowLogId.1": ids.ids()[0]}, cred="flowonly"), "DeleteFlowLogs")
    expect_unauthorized(server.call("CreateVpc", {"CidrBlock": "10.0.0.0/16"}, cred="flowonly"))
    expect_unauthorized(server.call("DescribeVpcs", cred="flowonly"))


def test_s35c_boto3_maps_403(server):
    ec2 = server.client("readonly")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ec2.create_flow_logs(ResourceIds=["vpc-0000000000000dead"], ResourceType="VPC", TrafficType="ALL",
                             LogDestinationType="s3", LogDestination="arn:aws:s3:::b1")
    assert e.value.response["Error"]["Code"] == "UnauthorizedOperation"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


# -- Authentication ---------------------------------------------------------------------------


def test_s36_unsigned(server):
    """Scenario 36: unsigned request -> 401 AuthFailure (POST and GET)."""
    expect_error(server.describe(cred=None), 401, "AuthFailure")
    expect_error(server.describe(cred=None, method="GET"), 401, "AuthFailure")


def test_s36b_wrong_secret(server):
    """Scenario 36: wrong secret -> 401 AuthFailure; nothing created."""
    v = server.vpc()
    expect_error(server.create_fl([v], secret="not-the-secret"), 401, "AuthFailure")
    assert server.fl_ids_for(v) == []


def test_s36c_unknown_key(server):
    expect_error(server.describe(access_key="AKIAUNKNOWNKEY000000", secret="x"), 401, "AuthFailure")


def test_s36d_stale_timestamp(server):
    """A request signed 20 minutes ago (or 20 minutes ahead) -> 401 AuthFailure; 5 minutes off is fine."""
    now = datetime.datetime.now(datetime.timezone.utc)
    for delta in (-20, +20):
        r = server.describe(signed_at=(now + datetime.timedelta(minutes=delta)).replace(tzinfo=None))
        expect_error(r, 401, "AuthFailure")
    r = server.describe(signed_at=(now - datetime.timedelta(minutes=5)).replace(tzinfo=None))
    expect_ok(r, "DescribeFlowLogs")


def test_s36e_tampered_body(server):
    """The signature covers the body: changing one byte after signing -> 401 AuthFailure."""
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials
    import requests

    key, secret, _ = CREDENTIALS["admin"]
    body = "Action=DescribeFlowLogs&Version=2016-11-15&Filter.1.Name=traffic-type&Filter.1.Value.1=ALL"
    req = botocore.awsrequest.AWSRequest(method="POST", url=server.url + "/", data=body,
                                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(key, secret), "ec2", "us-east-1").add_auth(req)
    p = req.prepare()
    ok = requests.post(p.url, headers=dict(p.headers.items()), data=p.body, verify=server.verify)
    assert ok.status_code == 200, ok.text
    bad = requests.post(p.url, headers=dict(p.headers.items()), data=body.replace("ALL", "ACC"), verify=server.verify)
    assert bad.status_code == 401 and "<Code>AuthFailure</Code>" in bad.text, bad.text


def test_s36f_wrong_region_or_service_scope(server):
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials
    import requests

    key, secret, _ = CREDENTIALS["admin"]
    for region, service in (("eu-west-1", "ec2"), ("us-east-1", "s3")):
        req = botocore.awsrequest.AWSRequest(method="POST", url=server.url + "/",
                                             data="Action=DescribeFlowLogs&Version=2016-11-15",
                                             headers={"Content-Type": "application/x-www-form-urlencoded"})
        botocore.auth.SigV4Auth(botocore.credentials.Credentials(key, secret), service, region).add_auth(req)
        p = req.prepare()
        r = requests.post(p.url, headers=dict(p.headers.items()), data=p.body, verify=server.verify)
        assert r.status_code == 401 and "<Code>AuthFailure</Code>" in r.text, (region, service, r.text)


def test_s36g_garbage_authorization_header(server):
    import requests

    for value in ["AWS4-HMAC-SHA256", "AWS4-HMAC-SHA256 Credential=", "Bearer xyz", "AWS AKIA:sig",
                  "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLEADMIN0001/20200101/us-east-1/ec2/aws4_request, "
                  "SignedHeaders=host, Signature=zz", "\u00ff\u00fe"]:
        r = requests.post(server.url + "/", data="Action=DescribeFlowLogs&Version=2016-11-15",
                          headers={"Authorization": value.encode("latin-1"),
                                   "Content-Type": "application/x-www-form-urlencoded"},
                          verify=server.verify)
        assert r.status_code == 401 and "<Code>AuthFailure</Code>" in r.text, (value, r.status_code, r.text)


def test_presigned_get(server):
    """SigV4 query-string form (X-Amz-Signature in the URL), GET: accepted."""
    v = server.vpc()
    a = server.fl_ok([v])[0]
    r = expect_ok(server.describe({"FlowLogId.1": a}, method="GET", presign=True), "DescribeFlowLogs")
    assert [f["flowLogId"] for f in r.flow_logs()] == [a]


def test_presigned_post_moves_params_to_query(server):
    """botocore's presigner moves a form body into the query string; the server reads params there too."""
    v = server.vpc()
    r = expect_ok(server.create_fl([v], presign=True), "CreateFlowLogs")
    assert len(r.ids()) == 1 and server.fl_ids_for(v) == r.ids()


def test_presigned_wrong_secret(server):
    expect_error(server.describe(method="GET", presign=True, secret="nope"), 401, "AuthFailure")


def test_presigned_expired(server):
    """X-Amz-Expires=300 signed 10 minutes ago -> expired -> 401 AuthFailure."""
    old = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=10)).replace(tzinfo=None)
    expect_error(server.describe(method="GET", presign=True, signed_at=old), 401, "AuthFailure")


def test_secret_never_logged(server):
    """Issue 3 §5: secrets never appear in logs (stderr), even after failed signatures."""
    server.describe(secret="not-the-secret")
    server.describe()
    logs = server.stderr_tail(10**7) + "\n".join(server.stdout_lines)
    for key, secret, _ in CREDENTIALS.values():
        assert secret not in logs, "a configured secret appeared in the server output"


def test_s28e_replay_with_reordered_parameters(server):
    """§9 fingerprint = the request's parameters, not its bytes: the same parameters in another
    order, or with DryRun=false added, is the same request (replay, not a mismatch)."""
    v, w = server.vpc(), server.vpc()
    base = [("ResourceType", "VPC"), ("ResourceId.1", v), ("ResourceId.2", w), ("TrafficType", "ALL"),
            ("LogDestinationType", "s3"), ("LogDestination", "arn:aws:s3:::b1/reorder/"), ("ClientToken", "t-order")]
    r1 = expect_ok(server.call("CreateFlowLogs", base), "CreateFlowLogs")
    r2 = expect_ok(server.call("CreateFlowLogs", list(reversed(base))), "CreateFlowLogs")
    r3 = expect_ok(server.call("CreateFlowLogs", base + [("DryRun", "false")]), "CreateFlowLogs")
    assert r1.ids() == r2.ids() == r3.ids() and len(r1.ids()) == 2


def test_s31e_dryrun_before_semantic_checks(server):
    """§10 order: static validation -> DryRun -> semantic checks. A DryRun for a missing VPC, a
    duplicate, or a DeleteFlowLogs of an unknown ID answers 412 (§3.2 rule 3)."""
    expect_error(server.create_fl(["vpc-0000000000000dead"], DryRun="true"), 412, "DryRunOperation")
    v = server.vpc()
    server.fl_ok([v], dest="arn:aws:s3:::b1/dry/")
    expect_error(server.create_fl([v], dest="arn:aws:s3:::b1/dry/", DryRun="true"), 412, "DryRunOperation")
    expect_error(server.call("DeleteFlowLogs", {"FlowLogId.1": "fl-1a2b3c4d", "DryRun": "true"}), 412,
                 "DryRunOperation")


def test_s33b_describe_dryrun_static_errors_first(server):
    """A DescribeFlowLogs DryRun with an unknown filter or MaxResults=4 gets the 400, not 412."""
    expect_error(server.describe({"DryRun": "true", "Filter.1.Name": "bogus", "Filter.1.Value.1": "x"}), 400,
                 "InvalidParameterValue")
    expect_error(server.describe({"DryRun": "true", "MaxResults": "4"}), 400, "InvalidParameterValue")


def test_s35d_iam_action_case_and_question_mark(server):
    """IAM matching: action names are case-insensitive and `?` matches exactly one character."""
    expect_ok(server.describe(cred="mixedcase"), "DescribeFlowLogs")
    expect_ok(server.call("CreateVpc", {"CidrBlock": "10.0.0.0/16"}, cred="mixedcase"), "CreateVpc")
    expect_ok(server.call("DeleteFlowLogs", {"FlowLogId.1": "fl-1a2b3c4d"}, cred="mixedcase"), "DeleteFlowLogs")
    expect_unauthorized(server.create_fl(["vpc-0000000000000dead"], cred="mixedcase"))
    expect_unauthorized(server.call("DescribeVpcs", cred="mixedcase"))


def test_cli_help():
    """`flowlog --help` and `flowlog serve --help` work and document the serve options."""
    import subprocess


    top = subprocess.run([FLOWLOG_BIN, "--help"], capture_output=True, text=True, timeout=30)
    assert top.returncode == 0 and "serve" in top.stdout, top
    sub = subprocess.run([FLOWLOG_BIN, "serve", "--help"], capture_output=True, text=True, timeout=30)
    assert sub.returncode == 0, sub
    for opt in ("--listen", "--data-dir", "--config"):
        assert opt in sub.stdout, (opt, sub.stdout)
    assert "4751" in sub.stdout, "the documented default port should show in --help"
