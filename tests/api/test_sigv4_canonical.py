"""SigV4 canonicalisation details that real clients exercise: query strings with characters that
need encoding (space, '+', '*', '~', '/', '=', UTF-8) in GET and presigned requests, repeated
and sorted keys, and extra signed headers whose values hold runs of spaces. Every one of these
is signed by botocore and must verify (HTTP 200), and the decoded value must be what was sent."""

import pytest

from apiharness import expect_ok

NASTY = ["a b", "a+b", "a*b", "a~b", "a/b", "a=b", "a&b", "caf\u00e9", "\u4e2d\u6587", "%41", "a;b", "a,b"]


@pytest.mark.parametrize("value", NASTY)
@pytest.mark.parametrize("form", ["get-header", "get-presigned", "post-presigned", "post"])
def test_special_characters_in_signed_params(server, value, form):
    method = "GET" if form.startswith("get") else "POST"
    presign = form.endswith("presigned")
    r = server.describe({"Filter.1.Name": "log-group-name", "Filter.1.Value.1": value}, method=method,
                        presign=presign)
    expect_ok(r, "DescribeFlowLogs")


@pytest.mark.parametrize("form", ["get-header", "get-presigned", "post"])
def test_value_round_trip_through_tags(server, form):
    """The decoded value is exactly what was sent (tag value shown back by Describe)."""
    v = server.vpc()
    value = "x y+z*~/=&;,caf\u00e9%41"
    method = "GET" if form.startswith("get") else "POST"
    r = server.call("CreateTags", {"ResourceId.1": v, "Tag.1.Key": "k", "Tag.1.Value": value}, method=method,
                    presign=form.endswith("presigned"))
    expect_ok(r, "CreateTags")
    got = server.client().describe_vpcs(VpcIds=[v])["Vpcs"][0]["Tags"]
    assert got == [{"Key": "k", "Value": value}]


def test_extra_signed_headers_with_spaces(server):
    """SigV4 trims header values and collapses runs of spaces before signing."""
    r = server.describe(headers={"X-Amz-Meta-Odd": "a   b    c", "X-Custom-Thing": "v"})
    expect_ok(r, "DescribeFlowLogs")


def test_get_with_unsorted_and_many_params(server):
    """Canonical query sorting: many indexed keys (1, 10, 2 ... sort as strings in SigV4)."""
    vals = {f"Filter.1.Value.{i}": f"g{i}" for i in range(1, 25)}
    r = server.describe({"Filter.1.Name": "log-group-name", **vals}, method="GET")
    expect_ok(r, "DescribeFlowLogs")
    r = server.describe({"Filter.1.Name": "log-group-name", **vals}, method="GET", presign=True)
    expect_ok(r, "DescribeFlowLogs")


def test_boto3_client_with_odd_values(server):
    """boto3 itself (POST form) with the same characters in a description."""
    v = server.vpc("10.0.0.0/16")
    s = server.subnet(v, "10.0.9.0/24")
    ec2 = server.client()
    for d in NASTY:
        eni = ec2.create_network_interface(SubnetId=s, Description=d)["NetworkInterface"]
        assert eni["Description"] == d
