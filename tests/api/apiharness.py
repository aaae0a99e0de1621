"""Harness for the end-to-end API suite: the real `flowlog serve` binary, real clients.

Written from the behaviour spec (/work/shared/spec/flow-logs-behaviour.md), not from the
implementation. Every server runs on 127.0.0.1 with a free port, a temporary data dir and a
config written here; it is stopped by PID at teardown, even when a test fails.

Clients:
- boto3 clients (`srv.client("admin")`),
- the real aws CLI (`srv.aws("ec2", "create-vpc", ...)`),
- `srv.raw(params, ...)`: a request signed with botocore's SigV4 signer but otherwise built by
  hand (typos, unknown parameters, GET form, huge bodies, stale timestamps); returns a `Reply`.
"""

from __future__ import annotations

import contextlib
import datetime
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
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable
from unittest import mock

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import requests

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
FLOWLOG_BIN = os.environ.get("FLOWLOG_BIN", str(REPO / "target" / "debug" / "flowlog"))

ACCOUNT = "123456789012"
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/fl"
NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
VERSION = "2016-11-15"

# name -> (access key id, secret, allow list)
CREDENTIALS = {
    "admin": ("AKIAEXAMPLEADMIN0001", "adminSecretKey/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", ["ec2:*"]),
    "readonly": ("AKIAEXAMPLEREADONLY1", "readonlySecretKey/bbbbbbbbbbbbbbbbbbbbbbbbbbbb", ["ec2:Describe*"]),
    # may manage VPCs/subnets/ENIs but has no flow-log permission at all
    "noflow": (
        "AKIAEXAMPLENOFLOWLG1",
        "noflowSecretKey/cccccccccccccccccccccccccccccc",
        [
            "ec2:CreateVpc",
            "ec2:DescribeVpcs",
            "ec2:DescribeSubnets",
            "ec2:DescribeNetworkInterfaces",
        ],
    ),
    # the 2018 IAM policy form: every flow-log action through one wildcard, nothing else
    "flowonly": ("AKIAEXAMPLEFLOWONLY1", "flowonlySecretKey/dddddddddddddddddddddddddd", ["ec2:*FlowLogs"]),
    # IAM action names are case-insensitive; `?` matches one character
    "mixedcase": ("AKIAEXAMPLEMIXEDCAS1", "mixedSecretKey/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
                  ["EC2:describeflowlogs", "ec2:CREATEVPC", "ec2:Delete?lowLogs"]),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(path: Path, extra: str = "", max_per_resource: int | None = 2) -> Path:
    lines = [f'account_id = "{ACCOUNT}"', f'region = "{REGION}"', ""]
    for key, secret, allow in CREDENTIALS.values():
        lines += [
            "[[credentials]]",
            f'access_key_id = "{key}"',
            f'secret_access_key = "{secret}"',
            "allow = [" + ", ".join(f'"{a}"' for a in allow) + "]",
            "",
        ]
    if max_per_resource is not None:
        lines += ["[api]", f"max_flow_logs_per_resource = {max_per_resource}", ""]
    path.write_text("\n".join(lines) + extra)
    return path


# --------------------------------------------------------------------------------------------
# XML helpers


def strip_ns(elem: ET.Element) -> ET.Element:
    for e in elem.iter():
        if isinstance(e.tag, str) and e.tag.startswith("{"):
            e.tag = e.tag.split("}", 1)[1]
    return elem


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def raw_root(self) -> ET.Element:
        return ET.fromstring(self.body)

    @property
    def xml(self) -> ET.Element:
        return strip_ns(ET.fromstring(self.body))

    @property
    def code(self) -> str | None:
        try:
            return self.xml.findtext("Errors/Error/Code")
        except ET.ParseError:
            return None

    @property
    def message(self) -> str | None:
        try:
            return self.xml.findtext("Errors/Error/Message")
        except ET.ParseError:
            return None

    def items(self, path: str) -> list[ET.Element]:
        return self.xml.findall(path)

    def ids(self, set_name: str = "flowLogIdSet") -> list[str]:
        return [i.text for i in self.xml.findall(f"{set_name}/item")]

    def flow_logs(self) -> list[dict]:
        return [{c.tag: c.text for c in item} for item in self.xml.findall("flowLogSet/item")]

    def unsuccessful(self) -> list[dict]:
        out = []
        for item in self.xml.findall("unsuccessful/item"):
            out.append(
                {
                    "resourceId": item.findtext("resourceId"),
                    "code": item.findtext("error/code"),
                    "message": item.findtext("error/message"),
                }
            )
        return out

    def __repr__(self) -> str:  # shows up in assertion failures
        return f"Reply(status={self.status}, body={self.text[:2000]!r})"


def expect_error(reply: Reply, status: int, codes: str | Iterable[str], message: str | None = None):
    """Asserts an EC2 error envelope with the given HTTP status and one of the codes."""
    if isinstance(codes, str):
        codes = [codes]
    codes = list(codes)
    assert reply.status == status, f"expected HTTP {status} {codes}, got {reply!r}"
    assert reply.code in codes, f"expected code {codes}, got {reply!r}"
    if message is not None:
        assert reply.message == message, f"expected message {message!r}, got {reply!r}"


def expect_ok(reply: Reply, action: str) -> Reply:
    assert reply.status == 200, f"{action}: expected 200, got {reply!r}"
    root = reply.raw_root
    assert root.tag == f"{{{NS}}}{action}Response", f"bad root {root.tag!r} in {reply!r}"
    return reply


def flatten(params) -> list[tuple[str, str]]:
    """dict / list of pairs / nested lists -> ordered list of (name, value)."""
    if isinstance(params, dict):
        params = list(params.items())
    out = []
    for k, v in params:
        if isinstance(v, (list, tuple)):
            for i, x in enumerate(v, 1):
                out.append((f"{k}.{i}", str(x)))
        elif isinstance(v, bool):
            out.append((k, "true" if v else "false"))
        else:
            out.append((k, str(v)))
    return out


# --------------------------------------------------------------------------------------------
# The server under test


class Server:
    def __init__(self, workdir: Path, config_extra: str = "", max_per_resource: int | None = 2,
                 use_config: bool = True, name: str = "flowlog"):
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config = write_config(workdir / "flowlog.toml", config_extra, max_per_resource) if use_config else None
        self.name = name
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None
        self.stdout_lines: list[str] = []
        self.stderr_path = workdir / f"{name}.stderr.log"
        self._local = threading.local()

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> "Server":
        if not Path(FLOWLOG_BIN).exists():
            raise RuntimeError(f"flowlog binary not found at {FLOWLOG_BIN} (set FLOWLOG_BIN or cargo build)")
        cmd = [FLOWLOG_BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir)]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        self.stdout_lines = []
        self.url = None
        err = open(self.stderr_path, "ab")
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env, cwd=self.workdir)
        err.close()
        found = threading.Event()

        def pump():
            assert self.proc and self.proc.stdout
            for raw in self.proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.stdout_lines.append(line)
                m = re.search(r"listening on (http://[0-9A-Za-z.\[\]:]+:\d+)", line)
                if m and not found.is_set():
                    self.url = m.group(1).rstrip("/")
                    found.set()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.time() + timeout
        while not found.is_set():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"flowlog serve exited with {self.proc.returncode}; stdout={self.stdout_lines!r} "
                    f"stderr={self.stderr_tail()!r}"
                )
            if time.time() > deadline:
                self.kill()
                raise RuntimeError(f"no 'listening on' line within {timeout}s; stdout={self.stdout_lines!r}")
            found.wait(0.05)
        self._local = threading.local()
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        """Graceful stop (SIGTERM by PID), SIGKILL if it does not exit in time."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def kill(self):
        """kill -9 by PID."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stderr_tail(self, n: int = 4000) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    @property
    def _session(self) -> requests.Session:
        """One keep-alive session per thread (requests.Session is not thread-safe)."""
        sess = getattr(self._local, "session", None)
        if sess is None:
            sess = self._local.session = requests.Session()
        return sess

    @property
    def hostport(self) -> tuple[str, int]:
        u = urllib.parse.urlsplit(self.url)
        return u.hostname, u.port

    # -- clients ------------------------------------------------------------------------------
    def client(self, cred: str = "admin", retries: int = 0):
        key, secret, _ = CREDENTIALS[cred]
        return boto3.client(
            "ec2",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            config=botocore.config.Config(
                retries={"max_attempts": retries + 1, "mode": "standard"},
                connect_timeout=10,
                read_timeout=60,
            ),
        )

    def aws(self, *args: str, cred: str = "admin", check: bool = False) -> subprocess.CompletedProcess:
        key, secret, _ = CREDENTIALS[cred]
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.workdir),
            "AWS_ACCESS_KEY_ID": key,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_MAX_ATTEMPTS": "1",
            "AWS_PAGER": "",
        }
        cmd = [str(VENV_BIN / "aws"), "--endpoint-url", self.url, "--output", "json", *args]
        cp = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        if check and cp.returncode != 0:
            raise AssertionError(f"aws {' '.join(args)} failed rc={cp.returncode}: {cp.stderr}")
        return cp

    def aws_json(self, *args: str, cred: str = "admin") -> dict:
        cp = self.aws(*args, cred=cred, check=True)
        return json.loads(cp.stdout) if cp.stdout.strip() else {}

    def raw(
        self,
        params=None,
        *,
        action: str | None = None,
        method: str = "POST",
        cred: str | None = "admin",
        secret: str | None = None,
        access_key: str | None = None,
        body: bytes | None = None,
        add_version: bool = True,
        headers: dict | None = None,
        signed_at: datetime.datetime | None = None,
        presign: bool = False,
        timeout: float = 60,
    ) -> Reply:
        """Sends one EC2 Query request signed by botocore's SigV4 signer (unless cred=None).

        `params`: dict or list of (name, value); list values are expanded to Name.1, Name.2 ...
        `body`: raw body bytes to send instead of the encoded params (still signed).
        """
        pairs = []
        if action is not None:
            pairs.append(("Action", action))
            if add_version:
                pairs.append(("Version", VERSION))
        pairs += flatten(params or [])
        encoded = urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote)
        url = self.url + "/"
        hdrs = dict(headers or {})
        data = b""
        if method == "GET":
            url += "?" + encoded
        elif presign and body is None:
            # botocore's presigner takes the form params as a dict and moves them to the URL
            data = dict(pairs)
            hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
        else:
            data = body if body is not None else encoded.encode()
            hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
        req = botocore.awsrequest.AWSRequest(method=method, url=url, data=data, headers=hdrs)
        if cred is not None:
            key, sec, _ = CREDENTIALS[cred]
            creds = botocore.credentials.Credentials(access_key or key, secret or sec)
            signer_cls = botocore.auth.SigV4QueryAuth if presign else botocore.auth.SigV4Auth
            signer = signer_cls(creds, "ec2", REGION, **({"expires": 300} if presign else {}))
            if signed_at is not None:
                with mock.patch("botocore.auth.get_current_datetime", return_value=signed_at):
                    signer.add_auth(req)
            else:
                signer.add_auth(req)
        prepared = req.prepare()
        resp = self._session.request(
            prepared.method,
            prepared.url,
            headers=dict(prepared.headers.items()),
            data=prepared.body,
            timeout=timeout,
        )
        return Reply(resp.status_code, resp.content, {k.lower(): v for k, v in resp.headers.items()})

    def call(self, action: str, params=None, **kw) -> Reply:
        return self.raw(params, action=action, **kw)

    # -- convenience: resources (raw protocol, asserted 200) --------------------------------
    def vpc(self, cidr: str = "10.0.0.0/16") -> str:
        r = expect_ok(self.call("CreateVpc", {"CidrBlock": cidr}), "CreateVpc")
        return r.xml.findtext("vpc/vpcId")

    def subnet(self, vpc_id: str, cidr: str = "10.0.1.0/24") -> str:
        r = expect_ok(self.call("CreateSubnet", {"VpcId": vpc_id, "CidrBlock": cidr}), "CreateSubnet")
        return r.xml.findtext("subnet/subnetId")

    def eni(self, subnet_id: str, **extra) -> str:
        r = expect_ok(self.call("CreateNetworkInterface", {"SubnetId": subnet_id, **extra}),
                      "CreateNetworkInterface")
        return r.xml.findtext("networkInterface/networkInterfaceId")

    def create_fl(self, resource_ids, resource_type="VPC", traffic="ALL", dest="arn:aws:s3:::b1",
                  **extra) -> Reply:
        p = {"ResourceType": resource_type, "ResourceId": list(resource_ids)}
        if traffic is not None:
            p["TrafficType"] = traffic
        if dest is not None and dest.startswith("arn:aws:s3"):
            p["LogDestinationType"] = "s3"
            p["LogDestination"] = dest
        elif dest is not None:
            p["LogGroupName"] = dest
            p["DeliverLogsPermissionArn"] = ROLE
        kw = {k: extra.pop(k) for k in list(extra) if k in RAW_KWARGS}
        p.update(extra)
        return self.call("CreateFlowLogs", p, **kw)

    def fl_ok(self, resource_ids, **kw) -> list[str]:
        r = expect_ok(self.create_fl(resource_ids, **kw), "CreateFlowLogs")
        assert r.unsuccessful() == [], r
        return r.ids()

    def describe(self, params=None, **kw) -> Reply:
        return self.call("DescribeFlowLogs", params, **kw)

    def all_flow_logs(self, params=None) -> list[dict]:
        r = expect_ok(self.describe(params), "DescribeFlowLogs")
        assert r.xml.find("nextToken") is None, r
        return r.flow_logs()

    def fl_ids_for(self, resource_id: str) -> list[str]:
        return [f["flowLogId"] for f in self.all_flow_logs(
            {"Filter.1.Name": "resource-id", "Filter.1.Value.1": resource_id})]


RAW_KWARGS = {"cred", "secret", "access_key", "method", "presign", "signed_at", "headers", "timeout"}


def _start(tmp_path_factory, name: str, **kw) -> Server:
    srv = Server(tmp_path_factory.mktemp(name), name=name, **kw)
    srv.start()
    return srv


# --------------------------------------------------------------------------------------------
# moto_server (S3 peer)


class Moto:
    def __init__(self, workdir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "moto.log"
        out = open(self.log, "wb")
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=out, stderr=subprocess.STDOUT,
        )
        out.close()
        deadline = time.time() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited: {self.log.read_text()[-2000:]}")
            try:
                requests.get(self.url + "/moto-api/", timeout=1)
                break
            except requests.RequestException:
                if time.time() > deadline:
                    self.stop()
                    raise RuntimeError("moto_server did not come up")
                time.sleep(0.1)

    def s3(self):
        return boto3.client("s3", endpoint_url=self.url, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def ec2(self):
        return boto3.client("ec2", endpoint_url=self.url, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()



def s3_config(url: str, key: str = "testing", secret: str = "testing") -> str:
    return (
        "\n[s3]\n"
        f'endpoint = "{url}"\n'
        f'region = "{REGION}"\n'
        f'access_key_id = "{key}"\n'
        f'secret_access_key = "{secret}"\n'
        "path_style = true\n"
    )


FL_ID = re.compile(r"^fl-[0-9a-f]{17}$")
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
