"""CreateFlowLogs request validation: spec §15 scenarios 1-15 (§3.1 rules 3-16, §9).

Every rejected request must also leave nothing behind: the VPC has no flow logs afterwards.
"""

import pytest

from apiharness import ROLE, expect_error

MISSING = ("MissingParameter", "InvalidParameterValue")


@pytest.fixture(scope="module")
def v1(server, world):
    return world["V1"]


def assert_nothing_created(server, resource_id):
    assert server.fl_ids_for(resource_id) == [], "a rejected request created a flow log"


def test_s01_missing_resource_ids(server, v1):
    """Scenario 1: no ResourceId.N -> 400 MissingParameter (or InvalidParameterValue)."""
    r = server.call("CreateFlowLogs", {"ResourceType": "VPC", "TrafficType": "ALL", "LogGroupName": "g",
                                       "DeliverLogsPermissionArn": ROLE})
    expect_error(r, 400, MISSING)


def test_s02_missing_resource_type(server, v1):
    """Scenario 2: no ResourceType -> 400 MissingParameter (or InvalidParameterValue)."""
    r = server.call("CreateFlowLogs", {"ResourceId.1": v1, "TrafficType": "ALL", "LogGroupName": "g",
                                       "DeliverLogsPermissionArn": ROLE})
    expect_error(r, 400, MISSING)
    assert_nothing_created(server, v1)


def test_s03_missing_traffic_type(server, v1):
    """Scenario 3: no TrafficType (2018 mode, the default) -> 400 MissingParameter (or InvalidParameterValue)."""
    r = server.call("CreateFlowLogs", {"ResourceType": "VPC", "ResourceId.1": v1, "LogGroupName": "g",
                                       "DeliverLogsPermissionArn": ROLE})
    expect_error(r, 400, MISSING)
    assert_nothing_created(server, v1)


@pytest.mark.parametrize(
    "override",
    [
        {"TrafficType": "Accept"},  # scenario 4
        {"TrafficType": "all"},
        {"ResourceType": "Instance"},  # scenario 5
        {"ResourceType": "vpc"},
        {"LogDestinationType": "S3"},  # scenario 6
        {"LogDestinationType": "cloudwatch-logs"},
    ],
    ids=["s04-Accept", "s04-all", "s05-Instance", "s05-vpc", "s06-S3", "s06-cloudwatch"],
)
def test_s04_s06_bad_enum_values(server, v1, override):
    """Scenarios 4, 5, 6: enum values are case-sensitive -> 400 InvalidParameterValue."""
    p = {"ResourceType": "VPC", "ResourceId.1": v1, "TrafficType": "ALL", "LogDestinationType": "s3",
         "LogDestination": "arn:aws:s3:::b1"}
    p.update(override)
    expect_error(server.call("CreateFlowLogs", p), 400, "InvalidParameterValue")
    assert_nothing_created(server, v1)


def test_s07_1001_resource_ids(server, v1):
    """Scenario 7: 1001 ResourceId.N -> 400 InvalidParameterValue (parsed, not a size error)."""
    ids = [v1] + [f"vpc-{i:017x}" for i in range(1, 1001)]
    r = server.create_fl(ids)
    expect_error(r, 400, "InvalidParameterValue")
    assert_nothing_created(server, v1)


def test_s07b_1000_resource_ids_are_parsed(server, v1):
    """Scenario 7 boundary: exactly 1000 IDs is legal; unknown ones become Unsuccessful items
    (§3.5), the request itself is not rejected. Uses a type mismatch-free set of unknown VPCs."""
    ids = [f"vpc-{i:017x}" for i in range(0xdead0000, 0xdead0000 + 1000)]
    r = server.create_fl(ids, dest="arn:aws:s3:::b1/s07b/")
    # Either per-item NotFound (recommended) or the moto-style top-level NotFound; never a size/5xx
    if r.status == 200:
        un = r.unsuccessful()
        assert len(un) == 1000 and {u["code"] for u in un} == {"InvalidVpcID.NotFound"}, r
        assert r.ids() == []
    else:
        expect_error(r, 400, "InvalidVpcID.NotFound")


def test_s08_s3_without_destination(server, v1):
    """Scenario 8: s3, no LogDestination, no LogGroupName -> 400 InvalidParameter + exact message."""
    r = server.call("CreateFlowLogs", {"ResourceType": "VPC", "ResourceId.1": v1, "TrafficType": "ALL",
                                       "LogDestinationType": "s3"})
    expect_error(r, 400, "InvalidParameter", "LogDestination can't be empty if LogGroupName is not provided.")


def test_s08b_cwl_without_anything(server, v1):
    """§3.1 rule 9 applies to the default type too: no group and no destination."""
    r = server.call("CreateFlowLogs", {"ResourceType": "VPC", "ResourceId.1": v1, "TrafficType": "ALL",
                                       "DeliverLogsPermissionArn": ROLE})
    expect_error(r, 400, "InvalidParameter", "LogDestination can't be empty if LogGroupName is not provided.")


def test_s09_group_and_destination_s3(server, v1):
    """Scenario 9: s3 + bucket ARN + LogGroupName -> rule 13's message (checked before 9-12)."""
    r = server.call("CreateFlowLogs", {"ResourceType": "VPC", "ResourceId.1": v1, "TrafficType": "ALL",
                                       "LogDestinationType": "s3", "LogDestination": "arn:aws:s3:::b1",
                                       "LogGroupName": "g"})
    expect_error(r, 400, "InvalidParameter", "Please only provide LogGroupName or only provide LogDestination.")
    assert_nothing_created(server, v1)


def test_s09_group_and_destination_cwl(server, v1):
    """Scenario 9 (second half): cloud-watch-logs + log-group ARN + LogGroupName -> same error."""
    r = server.call("CreateFlowLogs", {"ResourceType": "VPC", "ResourceId.1": v1, "TrafficType": "ALL",
                                       "LogDestinationType": "cloud-watch-logs",
                                       "LogDestination": "arn:aws:logs:us-east-1:123456789012:log-group:g",
                                       "LogGroupName": "g", "DeliverLogsPermissionArn": ROLE})
    expect_error(r, 400, "InvalidParameter", "Please only provide LogGroupName or only provide LogDestination.")
    assert_nothing_created(server, v1)


def test_s09b_s3_with_group_name(server, v1):
    """Scenario 9b: s3 + LogGroupName (no LogDestination) -> InvalidParameter, exact message."""
    r = server.call("CreateFlowLogs", {"ResourceType": "VPC", "ResourceId.1": v1, "TrafficType": "ALL",
                                       "LogDestinationType": "s3", "LogGroupName": "g"})
    expect_error(r, 400, "InvalidParameter", "LogDestination type must be cloud-watch-logs if LogGroupName is provided.")


@pytest.mark.parametrize("dest", ["my-plain-bucket-name", "s3://b1/x/", "arn:aws:s3:::", "arn:aws:logs:us-east-1:123456789012:log-group:g"])
def test_s09c_s3_destination_not_an_s3_arn(server, v1, dest):
    """Scenario 9c: s3 destination that is not an S3 bucket ARN -> 400 InvalidParameter, never 5xx."""
    r = server.call("CreateFlowLogs", {"ResourceType": "VPC", "ResourceId.1": v1, "TrafficType": "ALL",
                                       "LogDestinationType": "s3", "LogDestination": dest})
    expect_error(r, 400, "InvalidParameter")
    assert "LogDestination" in (r.message or ""), r
    assert_nothing_created(server, v1)


def test_s10_cwl_without_role(server, v1):
    """Scenario 10: CWL LogGroupName without DeliverLogsPermissionArn -> InvalidParameter, exact message."""
    r = server.call("CreateFlowLogs", {"ResourceType": "VPC", "ResourceId.1": v1, "TrafficType": "ALL",
                                       "LogGroupName": "g"})
    expect_error(r, 400, "InvalidParameter",
                 "DeliverLogsPermissionArn can't be empty if LogDestinationType is cloud-watch-logs.")


def test_s12_s3_with_role(server, v1):
    """Scenario 12: s3 + DeliverLogsPermissionArn -> 400 InvalidParameter, exact message."""
    r = server.call("CreateFlowLogs", {"ResourceType": "VPC", "ResourceId.1": v1, "TrafficType": "ALL",
                                       "LogDestinationType": "s3", "LogDestination": "arn:aws:s3:::b1",
                                       "DeliverLogsPermissionArn": ROLE})
    expect_error(r, 400, "InvalidParameter", "DeliverLogsPermissionArn is not applicable for s3 delivery")
    assert_nothing_created(server, v1)


@pytest.mark.parametrize("dest", ["arn:aws:s3:::b1/AWSLogs/", "arn:aws:s3:::b1/AWSLogs"])
def test_s13_reserved_awslogs_folder(server, v1, dest):
    """Scenario 13: S3 subfolder named AWSLogs is reserved -> 400 InvalidParameter."""
    r = server.call("CreateFlowLogs", {"ResourceType": "VPC", "ResourceId.1": v1, "TrafficType": "ALL",
                                       "LogDestinationType": "s3", "LogDestination": dest})
    expect_error(r, 400, "InvalidParameter")
    assert_nothing_created(server, v1)


def test_s14_cwl_destination_other_region(server, v1):
    """Scenario 14: CWL log-group ARN in eu-west-1 from us-east-1 -> InvalidParameter, exact message."""
    r = server.call("CreateFlowLogs", {"ResourceType": "VPC", "ResourceId.1": v1, "TrafficType": "ALL",
                                       "LogDestinationType": "cloud-watch-logs",
                                       "LogDestination": "arn:aws:logs:eu-west-1:123456789012:log-group:g",
                                       "DeliverLogsPermissionArn": ROLE})
    expect_error(r, 400, "InvalidParameter", "LogDestination must be in the same region as the API caller.")
    assert_nothing_created(server, v1)


def test_s14b_cwl_destination_with_star_suffix(server, v1):
    """§3.1 rule 15: a log-group ARN ending in ':*' is not accepted as a destination (4xx, not 5xx)."""
    r = server.call("CreateFlowLogs", {"ResourceType": "VPC", "ResourceId.1": v1, "TrafficType": "ALL",
                                       "LogDestinationType": "cloud-watch-logs",
                                       "LogDestination": "arn:aws:logs:us-east-1:123456789012:log-group:g:*",
                                       "DeliverLogsPermissionArn": ROLE})
    if r.status == 200:
        # a per-item failure is the only other acceptable shape: nothing may be created
        assert r.ids() == [] and r.unsuccessful(), r
    else:
        assert 400 <= r.status < 500, r
    assert_nothing_created(server, v1)


@pytest.mark.parametrize("token", ["x" * 65, "tok\u00e9n"], ids=["65-chars", "non-ascii"])
def test_s15_bad_client_token(server, v1, token):
    """Scenario 15 (§9): ClientToken of 65 chars or non-ASCII -> 400 InvalidParameterValue
    (or the EC2 alternative InvalidClientToken)."""
    r = server.create_fl([v1], ClientToken=token)
    expect_error(r, 400, ("InvalidParameterValue", "InvalidClientToken"))
    assert_nothing_created(server, v1)


def test_s15b_64_char_token_is_fine(server, world):
    """Scenario 15 boundary: 64 ASCII chars is a valid token."""
    v = server.vpc()
    r = server.create_fl([v], ClientToken="y" * 64)
    assert r.status == 200 and len(r.ids()) == 1, r
    assert r.xml.findtext("clientToken") == "y" * 64


def test_s08_rule8_malformed_resource_id(server, v1):
    """§3.1 rule 8: an ID that is not vpc-<8|17 hex> -> 400 InvalidParameter
    `Invalid Resource id <id> for resource-type VPC` (or a per-item NotFound); nothing created."""
    r = server.create_fl(["vpc-zzzz"])
    if r.status == 200:
        assert r.ids() == [] and r.unsuccessful()[0]["code"] == "InvalidVpcID.NotFound", r
    else:
        expect_error(r, 400, "InvalidParameter", "Invalid Resource id vpc-zzzz for resource-type VPC")
