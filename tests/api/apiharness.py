"""Harness for the end-to-end API suite: the real `flowlog serve` binary, real clients.

Written from the behaviour spec (/work/shared/spec/flow-logs-behaviour.md), not from the
implementation. Every server runs on 127.0.0.1 with a free port, a temporary data dir and a
config written here; it is stopped by PID at teardown, even when a test fails.

Clients:
- boto3 clients (`srv.client("admin")`),
- the real aws CLI (`srv.aws("ec2", "create-vpc", ...)`),
- `srv.raw(params, ...)`: a request signed with botocore's SigV4 signer but otherwise built by
  hand (typos, unknown parameters, GET form, huge bodies, stale timestamps); returns a `Reply`.

TLS: with FLOWLOG_TEST_TLS=1 in the environment (or `Server(tls=True)`), every server gets a
fresh self-signed CA and a certificate for 127.0.0.1/localhost, `[server] tls_cert/tls_key` in
its config, and an https:// URL; boto3 (`verify=`), requests and the aws CLI (`AWS_CA_BUNDLE`)
verify the certificate against that CA. `scripts/test.sh` runs tests/api once more that way.

Replicas: with FLOWLOG_TEST_STORE=pg2 (or `Server(store="pg2")`), every server is two
`flowlog serve --store postgres://…` processes on one fresh database of a throwaway PostgreSQL
cluster (tests/pgcluster.py, one per test session), behind a round-robin proxy on 127.0.0.1
(tests/rrproxy.py) that sends each *request* to the next replica; `srv.url` is the proxy, so
boto3, the aws CLI and `raw` alternate between the replicas call by call. With TLS too the
proxy terminates TLS with a certificate of the same test CA and talks TLS (verified) to each
replica. What is about one process stays on the first replica: `proc`, `rss()`, `connect()`
and `hostport` (raw sockets, for malformed HTTP and connection limits) reach it directly;
`output()` holds both replicas' logs; `stop`/`start`/`kill` act on both (`kill` on the proxy
too, see rrproxy.py), and a restarted server keeps its database. A test about one listener's
own options (fixed ports, the printed URL) passes `store=one_process_store()`: one process.

Server options used by the security tests (tests/api/test_security.py): `listen`, `args`,
`server_opts` (the `[server]` section), `extra_credentials` (other accounts, `hosts` pins),
`nofile` (the server's open-file limit) and `env`.

Store: with FLOWLOG_TEST_STORE=postgres, every `Server` gets a fresh database on one throwaway
PostgreSQL cluster for the session (tests/pgcluster.py) and `--store postgres://...`; a
restarted server keeps its database. Otherwise the server's SQLite file in its data dir.
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


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return json.dumps(str(v))  # a JSON string is a valid TOML basic string


@dataclass
class Cred:
    """A credential beyond CREDENTIALS: another account, a `hosts` pin."""
    key: str
    secret: str
    allow: list
    account_id: str | None = None
    hosts: list | None = None


def write_config(path: Path, extra: str = "", max_per_resource: int | None = 2,
                 extra_credentials: dict | None = None, server_opts: dict | None = None,
                 top: dict | None = None) -> Path:
    lines = [f'account_id = "{ACCOUNT}"', f'region = "{REGION}"']
    lines += [f"{k} = {toml_value(v)}" for k, v in (top or {}).items()]
    lines.append("")
    creds = [Cred(k, s, a) for k, s, a in CREDENTIALS.values()] + list((extra_credentials or {}).values())
    for c in creds:
        lines += [
            "[[credentials]]",
            f'access_key_id = "{c.key}"',
            f'secret_access_key = "{c.secret}"',
            "allow = " + toml_value(c.allow),
        ]
        if c.account_id is not None:
            lines.append(f'account_id = "{c.account_id}"')
        if c.hosts is not None:
            lines.append("hosts = " + toml_value(c.hosts))
        lines.append("")
    if max_per_resource is not None:
        lines += ["[api]", f"max_flow_logs_per_resource = {max_per_resource}", ""]
    if server_opts:
        lines += ["[server]"] + [f"{k} = {toml_value(v)}" for k, v in server_opts.items()] + [""]
    path.write_text("\n".join(lines) + extra)
    return path


def store_from_env() -> str:
    """FLOWLOG_TEST_STORE: "" / "sqlite" (default), "postgres" (one server on PostgreSQL) or
    "pg2" (two replicas on PostgreSQL behind a round-robin proxy)."""
    v = os.environ.get("FLOWLOG_TEST_STORE", "").strip().lower()
    if v not in ("", "sqlite", "postgres", "pg2"):
        raise RuntimeError(f"FLOWLOG_TEST_STORE={v!r}: use sqlite, postgres or pg2")
    return v or "sqlite"


def tls_from_env() -> bool:
    return os.environ.get("FLOWLOG_TEST_TLS", "") not in ("", "0", "false")


def proc_status(pid: int) -> dict:
    """VmHWM / VmRSS / Threads of a process from /proc/PID/status, sizes in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmHWM", "VmRSS", "Threads"):
            out[k] = int(v.split()[0])
    return out


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


_PG_CLUSTER = None


def test_store_url(store: str | None = None) -> str | None:
    """A fresh PostgreSQL database for the store "postgres" (default: FLOWLOG_TEST_STORE), else
    None (SQLite; pg2 makes its database in Server.start)."""
    if (store_from_env() if store is None else store) != "postgres":
        return None
    return shared_pg().createdb()


def one_process_store() -> str | None:
    """The `store=` for a test about one listener's own options (a fixed metrics port, the
    URL it prints): under FLOWLOG_TEST_STORE=pg2 one process on PostgreSQL ("postgres"),
    because two replicas cannot both bind one address; otherwise the session's store."""
    return "postgres" if store_from_env() == "pg2" else None


def shared_pg():
    """The test session's PostgreSQL cluster (made on first use, removed at exit)."""
    global _PG_CLUSTER
    if _PG_CLUSTER is None:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from pgcluster import PgCluster, require_postgres  # tests/pgcluster.py
        require_postgres()
        _PG_CLUSTER = PgCluster("a13pg-").start()  # stopped by pgcluster's atexit
    return _PG_CLUSTER


class Server:
    def __init__(self, workdir: Path, config_extra: str = "", max_per_resource: int | None = 2,
                 use_config: bool = True, name: str = "flowlog", *, listen: str | None = "127.0.0.1:0",
                 args: list[str] | None = None, server_opts: dict | None = None,
                 extra_credentials: dict | None = None, top: dict | None = None,
                 nofile: int | None = None, env: dict | None = None, tls: bool | None = None,
                 store: str | None = None):
        self.workdir = workdir
        self.store = store_from_env() if store is None else store
        if self.store == "pg2" and "--store" in (args or []):
            self.store = "sqlite"  # the test chose its own database: one process on it
        self.store_url: str | None = None
        self.peer: Server | None = None
        self.proxy = None
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.tls = tls_from_env() if tls is None else tls
        self.ca: Path | None = None
        self.server_opts = dict(server_opts or {})
        if self.tls and use_config:
            from tlsfiles import TestCA
            self.test_ca = TestCA.create(workdir / "pki")
            self.server_cert = self.test_ca.issue(workdir / "pki", ["127.0.0.1", "localhost"])
            self.ca = self.test_ca.path
            self.server_opts.setdefault("tls_cert", str(self.server_cert.cert))
            self.server_opts.setdefault("tls_key", str(self.server_cert.key))
        self.creds = {n: Cred(k, s, a) for n, (k, s, a) in CREDENTIALS.items()}
        self.creds.update(extra_credentials or {})
        self.config = write_config(workdir / "flowlog.toml", config_extra, max_per_resource,
                                   extra_credentials, self.server_opts, top) if use_config else None
        self.listen = listen
        self.args = list(args or [])
        if "--store" not in self.args:
            store = test_store_url(self.store)
            if store is not None:
                self.args += ["--store", store]
        self.nofile = nofile
        self.env = dict(env or {})
        self.name = name
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None
        self.stdout_lines: list[str] = []
        self.stderr_path = workdir / f"{name}.stderr.log"
        self._local = threading.local()

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> "Server":
        if self.store != "pg2":
            return self._start_one(timeout)
        from rrproxy import RoundRobinProxy
        if self.store_url is None:
            self.store_url = shared_pg().createdb()
        if self.peer is None:
            peer = Server.__new__(Server)
            peer.__dict__.update(self.__dict__)
            peer.name = self.name + "-b"
            peer.data_dir = self.workdir / "replica-b" / "data"
            peer.data_dir.mkdir(parents=True, exist_ok=True)
            peer.stderr_path = self.workdir / f"{peer.name}.stderr.log"
            peer.store, peer.peer, peer.proxy = "pg2-peer", None, None
            peer.proc, peer.url, peer.stdout_lines = None, None, []
            self.peer = peer
        try:
            # the first replica applies the migrations, then the second joins
            self._start_one(timeout)
            self.peer._start_one(timeout)
            self.direct_url = self.url
            proxy_tls, upstream_ca = None, None
            if self.ca is not None:
                files = self.test_ca.issue(self.workdir / "pki-proxy", ["127.0.0.1", "localhost"])
                proxy_tls, upstream_ca = (files.cert, files.key), self.ca
            self.proxy = RoundRobinProxy([self.hostport, self.peer.hostport], tls=proxy_tls,
                                         upstream_ca=upstream_ca)
            self.url = self.proxy.url
        except BaseException:
            self.stop()
            raise
        return self

    def _store_args(self) -> list[str]:
        return ["--store", self.store_url] if self.store_url else []

    def _start_one(self, timeout: float) -> "Server":
        if not Path(FLOWLOG_BIN).exists():
            raise RuntimeError(f"flowlog binary not found at {FLOWLOG_BIN} (set FLOWLOG_BIN or cargo build)")
        cmd = [FLOWLOG_BIN, "serve", "--data-dir", str(self.data_dir)]
        if self.listen is not None:
            cmd += ["--listen", self.listen]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        cmd += self._store_args() + self.args
        self.stdout_lines = []
        self.url = None
        err = open(self.stderr_path, "ab")
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        env.update(self.env)
        preexec = None
        if self.nofile is not None:
            import resource
            limit = self.nofile

            def preexec():
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env, cwd=self.workdir,
                                     preexec_fn=preexec)
        err.close()
        found = threading.Event()

        def pump():
            assert self.proc and self.proc.stdout
            for raw in self.proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.stdout_lines.append(line)
                m = re.search(r"listening on (https?://[0-9A-Za-z.\[\]:]+:\d+)", line)
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
        self._stop_others(lambda p: p.stop(timeout))
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

    def _stop_others(self, how):
        if self.proxy is not None:
            self.proxy.close()
            self.proxy = None
        if self.peer is not None:
            how(self.peer)

    def kill(self):
        """kill -9 by PID. With replicas the whole service dies: the proxy first stops
        answering for them (a request in flight loses its connection, as with one killed
        process, instead of getting the proxy's 502), then both replicas are killed."""
        if self.proxy is not None:
            self.proxy.kill()
        self._stop_others(lambda p: p.kill())
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss(self) -> dict:
        """VmHWM / VmRSS (KiB) of the running server."""
        assert self.proc is not None
        return proc_status(self.proc.pid)

    def output(self) -> str:
        """Everything the server printed so far (stdout lines and the stderr log; with
        replicas, both replicas')."""
        out = "\n".join(self.stdout_lines) + "\n" + self.stderr_tail(10**8)
        if self.peer is not None:
            out += "\n" + self.peer.output()
        return out

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
            if self.ca is not None:
                sess.verify = str(self.ca)
        return sess

    @property
    def verify(self):
        """What boto3/requests should verify the server certificate with."""
        return str(self.ca) if self.ca is not None else True

    def connect(self, timeout: float = 10) -> socket.socket:
        """A raw connection to the API port: a TLS socket verified against the test CA when the
        server serves TLS, else plain TCP. For hand-written HTTP (malformed requests, trickles)."""
        host, port = self.hostport
        raw = socket.create_connection((host, port), timeout=timeout)
        if self.ca is None:
            return raw
        import ssl
        ctx = ssl.create_default_context(cafile=str(self.ca))
        try:
            return ctx.wrap_socket(raw, server_hostname=host)
        except BaseException:
            raw.close()
            raise

    @property
    def hostport(self) -> tuple[str, int]:
        """The (first) server process itself, never the replicas' proxy."""
        u = urllib.parse.urlsplit(getattr(self, "direct_url", None) if self.proxy else self.url)
        return u.hostname, u.port

    # -- clients ------------------------------------------------------------------------------
    def client(self, cred: str = "admin", retries: int = 0, timeout: float = 60):
        key, secret = self.creds[cred].key, self.creds[cred].secret
        return boto3.client(
            "ec2",
            endpoint_url=self.url,
            region_name=REGION,
            verify=self.verify,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            config=botocore.config.Config(
                retries={"max_attempts": retries + 1, "mode": "standard"},
                connect_timeout=min(10, timeout),
                read_timeout=timeout,
            ),
        )

    def aws(self, *args: str, cred: str = "admin", check: bool = False) -> subprocess.CompletedProcess:
        key, secret = self.creds[cred].key, self.creds[cred].secret
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
        if self.ca is not None:
            env["AWS_CA_BUNDLE"] = str(self.ca)
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
            key, sec = self.creds[cred].key, self.creds[cred].secret
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
            # explicit: REQUESTS_CA_BUNDLE in the environment would beat Session.verify
            verify=self.verify,
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
