"""DeleteFlowLogs (spec §15 scenarios 52-55, §3.2), the wire format (57-59, §1) and bad input:
oversized bodies, 10 000 parameters, non-UTF-8 bytes. Bad input gets a 4xx, never a 5xx, and
the server keeps answering afterwards.

Scenario 56 (delivered S3 objects / CWL streams survive a delete) needs the data plane and is
not part of this API suite.
"""

import re
import socket
import urllib.parse

import pytest

from apiharness import CREDENTIALS, NS, ROLE, VERSION, expect_error, expect_ok

NOT_FOUND = "These flow log ids in the input list are not found: [TotalCount: {n}] {ids}"


# -- DeleteFlowLogs ---------------------------------------------------------------------------


def test_s52_delete(server):
    """Scenario 52: FlowLogId.1=A -> 200, empty <unsuccessful/>; Describe no longer returns A."""
    v = server.vpc()
    a = server.fl_ok([v])[0]
    r = expect_ok(server.call("DeleteFlowLogs", {"FlowLogId.1": a}), "DeleteFlowLogs")
    un = r.raw_root.find(f"{{{NS}}}unsuccessful")
    assert un is not None and len(un) == 0, r
    assert server.all_flow_logs({"FlowLogId.1": a}) == []
    assert server.fl_ids_for(v) == []


def test_s53_delete_again(server):
    """Scenario 53: deleting A again -> 200 with one InvalidFlowLogId.NotFound item, exact message."""
    v = server.vpc()
    a = server.fl_ok([v])[0]
    expect_ok(server.call("DeleteFlowLogs", {"FlowLogId.1": a}), "DeleteFlowLogs")
    r = expect_ok(server.call("DeleteFlowLogs", {"FlowLogId.1": a}), "DeleteFlowLogs")
    assert r.unsuccessful() == [{"resourceId": a, "code": "InvalidFlowLogId.NotFound",
                                 "message": NOT_FOUND.format(n=1, ids=a)}], r


def test_s54_mixed(server):
    """Scenario 54: B exists, fl-1a2b3c4d does not -> B deleted; one item for fl-1a2b3c4d."""
    v = server.vpc()
    b = server.fl_ok([v])[0]
    r = expect_ok(server.call("DeleteFlowLogs", {"FlowLogId.1": b, "FlowLogId.2": "fl-1a2b3c4d"}), "DeleteFlowLogs")
    assert r.unsuccessful() == [{"resourceId": "fl-1a2b3c4d", "code": "InvalidFlowLogId.NotFound",
                                 "message": NOT_FOUND.format(n=1, ids="fl-1a2b3c4d")}], r
    assert server.fl_ids_for(v) == []


def test_s54b_two_unknown(server):
    """§3.2 rule 4: each unknown ID gets an item whose message names that ID alone (so a reply
    grows linearly with the request, as AWS's does)."""
    r = expect_ok(server.call("DeleteFlowLogs", {"FlowLogId.1": "fl-1a2b3c4d", "FlowLogId.2": "fl-00000000000000001"}),
                  "DeleteFlowLogs")
    un = r.unsuccessful()
    assert [u["resourceId"] for u in un] == ["fl-1a2b3c4d", "fl-00000000000000001"], r
    assert {u["code"] for u in un} == {"InvalidFlowLogId.NotFound"}
    for u in un:
        assert u["message"] == NOT_FOUND.format(n=1, ids=u["resourceId"]), u


def test_s55_no_ids(server):
    """Scenario 55: no FlowLogId.N -> 400 InvalidParameterValue (MissingParameter accepted by §3.2 rule 1)."""
    r = server.call("DeleteFlowLogs")
    expect_error(r, 400, ("InvalidParameterValue", "MissingParameter"))
    if r.code == "InvalidParameterValue":
        assert r.message == "1 validation error detected: Value null at 'flowLogId' has an invalid format", r


def test_s55b_boto3_delete_roundtrip(server):
    ec2 = server.client()
    v = server.vpc()
    a = server.fl_ok([v])[0]
    out = ec2.delete_flow_logs(FlowLogIds=[a, "fl-1a2b3c4d"])
    assert out["Unsuccessful"] == [{"ResourceId": "fl-1a2b3c4d", "Error": {
        "Code": "InvalidFlowLogId.NotFound", "Message": NOT_FOUND.format(n=1, ids="fl-1a2b3c4d")}}]


# -- Wire format ------------------------------------------------------------------------------


def test_s57_success_roots(server):
    """Scenario 57: each success body is <{Action}Response xmlns=...2016-11-15/> with <requestId>,
    served as text/xml."""
    v = server.vpc()
    s = server.subnet(v, "10.0.7.0/24")
    e = server.eni(s)
    a = server.fl_ok([v])[0]
    calls = [
        ("DescribeFlowLogs", {}), ("DescribeVpcs", {}), ("DescribeSubnets", {}), ("DescribeNetworkInterfaces", {}),
        ("CreateTags", {"ResourceId.1": v, "Tag.1.Key": "k", "Tag.1.Value": "v"}),
        ("DeleteTags", {"ResourceId.1": v, "Tag.1.Key": "k"}),
        ("DeleteFlowLogs", {"FlowLogId.1": a}),
        ("DeleteNetworkInterface", {"NetworkInterfaceId": e}),
        ("DeleteSubnet", {"SubnetId": s}),
        ("DeleteVpc", {"VpcId": v}),
    ]
    for action, params in calls:
        r = expect_ok(server.call(action, params), action)
        rid = r.xml.findtext("requestId")
        assert rid and re.fullmatch(r"[0-9a-fA-F-]{36}", rid), (action, r)
        assert r.headers.get("content-type", "").lower().replace(" ", "").startswith("text/xml"), (action, r.headers)
        if action.startswith("Delete") and action != "DeleteFlowLogs" or action.endswith("Tags"):
            assert r.xml.findtext("return") == "true", (action, r)


def test_s57_error_envelope(server):
    """Scenario 57: errors are <Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>."""
    r = server.describe({"MaxResults": "4"})
    assert r.status == 400
    root = r.raw_root
    assert root.tag == "Response", r
    assert [c.tag for c in root] == ["Errors", "RequestID"], r
    errors = root.find("Errors")
    assert [c.tag for c in errors] == ["Error"]
    assert [c.tag for c in errors.find("Error")] == ["Code", "Message"]
    assert root.findtext("RequestID")


def test_s58_get_form(server):
    """Scenario 58: CreateFlowLogs as GET /?Action=CreateFlowLogs&... -> identical semantics."""
    v = server.vpc()
    r = expect_ok(server.create_fl([v], method="GET"), "CreateFlowLogs")
    assert len(r.ids()) == 1 and server.fl_ids_for(v) == r.ids()
    r2 = expect_ok(server.create_fl([v], method="GET"), "CreateFlowLogs")
    assert [u["code"] for u in r2.unsuccessful()] == ["FlowLogAlreadyExists"]
    expect_error(server.describe({"MaxResults": "4"}, method="GET"), 400, "InvalidParameterValue")


def test_s59_typo_action(server):
    """Scenario 59: Action=CreateFlowLog -> 400 InvalidAction."""
    expect_error(server.call("CreateFlowLog"), 400, "InvalidAction")
    expect_error(server.call("describeflowlogs"), 400, "InvalidAction")


def test_s59_unknown_parameter(server):
    """Scenario 59: unknown parameter Foo=1 -> 400 UnknownParameter (also a misspelt member)."""
    v = server.vpc()
    expect_error(server.describe({"Foo": "1"}), 400, "UnknownParameter")
    expect_error(server.create_fl([v], Foo="1"), 400, "UnknownParameter")
    expect_error(server.create_fl([v], TraficType="ALL"), 400, "UnknownParameter")
    expect_error(server.describe({"FlowLogIds.1": "fl-1a2b3c4d"}), 400, "UnknownParameter")
    expect_error(server.describe({"filter.1.Name": "traffic-type", "filter.1.Value.1": "ALL"}), 400,
                 "UnknownParameter")
    assert server.fl_ids_for(v) == []


def test_s59b_missing_action(server):
    r = server.raw({"Version": VERSION})
    assert 400 <= r.status < 500 and r.code, r


def test_dotted_list_gaps_and_order(server):
    """§1.2 rule 5: indexes are sorted numerically and gaps ignored."""
    v1, v2, v3 = server.vpc(), server.vpc(), server.vpc()
    r = expect_ok(server.call("CreateFlowLogs", [
        ("ResourceType", "VPC"), ("TrafficType", "ALL"), ("LogDestinationType", "s3"),
        ("LogDestination", "arn:aws:s3:::b1/gaps/"),
        ("ResourceId.10", v3), ("ResourceId.2", v2), ("ResourceId.1", v1)]), "CreateFlowLogs")
    ids = r.ids()
    assert len(ids) == 3, r
    got = [server.all_flow_logs({"FlowLogId.1": i})[0]["resourceId"] for i in ids]
    assert got == [v1, v2, v3]


def test_plus_is_space_in_form_body(server):
    """Form bodies: '+' is a space and %2B a plus: an ENI description round-trips."""
    v = server.vpc("10.0.0.0/16")
    s = server.subnet(v, "10.0.200.0/24")
    body = ("Action=CreateNetworkInterface&Version=2016-11-15&SubnetId=" + s +
            "&Description=my+first%2Beni%20%C3%A9")
    r = expect_ok(server.raw(body=body.encode()), "CreateNetworkInterface")
    assert r.xml.findtext("networkInterface/description") == "my first+eni \u00e9", r


# -- Bad input: 4xx, never 5xx, server stays up ---------------------------------------------


def still_up(server):
    assert server.alive(), "the server process died"
    expect_ok(server.describe({"MaxResults": "5"}), "DescribeFlowLogs")


def test_oversized_body_8mib(server):
    """An 8 MiB signed body -> a clear 4xx (not 5xx, not a dropped connection); server stays up."""
    pad = "x" * (8 * 1024 * 1024)
    body = f"Action=DescribeFlowLogs&Version=2016-11-15&Filter.1.Name=log-group-name&Filter.1.Value.1={pad}"
    try:
        r = server.raw(body=body.encode(), timeout=60)
        assert 400 <= r.status < 500, r
    except Exception as e:  # noqa: BLE001 - reported precisely below
        pytest.fail(f"8 MiB body: no HTTP answer ({type(e).__name__}: {e})")
    finally:
        still_up(server)


def test_oversized_body_connection_handling(server):
    """After answering an oversized body early (413 before reading it), the server may close the
    connection only if it says so (`Connection: close`); otherwise a keep-alive client sends its
    next request into a closed socket and gets `RemoteDisconnected` instead of an answer."""
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials

    key, secret, _ = CREDENTIALS["admin"]
    body = b"Action=DescribeFlowLogs&Version=2016-11-15&Filter.1.Name=log-group-name&Filter.1.Value.1=" + \
        b"z" * (3 * 1024 * 1024)
    req = botocore.awsrequest.AWSRequest(method="POST", url=server.url + "/", data=body,
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(key, secret), "ec2", "us-east-1").add_auth(req)
    p = req.prepare()
    host, port = server.hostport
    head = f"POST / HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in p.headers.items() if k.lower() not in ("host", "content-length"))
    with server.connect(timeout=10) as s:
        s.sendall(head.encode() + b"\r\n")
        try:
            s.sendall(body)
        except OSError:
            pass  # the server may stop reading; what matters is what it answers
        s.settimeout(5)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        assert data.startswith(b"HTTP/1.1 4"), f"no 4xx answer to an oversized body: {data[:300]!r}"
        headers = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
        says_close = "connection: close" in headers
        # does the server close the connection afterwards?
        s.settimeout(1.0)
        closed = False
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    closed = True
                    break
        except socket.timeout:
            closed = False
        except OSError:
            closed = True
    assert says_close or not closed, (
        "the server closed the connection after a 4xx to an oversized body without "
        "`Connection: close`; keep-alive clients then fail their next request")
    still_up(server)


def test_one_mib_body_is_not_a_size_error(server):
    """§1.1: accept at least 1 MiB: a ~1 MiB request is parsed (answered by the action, not 413)."""
    pad = "y" * (1024 * 1024 - 200)
    body = f"Action=DescribeFlowLogs&Version=2016-11-15&Filter.1.Name=log-group-name&Filter.1.Value.1={pad}"
    r = server.raw(body=body.encode())
    assert r.status != 413, r
    if r.status == 200:
        assert r.flow_logs() == []
    else:
        assert r.status == 400 and r.code, r
    still_up(server)


def test_ten_thousand_parameters(server):
    """10 000 parameters -> 4xx, server stays up."""
    pairs = [("Action", "DescribeFlowLogs"), ("Version", VERSION)] + [
        ("Filter.1.Value.%d" % i, "v") for i in range(1, 10_001)]
    pairs.append(("Filter.1.Name", "traffic-type"))
    r = server.raw(pairs)
    assert 400 <= r.status < 500, r
    assert r.code, "expected the EC2 error envelope"
    still_up(server)


def test_ten_thousand_flow_log_ids(server):
    """FlowLogId.1..10000 on DeleteFlowLogs -> 4xx (limit 1000), server stays up."""
    r = server.call("DeleteFlowLogs", {"FlowLogId": [f"fl-{i:017x}" for i in range(10_000)]})
    assert 400 <= r.status < 500, r
    still_up(server)


def test_1001_ids_describe_and_delete(server):
    """§7: FlowLogIds per Delete/Describe max 1000 [MNOW]: 1001 -> 400; 1000 -> fine."""
    ids = [f"fl-{i:017x}" for i in range(1001)]
    r = server.describe({"FlowLogId": ids})
    assert r.status in (200, 400), r
    r = server.describe({"FlowLogId": ids[:1000]})
    assert r.status == 200 and r.flow_logs() == [], r
    still_up(server)


@pytest.mark.parametrize("body", [
    b"Action=DescribeFlowLogs&Version=2016-11-15&Filter.1.Name=log-group-name&Filter.1.Value.1=\xff\xfe",
    b"Action=DescribeFlowLogs&Version=2016-11-15&Filter.1.Name=log-group-name&Filter.1.Value.1=%ff%fe",
    b"Action=Describe\xc0FlowLogs&Version=2016-11-15",
    b"Action=DescribeFlowLogs&Version=2016-11-15&Filter.1.Name=%ZZ",
    b"Action=DescribeFlowLogs&Version=2016-11-15&Filter.1.Name=%",
    b"\x00\x01\x02\x03",
    b"Action=DescribeFlowLogs&Version=2016-11-15&=x",
    b"Action=DescribeFlowLogs&Version=2016-11-15&MaxResults=5&MaxResults=6",
], ids=["raw-ff", "pct-ff", "action-c0", "bad-pct", "lone-pct", "binary", "empty-name", "dup-name"])
def test_non_utf8_and_malformed_bodies(server, body):
    """Non-UTF-8 bytes and malformed encodings in a correctly signed body -> 4xx, never 5xx."""
    r = server.raw(body=body)
    assert 400 <= r.status < 500, r
    still_up(server)


def test_non_utf8_query_string(server):
    """The same in a GET query string."""
    key, secret, _ = CREDENTIALS["admin"]
    host, port = server.hostport
    with server.connect(timeout=10) as s:
        s.sendall(b"GET /?Action=DescribeFlowLogs&Version=2016-11-15&X=%ff\xff HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    assert 400 <= status < 500, data[:500]
    still_up(server)


@pytest.mark.parametrize("ctype", ["application/json", "text/plain", "multipart/form-data; boundary=x"])
def test_other_content_types(server, ctype):
    """A body that is not a form -> 4xx, never 5xx."""
    r = server.raw({"Action": "DescribeFlowLogs", "Version": VERSION}, headers={"Content-Type": ctype},
                   body=b'{"Action": "DescribeFlowLogs"}')
    assert 400 <= r.status < 500 or r.status == 200, r
    still_up(server)


def test_wrong_path_and_method(server):
    """Other paths/methods -> 4xx (not 5xx)."""
    import requests

    for method, path in (("PUT", "/"), ("DELETE", "/"), ("POST", "/nope"), ("GET", "/../../etc/passwd")):
        r = requests.request(method, server.url + path, data=b"Action=DescribeFlowLogs&Version=2016-11-15",
                             verify=server.verify)
        assert 400 <= r.status_code < 500, (method, path, r.status_code, r.text[:300])
    still_up(server)


def test_slowloris_does_not_block_others(server):
    """A client that sends half a request and stalls must not block other clients."""
    host, port = server.hostport
    s = server.connect(timeout=10)
    try:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nAction=Desc")
        still_up(server)
    finally:
        s.close()
    still_up(server)


def _raw_exchange(server, payload: bytes, timeout: float = 10) -> bytes:
    host, port = server.hostport
    with server.connect(timeout=timeout) as s:
        try:
            s.sendall(payload)
        except OSError:
            pass
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
                if b"\r\n\r\n" in data and len(data) > 12:
                    break
        except OSError:
            pass
    return data


def status_of(data: bytes) -> int:
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0


@pytest.mark.parametrize("kind", ["huge-header", "many-headers", "garbage", "cl-and-te", "bad-content-length"])
def test_malformed_http(server, kind):
    """Broken HTTP never crashes the server: a 4xx or a closed connection, never a 5xx."""
    if kind == "huge-header":
        payload = b"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: " + b"A" * (1024 * 1024) + b"\r\n\r\n"
    elif kind == "many-headers":
        payload = b"POST / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(5000)) + b"\r\n"
    elif kind == "garbage":
        payload = bytes(range(256)) * 64
    elif kind == "cl-and-te":
        payload = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
    else:
        payload = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\nAction=x"
    data = _raw_exchange(server, payload)
    st = status_of(data)
    assert st == 0 or 400 <= st < 500, data[:300]
    still_up(server)


def test_many_idle_connections(server):
    """300 idle half-open connections do not stop the server from answering others."""
    host, port = server.hostport
    socks = []
    try:
        for _ in range(300):
            s = server.connect(timeout=10)
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)
        still_up(server)
    finally:
        for s in socks:
            s.close()
    still_up(server)
