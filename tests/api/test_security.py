"""Issue 9 (security): one attack per finding, driven with real clients (botocore's SigV4 signers,
boto3, raw sockets) against the real `flowlog serve`. Written before the fixes: every attack here
succeeds on the code of the day the issue was filed, and each test asserts the behaviour of the
contract in /work/notes/issue9-contract.md (what the fixed server does instead).

RSS figures (VmHWM / VmRSS of the server from /proc/PID/status) are printed by the exhaustion
tests; run with `-s` to see them. With S9_BASELINE=1 the exhaustion tests leave out the new
`[server]` settings so that an unfixed binary starts and the same attack can be measured on it
(the assertions still apply; the "before" numbers are what they print).

Traffic goes to 127.0.0.1 only; the 0.0.0.0 listener tests only bind (and talk to it over
127.0.0.1).
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import selectors
import signal
import socket
import subprocess
import threading
import time
import tomllib
import urllib.parse
from pathlib import Path

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest
import requests

from apiharness import (ACCOUNT, CREDENTIALS, FLOWLOG_BIN, REGION, REPO, VERSION, Cred, Reply, Server,
                        expect_error, expect_ok, flatten, one_process_store)

ACCOUNT_B = "210987654321"
AGENT_A = Cred("AKIAS9AGENTACCOUNTA1", "s9agentASecret/111111111111111111111111", ["flowlog:AgentSync"])
AGENT_B = Cred("AKIAS9AGENTACCOUNTB1", "s9agentBSecret/222222222222222222222222", ["flowlog:AgentSync"],
               account_id=ACCOUNT_B)
AGENTS = {"agentA": AGENT_A, "agentB": AGENT_B}
NO_AGENT = "\n[agent]\nenabled = false\n"
SYNC_PATH = "/agent/v1/sync"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MIB = 1024 * 1024
BASELINE = os.environ.get("S9_BASELINE", "") not in ("", "0")


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def hygiene(opts: dict) -> dict:
    """The contract's connection-hygiene settings, or none at all in S9_BASELINE mode."""
    return {} if BASELINE else opts


# --------------------------------------------------------------------------------------------
# Signing by hand with botocore, so the attacks can change what is sent after signing


def _signer(cls, payload: str | None):
    """botocore's signer class, with the payload hash forced to `payload` when given."""
    if payload is None:
        return cls
    return type(f"{cls.__name__}Fixed", (cls,), {"payload": lambda self, request: payload})


def sign(srv: Server, *, path: str = "/", body: bytes = b"", params: dict | None = None,
         cred: str = "admin", headers: dict | None = None, payload: str | None = None,
         presign: bool = False, expires=300, method: str = "POST") -> tuple[str, dict]:
    """Signs a request; returns (url, headers) to send with whatever body the attacker likes.
    `params` (presign only) are moved to the query string by botocore's presigner."""
    c = srv.creds[cred]
    hdrs = dict(headers or {})
    data = dict(params) if presign and params else body
    if presign and params:
        hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
    req = botocore.awsrequest.AWSRequest(method=method, url=srv.url + path, data=data, headers=hdrs)
    creds = botocore.credentials.Credentials(c.key, c.secret)
    if presign:
        _signer(botocore.auth.SigV4QueryAuth, payload)(creds, "ec2", REGION, expires=expires).add_auth(req)
    else:
        _signer(botocore.auth.SigV4Auth, payload)(creds, "ec2", REGION).add_auth(req)
    p = req.prepare()
    return p.url, {k: v for k, v in p.headers.items() if k.lower() != "content-length"}


def send(srv: Server, url: str, headers: dict, body: bytes, method: str = "POST", timeout: float = 60,
         stream: bool = False) -> requests.Response:
    return requests.request(method, url, headers=headers, data=body, timeout=timeout, verify=srv.verify,
                            stream=stream)


def reply(resp: requests.Response) -> Reply:
    return Reply(resp.status_code, resp.content, {k.lower(): v for k, v in resp.headers.items()})


def form(action: str, params=None) -> bytes:
    pairs = [("Action", action), ("Version", VERSION)] + flatten(params or [])
    return urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote).encode()


FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
JSON = {"Content-Type": "application/json"}


def expect_auth_failure(r: Reply, *words: str):
    expect_error(r, 401, "AuthFailure")
    if words:
        msg = (r.message or "").lower()
        assert any(w.lower() in msg for w in words), f"AuthFailure message should name one of {words}: {r!r}"


def vpc_cidrs(srv: Server) -> list[str]:
    return [v["CidrBlock"] for v in srv.client().describe_vpcs()["Vpcs"]]


def fl_exists(srv: Server, fl: str) -> bool:
    return [f["FlowLogId"] for f in srv.client().describe_flow_logs(FlowLogIds=[fl])["FlowLogs"]] == [fl]


def sync_body(host: str = "s9-host", inventory: str | None = None, interfaces=None, statuses=None) -> bytes:
    """A `SyncRequest` (crates/flowlog-agent/src/protocol.rs) as `flowlog agent` sends it."""
    return json.dumps({"host": host, "interfaces": interfaces or [], "inventory": inventory,
                       "statuses": statuses or []}).encode()


def sync(srv: Server, body: bytes, cred: str = "agentA", timeout: float = 30) -> requests.Response:
    """Signed as `flowlog agent` signs: with the body's hash in a signed x-amz-content-sha256."""
    url, hdrs = sign(srv, path=SYNC_PATH, body=body, cred=cred,
                     headers={**JSON, "X-Amz-Content-Sha256": sha(body)})
    return send(srv, url, hdrs, body, timeout=timeout)


def iface(name: str, ip: str, prefix: int = 24, idx: int = 7) -> dict:
    return {"netns": None, "name": name, "ifindex": idx, "mac": "02:00:00:00:00:%02x" % idx,
            "ipv4": [[ip, prefix]]}


@pytest.fixture(scope="module")
def sec(tmp_path_factory):
    """The module's server: the usual credentials plus two agents of two accounts; no capture agent."""
    srv = Server(tmp_path_factory.mktemp("s9sec"), config_extra=NO_AGENT, name="s9sec", extra_credentials=AGENTS)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


# ============================================================================================
# Finding 1: the body is bound to the signature


@pytest.mark.parametrize("evil", ["CreateVpc", "DeleteFlowLogs"])
@pytest.mark.parametrize("variant", ["unsigned-header", "signed-header"])
def test_replayed_describe_with_other_body(sec, variant, evil):
    """A captured signed DescribeVpcs, resent with a CreateVpc / DeleteFlowLogs body and the
    original body's hash in `x-amz-content-sha256`, is refused (401 AuthFailure naming the
    header) and has no effect. The same header with the body it describes is accepted."""
    fl = sec.fl_ok([sec.vpc("10.9.0.0/16")])[0]
    original = form("DescribeVpcs")
    extra = {"X-Amz-Content-Sha256": sha(original)} if variant == "signed-header" else {}
    url, hdrs = sign(sec, body=original, headers={**FORM, **extra})
    hdrs["X-Amz-Content-Sha256"] = sha(original)
    # control: the right body with its right hash is fine
    expect_ok(reply(send(sec, url, hdrs, original)), "DescribeVpcs")
    evil_body = form("CreateVpc", {"CidrBlock": "10.123.0.0/16"}) if evil == "CreateVpc" \
        else form("DeleteFlowLogs", {"FlowLogId.1": fl})
    r = reply(send(sec, url, hdrs, evil_body))
    expect_auth_failure(r, "x-amz-content-sha256")
    assert "10.123.0.0/16" not in vpc_cidrs(sec), "the tampered CreateVpc was executed"
    assert fl_exists(sec, fl), "the tampered DeleteFlowLogs was executed"


@pytest.mark.parametrize("body_kind", ["as-signed", "swapped"])
def test_header_unsigned_payload_refused(sec, body_kind):
    """`x-amz-content-sha256: UNSIGNED-PAYLOAD` in the header form is refused on this API (401,
    message names UNSIGNED-PAYLOAD), whether the body is the one signed or another one."""
    original = form("DescribeVpcs")
    url, hdrs = sign(sec, body=original, headers={**FORM, "X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD"},
                     payload="UNSIGNED-PAYLOAD")
    body = original if body_kind == "as-signed" else form("CreateVpc", {"CidrBlock": "10.124.0.0/16"})
    r = reply(send(sec, url, hdrs, body))
    expect_auth_failure(r, "UNSIGNED-PAYLOAD")
    assert "10.124.0.0/16" not in vpc_cidrs(sec), "CreateVpc under UNSIGNED-PAYLOAD was executed"


@pytest.mark.parametrize("variant", ["empty-hash-header", "unsigned-payload", "unsigned-payload-header"])
def test_presigned_delete_cannot_be_stretched(sec, variant):
    """A presigned DeleteFlowLogs for one ID, POSTed with `FlowLogId.2=<another>` in the body
    (URL signed over the empty-body hash and sent with that hash in the header, or signed over
    UNSIGNED-PAYLOAD with or without the header), is refused: presigned requests carry their
    parameters in the query string. With an empty body the same URL works and deletes only its ID."""
    a = sec.fl_ok([sec.vpc("10.10.0.0/16")])[0]
    b = sec.fl_ok([sec.vpc("10.11.0.0/16")])[0]
    payload = EMPTY_SHA256 if variant == "empty-hash-header" else None  # botocore: UNSIGNED-PAYLOAD
    url, hdrs = sign(sec, params={"Action": "DeleteFlowLogs", "Version": VERSION, "FlowLogId.1": a},
                     presign=True, payload=payload)
    attack_hdrs = dict(hdrs, **FORM)
    if variant == "empty-hash-header":
        attack_hdrs["X-Amz-Content-Sha256"] = EMPTY_SHA256
    elif variant == "unsigned-payload-header":
        attack_hdrs["X-Amz-Content-Sha256"] = "UNSIGNED-PAYLOAD"
    r = reply(send(sec, url, attack_hdrs, f"FlowLogId.2={b}".encode()))
    expect_auth_failure(r, "query", "x-amz-content-sha256", "UNSIGNED-PAYLOAD")
    assert fl_exists(sec, b), "the stretched presigned DeleteFlowLogs deleted an ID it was not signed for"
    assert fl_exists(sec, a), "a refused request must not delete anything"
    # control: the presigned URL as issued (empty body) still works
    expect_ok(reply(send(sec, url, hdrs, b"")), "DeleteFlowLogs")
    assert not fl_exists(sec, a) and fl_exists(sec, b)


@pytest.mark.parametrize("expires,accepted", [(604800, True), (604801, False), (999999999, False),
                                              (0, False), ("abc", False)])
def test_presigned_expires_bounded(sec, expires, accepted):
    """X-Amz-Expires must be 1..604800 (7 days) as AWS has it; larger, smaller or not a number
    -> 401 AuthFailure naming 604800."""
    url, hdrs = sign(sec, params={"Action": "DescribeFlowLogs", "Version": VERSION}, presign=True,
                     expires=expires)
    assert f"X-Amz-Expires={expires}" in url
    r = reply(send(sec, url, hdrs, b"", method="POST"))
    if accepted:
        expect_ok(r, "DescribeFlowLogs")
    else:
        expect_auth_failure(r, "604800")


# -- the same for agent sync ------------------------------------------------------------------

EVIL_INVENTORY = """
[[vpc]]
name = "s9-evil"
cidr_block = "10.125.0.0/16"
"""


@pytest.mark.parametrize("variant", ["unsigned-header", "signed-header", "unsigned-payload", "presigned"])
def test_sync_tampered_body_refused(sec, variant):
    """`POST /agent/v1/sync` uses the same verifier: a sync signed over one body and sent with
    another (hash header unsigned or signed, UNSIGNED-PAYLOAD, presigned URL with a body) is
    refused with HTTP 401 and registers nothing. The honest sync is answered 200."""
    honest = sync_body("s9-tamper")
    r = sync(sec, honest)
    assert r.status_code == 200 and "assignments" in r.json(), (r.status_code, r.text[:500])
    evil = sync_body("s9-tamper", inventory=EVIL_INVENTORY)
    if variant == "presigned":
        url, hdrs = sign(sec, path=SYNC_PATH, params=None, presign=True, cred="agentA")
        hdrs.update(JSON)
    elif variant == "unsigned-payload":
        url, hdrs = sign(sec, path=SYNC_PATH, body=honest, cred="agentA",
                         headers={**JSON, "X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD"}, payload="UNSIGNED-PAYLOAD")
    else:
        extra = {"X-Amz-Content-Sha256": sha(honest)} if variant == "signed-header" else {}
        url, hdrs = sign(sec, path=SYNC_PATH, body=honest, cred="agentA", headers={**JSON, **extra})
        hdrs["X-Amz-Content-Sha256"] = sha(honest)
    r = send(sec, url, hdrs, evil)
    assert r.status_code == 401, f"tampered sync answered {r.status_code}: {r.text[:500]}"
    assert "10.125.0.0/16" not in vpc_cidrs(sec), "the tampered sync registered a VPC"


def test_sync_without_declared_hash_refused_before_body(sec):
    """A sync that does not declare its body's hash cannot be authenticated before its body is
    read, so it is refused (401) from the headers alone, however honest its signature."""
    body = sync_body("s9-nohash")
    url, hdrs = sign(sec, path=SYNC_PATH, body=body, cred="agentA", headers=JSON)
    r = send(sec, url, hdrs, body)
    assert r.status_code == 401 and "x-amz-content-sha256" in r.text, (r.status_code, r.text[:300])


def test_sync_signature_checked_before_large_body(sec):
    """A sync whose headers carry `x-amz-content-sha256` and a bad signature is answered 401 from
    the headers alone: the server does not wait for (or buffer) the 8 MiB body it announces."""
    url, hdrs = sign(sec, path=SYNC_PATH, body=b"{}", cred="agentA",
                     headers={**JSON, "X-Amz-Content-Sha256": sha(b"x" * (8 * MIB))})
    hdrs["Authorization"] = hdrs["Authorization"][:-8] + "00000000"  # break the signature
    host, port = sec.hostport
    head = f"POST {SYNC_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {8 * MIB}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in hdrs.items() if k.lower() != "host") + "\r\n"
    with sec.connect(timeout=10) as s:
        s.sendall(head.encode() + b"x" * 1024)
        s.settimeout(5)
        started = time.time()
        try:
            data = s.recv(4096)
        except (socket.timeout, TimeoutError):
            data = b""
    assert data.startswith(b"HTTP/1.1 401"), (
        f"no 401 within {time.time() - started:.1f}s of the headers (the server waits for the body): {data[:200]!r}")


# ============================================================================================
# Finding 2: accounts and agents kept apart


def test_cross_account_sync_changes_nothing(sec):
    """Account B's agent credential (flowlog:AgentSync) names account A's VPC, subnet and ENI IDs
    in its inventory with other CIDRs, address, status and `flowlog:host`, and reports FAILED
    for A's flow log. Described as A afterwards, nothing of A changed, and A's agent still gets
    its ENI assigned (the capture was not moved to B's host)."""
    inv_a = """
[[vpc]]
name = "s9-a"
cidr_block = "10.50.0.0/16"
[[subnet]]
name = "s9-a-sub"
vpc = "s9-a"
cidr_block = "10.50.1.0/24"
[[network_interface]]
subnet = "s9-a-sub"
interface = "s9a0"
private_ip = "10.50.1.10"
"""
    body_a = sync_body("s9-hostA", inventory=inv_a, interfaces=[iface("s9a0", "10.50.1.10")])
    r = sync(sec, body_a, cred="agentA")
    assert r.status_code == 200, r.text
    ec2 = sec.client()
    vpc = next(v for v in ec2.describe_vpcs()["Vpcs"] if v["CidrBlock"] == "10.50.0.0/16")
    sub = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"][0]
    eni = ec2.describe_network_interfaces(
        Filters=[{"Name": "subnet-id", "Values": [sub["SubnetId"]]}])["NetworkInterfaces"][0]
    assert eni["Status"] == "in-use" and eni["PrivateIpAddress"] == "10.50.1.10"
    assert {"Key": "flowlog:host", "Value": "s9-hostA"} in eni["TagSet"]
    fl = sec.fl_ok([vpc["VpcId"]])[0]
    fl_before = ec2.describe_flow_logs(FlowLogIds=[fl])["FlowLogs"][0]
    assert fl_before["DeliverLogsStatus"] == "SUCCESS"
    assigned = [a["eni_id"] for a in sync(sec, body_a, cred="agentA").json()["assignments"]]
    assert eni["NetworkInterfaceId"] in assigned

    inv_b = f"""
[[vpc]]
id = "{vpc['VpcId']}"
cidr_block = "10.66.0.0/16"
[[subnet]]
id = "{sub['SubnetId']}"
vpc = "{vpc['VpcId']}"
cidr_block = "10.66.1.0/24"
[[network_interface]]
id = "{eni['NetworkInterfaceId']}"
subnet = "{sub['SubnetId']}"
interface = "s9evil0"
private_ip = "10.66.1.99"
"""
    attacks = [
        sync_body("s9-hostB", inventory=inv_b, interfaces=[],
                  statuses=[{"flow_log_id": fl, "status": "FAILED", "message": "s9 taken over"}]),
        sync_body("s9-hostB", statuses=[{"flow_log_id": fl, "status": "FAILED", "message": "s9 taken over"}]),
    ]
    for body in attacks:
        r = sync(sec, body, cred="agentB")
        assert r.status_code < 500, (r.status_code, r.text[:500])

    vpc2 = ec2.describe_vpcs(VpcIds=[vpc["VpcId"]])["Vpcs"][0]
    sub2 = ec2.describe_subnets(SubnetIds=[sub["SubnetId"]])["Subnets"][0]
    eni2 = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni["NetworkInterfaceId"]])["NetworkInterfaces"][0]
    fl2 = ec2.describe_flow_logs(FlowLogIds=[fl])["FlowLogs"][0]
    problems = []
    if vpc2["CidrBlock"] != vpc["CidrBlock"]:
        problems.append(f"VPC CIDR {vpc['CidrBlock']} -> {vpc2['CidrBlock']}")
    if vpc2.get("OwnerId", ACCOUNT) != ACCOUNT:
        problems.append(f"VPC owner -> {vpc2.get('OwnerId')}")
    if sub2["CidrBlock"] != sub["CidrBlock"]:
        problems.append(f"subnet CIDR {sub['CidrBlock']} -> {sub2['CidrBlock']}")
    for k in ("PrivateIpAddress", "Status", "SubnetId", "VpcId", "OwnerId"):
        if eni2.get(k) != eni.get(k):
            problems.append(f"ENI {k} {eni.get(k)} -> {eni2.get(k)}")
    if sorted(eni2["TagSet"], key=str) != sorted(eni["TagSet"], key=str):
        problems.append(f"ENI tags {eni['TagSet']} -> {eni2['TagSet']}")
    if fl2["DeliverLogsStatus"] != "SUCCESS" or fl2.get("DeliverLogsErrorMessage"):
        problems.append(f"DeliverLogsStatus -> {fl2['DeliverLogsStatus']} {fl2.get('DeliverLogsErrorMessage')!r}")
    assigned = [a["eni_id"] for a in sync(sec, body_a, cred="agentA").json()["assignments"]]
    if eni["NetworkInterfaceId"] not in assigned:
        problems.append("A's agent no longer gets its ENI assigned (capture moved away)")
    assert not problems, "account B changed account A's resources: " + "; ".join(problems)


def test_credential_pinned_to_hosts(tmp_path):
    """`hosts = [...]` on a credential: it may sync only as those host names (else 403); a
    credential without `hosts` may sync as any host."""
    pinned = Cred("AKIAS9PINNEDAGENT001", "s9pinnedSecret/33333333333333333333333", ["flowlog:AgentSync"],
                  hosts=["s9-h1", "s9-h2"])
    srv = Server(tmp_path, config_extra=NO_AGENT, name="s9pin", extra_credentials={**AGENTS, "pinned": pinned})
    srv.start()
    try:
        for host, want in (("s9-h1", 200), ("s9-h2", 200), ("s9-h3", 403), ("", 403)):
            r = sync(srv, sync_body(host), cred="pinned")
            assert r.status_code == want, (host, r.status_code, r.text[:300])
        r = sync(srv, sync_body("s9-h3"), cred="agentA")
        assert r.status_code == 200, r.text[:300]
    finally:
        srv.stop()


def test_pinned_agent_cannot_take_over_another_hosts_eni(tmp_path):
    """Two agents of one account, each pinned to its host. Host 1 names host 2's ENI in its
    inventory (new subnet, new address): 403, and the ENI keeps its host, subnet and address, so
    host 2 keeps capturing it."""
    h1 = Cred("AKIAS9PINNEDHOST0001", "s9host1Secret/4444444444444444444444444", ["flowlog:AgentSync"],
              hosts=["s9-h1"])
    h2 = Cred("AKIAS9PINNEDHOST0002", "s9host2Secret/5555555555555555555555555", ["flowlog:AgentSync"],
              hosts=["s9-h2"])
    srv = Server(tmp_path, config_extra=NO_AGENT, name="s9take", extra_credentials={"h1": h1, "h2": h2})
    srv.start()
    try:
        r = sync(srv, sync_body("s9-h2", interfaces=[iface("eth0", "10.77.1.9")]), cred="h2")
        assert r.status_code == 200, r.text[:300]
        ec2 = srv.client()
        enis = ec2.describe_network_interfaces(Filters=[{"Name": "tag:flowlog:host", "Values": ["s9-h2"]}])
        [eni] = enis["NetworkInterfaces"]
        before = (eni["SubnetId"], eni["PrivateIpAddress"])
        ec2.create_flow_logs(ResourceIds=[eni["NetworkInterfaceId"]], ResourceType="NetworkInterface",
                             TrafficType="ALL", LogDestinationType="s3",
                             LogDestination="arn:aws:s3:::s9-take")
        inventory = ("[[vpc]]\nname = \"evil\"\ncidr_block = \"172.31.0.0/16\"\n"
                     "[[subnet]]\nname = \"evil-a\"\nvpc = \"evil\"\ncidr_block = \"172.31.1.0/24\"\n"
                     f"[[network_interface]]\nid = \"{eni['NetworkInterfaceId']}\"\nsubnet = \"evil-a\"\n"
                     "interface = \"eth0\"\nprivate_ip = \"172.31.1.66\"\n")
        r = sync(srv, sync_body("s9-h1", inventory=inventory), cred="h1")
        assert r.status_code == 403, (r.status_code, r.text[:300])
        [after] = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni["NetworkInterfaceId"]])["NetworkInterfaces"]
        assert (after["SubnetId"], after["PrivateIpAddress"]) == before
        assert {"Key": "flowlog:host", "Value": "s9-h2"} in after["TagSet"]
        r = sync(srv, sync_body("s9-h2", interfaces=[iface("eth0", "10.77.1.9")]), cred="h2")
        assert [a["eni_id"] for a in r.json()["assignments"]] == [eni["NetworkInterfaceId"]]
    finally:
        srv.stop()


# ============================================================================================
# Finding 3: bounded replies and ID counts


def unknown_ids(n: int, base: int = 0xabc000) -> list[str]:
    return ["fl-%017x" % (base + i) for i in range(n)]


def signed_post(srv: Server, body: bytes, stream: bool = True, timeout: float = 120) -> requests.Response:
    url, hdrs = sign(srv, body=body, headers=FORM)
    return send(srv, url, hdrs, body, stream=stream, timeout=timeout)


def read_capped(resp: requests.Response, cap: int) -> bytes:
    out = b""
    for chunk in resp.iter_content(65536):
        out += chunk
        if len(out) > cap:
            resp.close()
            raise AssertionError(f"reply larger than {cap} bytes (Content-Length {resp.headers.get('content-length')})")
    return out


def test_delete_4990_unknown_ids_refused(sec):
    """DeleteFlowLogs with 4990 unknown IDs (the 178 KB request that got a 524 MB reply) -> 400
    InvalidParameterValue naming the bound of 1000."""
    body = form("DeleteFlowLogs", {"FlowLogId": unknown_ids(4990)})
    resp = signed_post(sec, body)
    if resp.status_code != 400:
        resp.close()
        raise AssertionError(f"got HTTP {resp.status_code}, Content-Length {resp.headers.get('content-length')}")
    r = Reply(400, read_capped(resp, 64 * 1024), {})
    expect_error(r, 400, "InvalidParameterValue")
    assert "1000" in r.message, r


def test_delete_1000_unknown_ids_reply_is_linear(sec):
    """DeleteFlowLogs with 1000 unknown IDs: 1000 Unsuccessful items, each naming its own ID only
    (`... not found: [TotalCount: 1] fl-...`), so the reply stays well under 1 MB."""
    ids = unknown_ids(1000)
    resp = signed_post(sec, form("DeleteFlowLogs", {"FlowLogId": ids}))
    size_hint = resp.headers.get("content-length")
    data = read_capped(resp, 1_000_000)
    print(f"\n[s9] DeleteFlowLogs 1000 unknown IDs: reply {len(data)} bytes (Content-Length {size_hint})")
    r = expect_ok(Reply(resp.status_code, data, {}), "DeleteFlowLogs")
    items = r.unsuccessful()
    assert [i["resourceId"] for i in items] == ids
    for i in items:
        assert i["code"] == "InvalidFlowLogId.NotFound", i
        assert i["message"] == f"These flow log ids in the input list are not found: [TotalCount: 1] {i['resourceId']}", i


@pytest.mark.parametrize("action", ["DescribeFlowLogs", "DeleteFlowLogs"])
def test_more_than_1000_ids_refused(sec, action):
    """Describe and Delete take at most 1000 FlowLogId.N: 1001 -> 400 InvalidParameterValue
    naming 1000; 1000 is fine."""
    r = reply(signed_post(sec, form(action, {"FlowLogId": unknown_ids(1001)}), stream=False))
    expect_error(r, 400, "InvalidParameterValue")
    assert "1000" in r.message, r
    if action == "DescribeFlowLogs":
        expect_ok(reply(signed_post(sec, form(action, {"FlowLogId": unknown_ids(1000)}), stream=False)), action)


# ============================================================================================
# Finding 5: client mistakes are 4xx, never 500

FILTER_NAME = {"DescribeFlowLogs": "log-group-name", "DescribeVpcs": "vpc-id", "DescribeSubnets": "subnet-id",
               "DescribeNetworkInterfaces": "network-interface-id"}
FILTER_LIMIT_MSG = "The maximum number of filter values specified on a single call is 200"


def filters(action: str, counts: list[int], value=lambda i: f"s9v{i}") -> dict:
    p = {}
    for f, n in enumerate(counts, 1):
        p[f"Filter.{f}.Name"] = FILTER_NAME[action]
        for i in range(1, n + 1):
            p[f"Filter.{f}.Value.{i}"] = value(i)
    return p


@pytest.mark.parametrize("action", list(FILTER_NAME))
@pytest.mark.parametrize("counts", [[999], [201], [101, 100]], ids=["999", "201", "101+100"])
def test_too_many_filter_values(sec, action, counts):
    """More than 200 filter values in one call -> 400 FilterLimitExceeded (AWS's message), for
    every Describe* action; exactly 200 is answered."""
    r = reply(signed_post(sec, form(action, filters(action, counts)), stream=False))
    expect_error(r, 400, "FilterLimitExceeded", FILTER_LIMIT_MSG)
    expect_ok(reply(signed_post(sec, form(action, filters(action, [100, 100])), stream=False)), action)


@pytest.mark.parametrize("action", list(FILTER_NAME))
@pytest.mark.parametrize("kind", ["glob-50k", "plain-1025"])
def test_long_filter_value(sec, action, kind):
    """A filter value longer than 1024 characters (a 50 KB glob pattern, or 1025 plain
    characters) -> 400 InvalidParameterValue naming 1024; 1024 characters are answered."""
    value = "*a" * 25000 if kind == "glob-50k" else "b" * 1025
    r = reply(signed_post(sec, form(action, filters(action, [1], lambda i: value)), stream=False))
    expect_error(r, 400, "InvalidParameterValue")
    assert "1024" in r.message, r
    expect_ok(reply(signed_post(sec, form(action, filters(action, [1], lambda i: "*a" * 512)), stream=False)),
              action)


# ============================================================================================
# Finding 4: unauthenticated exhaustion


def raise_own_fd_limit(n: int):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


def timed_describe(srv: Server, timeout: float) -> float:
    """Seconds a boto3 DescribeFlowLogs took (raises when it fails or times out)."""
    t = time.time()
    srv.client(timeout=timeout).describe_flow_logs()
    return time.time() - t


def record(label: str, srv: Server, extra: str = ""):
    st = srv.rss()
    print(f"\n[s9] {label}: VmHWM={st['VmHWM'] // 1024} MiB VmRSS={st['VmRSS'] // 1024} MiB "
          f"threads={st.get('Threads')} {extra}".rstrip())
    return st


@pytest.mark.parametrize("target,clients,length,chunk,limit_mib",
                         [("api", 300, 2 * MIB, 48 * 1024, 160), ("sync", 60, 8 * MIB, 256 * 1024, 150)],
                         ids=["api-300x2MiB", "sync-60x8MiB"])
def test_slow_bodies_bounded(tmp_path, target, clients, length, chunk, limit_mib):
    """Many clients announce a large body and trickle it (a chunk every 0.5 s for 10 s). With
    `body_timeout_secs = 2` each is answered 408 / closed after 2 s, the server's peak RSS
    grows by less than the bound, and another client is served within a few seconds meanwhile."""
    raise_own_fd_limit(4096)
    srv = Server(tmp_path, config_extra=NO_AGENT, name="s9slow", extra_credentials=AGENTS,
                 server_opts=hygiene({"body_timeout_secs": 2, "header_timeout_secs": 2}))
    srv.start()
    socks = []
    try:
        timed_describe(srv, 10)
        before = record(f"slow bodies ({target}) before", srv)
        path = SYNC_PATH if target == "sync" else "/"
        # a known access key with a signature that cannot verify: only the body decides
        key = srv.creds["agentA"].key
        auth = (f"AWS4-HMAC-SHA256 Credential={key}/20260101/{REGION}/ec2/aws4_request, "
                f"SignedHeaders=host;x-amz-date, Signature={'0' * 64}")
        ctype = "application/json" if target == "sync" else "application/x-www-form-urlencoded"
        host, port = srv.hostport
        head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {ctype}\r\n"
                f"X-Amz-Date: {time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}\r\nAuthorization: {auth}\r\n"
                f"Content-Length: {length}\r\n\r\n").encode()
        for _ in range(clients):
            s = srv.connect(timeout=10)
            s.sendall(head)
            s.setblocking(False)
            socks.append(s)
        sent = [0] * clients
        closed_at: list[float | None] = [None] * clients
        answers: dict[str, int] = {}
        served: list[float] = []
        errors: list[str] = []
        started = time.time()

        def other_client():
            while time.time() - started < 9:
                try:
                    served.append(timed_describe(srv, 5))
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append(repr(e))
                time.sleep(1)

        t = threading.Thread(target=other_client)
        t.start()
        piece = b"A" * chunk
        peak = 0
        while time.time() - started < 10:
            for i, s in enumerate(socks):
                if closed_at[i] is not None:
                    continue
                try:
                    got = s.recv(4096)
                    if got == b"" or got.startswith(b"HTTP/1.1 4"):
                        closed_at[i] = time.time() - started
                        answers[got[9:12].decode() if got else "EOF"] = answers.get(got[9:12].decode() if got else "EOF", 0) + 1
                        continue
                except (BlockingIOError, socket.timeout):
                    pass
                except OSError:
                    closed_at[i] = time.time() - started
                    continue
                if sent[i] < length:
                    try:
                        sent[i] += s.send(piece[: length - sent[i]])
                    except (BlockingIOError, socket.timeout):
                        pass
                    except OSError:
                        closed_at[i] = time.time() - started
            peak = max(peak, srv.rss()["VmRSS"])
            time.sleep(0.5)
        t.join()
        after = record(f"slow bodies ({target}) after {clients} clients", srv,
                       f"sent={sum(sent) // MIB} MiB closed_by_server={sum(c is not None for c in closed_at)} answers={answers}")
        grew = (after["VmHWM"] - before["VmHWM"]) // 1024
        print(f"[s9] slow bodies ({target}): peak VmRSS {peak // 1024} MiB, VmHWM grew by {grew} MiB; "
              f"other client: {len(served)} calls, max {max(served, default=-1):.2f}s, errors {errors[:2]}")
        assert not errors and served and max(served) < 5, f"other client not served: {served} {errors[:3]}"
        n_closed = sum(c is not None and c < 6 for c in closed_at)
        assert n_closed >= 0.95 * clients, f"only {n_closed}/{clients} trickling connections were cut by the body timeout"
        assert grew < limit_mib, f"server peak RSS grew by {grew} MiB under {clients} trickling bodies"
    finally:
        for s in socks:
            s.close()
        srv.stop()


def probe_past_cap(host: str, port: int) -> str:
    """One request from a client past the connection cap; returns the answer's head."""
    data = b""
    try:
        with socket.create_connection((host, port), timeout=3) as p:
            p.sendall(b"GET /?Action=DescribeFlowLogs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            while b"\r\n\r\n" not in data:
                chunk = p.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError as e:
        data = data or repr(e).encode()
    return data.split(b"\r\n\r\n", 1)[0].decode("latin-1")


def test_idle_connections_capped(tmp_path):
    """2000 idle TCP connections against `max_connections = 200` (server with a normal 1024 fd
    limit): a client past the cap is still answered, because the connection idle longest makes
    room for it; every idle connection is closed by the server (evicted or header timeout); a
    normal client is served within a few seconds; RSS stays bounded."""
    raise_own_fd_limit(8192)
    header_timeout = 5
    srv = Server(tmp_path, config_extra=NO_AGENT, name="s9idle", nofile=1024, tls=False,
                 server_opts=hygiene({"max_connections": 200, "header_timeout_secs": header_timeout}))
    srv.start()
    socks: list[socket.socket] = []
    try:
        timed_describe(srv, 10)
        before = record("idle connections before", srv)
        host, port = srv.hostport
        refused = 0
        head = ""
        t0 = time.time()
        for n in range(2000):
            if n == 300:
                head = probe_past_cap(host, port)  # 200 idles hold every slot now
            try:
                s = socket.create_connection((host, port), timeout=3)
            except OSError:
                refused += 1  # the accept queue is full: the server stopped accepting
                if refused >= 10:
                    break
                continue
            s.setblocking(False)
            socks.append(s)
        opened = time.time()
        print(f"\n[s9] idle connections: {len(socks)} opened in {opened - t0:.1f}s, {refused} connects timed out")
        record("idle connections: 2000 open", srv)
        # every idle connection is closed by the server within header_timeout + margin
        sel = selectors.DefaultSelector()
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
        closed, got_503 = 0, 0
        while closed < len(socks) and time.time() - opened < header_timeout + 6:
            for key, _ in sel.select(timeout=0.5):
                s = key.fileobj
                try:
                    got = s.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    got = b""
                if got.startswith(b"HTTP/1.1 503"):
                    got_503 += 1
                sel.unregister(s)
                closed += 1
        sel.close()
        after = record("idle connections after", srv, f"closed_by_server={closed} with_503={got_503}")
        # unsigned, so the API answers AuthFailure: what matters is that the API answered
        assert head.startswith("HTTP/1.1 401"), \
            f"a client past max_connections (all held by idle connections) was not served: {head[:300]!r}"
        assert refused == 0 and len(socks) == 2000, f"only {len(socks)} of 2000 connections could be opened"
        assert closed == len(socks), f"only {closed}/2000 idle connections were closed by the server"
        took = timed_describe(srv, 10)
        print(f"[s9] idle connections: normal client served in {took:.2f}s after the idles were closed")
        assert took < 3
        grew = (after["VmHWM"] - before["VmHWM"]) // 1024
        assert grew < 100, f"RSS grew by {grew} MiB under 2000 idle connections"
    finally:
        for s in socks:
            s.close()
        srv.stop()


def test_busy_connections_past_cap_get_503(tmp_path):
    """When every connection is inside a request (a head being sent), a client past
    `max_connections` gets a clear 503 with `Retry-After: 1` and `Connection: close`, and the
    server keeps serving once the slow heads time out."""
    srv = Server(tmp_path, config_extra=NO_AGENT, name="s9busy", tls=False,
                 server_opts=hygiene({"max_connections": 50, "header_timeout_secs": 3}))
    srv.start()
    socks: list[socket.socket] = []
    try:
        host, port = srv.hostport
        for _ in range(50):
            s = socket.create_connection((host, port), timeout=3)
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")  # a head that never ends
            socks.append(s)
        time.sleep(0.5)
        head = probe_past_cap(host, port)
        lower = head.lower()
        assert head.startswith("HTTP/1.1 503") and "\r\nretry-after: 1" in lower and "connection: close" in lower, \
            f"a client past max_connections got no 503 with Retry-After: 1 and Connection: close: {head[:300]!r}"
        time.sleep(3 + 2)  # the slow heads hit header_timeout_secs and are closed
        took = timed_describe(srv, 10)
        assert took < 3, f"not served after the slow heads were closed: {took:.2f}s"
    finally:
        for s in socks:
            s.close()
        srv.stop()


def test_sigterm_with_half_sent_request(tmp_path):
    """A client holds a half-sent request (head plus part of the body); SIGTERM still ends the
    server within shutdown_timeout_secs + a margin, with exit code 0 (capture window flushed)."""
    srv = Server(tmp_path, config_extra=NO_AGENT, name="s9term",
                 server_opts=hygiene({"shutdown_timeout_secs": 2, "header_timeout_secs": 60,
                                      "body_timeout_secs": 60}))
    srv.start()
    try:
        timed_describe(srv, 10)
        s = srv.connect(timeout=10)
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                  b"Content-Length: 100000\r\n\r\nAction=DescribeFl")
        time.sleep(0.5)
        t = time.time()
        os.kill(srv.proc.pid, signal.SIGTERM)
        try:
            rc = srv.proc.wait(2 + 6)
        except subprocess.TimeoutExpired:
            rc = None
        took = time.time() - t
        s.close()
        print(f"\n[s9] SIGTERM with a half-sent request: exit {rc} after {took:.1f}s")
        assert rc == 0, f"flowlog serve did not exit within shutdown_timeout_secs + 6s (rc={rc}, {took:.1f}s)"
    finally:
        srv.kill()


# ============================================================================================
# Finding 6: listeners, metrics, secrets


def test_metrics_on_own_address(tmp_path):
    """`metrics_listen`: /metrics is served on its own address, and 404 on the API port."""
    from apiharness import free_port
    mport = free_port()
    # one process: the metrics address is this listener's own (replicas cannot share it)
    srv = Server(tmp_path, config_extra=NO_AGENT, name="s9metrics", store=one_process_store(),
                 server_opts={"metrics_listen": f"127.0.0.1:{mport}"})
    srv.start()
    try:
        scheme = "https" if srv.tls else "http"
        end = time.time() + 10
        while True:
            try:
                m = requests.get(f"{scheme}://127.0.0.1:{mport}/metrics", timeout=5, verify=srv.verify)
                break
            except requests.ConnectionError:
                if time.time() > end:
                    raise
                time.sleep(0.2)
        assert m.status_code == 200 and "flowlog" in m.text, (m.status_code, m.text[:300])
        api = requests.get(srv.url + "/metrics", timeout=5, verify=srv.verify)
        assert api.status_code == 404, (api.status_code, api.text[:300])
    finally:
        srv.stop()


def run_serve(tmp_path: Path, listen: str | None, extra_args=(), top: dict | None = None,
              server_opts: dict | None = None, extra_credentials: dict | None = None, wait: float = 15):
    """Starts `flowlog serve` on a fresh data dir and returns (rc or None if still running,
    output, Server). Nothing is sent to the listener; the caller stops the server. One process
    (no replicas' proxy): these tests are about this listener's own options and printed URL."""
    srv = Server(tmp_path, config_extra=NO_AGENT, name="s9listen", listen=listen, args=list(extra_args),
                 top=top, server_opts=server_opts, extra_credentials=extra_credentials, tls=False,
                 store=one_process_store())
    fresh = tmp_path / "fresh-data"
    srv.data_dir = fresh
    try:
        srv.start(timeout=wait)
        return None, srv.output(), srv
    except RuntimeError as e:
        return srv.proc.returncode if srv.proc else -1, str(e) + srv.output(), srv


@pytest.mark.parametrize("where", ["flag", "config"])
def test_non_loopback_plain_http_refused(tmp_path, where):
    """A non-loopback listener without TLS refuses to start (non-zero exit, message naming
    --insecure-listen) before creating anything (no data dir)."""
    rc, out, srv = run_serve(tmp_path, "0.0.0.0:0" if where == "flag" else None,
                             top=None if where == "flag" else {"listen": "0.0.0.0:0"})
    try:
        assert rc is not None and rc != 0, f"plain HTTP on 0.0.0.0 started: {out[-1000:]}"
        assert "--insecure-listen" in out, out[-2000:]
        assert not (tmp_path / "fresh-data").exists(), "the refused start created its data dir"
    finally:
        srv.stop()


@pytest.mark.parametrize("where", ["flag", "config"])
def test_insecure_listen_opt_in(tmp_path, where):
    """With --insecure-listen (or `insecure_listen = true`) plain HTTP on 0.0.0.0 starts, prints
    a WARNING, and answers (over 127.0.0.1)."""
    rc, out, srv = run_serve(tmp_path, "0.0.0.0:0", extra_args=["--insecure-listen"] if where == "flag" else [],
                             server_opts={"insecure_listen": True} if where == "config" else None)
    try:
        assert rc is None, f"did not start with the opt-in: {out[-2000:]}"
        assert "WARNING" in srv.output(), srv.output()[-2000:]
        assert srv.url.startswith("http://0.0.0.0:"), srv.url
        port = srv.hostport[1]
        srv.url = f"http://127.0.0.1:{port}"
        expect_ok(srv.describe(), "DescribeFlowLogs")
    finally:
        srv.stop()


def example_credentials() -> dict:
    doc = tomllib.loads((REPO / "flowlog.example.toml").read_text())
    return {f"example{i}": Cred(c["access_key_id"], c["secret_access_key"], c.get("allow", []))
            for i, c in enumerate(doc["credentials"])}


@pytest.mark.parametrize("which", [0, 1])
def test_published_example_secret_refused_beyond_loopback(tmp_path, which):
    """A credential using a secret published in flowlog.example.toml, with a non-loopback
    listen (opted in to plain HTTP, so that is not the reason), refuses to start naming the
    credential and the file. On loopback the same config starts (lab use)."""
    ex = example_credentials()
    name = f"example{which}"
    assert ex[name].secret.startswith("change-me-to-a-long-random-secret-000")
    rc, out, srv = run_serve(tmp_path, "0.0.0.0:0", extra_args=["--insecure-listen"],
                             extra_credentials={name: ex[name]})
    try:
        assert rc is not None and rc != 0, f"started beyond loopback with a published secret: {out[-1000:]}"
        assert ex[name].key in out and str(srv.config) in out, out[-2000:]
        assert ex[name].secret not in out, "the refusal printed the secret itself"
    finally:
        srv.stop()
    (tmp_path / "lo").mkdir()
    rc, out, srv = run_serve(tmp_path / "lo", "127.0.0.1:0", extra_credentials={name: ex[name]})
    try:
        assert rc is None, f"loopback with the example secret must still start: {out[-1000:]}"
    finally:
        srv.stop()


ALL_SECRETS = [c[1] for c in CREDENTIALS.values()] + [AGENT_A.secret, AGENT_B.secret]


def test_help_never_shows_secrets(tmp_path):
    """`--help` of every command, with secrets in the environment it reads, never shows them."""
    env = {**os.environ, "AWS_SECRET_ACCESS_KEY": AGENT_A.secret, "AWS_ACCESS_KEY_ID": AGENT_A.key,
           "FLOWLOG_ACCESS_KEY_ID": AGENT_A.key, "FLOWLOG_SECRET_ACCESS_KEY": AGENT_A.secret}
    for args in ([], ["serve"], ["agent"], ["credentials"], ["pcap"], ["capture"], ["logs"]):
        cp = subprocess.run([FLOWLOG_BIN, *args, "--help"], capture_output=True, text=True, env=env, timeout=30)
        assert cp.returncode == 0, (args, cp.stderr)
        assert AGENT_A.secret not in cp.stdout + cp.stderr, f"`flowlog {' '.join(args)} --help` shows the secret"
    # an agent that cannot reach its control plane reports the failure without its secret
    cp = subprocess.run([FLOWLOG_BIN, "agent", "--control-plane", "http://127.0.0.1:9", "--data-dir",
                         str(tmp_path / "a"), "--inventory", str(tmp_path / "missing.toml")],
                        capture_output=True, text=True, env={**env, "FLOWLOG_LOG": "trace"}, timeout=30)
    assert AGENT_A.secret not in cp.stdout + cp.stderr


def test_logs_never_show_secrets(tmp_path):
    """At trace level, through good and bad requests, a sync and a restart, the server's output
    never contains a configured secret."""
    srv = Server(tmp_path, config_extra=NO_AGENT, name="s9logs", extra_credentials=AGENTS,
                 env={"FLOWLOG_LOG": "trace"})
    srv.start()
    try:
        srv.vpc()
        srv.call("DescribeFlowLogs", secret="wrong-secret-s9")
        srv.call("DescribeFlowLogs", headers={"X-Amz-Content-Sha256": "0" * 64})
        assert sync(srv, sync_body("s9-logs")).status_code == 200
        srv.stop()
        srv.start()
        srv.call("DescribeFlowLogs")
    finally:
        srv.stop()
    out = srv.output()
    assert len(out) > 200, "expected some log output at trace level"
    leaked = [s for s in ALL_SECRETS if s in out]
    assert not leaked, f"secrets in the server's output: {leaked}"
