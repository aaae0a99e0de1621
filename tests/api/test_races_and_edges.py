"""More races and edge cases around the resources and the wire: concurrent ENIs get distinct
IPs, overlapping subnets created at once, a VPC deleted while a subnet is created in it, XML
escaping of user text, duplicate IDs in one DeleteFlowLogs, empty IDs (spec §1, §3.1, §3.2, §11)."""

import ipaddress
import threading
from concurrent.futures import ThreadPoolExecutor

from apiharness import CREDENTIALS, expect_error, expect_ok


def test_concurrent_enis_get_distinct_ips(fresh_server):
    srv = fresh_server
    v = srv.vpc("10.0.0.0/16")
    s = srv.subnet(v, "10.0.5.0/28")  # 16 addresses, 11 usable
    barrier = threading.Barrier(10)

    def go(_):
        barrier.wait()
        return srv.call("CreateNetworkInterface", {"SubnetId": s})

    with ThreadPoolExecutor(10) as pool:
        replies = list(pool.map(go, range(10)))
    for r in replies:
        assert r.status == 200, r
    ips = [r.xml.findtext("networkInterface/privateIpAddress") for r in replies]
    assert len(set(ips)) == 10, ips
    net = ipaddress.ip_network("10.0.5.0/28")
    assert all(ipaddress.ip_address(i) in net for i in ips)
    # one usable address left, then the subnet is full: a 4xx, never a 5xx or a reused IP
    last = srv.call("CreateNetworkInterface", {"SubnetId": s})
    assert last.status == 200, last
    full = srv.call("CreateNetworkInterface", {"SubnetId": s})
    assert 400 <= full.status < 500 and full.code, full


def test_overlapping_subnets_at_once(fresh_server):
    """Six overlapping CreateSubnet calls at the same time: exactly one wins, the others get
    InvalidSubnet.Conflict."""
    srv = fresh_server
    v = srv.vpc("10.1.0.0/16")
    barrier = threading.Barrier(6)
    cidrs = ["10.1.0.0/24", "10.1.0.0/25", "10.1.0.128/25", "10.1.0.0/23", "10.1.0.64/26", "10.1.0.0/24"]

    def go(c):
        barrier.wait()
        return srv.call("CreateSubnet", {"VpcId": v, "CidrBlock": c})

    with ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(go, cidrs))
    ok = [r for r in replies if r.status == 200]
    # 10.1.0.0/25 and 10.1.0.128/25 do not overlap each other, so at most two can win
    for r in replies:
        assert r.status == 200 or r.code == "InvalidSubnet.Conflict", r
    got = [ipaddress.ip_network(r.xml.findtext("subnet/cidrBlock")) for r in ok]
    for i, a in enumerate(got):
        for b in got[i + 1:]:
            assert not a.overlaps(b), f"overlapping subnets both created: {a} {b}"
    assert 1 <= len(ok) <= 2


def test_delete_vpc_racing_create_subnet(fresh_server):
    """DeleteVpc racing CreateSubnet in it: never an orphan subnet whose VPC is gone."""
    srv = fresh_server
    for i in range(15):
        v = srv.vpc("10.2.0.0/16")
        barrier = threading.Barrier(2)

        def sub():
            barrier.wait()
            return srv.call("CreateSubnet", {"VpcId": v, "CidrBlock": "10.2.1.0/24"})

        def delete():
            barrier.wait()
            return srv.call("DeleteVpc", {"VpcId": v})

        with ThreadPoolExecutor(2) as pool:
            fs, fd = pool.submit(sub), pool.submit(delete)
            rs, rd = fs.result(), fd.result()
        assert rs.status in (200, 400) and rd.status in (200, 400), (rs, rd)
        if rs.status == 200:
            assert rd.status == 400 and rd.code == "DependencyViolation", (i, rs, rd)
        else:
            assert rs.code == "InvalidVpcID.NotFound", rs
    vpcs = {x["VpcId"] for x in srv.client().describe_vpcs()["Vpcs"]}
    for s in srv.client().describe_subnets()["Subnets"]:
        assert s["VpcId"] in vpcs, f"orphan subnet {s}"


def test_xml_escaping_of_user_text(server):
    """User text with XML metacharacters round-trips through Describe (tags, description)."""
    v = server.vpc()
    s = server.subnet(v, "10.0.1.0/24")
    nasty = "a<b>&c\"d'e]]>f\u00e9\u4e2d"
    e = server.eni(s, Description=nasty)
    ec2 = server.client()
    ec2.create_tags(Resources=[v, e], Tags=[{"Key": "k&<>", "Value": nasty}])
    got = ec2.describe_network_interfaces(NetworkInterfaceIds=[e])["NetworkInterfaces"][0]
    assert got["Description"] == nasty
    assert {t["Key"]: t["Value"] for t in got["TagSet"]} == {"k&<>": nasty}
    vpc = ec2.describe_vpcs(VpcIds=[v])["Vpcs"][0]
    assert vpc["Tags"] == [{"Key": "k&<>", "Value": nasty}]


def test_error_message_escaping(server):
    """Error messages that echo input are escaped (the envelope still parses)."""
    r = server.describe({"Filter.1.Name": "<bad&name>", "Filter.1.Value.1": "x"})
    expect_error(r, 400, "InvalidParameterValue")
    assert "<bad&name>" in r.message, r
    r = server.create_fl(["vpc-<&>"])
    assert r.status in (200, 400) and r.raw_root is not None, r


def test_delete_same_id_twice_in_one_request(server):
    v = server.vpc()
    a = server.fl_ok([v])[0]
    r = server.call("DeleteFlowLogs", {"FlowLogId.1": a, "FlowLogId.2": a})
    assert r.status in (200, 400), r
    assert server.fl_ids_for(v) == [] or r.status == 400


def test_empty_resource_id(server):
    r = server.call("CreateFlowLogs", {"ResourceType": "VPC", "ResourceId.1": "", "TrafficType": "ALL",
                                       "LogDestinationType": "s3", "LogDestination": "arn:aws:s3:::b1"})
    assert r.status == 400 or (r.status == 200 and r.ids() == []), r


def test_max_results_boundaries(server):
    for n in ("5", "1000", "1001"):
        expect_ok(server.describe({"MaxResults": n}), "DescribeFlowLogs")


def test_next_token_after_its_anchor_is_deleted(fresh_server):
    """The flow log a nextToken points past is deleted before the next page is asked for:
    the walk continues with the following flow logs (keyset paging), nothing is skipped."""
    srv = fresh_server
    vpcs = [srv.vpc() for _ in range(6)]
    srv.fl_ok(vpcs, dest="arn:aws:s3:::b1/a/")
    srv.fl_ok(vpcs, dest="arn:aws:s3:::b1/b/")
    r = expect_ok(srv.describe({"MaxResults": "5"}), "DescribeFlowLogs")
    first = [f["flowLogId"] for f in r.flow_logs()]
    tok = r.xml.findtext("nextToken")
    assert len(first) == 5 and tok
    expect_ok(srv.call("DeleteFlowLogs", {"FlowLogId.1": first[-1]}), "DeleteFlowLogs")
    rest, seen = [], set(first)
    while tok:
        r = expect_ok(srv.describe({"MaxResults": "5", "NextToken": tok}), "DescribeFlowLogs")
        rest += [f["flowLogId"] for f in r.flow_logs()]
        tok = r.xml.findtext("nextToken")
    assert not (set(rest) & seen), "a flow log came back twice"
    assert len(rest) == 7, rest


def test_chunked_request_body(server):
    """A form body sent with Transfer-Encoding: chunked (no Content-Length) is read like any other."""
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials
    import requests


    key, secret, _ = CREDENTIALS["admin"]
    body = b"Action=DescribeFlowLogs&Version=2016-11-15&MaxResults=5"
    req = botocore.awsrequest.AWSRequest(method="POST", url=server.url + "/", data=body,
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(key, secret), "ec2", "us-east-1").add_auth(req)
    p = req.prepare()
    headers = {k: v for k, v in p.headers.items() if k.lower() != "content-length"}

    def gen():
        yield body[:10]
        yield body[10:]

    r = requests.post(p.url, headers=headers, data=gen(), timeout=30, verify=server.verify)
    assert r.status_code == 200 and "DescribeFlowLogsResponse" in r.text, (r.status_code, r.text[:300])


def test_next_token_reuse_and_restart(make_server):
    """A nextToken can be used twice (same page), and still works after a restart."""
    srv = make_server()
    vpcs = [srv.vpc() for _ in range(6)]
    srv.fl_ok(vpcs, dest="arn:aws:s3:::b1/a/")
    r = expect_ok(srv.describe({"MaxResults": "5"}), "DescribeFlowLogs")
    tok = r.xml.findtext("nextToken")
    p1 = [f["flowLogId"] for f in expect_ok(srv.describe({"MaxResults": "5", "NextToken": tok}),
                                            "DescribeFlowLogs").flow_logs()]
    p2 = [f["flowLogId"] for f in expect_ok(srv.describe({"MaxResults": "5", "NextToken": tok}),
                                            "DescribeFlowLogs").flow_logs()]
    assert p1 == p2 and len(p1) == 1
    srv.stop()
    srv.start()
    p3 = [f["flowLogId"] for f in expect_ok(srv.describe({"MaxResults": "5", "NextToken": tok}),
                                            "DescribeFlowLogs").flow_logs()]
    assert p3 == p1


def test_rejected_request_does_not_consume_token(server):
    """A request refused with a top-level 400 records nothing: its ClientToken can be used by a
    valid request afterwards (which then creates the flow log)."""
    v = server.vpc()
    expect_error(server.create_fl([v], traffic="Accept", ClientToken="t-rejected-first"), 400,
                 "InvalidParameterValue")
    r = expect_ok(server.create_fl([v], ClientToken="t-rejected-first"), "CreateFlowLogs")
    assert len(r.ids()) == 1 and server.fl_ids_for(v) == r.ids()
    # and an unauthorized attempt does not consume one either
    expect_error(server.create_fl([v], cred="readonly", ClientToken="t-unauth-first"), 403, "UnauthorizedOperation")
    w = server.vpc()
    r = expect_ok(server.create_fl([w], ClientToken="t-unauth-first"), "CreateFlowLogs")
    assert len(r.ids()) == 1


def test_describe_order_is_creation_order(fresh_server):
    """§3.4 [REC]: flow logs are returned sorted by creation time then ID, the same on every page."""
    srv = fresh_server
    made = []
    for i in range(8):
        v = srv.vpc()
        made += srv.fl_ok([v], dest=f"arn:aws:s3:::b1/o{i}/")
    fls = srv.all_flow_logs()
    keys = [(f["creationTime"], f["flowLogId"]) for f in fls]
    assert keys == sorted(keys)
    assert sorted(made) == sorted(i for _, i in keys)
    paged, tok = [], None
    while True:
        r = expect_ok(srv.describe({"MaxResults": "5", **({"NextToken": tok} if tok else {})}), "DescribeFlowLogs")
        paged += [f["flowLogId"] for f in r.flow_logs()]
        tok = r.xml.findtext("nextToken")
        if not tok:
            break
    assert paged == [i for _, i in keys], "pages must follow the same order"


def test_mixed_write_storm(fresh_server):
    """16 threads mixing CreateVpc, CreateFlowLogs, CreateTags, DeleteFlowLogs and Describe for a
    few seconds: no 5xx, and the final state equals creates minus deletes."""
    import random
    import time

    srv = fresh_server
    created, deleted, errors = set(), set(), []
    lock = threading.Lock()
    end = time.time() + 4

    def worker(seed):
        rnd = random.Random(seed)
        mine = []
        while time.time() < end:
            op = rnd.random()
            if op < 0.3 or not mine:
                r = srv.call("CreateVpc", {"CidrBlock": "10.0.0.0/16"})
                if r.status != 200:
                    errors.append(r)
                    continue
                vid = r.xml.findtext("vpc/vpcId")
                f = srv.create_fl([vid], dest=f"arn:aws:s3:::b1/s{seed}/")
                if f.status != 200:
                    errors.append(f)
                    continue
                with lock:
                    created.update(f.ids())
                mine += f.ids()
            elif op < 0.5:
                fid = mine.pop(rnd.randrange(len(mine)))
                d = srv.call("DeleteFlowLogs", {"FlowLogId.1": fid})
                if d.status != 200 or d.unsuccessful():
                    errors.append(d)
                    continue
                with lock:
                    deleted.add(fid)
            elif op < 0.7:
                r = srv.call("CreateTags", {"ResourceId.1": rnd.choice(mine), "Tag.1.Key": "k",
                                            "Tag.1.Value": str(seed)})
                if r.status != 200:
                    errors.append(r)
            else:
                r = srv.describe({"MaxResults": "50"})
                if r.status != 200:
                    errors.append(r)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(worker, range(16)))
    assert not errors, errors[:3]
    final = {f["flowLogId"] for f in srv.all_flow_logs()}
    assert final == created - deleted
