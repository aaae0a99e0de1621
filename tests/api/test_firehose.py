"""LogDestinationType=kinesis-data-firehose and DeliverCrossAccountRole (spec §12, issue 11):
create / describe / delete with boto3 and the aws CLI, every validation rule, filters,
ClientToken and DryRun, against the real server.

Rules (botocore's ec2 model and the VPC user guide): LogDestination is a delivery-stream ARN
(`arn:aws:firehose:<region>:<account>:deliverystream/<name>`, also `...:deliverystream:<name>`
as the API reference spells it) in the caller's region; a stream in the caller's account needs
no role (DeliverLogsPermissionArn optional, DeliverCrossAccountRole refused); a stream in
another account needs both. LogGroupName and DestinationOptions do not apply; LogFormat does.
"""

import botocore.exceptions
import pytest

from apiharness import ACCOUNT, REGION, ROLE, expect_error, expect_ok

OTHER = "210987654321"
STREAM = f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/flow-logs"
STREAM_COLON = f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream:flow-logs-colon"
CROSS_STREAM = f"arn:aws:firehose:{REGION}:{OTHER}:deliverystream/central"
CROSS_ROLE = f"arn:aws:iam::{OTHER}:role/AWSLogDeliveryFirehoseCrossAccountRole"
FH = "kinesis-data-firehose"


def fh_params(vpc, dest=STREAM, **extra):
    p = {"ResourceType": "VPC", "ResourceId.1": vpc, "TrafficType": "ALL",
         "LogDestinationType": FH, "LogDestination": dest}
    p.update(extra)
    return p


def described(server, fl_id):
    fls = server.all_flow_logs({"FlowLogId.1": fl_id})
    assert len(fls) == 1, fls
    return fls[0]


def ec2(server):
    return server.client()


# -- create / describe / delete ------------------------------------------------------------


def test_same_account_without_role_boto3(server):
    """A stream of the caller's account needs no role; Describe shows the ARN as given and no
    role, group or DestinationOptions."""
    c = ec2(server)
    v = server.vpc()
    out = c.create_flow_logs(ResourceIds=[v], ResourceType="VPC", TrafficType="ALL",
                             LogDestinationType=FH, LogDestination=STREAM)
    assert out["Unsuccessful"] == [] and len(out["FlowLogIds"]) == 1
    fid = out["FlowLogIds"][0]
    fl = c.describe_flow_logs(FlowLogIds=[fid])["FlowLogs"][0]
    assert fl["LogDestinationType"] == FH
    assert fl["LogDestination"] == STREAM
    assert fl["ResourceId"] == v and fl["TrafficType"] == "ALL"
    assert fl["DeliverLogsStatus"] == "SUCCESS" and fl["FlowLogStatus"] == "ACTIVE"
    for absent in ("DeliverLogsPermissionArn", "DeliverCrossAccountRole", "LogGroupName",
                   "DestinationOptions"):
        assert absent not in fl, (absent, fl)
    c.delete_flow_logs(FlowLogIds=[fid])
    assert c.describe_flow_logs(FlowLogIds=[fid])["FlowLogs"] == []


def test_same_account_with_permission_role(server):
    """DeliverLogsPermissionArn is optional in the same account, and shown when given."""
    v = server.vpc()
    r = expect_ok(server.call("CreateFlowLogs", fh_params(v, DeliverLogsPermissionArn=ROLE)), "CreateFlowLogs")
    assert r.unsuccessful() == []
    fl = described(server, r.ids()[0])
    assert fl["deliverLogsPermissionArn"] == ROLE
    assert "deliverCrossAccountRole" not in fl


def test_cross_account_boto3(server):
    """A stream in another account: both roles given, both shown (raw XML element names too)."""
    c = ec2(server)
    v = server.vpc()
    out = c.create_flow_logs(ResourceIds=[v], ResourceType="VPC", TrafficType="REJECT",
                             LogDestinationType=FH, LogDestination=CROSS_STREAM,
                             DeliverLogsPermissionArn=ROLE, DeliverCrossAccountRole=CROSS_ROLE)
    fid = out["FlowLogIds"][0]
    fl = c.describe_flow_logs(FlowLogIds=[fid])["FlowLogs"][0]
    assert fl["LogDestination"] == CROSS_STREAM
    assert fl["DeliverLogsPermissionArn"] == ROLE
    assert fl["DeliverCrossAccountRole"] == CROSS_ROLE
    raw = described(server, fid)
    assert raw["deliverCrossAccountRole"] == CROSS_ROLE
    assert raw["logDestinationType"] == FH


def test_cross_account_aws_cli(server):
    """The aws CLI's own flags (--deliver-cross-account-role) round-trip through the server."""
    v = server.aws_json("ec2", "create-vpc", "--cidr-block", "10.9.0.0/16")["Vpc"]["VpcId"]
    out = server.aws_json("ec2", "create-flow-logs", "--resource-type", "VPC", "--resource-ids", v,
                          "--traffic-type", "ACCEPT", "--log-destination-type", FH,
                          "--log-destination", CROSS_STREAM,
                          "--deliver-logs-permission-arn", ROLE,
                          "--deliver-cross-account-role", CROSS_ROLE,
                          "--log-format", "${srcaddr} ${dstaddr} ${packets} ${bytes}")
    assert out["Unsuccessful"] == [] and len(out["FlowLogIds"]) == 1
    fid = out["FlowLogIds"][0]
    fl = server.aws_json("ec2", "describe-flow-logs", "--flow-log-ids", fid)["FlowLogs"][0]
    assert fl["LogDestinationType"] == FH
    assert fl["LogDestination"] == CROSS_STREAM
    assert fl["DeliverCrossAccountRole"] == CROSS_ROLE
    assert fl["DeliverLogsPermissionArn"] == ROLE
    assert fl["LogFormat"] == "${srcaddr} ${dstaddr} ${packets} ${bytes}"
    filtered = server.aws_json("ec2", "describe-flow-logs", "--filter",
                               f"Name=log-destination-type,Values={FH}", f"Name=resource-id,Values={v}")
    assert [f["FlowLogId"] for f in filtered["FlowLogs"]] == [fid]
    server.aws("ec2", "delete-flow-logs", "--flow-log-ids", fid, check=True)
    assert server.fl_ids_for(v) == []


def test_colon_arn_form_and_duplicates(server):
    """`deliverystream:<name>` (the API reference's spelling) is accepted and kept as given;
    both spellings name one stream, so the second is FlowLogAlreadyExists."""
    v = server.vpc()
    r = expect_ok(server.call("CreateFlowLogs", fh_params(v, dest=STREAM_COLON)), "CreateFlowLogs")
    assert r.unsuccessful() == [] and len(r.ids()) == 1
    assert described(server, r.ids()[0])["logDestination"] == STREAM_COLON
    slash = STREAM_COLON.replace("deliverystream:", "deliverystream/")
    dup = expect_ok(server.call("CreateFlowLogs", fh_params(v, dest=slash)), "CreateFlowLogs")
    assert dup.ids() == []
    assert [u["code"] for u in dup.unsuccessful()] == ["FlowLogAlreadyExists"]
    # Another stream on the same VPC is a second flow log.
    other = expect_ok(server.call("CreateFlowLogs", fh_params(v, dest=STREAM)), "CreateFlowLogs")
    assert len(other.ids()) == 1
    assert sorted(server.fl_ids_for(v)) == sorted(r.ids() + other.ids())


def test_per_resource_outcomes(server):
    """Unknown resources are per-item failures, as for the other destination types."""
    v = server.vpc()
    r = expect_ok(server.call("CreateFlowLogs", {**fh_params(v), "ResourceId.2": "vpc-0000000000000f1e0"}),
                  "CreateFlowLogs")
    assert len(r.ids()) == 1
    assert [(u["resourceId"], u["code"]) for u in r.unsuccessful()] == [
        ("vpc-0000000000000f1e0", "InvalidVpcID.NotFound")]


# -- validation ------------------------------------------------------------------------------

NOT_STREAM = ("LogDestination: {dest} is not a valid Kinesis Data Firehose delivery stream ARN. "
              "Expected arn:aws:firehose:<region>:<account>:deliverystream/<name>.")

CASES = [
    ("bare-name", {"LogDestination": "flow-logs"}, NOT_STREAM.format(dest="flow-logs")),
    ("s3-arn", {"LogDestination": "arn:aws:s3:::b1"}, NOT_STREAM.format(dest="arn:aws:s3:::b1")),
    ("kinesis-stream", {"LogDestination": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/s"},
     NOT_STREAM.format(dest=f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/s")),
    ("empty-name", {"LogDestination": f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/"},
     NOT_STREAM.format(dest=f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/")),
    ("bad-account", {"LogDestination": f"arn:aws:firehose:{REGION}:1234:deliverystream/x"},
     NOT_STREAM.format(dest=f"arn:aws:firehose:{REGION}:1234:deliverystream/x")),
    ("other-region", {"LogDestination": f"arn:aws:firehose:eu-west-1:{ACCOUNT}:deliverystream/x"},
     "LogDestination must be in the same region as the API caller."),
    ("log-group-name", {"LogDestination": None, "LogGroupName": "g"},
     "LogDestination type must be cloud-watch-logs if LogGroupName is provided."),
    ("group-and-destination", {"LogGroupName": "g"},
     "Please only provide LogGroupName or only provide LogDestination."),
    ("no-destination", {"LogDestination": None},
     "LogDestination can't be empty if LogGroupName is not provided."),
    ("cross-without-permission-role", {"LogDestination": CROSS_STREAM, "DeliverCrossAccountRole": CROSS_ROLE},
     "DeliverLogsPermissionArn can't be empty if LogDestinationType is kinesis-data-firehose and the "
     "delivery stream is in another account."),
    ("cross-without-cross-role", {"LogDestination": CROSS_STREAM, "DeliverLogsPermissionArn": ROLE},
     "DeliverCrossAccountRole can't be empty if the delivery stream is in another account."),
    ("cross-without-any-role", {"LogDestination": CROSS_STREAM},
     "DeliverLogsPermissionArn can't be empty if LogDestinationType is kinesis-data-firehose and the "
     "delivery stream is in another account."),
    ("same-account-cross-role", {"DeliverCrossAccountRole": CROSS_ROLE},
     "DeliverCrossAccountRole is only applicable when the delivery stream is in another account."),
    ("bad-cross-role", {"LogDestination": CROSS_STREAM, "DeliverLogsPermissionArn": ROLE,
                        "DeliverCrossAccountRole": "central-role"},
     "DeliverCrossAccountRole: central-role is not a valid IAM role ARN (arn:aws:iam::<account>:role/<name>)."),
    ("bad-permission-role", {"DeliverLogsPermissionArn": "arn:aws:iam::123:role/x"},
     "DeliverLogsPermissionArn: arn:aws:iam::123:role/x is not a valid IAM role ARN "
     "(arn:aws:iam::<account>:role/<name>)."),
    ("destination-options", {"DestinationOptions.FileFormat": "parquet"},
     "DestinationOptions can only be used with LogDestinationType s3."),
]


@pytest.mark.parametrize("override,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_validation(server, override, message):
    v = server.vpc()
    p = fh_params(v)
    for k, val in override.items():
        if val is None:
            p.pop(k, None)
        else:
            p[k] = val
    expect_error(server.call("CreateFlowLogs", p), 400, "InvalidParameter", message)
    assert server.fl_ids_for(v) == [], "a rejected request created a flow log"


@pytest.mark.parametrize("dest_type,extra,message", [
    ("s3", {"LogDestination": "arn:aws:s3:::b1"}, "DeliverCrossAccountRole is not applicable for s3 delivery"),
    ("cloud-watch-logs", {"LogGroupName": "g", "DeliverLogsPermissionArn": ROLE},
     "DeliverCrossAccountRole is not applicable for cloud-watch-logs delivery"),
], ids=["s3", "cloud-watch-logs"])
def test_cross_account_role_only_for_firehose(server, dest_type, extra, message):
    v = server.vpc()
    p = {"ResourceType": "VPC", "ResourceId.1": v, "TrafficType": "ALL", "LogDestinationType": dest_type,
         "DeliverCrossAccountRole": CROSS_ROLE, **extra}
    expect_error(server.call("CreateFlowLogs", p), 400, "InvalidParameter", message)
    assert server.fl_ids_for(v) == []


def test_destination_type_spelling_is_exact(server):
    v = server.vpc()
    for wrong in ("kinesis-firehose", "Kinesis-Data-Firehose", "firehose"):
        r = server.call("CreateFlowLogs", fh_params(v, LogDestinationType=wrong))
        expect_error(r, 400, "InvalidParameterValue")
        assert "kinesis-data-firehose" in r.message, r
    assert server.fl_ids_for(v) == []


def test_boto3_surfaces_the_error(server):
    c = ec2(server)
    v = server.vpc()
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.create_flow_logs(ResourceIds=[v], ResourceType="VPC", TrafficType="ALL",
                           LogDestinationType=FH, LogDestination=CROSS_STREAM)
    assert e.value.response["Error"]["Code"] == "InvalidParameter"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


# -- filters, ClientToken, DryRun ------------------------------------------------------------


def test_filters(server):
    v = server.vpc()
    fh_id = expect_ok(server.call("CreateFlowLogs", fh_params(v)), "CreateFlowLogs").ids()[0]
    s3_id = server.fl_ok([v], dest="arn:aws:s3:::b1/fh-filters/")[0]

    def ids(*filters):
        p = {"Filter.1.Name": "resource-id", "Filter.1.Value.1": v}
        for n, (name, values) in enumerate(filters, start=2):
            p[f"Filter.{n}.Name"] = name
            for m, val in enumerate(values, start=1):
                p[f"Filter.{n}.Value.{m}"] = val
        return sorted(f["flowLogId"] for f in server.all_flow_logs(p))

    assert ids(("log-destination-type", [FH])) == [fh_id]
    assert ids(("log-destination-type", ["s3"])) == [s3_id]
    assert ids(("log-destination-type", [FH, "s3"])) == sorted([fh_id, s3_id])
    assert ids(("log-destination-type", ["kinesis-*"])) == [fh_id]
    assert ids(("log-destination-type", ["cloud-watch-logs"])) == []
    assert ids(("log-group-name", ["*"])) == []


def test_client_token(server):
    c = ec2(server)
    v = server.vpc()
    kw = dict(ResourceIds=[v], ResourceType="VPC", TrafficType="ALL", LogDestinationType=FH,
              LogDestination=STREAM, ClientToken="fh-token-1")
    a = c.create_flow_logs(**kw)
    b = c.create_flow_logs(**kw)
    assert a["FlowLogIds"] == b["FlowLogIds"] and len(a["FlowLogIds"]) == 1
    assert b["ClientToken"] == "fh-token-1" and b["Unsuccessful"] == []
    assert server.fl_ids_for(v) == a["FlowLogIds"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.create_flow_logs(**{**kw, "DeliverLogsPermissionArn": ROLE})
    assert e.value.response["Error"]["Code"] == "IdempotentParameterMismatch"
    # The cross-account role is part of the request too.
    kw2 = dict(kw, LogDestination=CROSS_STREAM, DeliverLogsPermissionArn=ROLE,
               DeliverCrossAccountRole=CROSS_ROLE, ClientToken="fh-token-2")
    first = c.create_flow_logs(**kw2)["FlowLogIds"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.create_flow_logs(**{**kw2, "DeliverCrossAccountRole": f"arn:aws:iam::{OTHER}:role/other"})
    assert e.value.response["Error"]["Code"] == "IdempotentParameterMismatch"
    assert sorted(server.fl_ids_for(v)) == sorted(a["FlowLogIds"] + first)


def test_dry_run(server):
    v = server.vpc()
    r = server.call("CreateFlowLogs", fh_params(v, DryRun="true"))
    expect_error(r, 412, "DryRunOperation")
    # Validation comes first: an invalid request is not a DryRunOperation.
    r = server.call("CreateFlowLogs", fh_params(v, DryRun="true", LogDestination=CROSS_STREAM))
    expect_error(r, 400, "InvalidParameter")
    assert server.fl_ids_for(v) == []
