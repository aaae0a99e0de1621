"""DescribeFlowLogs: spec §15 scenarios 37-51 and 46b (§3.3, §3.4), and paging that stays stable
while flow logs are added and deleted between pages.

The module's server holds exactly the flow logs made by the `fls` fixture (A-F) until the paging
tests, which use servers of their own.
"""

import pytest

from apiharness import ISO_MS, NS, ROLE, expect_error, expect_ok

G2_ARN = "arn:aws:logs:us-east-1:123456789012:log-group:g2"


@pytest.fixture(scope="module")
def fls(server):
    v1, v2 = server.vpc("10.0.0.0/16"), server.vpc("10.1.0.0/16")
    s1 = server.subnet(v1, "10.0.1.0/24")
    e1 = server.eni(s1)
    made = {}
    made["A"] = server.fl_ok([v1], dest="arn:aws:s3:::b1")[0]
    made["B"] = server.fl_ok([v1], traffic="ACCEPT", dest="g")[0]
    made["C"] = server.fl_ok([v2], traffic="REJECT", dest="arn:aws:s3:::b1/x/")[0]
    r = expect_ok(server.call("CreateFlowLogs", {
        "ResourceType": "VPC", "ResourceId.1": v2, "TrafficType": "ALL", "LogDestinationType": "cloud-watch-logs",
        "LogDestination": G2_ARN, "DeliverLogsPermissionArn": ROLE}), "CreateFlowLogs")
    made["D"] = r.ids()[0]
    made["E"] = server.fl_ok([s1], resource_type="Subnet", dest="arn:aws:s3:::b2")[0]
    made["F"] = server.fl_ok([e1], resource_type="NetworkInterface", dest="g")[0]
    made.update(V1=v1, V2=v2, S1=s1, E1=e1)
    return made


def ids_of(reply):
    return sorted(f["flowLogId"] for f in reply.flow_logs())


def want(fls, *names):
    return sorted(fls[n] for n in names)


def describe_ok(server, params=None):
    r = expect_ok(server.describe(params), "DescribeFlowLogs")
    return r


def test_s37_no_parameters(server, fls):
    """Scenario 37: no parameters -> every flow log, no nextToken."""
    r = describe_ok(server)
    assert ids_of(r) == want(fls, *"ABCDEF")
    assert r.xml.find("nextToken") is None


def test_s38_by_id_fields(server, fls):
    """Scenario 38: FlowLogId.1=A (S3) -> exactly A with all the fields of §3.3."""
    r = describe_ok(server, {"FlowLogId.1": fls["A"]})
    got = r.flow_logs()
    assert len(got) == 1, r
    fl = got[0]
    assert fl["flowLogId"] == fls["A"]
    assert ISO_MS.match(fl["creationTime"]), fl
    assert fl["deliverLogsStatus"] == "SUCCESS"
    assert fl["flowLogStatus"] == "ACTIVE"
    assert fl["resourceId"] == fls["V1"]
    assert fl["trafficType"] == "ALL"
    assert fl["logDestinationType"] == "s3"
    assert fl["logDestination"] == "arn:aws:s3:::b1"


def test_s39_unknown_id_empty_set(server, fls):
    """Scenario 39: FlowLogId.1=fl-00000000000000000 -> 200 with an empty <flowLogSet/>."""
    r = describe_ok(server, {"FlowLogId.1": "fl-00000000000000000"})
    s = r.raw_root.find(f"{{{NS}}}flowLogSet")
    assert s is not None and len(s) == 0, r


def test_s39b_known_and_unknown_ids(server, fls):
    r = describe_ok(server, {"FlowLogId.1": fls["A"], "FlowLogId.2": "fl-1a2b3c4d", "FlowLogId.3": fls["C"]})
    assert ids_of(r) == want(fls, "A", "C")


def test_s40_filter_values_or(server, fls):
    """Scenario 40: resource-id with V1 and V2 -> union of both VPCs' flow logs."""
    r = describe_ok(server, {"Filter.1.Name": "resource-id", "Filter.1.Value.1": fls["V1"],
                             "Filter.1.Value.2": fls["V2"]})
    assert ids_of(r) == want(fls, "A", "B", "C", "D")


def test_s41_filters_and(server, fls):
    """Scenario 41: log-destination-type=s3 AND traffic-type=ALL -> intersection."""
    r = describe_ok(server, {"Filter.1.Name": "log-destination-type", "Filter.1.Value.1": "s3",
                             "Filter.2.Name": "traffic-type", "Filter.2.Value.1": "ALL"})
    assert ids_of(r) == want(fls, "A", "E")


def test_s42_log_group_name(server, fls):
    """Scenario 42: log-group-name=g -> only CWL flow logs to g."""
    r = describe_ok(server, {"Filter.1.Name": "log-group-name", "Filter.1.Value.1": "g"})
    assert ids_of(r) == want(fls, "B", "F")


def test_s42b_log_group_name_from_arn(server, fls):
    """§3.3/Q10: an ARN-created CWL flow log reports logGroupName derived from the ARN (g2)."""
    r = describe_ok(server, {"FlowLogId.1": fls["D"]})
    fl = r.flow_logs()[0]
    assert fl["logGroupName"] == "g2" and fl["logDestination"] == G2_ARN, fl
    r = describe_ok(server, {"Filter.1.Name": "log-group-name", "Filter.1.Value.1": "g2"})
    assert ids_of(r) == want(fls, "D")


def test_s43_deliver_log_status(server, fls):
    """Scenario 43: deliver-log-status=FAILED -> only FAILED ones (none here, all are SUCCESS);
    SUCCESS -> all of them (the opposite of moto, which matches everything)."""
    assert ids_of(describe_ok(server, {"Filter.1.Name": "deliver-log-status", "Filter.1.Value.1": "FAILED"})) == []
    r = describe_ok(server, {"Filter.1.Name": "deliver-log-status", "Filter.1.Value.1": "SUCCESS"})
    assert ids_of(r) == want(fls, *"ABCDEF")


def test_s43b_other_filters(server, fls):
    """The remaining 2018 filters: flow-log-id, log-destination-type=cloud-watch-logs, traffic-type."""
    r = describe_ok(server, {"Filter.1.Name": "flow-log-id", "Filter.1.Value.1": fls["B"],
                             "Filter.1.Value.2": fls["E"]})
    assert ids_of(r) == want(fls, "B", "E")
    r = describe_ok(server, {"Filter.1.Name": "log-destination-type", "Filter.1.Value.1": "cloud-watch-logs"})
    assert ids_of(r) == want(fls, "B", "D", "F")
    r = describe_ok(server, {"Filter.1.Name": "traffic-type", "Filter.1.Value.1": "REJECT",
                             "Filter.1.Value.2": "ACCEPT"})
    assert ids_of(r) == want(fls, "B", "C")
    r = describe_ok(server, {"Filter.1.Name": "resource-id", "Filter.1.Value.1": fls["S1"]})
    assert ids_of(r) == want(fls, "E")


def test_s44_values_case_sensitive(server, fls):
    """Scenario 44: traffic-type=all -> empty (values are case-sensitive)."""
    assert ids_of(describe_ok(server, {"Filter.1.Name": "traffic-type", "Filter.1.Value.1": "all"})) == []
    assert ids_of(describe_ok(server, {"Filter.1.Name": "log-destination-type", "Filter.1.Value.1": "S3"})) == []


def test_s44b_wildcards(server, fls):
    """§3.3 / Q16: '*' and '?' wildcards in filter values."""
    r = describe_ok(server, {"Filter.1.Name": "log-group-name", "Filter.1.Value.1": "g*"})
    assert ids_of(r) == want(fls, "B", "D", "F")
    r = describe_ok(server, {"Filter.1.Name": "log-group-name", "Filter.1.Value.1": "g?"})
    assert ids_of(r) == want(fls, "D")
    r = describe_ok(server, {"Filter.1.Name": "traffic-type", "Filter.1.Value.1": "A*"})
    assert ids_of(r) == want(fls, "A", "B", "D", "E", "F")
    v1_prefix = fls["V1"][:-3] + "???"
    r = describe_ok(server, {"Filter.1.Name": "resource-id", "Filter.1.Value.1": v1_prefix})
    assert set(want(fls, "A", "B")) <= set(ids_of(r))


def test_s45_unknown_filter(server, fls):
    """Scenario 45: Filter.1.Name=bogus -> 400 InvalidParameterValue `The filter 'bogus' is invalid`."""
    r = server.describe({"Filter.1.Name": "bogus", "Filter.1.Value.1": "x"})
    expect_error(r, 400, "InvalidParameterValue")
    assert r.message.rstrip(".") == "The filter 'bogus' is invalid", r


def test_s45b_filter_without_name(server, fls):
    """§3.3 rule 6: a filter entry without Name -> 400 InvalidParameterValue."""
    expect_error(server.describe({"Filter.1.Value.1": "x"}), 400, "InvalidParameterValue")


def test_s45c_filter_names_case_sensitive(server, fls):
    """Filter names are case-sensitive [M18]: Resource-Id is not a filter."""
    expect_error(server.describe({"Filter.1.Name": "Resource-Id", "Filter.1.Value.1": fls["V1"]}), 400,
                 "InvalidParameterValue")


def test_s46b_ids_and_filters_and(server, fls):
    """Scenario 46b: FlowLogId A,B + traffic-type=ALL -> only those of A, B whose type is ALL."""
    r = describe_ok(server, {"FlowLogId.1": fls["A"], "FlowLogId.2": fls["B"],
                             "Filter.1.Name": "traffic-type", "Filter.1.Value.1": "ALL"})
    assert ids_of(r) == want(fls, "A")


def test_s47_max_results_too_small(server, fls):
    """Scenario 47: MaxResults=4 -> 400 InvalidParameterValue."""
    expect_error(server.describe({"MaxResults": "4"}), 400, "InvalidParameterValue")


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "5.0", "", "99999999999999999999999"])
def test_s47b_max_results_garbage(server, fls, bad):
    """MaxResults not an integer in range -> 400 (never 5xx)."""
    r = server.describe({"MaxResults": bad})
    if bad == "99999999999999999999999":
        # either clamped like any value > 1000 or rejected as not an integer; never 5xx
        assert r.status in (200, 400), r
    else:
        expect_error(r, 400, ("InvalidParameterValue", "ValidationError", "InvalidParameter"))


def test_s48_max_results_5000_small_set(server, fls):
    """Scenario 48 (small set): MaxResults=5000 -> 200, everything (6 <= 1000), no nextToken."""
    r = describe_ok(server, {"MaxResults": "5000"})
    assert ids_of(r) == want(fls, *"ABCDEF") and r.xml.find("nextToken") is None


def test_s49_max_results_with_ids(server, fls):
    """Scenario 49: MaxResults=5&FlowLogId.1=A -> 400 InvalidParameterCombination."""
    expect_error(server.describe({"MaxResults": "5", "FlowLogId.1": fls["A"]}), 400, "InvalidParameterCombination")


@pytest.mark.parametrize("tok", ["garbage", "", "AAAA", "%%%", "eyJ4IjoxfQ==", "x" * 5000])
def test_s50_bad_next_token(server, fls, tok):
    """Scenario 50: NextToken=garbage -> 400 InvalidNextToken (or InvalidPaginationToken)."""
    r = server.describe({"NextToken": tok, "MaxResults": "5"})
    if tok == "":
        # an empty token may mean "first page"; it must never be a 5xx
        assert r.status in (200, 400), r
        return
    expect_error(r, 400, ("InvalidNextToken", "InvalidPaginationToken"))


def test_s51_absent_elements(server, fls):
    """Scenario 51: S3 -> no deliverLogsPermissionArn, no logGroupName; CWL while SUCCESS -> no
    deliverLogsErrorMessage; name-created CWL -> no logDestination (§3.3)."""
    by = {f["flowLogId"]: f for f in describe_ok(server).flow_logs()}
    for n in ("A", "C", "E"):
        assert "deliverLogsPermissionArn" not in by[fls[n]] and "logGroupName" not in by[fls[n]], by[fls[n]]
    for n in ("B", "D", "F"):
        assert "deliverLogsErrorMessage" not in by[fls[n]], by[fls[n]]
        assert by[fls[n]]["deliverLogsPermissionArn"] == ROLE
    for n in ("B", "F"):
        assert "logDestination" not in by[fls[n]] and by[fls[n]]["logGroupName"] == "g", by[fls[n]]


def test_s60_boto3_filters_alias_and_datetime(server, fls):
    """Scenario 60: describe_flow_logs(Filters=...) and (Filter=...) both work; CreationTime is tz-aware."""
    ec2 = server.client()
    a = ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [fls["V2"]]}])["FlowLogs"]
    b = ec2.describe_flow_logs(Filter=[{"Name": "resource-id", "Values": [fls["V2"]]}])["FlowLogs"]
    assert sorted(f["FlowLogId"] for f in a) == sorted(f["FlowLogId"] for f in b) == want(fls, "C", "D")
    for f in a:
        assert f["CreationTime"].tzinfo is not None and f["CreationTime"].utcoffset().total_seconds() == 0
    got = ec2.describe_flow_logs(FlowLogIds=[fls["C"]])["FlowLogs"][0]
    assert got["LogDestination"] == "arn:aws:s3:::b1/x/" and got["TrafficType"] == "REJECT"
    assert "NextToken" not in ec2.describe_flow_logs()


# --------------------------------------------------------------------------------------------
# Paging (scenario 46, §3.3 rule 12), on servers of their own.


def pages(srv, params, max_results):
    """Follows nextToken; returns the list of pages (lists of ids)."""
    out, token = [], None
    for _ in range(10_000):
        p = dict(params)
        p["MaxResults"] = str(max_results)
        if token:
            p["NextToken"] = token
        r = expect_ok(srv.describe(p), "DescribeFlowLogs")
        out.append([f["flowLogId"] for f in r.flow_logs()])
        token = r.xml.findtext("nextToken")
        if not token:
            return out
    raise AssertionError("paging did not end")


def check_pages(pg, total, size):
    """§3.3 rule 12: full pages, a short last page ends it; an empty trailing page is tolerated."""
    if pg and pg[-1] == [] and len(pg) > 1:
        assert len(pg[-2]) == size, pg
        pg = pg[:-1]
    for p in pg[:-1]:
        assert len(p) == size, [len(x) for x in pg]
    flat = [i for p in pg for i in p]
    assert len(flat) == len(set(flat)) == total, [len(x) for x in pg]
    return flat


def test_s46_paging_12(fresh_server):
    """Scenario 46: 12 flow logs, MaxResults=5 -> 5 + nextToken, 5, 2 without token; union = all 12.
    The same with a filter matching 7 of many: 5 then 2."""
    srv = fresh_server
    vpcs = [srv.vpc() for _ in range(6)]
    srv.fl_ok(vpcs, dest="arn:aws:s3:::b1/p/")
    srv.fl_ok(vpcs, dest="arn:aws:s3:::b1/q/")
    all_ids = sorted(f["flowLogId"] for f in srv.all_flow_logs())
    assert len(all_ids) == 12
    pg = pages(srv, {}, 5)
    assert [len(p) for p in pg] == [5, 5, 2], pg
    assert sorted(i for p in pg for i in p) == all_ids
    # boto3's paginator gets the same
    paginator = srv.client().get_paginator("describe_flow_logs")
    got = [f["FlowLogId"] for page in paginator.paginate(PaginationConfig={"PageSize": 5}) for f in page["FlowLogs"]]
    assert sorted(got) == all_ids and len(got) == 12

    # a filter matching 7 of 12 + 41 more: the pages count matching flow logs only
    more = [srv.vpc() for _ in range(20)]
    srv.fl_ok(more, dest="arn:aws:s3:::b1/r/")
    srv.fl_ok(more, dest="arn:aws:s3:::b1/s/")
    lone = srv.vpc()
    srv.fl_ok([lone], dest="arn:aws:s3:::b1/z/")
    chosen = vpcs[:3] + [lone]
    filt = {"Filter.1.Name": "resource-id", **{f"Filter.1.Value.{i + 1}": v for i, v in enumerate(chosen)}}
    seven = sorted(f["flowLogId"] for f in srv.all_flow_logs(filt))
    assert len(seven) == 7
    pg = pages(srv, filt, 5)
    assert [len(p) for p in pg] == [5, 2], pg
    assert sorted(i for p in pg for i in p) == seven


def test_s48_clamp_at_1000_and_full_walk(fresh_server):
    """Scenario 48 with more than 1000 flow logs: MaxResults=5000 -> exactly 1000 + nextToken;
    no MaxResults -> everything without a token (§3.3 rule 10); paging 1000 walks all."""
    srv = fresh_server
    vpcs = [srv.vpc() for _ in range(520)]
    srv.fl_ok(vpcs, dest="arn:aws:s3:::b1/one/")
    srv.fl_ok(vpcs, dest="arn:aws:s3:::b1/two/")
    r = expect_ok(srv.describe({"MaxResults": "5000"}), "DescribeFlowLogs")
    assert len(r.flow_logs()) == 1000 and r.xml.findtext("nextToken"), len(r.flow_logs())
    r2 = expect_ok(srv.describe({"MaxResults": "5000", "NextToken": r.xml.findtext("nextToken")}),
                   "DescribeFlowLogs")
    assert len(r2.flow_logs()) == 40 and r2.xml.find("nextToken") is None
    everything = srv.all_flow_logs()
    assert len(everything) == 1040
    flat = check_pages(pages(srv, {}, 1000), 1040, 1000)
    assert sorted(flat) == sorted(f["flowLogId"] for f in everything)


def test_paging_stable_under_changes(fresh_server):
    """§3.3 rule 12 + issue: paging is stable while flow logs are added or deleted between pages.
    Every flow log that exists for the whole walk is returned exactly once; nothing twice."""
    srv = fresh_server
    vpcs = [srv.vpc() for _ in range(15)]
    srv.fl_ok(vpcs, dest="arn:aws:s3:::b1/a/")
    srv.fl_ok(vpcs, dest="arn:aws:s3:::b1/b/")
    initial = [f["flowLogId"] for f in srv.all_flow_logs()]
    assert len(initial) == 30
    seen, token, deleted, step = [], None, set(), 0
    extra_vpcs = [srv.vpc() for _ in range(10)]
    while True:
        p = {"MaxResults": "5"}
        if token:
            p["NextToken"] = token
        r = expect_ok(srv.describe(p), "DescribeFlowLogs")
        page = [f["flowLogId"] for f in r.flow_logs()]
        seen += page
        token = r.xml.findtext("nextToken")
        if not token:
            break
        # between pages: add two, delete one already seen and one not yet seen
        srv.fl_ok(extra_vpcs[step % 10: step % 10 + 1], dest=f"arn:aws:s3:::b1/n{step}/")
        unseen = [i for i in initial if i not in seen and i not in deleted]
        victims = [seen[0]] if seen[0] not in deleted else []
        if unseen:
            victims.append(unseen[-1])
        for i, v in enumerate(victims):
            expect_ok(srv.call("DeleteFlowLogs", {"FlowLogId.1": v}), "DeleteFlowLogs")
            deleted.add(v)
        step += 1
        assert step < 100
    assert len(seen) == len(set(seen)), "a flow log was returned twice while paging"
    survivors = [i for i in initial if i not in deleted]
    missing = [i for i in survivors if i not in seen]
    assert not missing, f"{len(missing)} flow logs that existed throughout were skipped"
