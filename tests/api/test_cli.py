"""The real aws CLI against the server: the quickstart of issue 3 and a representative set of
§15 scenarios (16/19 create to S3 with a subfolder, 40 describe with --filter, 52/53 delete,
31 DryRun, 34 unauthorized, 45 error text)."""

import json

from apiharness import FL_ID


def test_cli_quickstart(server):
    """Issue 3's quickstart: create-vpc, create-flow-logs to s3 with a subfolder, describe with --filter."""
    vpc = server.aws_json("ec2", "create-vpc", "--cidr-block", "10.0.0.0/16")["Vpc"]
    vid = vpc["VpcId"]
    assert vpc["CidrBlock"] == "10.0.0.0/16"
    out = server.aws_json("ec2", "create-flow-logs", "--resource-type", "VPC", "--resource-ids", vid,
                          "--traffic-type", "ALL", "--log-destination-type", "s3",
                          "--log-destination", "arn:aws:s3:::my-bucket/my-logs/")
    assert len(out["FlowLogIds"]) == 1 and FL_ID.match(out["FlowLogIds"][0]), out
    assert out["Unsuccessful"] == [], out
    assert out.get("ClientToken"), out
    fid = out["FlowLogIds"][0]
    desc = server.aws_json("ec2", "describe-flow-logs", "--filter", f"Name=resource-id,Values={vid}")
    assert [f["FlowLogId"] for f in desc["FlowLogs"]] == [fid]
    fl = desc["FlowLogs"][0]
    assert fl["LogDestination"] == "arn:aws:s3:::my-bucket/my-logs/"
    assert fl["LogDestinationType"] == "s3" and fl["TrafficType"] == "ALL" and fl["ResourceId"] == vid
    assert fl["DeliverLogsStatus"] == "SUCCESS" and fl["FlowLogStatus"] == "ACTIVE"
    assert "LogGroupName" not in fl and "DeliverLogsPermissionArn" not in fl

    # describe by id, and with a filter that matches nothing
    assert server.aws_json("ec2", "describe-flow-logs", "--flow-log-ids", fid)["FlowLogs"][0]["FlowLogId"] == fid
    none = server.aws_json("ec2", "describe-flow-logs", "--filter", "Name=traffic-type,Values=REJECT",
                           f"Name=resource-id,Values={vid}")
    assert none["FlowLogs"] == []

    # delete, then delete again -> Unsuccessful NotFound (scenarios 52, 53)
    d = server.aws_json("ec2", "delete-flow-logs", "--flow-log-ids", fid)
    assert d.get("Unsuccessful", []) == []
    d = server.aws_json("ec2", "delete-flow-logs", "--flow-log-ids", fid)
    assert [u["Error"]["Code"] for u in d["Unsuccessful"]] == ["InvalidFlowLogId.NotFound"]
    assert server.aws_json("ec2", "describe-flow-logs", "--flow-log-ids", fid)["FlowLogs"] == []


def test_cli_dry_run(server):
    """Scenario 31 through the CLI: --dry-run -> DryRunOperation, non-zero exit, nothing created."""
    vid = server.aws_json("ec2", "create-vpc", "--cidr-block", "10.1.0.0/16")["Vpc"]["VpcId"]
    cp = server.aws("ec2", "create-flow-logs", "--dry-run", "--resource-type", "VPC", "--resource-ids", vid,
                    "--traffic-type", "ALL", "--log-destination-type", "s3", "--log-destination", "arn:aws:s3:::b1")
    assert cp.returncode != 0
    assert "DryRunOperation" in cp.stderr and "Request would have succeeded, but DryRun flag is set." in cp.stderr
    assert server.fl_ids_for(vid) == []


def test_cli_cwl_and_paging(server):
    """CWL flow logs via the CLI, and the CLI's automatic paging with --page-size."""
    vids = [server.aws_json("ec2", "create-vpc", "--cidr-block", "10.2.0.0/16")["Vpc"]["VpcId"] for _ in range(3)]
    out = server.aws_json("ec2", "create-flow-logs", "--resource-type", "VPC", "--resource-ids", *vids,
                          "--traffic-type", "REJECT", "--log-group-name", "cli-group",
                          "--deliver-logs-permission-arn", "arn:aws:iam::123456789012:role/fl")
    assert len(out["FlowLogIds"]) == 3
    for i in range(3):
        server.aws_json("ec2", "create-flow-logs", "--resource-type", "VPC", "--resource-ids", vids[i],
                        "--traffic-type", "ACCEPT", "--log-destination-type", "s3",
                        "--log-destination", "arn:aws:s3:::b1/cli/")
    got = server.aws_json("ec2", "describe-flow-logs", "--page-size", "5",
                          "--filter", "Name=resource-id,Values=" + ",".join(vids))
    assert len(got["FlowLogs"]) == 6 and len({f["FlowLogId"] for f in got["FlowLogs"]}) == 6
    grp = server.aws_json("ec2", "describe-flow-logs", "--filter", "Name=log-group-name,Values=cli-group")
    assert sorted(f["FlowLogId"] for f in grp["FlowLogs"]) == sorted(out["FlowLogIds"])
    for f in grp["FlowLogs"]:
        assert f["LogGroupName"] == "cli-group" and "LogDestination" not in f


def test_cli_errors(server):
    """Scenario 34 (read-only key) and 45 (bad filter) as the CLI shows them."""
    cp = server.aws("ec2", "create-flow-logs", "--resource-type", "VPC", "--resource-ids", "vpc-0000000000000dead",
                    "--traffic-type", "ALL", "--log-destination-type", "s3", "--log-destination", "arn:aws:s3:::b1",
                    cred="readonly")
    assert cp.returncode != 0 and "UnauthorizedOperation" in cp.stderr, cp.stderr
    cp = server.aws("ec2", "describe-flow-logs", "--filter", "Name=bogus,Values=x")
    assert cp.returncode != 0 and "InvalidParameterValue" in cp.stderr and "bogus" in cp.stderr, cp.stderr
    cp = server.aws("ec2", "describe-flow-logs", cred="noflow")
    assert cp.returncode != 0 and "UnauthorizedOperation" in cp.stderr, cp.stderr


def test_cli_subnet_eni_tags(server):
    vid = server.aws_json("ec2", "create-vpc", "--cidr-block", "10.3.0.0/16")["Vpc"]["VpcId"]
    sid = server.aws_json("ec2", "create-subnet", "--vpc-id", vid, "--cidr-block", "10.3.1.0/24")["Subnet"]["SubnetId"]
    eni = server.aws_json("ec2", "create-network-interface", "--subnet-id", sid)["NetworkInterface"]
    assert eni["PrivateIpAddress"].startswith("10.3.1.")
    server.aws("ec2", "create-tags", "--resources", vid, "--tags", "Key=Name,Value=cli", check=True)
    vpcs = server.aws_json("ec2", "describe-vpcs", "--vpc-ids", vid)["Vpcs"]
    assert vpcs[0]["Tags"] == [{"Key": "Name", "Value": "cli"}]
    cp = server.aws("ec2", "delete-vpc", "--vpc-id", vid)
    assert cp.returncode != 0 and "DependencyViolation" in cp.stderr
    json.dumps(eni)
