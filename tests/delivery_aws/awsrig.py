"""Building blocks of the AWS-credential delivery tests (issue 11): a recording (and
fault-injecting) reverse proxy in front of moto_server, a local IMDSv2 stand-in, a hermetic
environment for `flowlog serve`, the serve config without keys, traffic with an exact number of
flows, and readers of what moto received.

Everything listens on 127.0.0.1; traffic between the lab namespaces stays in 10.77.0.0/16.
Every process is stopped by PID, every server shut down, by the fixture that made it.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
from lab import ACCOUNT, ADMIN, FLOWLOG_BIN, REGION, VENV_BIN, Lab, free_port  # noqa: E402,F401

ROLE = "arn:aws:iam::123456789012:role/flowlogs-deliver"
UDP_PORT = 5000
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "trailer", "upgrade"}
CRED_RE = re.compile(r"Credential=([^/,\s]+)/[0-9]{8}/([^/]+)/([^/]+)/aws4_request")


def utc(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(s: str) -> float:
    s = s.strip()
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"):
        try:
            d = datetime.strptime(s, fmt)
            if d.tzinfo is None:
                d = d.replace(tzinfo=timezone.utc)
            return d.timestamp()
        except ValueError:
            pass
    raise ValueError(f"not a timestamp: {s!r}")


# ------------------------------------------------------------------------------------------
# The recording proxy
# ------------------------------------------------------------------------------------------

@dataclass
class Call:
    """One request the proxy saw (and what it answered)."""
    t: float
    method: str
    path: str
    service: str          # from the SigV4 scope; "sts" for the unsigned AssumeRoleWithWebIdentity
    target: str           # X-Amz-Target, the query protocol's Action, or "METHOD /bucket/..." for S3
    key: str | None       # access key id that signed it (None: unsigned)
    token: str | None     # X-Amz-Security-Token
    form: dict            # decoded form/query parameters (STS)
    status: int | str = 0  # HTTP status answered, or "hang" / "fault"

    @property
    def bucket(self) -> str | None:
        if self.service != "s3":
            return None
        seg = self.path.lstrip("/").split("/", 1)[0].split("?", 1)[0]
        return seg or None


@dataclass
class Issued:
    key: str
    secret: str
    token: str | None
    expiration: float | None
    by: str               # e.g. "sts:AssumeRole", "imds"
    t: float = field(default_factory=time.time)
    role: str | None = None  # the RoleArn an STS answer was for


class Fault:
    """What the proxy answers instead of forwarding."""

    def __init__(self, status: int | None = None, body: bytes = b"", content_type: str = "text/xml",
                 hang: bool = False):
        self.status, self.body, self.content_type, self.hang = status, body, content_type, hang

    @staticmethod
    def sts_access_denied() -> "Fault":
        body = (b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
                b'<Code>AccessDenied</Code><Message>User is not authorized to perform: sts:AssumeRole</Message>'
                b'</Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>')
        return Fault(403, body)


class RecordingProxy:
    """HTTP reverse proxy on 127.0.0.1 in front of `upstream` (moto): records every request
    (signing key, session token, target) and every credential an STS answer hands out; `fault`
    (a callable on the parsed request) may answer instead, or hang (accept, never answer)."""

    def __init__(self, upstream: str):
        u = urllib.parse.urlsplit(upstream)
        self.up_host, self.up_port = u.hostname, u.port
        self.calls: list[Call] = []
        self.issued: dict[str, Issued] = {}
        self.lock = threading.Lock()
        self.fault: Callable[[Call], Fault | None] | None = None
        self.release = threading.Event()   # set: hung requests end (connection closed, no answer)
        self.hanging = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                proxy._handle(self)

            do_PUT = do_POST = do_HEAD = do_DELETE = do_GET

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> "RecordingProxy":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- queries -----------------------------------------------------------------------------
    def snapshot(self) -> list[Call]:
        with self.lock:
            return list(self.calls)

    def of(self, service: str) -> list[Call]:
        return [c for c in self.snapshot() if c.service == service]

    def sts_calls(self, action: str) -> list[Call]:
        return [c for c in self.of("sts") if c.target == action]

    # -- the work ----------------------------------------------------------------------------
    @staticmethod
    def _read_body(h: BaseHTTPRequestHandler) -> bytes:
        if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += h.rfile.read(size)
                h.rfile.readline()
        n = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(n) if n else b""

    def _parse(self, h: BaseHTTPRequestHandler, body: bytes) -> Call:
        auth = h.headers.get("Authorization", "")
        m = CRED_RE.search(auth)
        key, service = (m.group(1), m.group(3)) if m else (None, "")
        split = urllib.parse.urlsplit(h.path)
        form = dict(urllib.parse.parse_qsl(split.query))
        if "x-www-form-urlencoded" in h.headers.get("Content-Type", ""):
            form.update(urllib.parse.parse_qsl(body.decode(errors="replace")))
        if not m and form.get("X-Amz-Credential"):
            key, _, _, service, _ = form["X-Amz-Credential"].split("/")
        if not service and form.get("Action") in ("AssumeRoleWithWebIdentity", "AssumeRoleWithSAML"):
            service = "sts"
        target = h.headers.get("X-Amz-Target") or form.get("Action") or f"{h.command} {split.path}"
        token = h.headers.get("X-Amz-Security-Token") or form.get("X-Amz-Security-Token")
        return Call(time.time(), h.command, h.path, service, target, key, token, form)

    def _record_issued(self, call: Call, body: bytes) -> None:
        text = body.decode(errors="replace")
        for cred in re.findall(r"<Credentials>(.*?)</Credentials>", text, re.S):
            get = lambda tag: (re.search(rf"<{tag}>(.*?)</{tag}>", cred, re.S) or [None, None])[1]  # noqa: E731
            ak = get("AccessKeyId")
            if ak:
                exp = get("Expiration")
                self.issued[ak] = Issued(ak, get("SecretAccessKey") or "", get("SessionToken"),
                                         parse_utc(exp) if exp else None, f"sts:{call.target}",
                                         role=call.form.get("RoleArn"))

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = self._read_body(h)
        call = self._parse(h, body)
        fault = self.fault(call) if self.fault else None
        with self.lock:
            self.calls.append(call)
        if fault is not None and fault.hang:
            call.status = "hang"
            with self.lock:
                self.hanging += 1
            try:
                self.release.wait(300)
            finally:
                with self.lock:
                    self.hanging -= 1
            h.close_connection = True
            return
        if fault is not None:
            call.status = fault.status
            h.send_response(fault.status)
            h.send_header("Content-Type", fault.content_type)
            h.send_header("Content-Length", str(len(fault.body)))
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(fault.body)
            return
        headers = {k: v for k, v in h.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"}
        if body or h.command in ("PUT", "POST"):
            headers["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection(self.up_host, self.up_port, timeout=120)
        try:
            conn.request(h.command, h.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            resp_headers = resp.getheaders()
            status = resp.status
        finally:
            conn.close()
        call.status = status
        if call.service == "sts":
            with self.lock:
                self._record_issued(call, data)
        h.send_response(status)
        length = None
        for k, v in resp_headers:
            if k.lower() in HOP_BY_HOP:
                continue
            if k.lower() == "content-length":
                length = v
                continue
            h.send_header(k, v)
        h.send_header("Content-Length", length if (h.command == "HEAD" and length) else str(len(data)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)


# ------------------------------------------------------------------------------------------
# The IMDSv2 stand-in
# ------------------------------------------------------------------------------------------

class ImdsStandIn:
    """IMDSv2 on 127.0.0.1: PUT /latest/api/token, then with the token
    GET /latest/meta-data/iam/security-credentials/ (the role name) and .../<role> (temporary
    keys). Keys live `lifetime` seconds; a new pair is handed out once the current one has less
    than `rotate_before` seconds left, as EC2 rotates them ahead of expiry."""

    def __init__(self, role: str = "flowlog-instance-role", lifetime: float = 30, rotate_before: float = 18):
        self.role, self.lifetime, self.rotate_before = role, lifetime, rotate_before
        self.issued: list[Issued] = []
        self.requests: list[tuple[float, str, str, int]] = []
        self.tokens: set[str] = set()
        self.lock = threading.Lock()
        rig = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _send(self, status: int, body: bytes, ctype: str = "text/plain", extra: dict | None = None):
                with rig.lock:
                    rig.requests.append((time.time(), self.command, self.path, status))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_PUT(self):
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
                if self.path != "/latest/api/token" or not ttl:
                    return self._send(400, b"")
                tok = f"imds-token-{len(rig.tokens) + 1:04d}"
                with rig.lock:
                    rig.tokens.add(tok)
                self._send(200, tok.encode(), extra={"X-aws-ec2-metadata-token-ttl-seconds": ttl})

            def do_GET(self):
                if self.headers.get("X-aws-ec2-metadata-token") not in rig.tokens:
                    return self._send(401, b"")
                base = "/latest/meta-data/iam/security-credentials/"
                if self.path == base:
                    return self._send(200, rig.role.encode())
                if self.path == base + rig.role:
                    c = rig.current()
                    doc = {"Code": "Success", "LastUpdated": utc(c.t), "Type": "AWS-HMAC",
                           "AccessKeyId": c.key, "SecretAccessKey": c.secret, "Token": c.token,
                           "Expiration": utc(c.expiration)}
                    return self._send(200, json.dumps(doc).encode(), "application/json")
                if self.path == "/latest/meta-data/placement/region":
                    return self._send(200, REGION.encode())
                self._send(404, b"")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def current(self) -> Issued:
        now = time.time()
        with self.lock:
            if not self.issued or self.issued[-1].expiration - now < self.rotate_before:
                n = len(self.issued) + 1
                self.issued.append(Issued(f"ASIAIMDSROLE{n:08d}", f"imdsSecret/{n:030d}",
                                          f"imds-session-token-{n:04d}", now + self.lifetime, "imds", now))
            return self.issued[-1]

    def start(self) -> "ImdsStandIn":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ------------------------------------------------------------------------------------------
# Processes
# ------------------------------------------------------------------------------------------

class Proc:
    """A background process with its output in a file; stopped by PID."""

    def __init__(self, args: list[str], log: Path, env: dict):
        self.log = log
        self.f = open(log, "w")
        self.p = subprocess.Popen(args, stdout=self.f, stderr=subprocess.STDOUT, env=env, text=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match:
        end = time.time() + timeout
        while time.time() < end:
            m = re.search(pattern, self.text())
            if m:
                return m
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} not seen in {self.log}:\n{self.text()[-4000:]}")

    def stop(self, timeout: float = 20.0) -> int:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.f.close()
        return self.p.returncode


def wait_port(port: int, timeout: float = 30.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.3).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


def start_moto(tmp: Path) -> tuple[Proc, str]:
    port = free_port()
    p = Proc([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], tmp / "moto.log",
             env={**os.environ})
    wait_port(port)
    return p, f"http://127.0.0.1:{port}"


def hermetic_env(tmp: Path, **extra: str | None) -> dict:
    """The environment of `flowlog serve`: no AWS_* of the machine, empty shared config and
    credentials files, HOME in tmp, IMDS off (so nothing probes 169.254.169.254); then `extra`
    (None removes a variable)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    for name in ("aws-config", "aws-credentials"):
        (tmp / name).touch()
    env.update({"HOME": str(home), "AWS_CONFIG_FILE": str(tmp / "aws-config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "aws-credentials"),
                "AWS_EC2_METADATA_DISABLED": "true", "FLOWLOG_LOG": "info,aws_config=debug"})
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def serve_config(tmp: Path, lab: Lab, sections: str) -> Path:
    """`flowlog serve` config: the lab's ENI from an inventory file, short windows, and the
    given service sections (no keys in them unless a test says so)."""
    (tmp / "inventory.toml").write_text(lab.inventory())
    text = f"""account_id = "{ACCOUNT}"
region = "{REGION}"
[[credentials]]
access_key_id = "{ADMIN[0]}"
secret_access_key = "{ADMIN[1]}"
allow = ["ec2:*", "flowlog:*"]
[api]
max_flow_logs_per_resource = 2
[delivery]
window_secs = 4
close_grace_secs = 1
retry_initial_ms = 200
retry_max_ms = 1000
[agent]
enabled = true
window_secs = 2
sync_secs = 0.5
inventory = "{tmp / 'inventory.toml'}"

{sections}
"""
    p = tmp / "flowlog.toml"
    p.write_text(text)
    return p


def sections(endpoint: str | None, *, s3: bool = True, cwl: bool = True, sts: bool = True) -> str:
    """[s3], [cloudwatch_logs], [sts] pointing at `endpoint` (None: empty sections, endpoints
    from the environment)."""
    ep = f'endpoint = "{endpoint}"\nregion = "{REGION}"\n' if endpoint else ""
    out = ""
    if s3:
        out += f"[s3]\n{ep}\n"
    if cwl:
        out += f"[cloudwatch_logs]\n{ep}\n"
    if sts:
        out += f"[sts]\n{ep}\n"
    return out


def start_serve(tmp: Path, cfg: Path, env: dict, name: str = "serve") -> tuple[Proc, str]:
    p = Proc([FLOWLOG_BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp / "data"),
              "--config", str(cfg)], tmp / f"{name}.log", env=env)
    m = p.wait_for(r"listening on (http://[0-9.:]+)")
    return p, m.group(1)


# ------------------------------------------------------------------------------------------
# Clients, traffic and read-back
# ------------------------------------------------------------------------------------------

def boto(service: str, url: str, key: str = "testing", secret: str = "testing"):
    import boto3
    return boto3.client(service, endpoint_url=url, region_name=REGION, aws_access_key_id=key,
                        aws_secret_access_key=secret, verify=False)


def ec2(url: str):
    return boto("ec2", url, *ADMIN)


def lab_eni(api: str, lab: Lab, timeout: float = 20) -> dict:
    c = ec2(api)
    end = time.time() + timeout
    while time.time() < end:
        enis = [e for e in c.describe_network_interfaces()["NetworkInterfaces"]
                if e["PrivateIpAddress"] == lab.ip_a and e["Status"] == "in-use"]
        if enis:
            return enis[0]
        time.sleep(0.3)
    raise AssertionError("the lab's ENI was never registered")


def flow_log_s3(api: str, vpc: str, bucket: str, prefix: str = "") -> str:
    out = ec2(api).create_flow_logs(ResourceType="VPC", ResourceIds=[vpc], TrafficType="ALL",
                                    LogDestinationType="s3", LogDestination=f"arn:aws:s3:::{bucket}/{prefix}")
    assert out["Unsuccessful"] == [], out
    return out["FlowLogIds"][0]


def flow_log_cwl(api: str, vpc: str, group: str, role: str = ROLE) -> str:
    out = ec2(api).create_flow_logs(ResourceType="VPC", ResourceIds=[vpc], TrafficType="ALL",
                                    LogGroupName=group, DeliverLogsPermissionArn=role)
    assert out["Unsuccessful"] == [], out
    return out["FlowLogIds"][0]


def flow_log_status(api: str, fl: str) -> tuple[str, str | None]:
    f = ec2(api).describe_flow_logs(FlowLogIds=[fl])["FlowLogs"][0]
    return f["DeliverLogsStatus"], f.get("DeliverLogsErrorMessage")


def wait_capturing(serve: Proc, eni: str, timeout: float = 15) -> None:
    serve.wait_for(r"capture started eni=\S*" + eni, timeout=timeout)


SEND_PROG = r"""
import socket, sys, time
host, port, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for i in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", first + i))
    s.sendto(b"flowlog-issue-11", (host, port))
    s.close()
    time.sleep(0.002)
"""


class Traffic:
    """UDP datagrams from B to A's UDP_PORT, each from its own source port: one packet = one
    flow = one record, so the number of records to expect is exactly the number sent."""

    def __init__(self, lab: Lab, first_port: int = 20000):
        self.lab, self.next_port, self.sent = lab, first_port, 0

    def send(self, count: int) -> None:
        self.lab.in_ns(self.lab.ns_b, sys.executable, "-c", SEND_PROG, self.lab.ip_a, str(UDP_PORT),
                       str(self.next_port), str(count))
        self.next_port += count
        self.sent += count


def is_ours(fields: list[str], lab: Lab) -> bool:
    """A default-format record of one of the Traffic datagrams."""
    return (len(fields) == 14 and fields[3] == lab.ip_b and fields[4] == lab.ip_a and fields[7] == "17"
            and fields[6] == str(UDP_PORT) and fields[13] == "OK")


def s3_records(moto: str, bucket: str, fl: str, lab: Lab) -> list[list[str]]:
    s3 = boto("s3", moto)
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            if fl not in o["Key"] or not o["Key"].endswith(".log.gz"):
                continue
            lines = gzip.decompress(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()).decode().splitlines()
            out += [ln.split(" ") for ln in lines[1:] if is_ours(ln.split(" "), lab)]
    return out


def cwl_records(moto: str, group: str, lab: Lab) -> list[list[str]]:
    logs = boto("logs", moto)
    try:
        streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    except logs.exceptions.ResourceNotFoundException:
        return []
    out = []
    for s in streams:
        kw = {"logGroupName": group, "logStreamName": s["logStreamName"], "startFromHead": True}
        token = None
        while True:
            r = logs.get_log_events(**kw, **({"nextToken": token} if token else {}))
            out += [e["message"].split(" ") for e in r["events"] if is_ours(e["message"].split(" "), lab)]
            if not r["events"] or r.get("nextForwardToken") == token:
                break
            token = r["nextForwardToken"]
    return out


def wait_records(read: Callable[[], list], want: int, timeout: float = 60, settle: float = 6) -> list:
    """Polls `read` until it returns `want` records (or more, or the time is up), then once
    more after `settle` seconds (nothing may arrive twice)."""
    end = time.time() + timeout
    got = read()
    while len(got) < want and time.time() < end:
        time.sleep(1)
        got = read()
    if len(got) >= want and settle:
        time.sleep(settle)
        got = read()
    return got


def src_ports(records: list[list[str]]) -> list[int]:
    return sorted(int(r[5]) for r in records)


def calls_summary(calls: list[Call], n: int = 40) -> str:
    return "\n".join(f"{c.t:.1f} {c.service} {c.target} key={c.key} token={'yes' if c.token else 'no'} -> {c.status}"
                     for c in calls[-n:])


def exp_after(seconds: float) -> str:
    return utc((datetime.now(timezone.utc) + timedelta(seconds=seconds)).timestamp())


def start_case(tmp: Path, lab: Lab, env: dict, service_sections: str, buckets: tuple[str, ...] = (),
               moto: str | None = None) -> tuple[Proc, str, dict]:
    """Buckets made in moto, `flowlog serve` started with the sections, the lab's ENI registered."""
    for b in buckets:
        boto("s3", moto).create_bucket(Bucket=b)
    cfg = serve_config(tmp, lab, service_sections)
    serve, api = start_serve(tmp, cfg, env)
    try:
        eni = lab_eni(api, lab)
    except BaseException:
        serve.stop()
        raise
    return serve, api, eni
