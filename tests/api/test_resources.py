"""The resources flow logs attach to (spec §11): VPCs, subnets, network interfaces, their IDs,
CIDR rules, filters, *.NotFound / DependencyViolation errors; CreateTags/DeleteTags shown on
Describe (also on flow logs); §14 Q9 (deleting a resource removes its flow logs)."""

import ipaddress
import re

import botocore.exceptions
import pytest

from apiharness import ROLE, expect_error, expect_ok


def test_create_vpc_fields(server):
    r = expect_ok(server.call("CreateVpc", {"CidrBlock": "10.40.0.0/16"}), "CreateVpc")
    vpc = r.xml.find("vpc")
    vid = vpc.findtext("vpcId")
    assert re.fullmatch(r"vpc-[0-9a-f]{17}", vid), r
    assert vpc.findtext("cidrBlock") == "10.40.0.0/16"
    assert vpc.findtext("state") in ("pending", "available")
    assert vpc.findtext("instanceTenancy") == "default"
    assert vpc.findtext("isDefault") == "false"
    d = expect_ok(server.call("DescribeVpcs", {"VpcId.1": vid}), "DescribeVpcs")
    items = d.xml.findall("vpcSet/item")
    assert len(items) == 1 and items[0].findtext("vpcId") == vid
    assert items[0].findtext("state") == "available"
    assert items[0].findtext("cidrBlock") == "10.40.0.0/16"


@pytest.mark.parametrize("cidr", ["banana", "10.0.0.0/33", "10.0.0.256/16", "10.0.0.0", "10.0.0.0/-1", "::/64",
                                  ""])
def test_create_vpc_malformed_cidr(server, cidr):
    """Malformed CIDR -> 400 InvalidParameterValue (moto/EC2 wording: `Value (...) for parameter cidrBlock is invalid...`)."""
    r = server.call("CreateVpc", {"CidrBlock": cidr})
    if cidr == "":
        expect_error(r, 400, ("InvalidParameterValue", "MissingParameter"))
    else:
        expect_error(r, 400, "InvalidParameterValue")


@pytest.mark.parametrize("cidr", ["10.0.0.0/8", "10.0.0.0/15", "10.0.0.0/29", "10.0.0.0/32"])
def test_create_vpc_range(server, cidr):
    """VPC CIDR outside /16-/28 -> 400 InvalidVpcRange (§11; moto's InvalidVpc.Range is a deviation)."""
    expect_error(server.call("CreateVpc", {"CidrBlock": cidr}), 400, "InvalidVpcRange")


def test_create_vpc_missing_cidr(server):
    expect_error(server.call("CreateVpc"), 400, ("MissingParameter", "InvalidParameterValue"))


def test_vpc_cidrs_may_repeat(server):
    """§11: several VPCs may have the same CIDR."""
    a, b = server.vpc("10.50.0.0/16"), server.vpc("10.50.0.0/16")
    assert a != b


def test_vpc_non_network_address(server):
    """A CIDR with host bits set (10.0.0.1/16): AWS rejects it as not a valid CIDR block; normalising
    would also be tolerable. Never 5xx; never stored with host bits."""
    r = server.call("CreateVpc", {"CidrBlock": "10.60.0.1/16"})
    if r.status == 200:
        assert r.xml.findtext("vpc/cidrBlock") == "10.60.0.0/16", r
    else:
        expect_error(r, 400, "InvalidParameterValue")


def test_subnet_rules(server):
    v = server.vpc("10.70.0.0/16")
    r = expect_ok(server.call("CreateSubnet", {"VpcId": v, "CidrBlock": "10.70.1.0/24"}), "CreateSubnet")
    sn = r.xml.find("subnet")
    sid = sn.findtext("subnetId")
    assert re.fullmatch(r"subnet-[0-9a-f]{17}", sid)
    assert sn.findtext("vpcId") == v and sn.findtext("cidrBlock") == "10.70.1.0/24"
    assert sn.findtext("availableIpAddressCount") == "251", "AWS reserves 5 addresses per subnet"
    assert sn.findtext("availabilityZone"), r
    # outside the VPC
    expect_error(server.call("CreateSubnet", {"VpcId": v, "CidrBlock": "10.71.0.0/24"}), 400, "InvalidSubnet.Range")
    # larger than the VPC / smaller than /28
    expect_error(server.call("CreateSubnet", {"VpcId": v, "CidrBlock": "10.0.0.0/8"}), 400, "InvalidSubnet.Range")
    expect_error(server.call("CreateSubnet", {"VpcId": v, "CidrBlock": "10.70.9.0/29"}), 400, "InvalidSubnet.Range")
    # overlap within the VPC
    for c in ("10.70.1.128/25", "10.70.0.0/23", "10.70.1.0/24"):
        expect_error(server.call("CreateSubnet", {"VpcId": v, "CidrBlock": c}), 400, "InvalidSubnet.Conflict")
    # adjacent is fine, and the same CIDR in another VPC is fine
    server.subnet(v, "10.70.2.0/24")
    w = server.vpc("10.70.0.0/16")
    server.subnet(w, "10.70.1.0/24")
    # malformed
    expect_error(server.call("CreateSubnet", {"VpcId": v, "CidrBlock": "nope"}), 400, "InvalidParameterValue")


def test_subnet_unknown_vpc(server):
    expect_error(server.call("CreateSubnet", {"VpcId": "vpc-0000000000000dead", "CidrBlock": "10.0.0.0/24"}), 400,
                 "InvalidVpcID.NotFound")
    expect_error(server.call("CreateSubnet", {"VpcId": "vpc-xyz", "CidrBlock": "10.0.0.0/24"}), 400,
                 ("InvalidVpcID.Malformed", "InvalidVpcID.NotFound"))
    expect_error(server.call("CreateSubnet", {"CidrBlock": "10.0.0.0/24"}), 400,
                 ("MissingParameter", "InvalidParameterValue"))


def test_eni_private_ip(server):
    """An ENI gets a private IP from its subnet (not a reserved one); two ENIs get different IPs."""
    v = server.vpc("10.80.0.0/16")
    s = server.subnet(v, "10.80.3.0/24")
    net = ipaddress.ip_network("10.80.3.0/24")
    reserved = {net.network_address + i for i in range(4)} | {net.broadcast_address}
    ips = []
    for _ in range(3):
        r = expect_ok(server.call("CreateNetworkInterface", {"SubnetId": s, "Description": "d"}),
                      "CreateNetworkInterface")
        ni = r.xml.find("networkInterface")
        assert re.fullmatch(r"eni-[0-9a-f]{17}", ni.findtext("networkInterfaceId"))
        assert ni.findtext("subnetId") == s and ni.findtext("vpcId") == v
        assert ni.findtext("status") == "available"
        assert ni.findtext("description") == "d"
        ip = ipaddress.ip_address(ni.findtext("privateIpAddress"))
        assert ip in net and ip not in reserved, ip
        assert ni.findtext("privateIpAddressesSet/item/privateIpAddress") in (None, str(ip))
        ips.append(ip)
    assert len(set(ips)) == 3
    d = expect_ok(server.call("DescribeSubnets", {"SubnetId.1": s}), "DescribeSubnets")
    assert d.xml.findtext("subnetSet/item/availableIpAddressCount") == "248"


def test_eni_explicit_ip(server):
    v = server.vpc("10.81.0.0/16")
    s = server.subnet(v, "10.81.0.0/24")
    e = server.eni(s, PrivateIpAddress="10.81.0.77")
    d = expect_ok(server.call("DescribeNetworkInterfaces", {"NetworkInterfaceId.1": e}), "DescribeNetworkInterfaces")
    assert d.xml.findtext("networkInterfaceSet/item/privateIpAddress") == "10.81.0.77"
    # in use, outside the subnet, malformed: 400 each, never 5xx
    for ip in ("10.81.0.77", "10.99.0.5", "not-an-ip"):
        r = server.call("CreateNetworkInterface", {"SubnetId": s, "PrivateIpAddress": ip})
        assert r.status == 400 and r.code, (ip, r)


def test_eni_unknown_subnet(server):
    expect_error(server.call("CreateNetworkInterface", {"SubnetId": "subnet-0000000000000dead"}), 400,
                 "InvalidSubnetID.NotFound")


def test_describe_filters_and_ids(server):
    v1 = server.vpc("10.90.0.0/16")
    v2 = server.vpc("10.91.0.0/16")
    s1 = server.subnet(v1, "10.90.1.0/24")
    s2 = server.subnet(v2, "10.91.1.0/24")
    e1, e2 = server.eni(s1), server.eni(s2)
    ec2 = server.client()
    subs = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [v1]}])["Subnets"]
    assert [x["SubnetId"] for x in subs] == [s1]
    enis = ec2.describe_network_interfaces(Filters=[{"Name": "subnet-id", "Values": [s2]}])["NetworkInterfaces"]
    assert [x["NetworkInterfaceId"] for x in enis] == [e2]
    enis = ec2.describe_network_interfaces(Filters=[{"Name": "vpc-id", "Values": [v1, v2]}])["NetworkInterfaces"]
    assert sorted(x["NetworkInterfaceId"] for x in enis) == sorted([e1, e2])
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [v2]}])["Vpcs"]
    assert [x["VpcId"] for x in vpcs] == [v2]
    vpcs = ec2.describe_vpcs(VpcIds=[v1, v2])["Vpcs"]
    assert sorted(x["VpcId"] for x in vpcs) == sorted([v1, v2])
    assert ec2.describe_subnets(SubnetIds=[s2])["Subnets"][0]["VpcId"] == v2
    got = ec2.describe_network_interfaces(NetworkInterfaceIds=[e1])["NetworkInterfaces"][0]
    assert got["SubnetId"] == s1 and got["VpcId"] == v1
    assert ipaddress.ip_address(got["PrivateIpAddress"]) in ipaddress.ip_network("10.90.1.0/24")


@pytest.mark.parametrize("action,param,code", [
    ("DescribeVpcs", "VpcId.1", "InvalidVpcID.NotFound"),
    ("DescribeSubnets", "SubnetId.1", "InvalidSubnetID.NotFound"),
    ("DescribeNetworkInterfaces", "NetworkInterfaceId.1", "InvalidNetworkInterfaceID.NotFound"),
    ("DeleteVpc", "VpcId", "InvalidVpcID.NotFound"),
    ("DeleteSubnet", "SubnetId", "InvalidSubnetID.NotFound"),
    ("DeleteNetworkInterface", "NetworkInterfaceId", "InvalidNetworkInterfaceID.NotFound"),
])
def test_not_found(server, action, param, code):
    prefix = {"Vpc": "vpc", "Sub": "subnet", "Net": "eni"}[param[:3]]
    expect_error(server.call(action, {param: f"{prefix}-0000000000000dead"}), 400, code)


def test_dependency_violation_and_delete_order(server):
    v = server.vpc("10.100.0.0/16")
    s = server.subnet(v, "10.100.0.0/24")
    e = server.eni(s)
    expect_error(server.call("DeleteVpc", {"VpcId": v}), 400, "DependencyViolation")
    expect_error(server.call("DeleteSubnet", {"SubnetId": s}), 400, "DependencyViolation")
    expect_ok(server.call("DeleteNetworkInterface", {"NetworkInterfaceId": e}), "DeleteNetworkInterface")
    expect_ok(server.call("DeleteSubnet", {"SubnetId": s}), "DeleteSubnet")
    expect_ok(server.call("DeleteVpc", {"VpcId": v}), "DeleteVpc")
    expect_error(server.call("DescribeVpcs", {"VpcId.1": v}), 400, "InvalidVpcID.NotFound")
    expect_error(server.call("DescribeSubnets", {"SubnetId.1": s}), 400, "InvalidSubnetID.NotFound")
    # the IP freed by the ENI and the CIDR freed by the subnet are reusable
    w = server.vpc("10.100.0.0/16")
    server.subnet(w, "10.100.0.0/24")


def test_q9_deleting_resource_removes_flow_logs(server):
    """§14 Q9 [REC]: deleting a VPC/subnet/ENI deletes its flow logs (no DependencyViolation)."""
    v = server.vpc("10.110.0.0/16")
    s = server.subnet(v, "10.110.0.0/24")
    e = server.eni(s)
    fe = server.fl_ok([e], resource_type="NetworkInterface")
    fs = server.fl_ok([s], resource_type="Subnet")
    fv = server.fl_ok([v])
    expect_ok(server.call("DeleteNetworkInterface", {"NetworkInterfaceId": e}), "DeleteNetworkInterface")
    assert server.all_flow_logs({"FlowLogId.1": fe[0]}) == []
    expect_ok(server.call("DeleteSubnet", {"SubnetId": s}), "DeleteSubnet")
    assert server.all_flow_logs({"FlowLogId.1": fs[0]}) == []
    expect_ok(server.call("DeleteVpc", {"VpcId": v}), "DeleteVpc")
    assert server.all_flow_logs({"FlowLogId.1": fv[0]}) == []


def test_resource_dryrun(server):
    """DryRun on the resource actions: 412, nothing created."""
    before = len(server.client().describe_vpcs()["Vpcs"])
    expect_error(server.call("CreateVpc", {"CidrBlock": "10.0.0.0/16", "DryRun": "true"}), 412, "DryRunOperation")
    assert len(server.client().describe_vpcs()["Vpcs"]) == before
    expect_error(server.call("DescribeSubnets", {"DryRun": "true"}), 412, "DryRunOperation")


def tags_of(item):
    return {t.findtext("key"): t.findtext("value") for t in item.findall("tagSet/item")}


def test_tags_on_resources_and_flow_logs(server):
    """CreateTags/DeleteTags on a VPC, subnet, ENI and flow log; tags shown on Describe."""
    v = server.vpc("10.120.0.0/16")
    s = server.subnet(v, "10.120.0.0/24")
    e = server.eni(s)
    f = server.fl_ok([v])[0]
    expect_ok(server.call("CreateTags", {"ResourceId.1": v, "ResourceId.2": s, "ResourceId.3": e, "ResourceId.4": f,
                                         "Tag.1.Key": "Name", "Tag.1.Value": "prod",
                                         "Tag.2.Key": "team", "Tag.2.Value": ""}), "CreateTags")
    want = {"Name": "prod", "team": ""}
    d = expect_ok(server.call("DescribeVpcs", {"VpcId.1": v}), "DescribeVpcs")
    assert tags_of(d.xml.find("vpcSet/item")) == want
    d = expect_ok(server.call("DescribeSubnets", {"SubnetId.1": s}), "DescribeSubnets")
    assert tags_of(d.xml.find("subnetSet/item")) == want
    d = expect_ok(server.call("DescribeNetworkInterfaces", {"NetworkInterfaceId.1": e}), "DescribeNetworkInterfaces")
    assert tags_of(d.xml.find("networkInterfaceSet/item")) == want
    d = expect_ok(server.describe({"FlowLogId.1": f}), "DescribeFlowLogs")
    assert tags_of(d.xml.find("flowLogSet/item")) == want
    # boto3 view of the same
    got = server.client().describe_flow_logs(FlowLogIds=[f])["FlowLogs"][0]["Tags"]
    assert sorted((t["Key"], t["Value"]) for t in got) == [("Name", "prod"), ("team", "")]
    # overwrite a value
    expect_ok(server.call("CreateTags", {"ResourceId.1": v, "Tag.1.Key": "Name", "Tag.1.Value": "dev"}), "CreateTags")
    d = expect_ok(server.call("DescribeVpcs", {"VpcId.1": v}), "DescribeVpcs")
    assert tags_of(d.xml.find("vpcSet/item")) == {"Name": "dev", "team": ""}
    # DeleteTags with a non-matching value leaves the tag; with the key only removes it
    expect_ok(server.call("DeleteTags", {"ResourceId.1": v, "Tag.1.Key": "Name", "Tag.1.Value": "prod"}), "DeleteTags")
    d = expect_ok(server.call("DescribeVpcs", {"VpcId.1": v}), "DescribeVpcs")
    assert tags_of(d.xml.find("vpcSet/item")) == {"Name": "dev", "team": ""}
    expect_ok(server.call("DeleteTags", {"ResourceId.1": v, "ResourceId.2": f, "Tag.1.Key": "Name"}), "DeleteTags")
    d = expect_ok(server.call("DescribeVpcs", {"VpcId.1": v}), "DescribeVpcs")
    assert tags_of(d.xml.find("vpcSet/item")) == {"team": ""}
    d = expect_ok(server.describe({"FlowLogId.1": f}), "DescribeFlowLogs")
    assert tags_of(d.xml.find("flowLogSet/item")) == {"team": ""}
    # DeleteTags with no Tag.N removes all tags
    expect_ok(server.call("DeleteTags", {"ResourceId.1": v}), "DeleteTags")
    d = expect_ok(server.call("DescribeVpcs", {"VpcId.1": v}), "DescribeVpcs")
    assert tags_of(d.xml.find("vpcSet/item")) == {}


def test_tag_filter_on_vpcs(server):
    v = server.vpc("10.121.0.0/16")
    w = server.vpc("10.121.0.0/16")
    server.client().create_tags(Resources=[v], Tags=[{"Key": "env", "Value": "blue"}])
    server.client().create_tags(Resources=[w], Tags=[{"Key": "env", "Value": "green"}])
    got = server.client().describe_vpcs(Filters=[{"Name": "tag:env", "Values": ["blue"]}])["Vpcs"]
    assert [x["VpcId"] for x in got] == [v]
    got = server.client().describe_vpcs(Filters=[{"Name": "tag-key", "Values": ["env"]}])["Vpcs"]
    assert sorted(x["VpcId"] for x in got) == sorted([v, w])


def test_tags_unknown_resource(server):
    r = server.call("CreateTags", {"ResourceId.1": "vpc-0000000000000dead", "Tag.1.Key": "k", "Tag.1.Value": "v"})
    assert r.status == 400 and r.code and (r.code.endswith(".NotFound") or r.code.startswith("InvalidID")), r
    r = server.call("CreateTags", {"ResourceId.1": "fl-0000000000000dead", "Tag.1.Key": "k", "Tag.1.Value": "v"})
    assert r.status == 400 and r.code, r
    r = server.call("CreateTags", {"ResourceId.1": "vpc-0000000000000dead"})
    assert r.status == 400 and r.code, r


def test_tags_readonly_denied(server):
    v = server.vpc()
    r = server.call("CreateTags", {"ResourceId.1": v, "Tag.1.Key": "k", "Tag.1.Value": "v"}, cred="readonly")
    expect_error(r, 403, "UnauthorizedOperation")


def test_boto3_resources_roundtrip(server):
    ec2 = server.client()
    vpc = ec2.create_vpc(CidrBlock="10.130.0.0/16")["Vpc"]
    sub = ec2.create_subnet(VpcId=vpc["VpcId"], CidrBlock="10.130.5.0/24")["Subnet"]
    eni = ec2.create_network_interface(SubnetId=sub["SubnetId"])["NetworkInterface"]
    assert eni["VpcId"] == vpc["VpcId"] and eni["SubnetId"] == sub["SubnetId"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ec2.delete_vpc(VpcId=vpc["VpcId"])
    assert e.value.response["Error"]["Code"] == "DependencyViolation"
    ec2.delete_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"])
    ec2.delete_subnet(SubnetId=sub["SubnetId"])
    ec2.delete_vpc(VpcId=vpc["VpcId"])


def test_eni_reserved_address_refused(server):
    """AWS reserves the first four addresses and the last one of every subnet: an explicit
    PrivateIpAddress there is refused (4xx)."""
    v = server.vpc("10.82.0.0/16")
    s = server.subnet(v, "10.82.0.0/24")
    for ip in ("10.82.0.0", "10.82.0.1", "10.82.0.2", "10.82.0.3", "10.82.0.255"):
        r = server.call("CreateNetworkInterface", {"SubnetId": s, "PrivateIpAddress": ip})
        assert r.status == 400 and r.code, (ip, r)
    server.eni(s, PrivateIpAddress="10.82.0.4")


def test_tag_limits(server):
    """EC2 tag rules: at most 50 tags per resource (TagLimitExceeded), keys 1-128 and values
    0-256 characters, keys starting with `aws:` reserved (InvalidParameterValue); a Tag without a
    Key is refused."""
    v = server.vpc()
    many = {f"Tag.{i}.Key": f"k{i}" for i in range(1, 52)}
    many.update({f"Tag.{i}.Value": "v" for i in range(1, 52)})
    r = server.call("CreateTags", {"ResourceId.1": v, **many})
    expect_error(r, 400, "TagLimitExceeded")
    r = server.call("CreateTags", {"ResourceId.1": v, "Tag.1.Key": "k" * 129, "Tag.1.Value": "v"})
    expect_error(r, 400, "InvalidParameterValue")
    r = server.call("CreateTags", {"ResourceId.1": v, "Tag.1.Key": "k", "Tag.1.Value": "v" * 257})
    expect_error(r, 400, "InvalidParameterValue")
    r = server.call("CreateTags", {"ResourceId.1": v, "Tag.1.Key": "aws:reserved", "Tag.1.Value": "v"})
    expect_error(r, 400, "InvalidParameterValue")
    r = server.call("CreateTags", {"ResourceId.1": v, "Tag.1.Value": "v"})
    assert r.status == 400 and r.code in ("MissingParameter", "InvalidParameterValue", "InvalidParameter"), r
    d = expect_ok(server.call("DescribeVpcs", {"VpcId.1": v}), "DescribeVpcs")
    assert tags_of(d.xml.find("vpcSet/item")) == {}, "a refused CreateTags must not apply any tag"
    # exactly 50 is fine, in two calls as well
    half = {f"Tag.{i}.Key": f"k{i}" for i in range(1, 26)}
    half.update({f"Tag.{i}.Value": "v" for i in range(1, 26)})
    expect_ok(server.call("CreateTags", {"ResourceId.1": v, **half}), "CreateTags")
    other = {f"Tag.{i}.Key": f"m{i}" for i in range(1, 26)}
    other.update({f"Tag.{i}.Value": "v" for i in range(1, 26)})
    expect_ok(server.call("CreateTags", {"ResourceId.1": v, **other}), "CreateTags")
    r = server.call("CreateTags", {"ResourceId.1": v, "Tag.1.Key": "one-too-many", "Tag.1.Value": "v"})
    expect_error(r, 400, "TagLimitExceeded")
