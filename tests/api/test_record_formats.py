"""Issue 12: LogFormat with every VPC flow-log field (spec §4.1) and DestinationOptions (§5.5),
driven by boto3 and the aws CLI: the validation matrix with exact codes, Describe round trips,
ClientToken comparison including the options. Written from the spec."""

import uuid

import botocore.exceptions
import pytest

from apiharness import ROLE, expect_error

V2 = ("${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} "
      "${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status}")
V3 = "${vpc-id} ${subnet-id} ${instance-id} ${tcp-flags} ${type} ${pkt-srcaddr} ${pkt-dstaddr}"
V4 = "${region} ${az-id} ${sublocation-type} ${sublocation-id}"
V5 = "${pkt-src-aws-service} ${pkt-dst-aws-service} ${flow-direction} ${traffic-path}"
V7 = ("${ecs-cluster-arn} ${ecs-cluster-name} ${ecs-container-instance-arn} ${ecs-container-instance-id} "
      "${ecs-container-id} ${ecs-second-container-id} ${ecs-service-name} ${ecs-task-definition-arn} "
      "${ecs-task-arn} ${ecs-task-id}")
V8 = "${reject-reason}"
EVERY_FIELD = " ".join([V2, V3, V4, V5, V7, V8])
# The format the JavaScript user sent (common v3-v5 setup).
COMMON_V5 = ("${version} ${vpc-id} ${subnet-id} ${instance-id} ${interface-id} ${account-id} ${type} "
             "${srcaddr} ${dstaddr} ${srcport} ${dstport} ${pkt-srcaddr} ${pkt-dstaddr} ${protocol} "
             "${bytes} ${packets} ${start} ${end} ${action} ${tcp-flags} ${log-status} ${region} "
             "${az-id} ${pkt-src-aws-service} ${pkt-dst-aws-service} ${flow-direction} ${traffic-path}")


@pytest.fixture(scope="module")
def ec2(server):
    return server.client()


@pytest.fixture
def vpc(server):
    """A VPC of its own per test, so per-resource limits and duplicates never interfere."""
    return server.vpc("10.20.0.0/16")


def create(ec2, vpc, **kw):
    p = dict(ResourceIds=[vpc], ResourceType="VPC", TrafficType="ALL", LogDestinationType="s3",
             LogDestination=f"arn:aws:s3:::b12/{uuid.uuid4().hex[:8]}/")
    p.update(kw)
    return ec2.create_flow_logs(**p)


def describe_one(ec2, fl_id):
    fls = ec2.describe_flow_logs(FlowLogIds=[fl_id])["FlowLogs"]
    assert len(fls) == 1
    return fls[0]


def client_error(fn, *a, **kw):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        fn(*a, **kw)
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"], \
        e.value.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.mark.parametrize("fmt", [V2, V3, V4, V5, V7, V8, COMMON_V5, EVERY_FIELD, "${flow-direction}"],
                         ids=["v2", "v3", "v4", "v5", "v7", "v8", "common-v5", "every-field", "one"])
def test_every_vpc_field_is_accepted_and_round_trips(server, ec2, vpc, fmt):
    r = create(ec2, vpc, LogFormat=fmt)
    assert r["Unsuccessful"] == [] and len(r["FlowLogIds"]) == 1, r
    assert describe_one(ec2, r["FlowLogIds"][0])["LogFormat"] == fmt


def test_log_format_is_accepted_for_cloudwatch_logs_too(ec2, vpc):
    r = ec2.create_flow_logs(ResourceIds=[vpc], ResourceType="VPC", TrafficType="ALL",
                             LogGroupName="g12", DeliverLogsPermissionArn=ROLE, LogFormat=COMMON_V5)
    assert r["Unsuccessful"] == [], r
    fl = describe_one(ec2, r["FlowLogIds"][0])
    assert fl["LogFormat"] == COMMON_V5
    assert "DestinationOptions" not in fl


@pytest.mark.parametrize("fmt", [
    "${version} ",            # trailing space (the CloudFormation report of this error)
    " ${version}",
    "${version}  ${srcaddr}",
    "${version}\t${srcaddr}",
    "${version}${srcaddr}",
    "$version",
    "${version",
    "version srcaddr",
    "${}",
], ids=["trailing", "leading", "double", "tab", "glued", "no-braces", "unclosed", "bare", "empty-name"])
def test_malformed_log_formats(server, ec2, vpc, fmt):
    code, msg, status = client_error(create, ec2, vpc, LogFormat=fmt)
    assert (status, code) == (400, "InvalidParameter"), (code, msg)
    assert msg.startswith(f"1 validation error detected: Value '{fmt}' at 'logFormat' has an invalid format"), msg
    assert server.fl_ids_for(vpc) == []


def test_unknown_fields_are_named(server, ec2, vpc):
    code, msg, status = client_error(create, ec2, vpc, LogFormat="${version} ${vpcid} ${bogus}")
    assert (status, code) == (400, "InvalidParameter")
    assert msg.startswith("Invalid LogFormat: unknown fields ${vpcid}, ${bogus}."), msg
    assert "${flow-direction}" in msg  # the message lists what is supported
    assert server.fl_ids_for(vpc) == []


@pytest.mark.parametrize("field", ["tgw-id", "tgw-attachment-id", "resource-type", "packets-lost-no-route",
                                   "tgw-src-vpc-id", "packets-lost-ttl-expired"])
def test_transit_gateway_fields_are_refused_on_vpc_flow_logs(server, ec2, vpc, field):
    code, msg, status = client_error(create, ec2, vpc, LogFormat=f"${{version}} ${{{field}}}")
    assert (status, code) == (400, "InvalidParameter")
    assert msg == f"Invalid LogFormat: fields ${{{field}}} are only supported for Transit Gateway flow logs.", msg
    assert server.fl_ids_for(vpc) == []


def test_empty_log_format_is_refused_by_the_raw_protocol(server, vpc):
    r = server.create_fl([vpc], dest="arn:aws:s3:::b12/empty/", LogFormat="")
    expect_error(r, 400, "InvalidParameter")
    assert server.fl_ids_for(vpc) == []


# -- DestinationOptions ----------------------------------------------------------------------

@pytest.mark.parametrize("opts", [
    {"FileFormat": "parquet", "HiveCompatiblePartitions": True, "PerHourPartition": True},
    {"FileFormat": "plain-text", "HiveCompatiblePartitions": False, "PerHourPartition": True},
    {"FileFormat": "parquet", "HiveCompatiblePartitions": False, "PerHourPartition": False},
    {"HiveCompatiblePartitions": True},
], ids=["parquet-hive-hour", "text-hour", "parquet", "hive-only"])
def test_destination_options_round_trip(ec2, vpc, opts):
    r = create(ec2, vpc, DestinationOptions=opts)
    assert r["Unsuccessful"] == [], r
    got = describe_one(ec2, r["FlowLogIds"][0])["DestinationOptions"]
    want = {"FileFormat": "plain-text", "HiveCompatiblePartitions": False, "PerHourPartition": False}
    want.update(opts)
    assert got == want


def test_s3_flow_logs_without_options_report_the_defaults(ec2, vpc):
    r = create(ec2, vpc)
    assert describe_one(ec2, r["FlowLogIds"][0])["DestinationOptions"] == {
        "FileFormat": "plain-text", "HiveCompatiblePartitions": False, "PerHourPartition": False}


def test_destination_options_are_s3_only(server, ec2, vpc):
    code, msg, status = client_error(
        ec2.create_flow_logs, ResourceIds=[vpc], ResourceType="VPC", TrafficType="ALL", LogGroupName="g12",
        DeliverLogsPermissionArn=ROLE, DestinationOptions={"FileFormat": "parquet"})
    assert (status, code) == (400, "InvalidParameter")
    assert msg == "DestinationOptions can only be used with LogDestinationType s3."
    assert server.fl_ids_for(vpc) == []


@pytest.mark.parametrize("param,value", [
    ("DestinationOptions.FileFormat", "csv"),
    ("DestinationOptions.FileFormat", "Parquet"),
    ("DestinationOptions.FileFormat", ""),
    ("DestinationOptions.HiveCompatiblePartitions", "yes"),
    ("DestinationOptions.PerHourPartition", "1"),
])
def test_wrong_option_values(server, vpc, param, value):
    r = server.create_fl([vpc], dest="arn:aws:s3:::b12/bad/", **{param: value})
    expect_error(r, 400, "InvalidParameterValue")
    assert f"Value ({value}) for parameter {param} is invalid." in r.message, r
    assert server.fl_ids_for(vpc) == []


def test_unknown_destination_option_member(server, vpc):
    r = server.create_fl([vpc], dest="arn:aws:s3:::b12/bad/", **{"DestinationOptions.Compression": "gzip"})
    expect_error(r, 400, "UnknownParameter")


def test_client_token_compares_options_and_format(ec2, vpc):
    token = uuid.uuid4().hex
    base = dict(ClientToken=token, LogDestination="arn:aws:s3:::b12/tok/",
                DestinationOptions={"FileFormat": "parquet"}, LogFormat=V5)
    first = create(ec2, vpc, **base)
    assert create(ec2, vpc, **base)["FlowLogIds"] == first["FlowLogIds"]
    for change in [{"DestinationOptions": {"FileFormat": "plain-text"}},
                   {"DestinationOptions": {"FileFormat": "parquet", "PerHourPartition": True}},
                   {"LogFormat": V4}]:
        code, _, status = client_error(create, ec2, vpc, **{**base, **change})
        assert (status, code) == (400, "IdempotentParameterMismatch"), change


def test_aws_cli_round_trip(server, vpc):
    out = server.aws_json(
        "ec2", "create-flow-logs", "--resource-type", "VPC", "--resource-ids", vpc, "--traffic-type", "ALL",
        "--log-destination-type", "s3", "--log-destination", "arn:aws:s3:::b12/cli/",
        "--log-format", COMMON_V5,
        "--destination-options", "FileFormat=parquet,HiveCompatiblePartitions=true,PerHourPartition=true")
    [fl_id] = out["FlowLogIds"]
    got = server.aws_json("ec2", "describe-flow-logs", "--flow-log-ids", fl_id)["FlowLogs"][0]
    assert got["LogFormat"] == COMMON_V5
    assert got["DestinationOptions"] == {"FileFormat": "parquet", "HiveCompatiblePartitions": True,
                                         "PerHourPartition": True}
    bad = server.aws("ec2", "create-flow-logs", "--resource-type", "VPC", "--resource-ids", vpc,
                     "--traffic-type", "ALL", "--log-destination-type", "s3",
                     "--log-destination", "arn:aws:s3:::b12/cli2/", "--log-format", "${version} ${tgw-id}")
    assert bad.returncode != 0
    assert "InvalidParameter" in bad.stderr and "Transit Gateway" in bad.stderr, bad.stderr


def test_subnet_availability_zone_id_round_trips(server, ec2, vpc):
    s = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.9.0/24", AvailabilityZoneId="use1-az4")["Subnet"]
    assert s["AvailabilityZoneId"] == "use1-az4"
    got = ec2.describe_subnets(SubnetIds=[s["SubnetId"]])["Subnets"][0]
    assert got["AvailabilityZoneId"] == "use1-az4"
    code, _, status = client_error(ec2.create_subnet, VpcId=vpc, CidrBlock="10.20.10.0/24",
                                   AvailabilityZoneId="not a zone")
    assert (status, code) == (400, "InvalidParameterValue")
