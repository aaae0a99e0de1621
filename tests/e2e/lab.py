"""Building blocks of the end-to-end tests: a two-namespace lab joined by a veth pair,
moto_server, `flowlog serve` / `flowlog agent` processes, traffic generators and readers of
what was delivered. Everything is created with unique names and removed by the fixture that
made it, even when a test fails; processes are stopped by PID.

Traffic goes only between addresses inside the namespaces made here (10.77.0.0/16) and to
127.0.0.1.
"""

from __future__ import annotations

import gzip
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The lab PKI (self-signed CA + server certificates) is shared with the API suite.
sys.path.insert(0, str(REPO / "tests" / "api"))
from tlsfiles import TestCA  # noqa: E402
VENV_BIN = REPO / ".venv" / "bin"
FLOWLOG_BIN = os.environ.get("FLOWLOG_BIN", str(REPO / "target" / "debug" / "flowlog"))
ACCOUNT = "123456789012"
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/flowlogs"
ADMIN = ("AKIAE2EADMINKEY00001", "e2eAdminSecret/000000000000000000000000")
# moto accepts any keys; these are what flowlog signs its S3/CWL calls with.
MOTO_KEYS = ("AKIAMOTOWRITER000001", "motoSecret/00000000000000000000000000")

TEST_PROG = r"""
import socket, sys, time
mode = sys.argv[1]
if mode == "sink":              # TCP and UDP sinks on the given ports, for `secs` seconds
    host, tcp_port, udp_port, secs = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind((host, tcp_port)); t.listen(8)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind((host, udp_port))
    t.settimeout(0.1); u.settimeout(0.1)
    print("ready", flush=True)
    end = time.time() + secs
    while time.time() < end:
        try:
            c, _ = t.accept()
            c.settimeout(2)
            while True:
                b = c.recv(65536)
                if not b: break
            c.close()
        except OSError:
            pass
        try:
            u.recv(65536)
        except OSError:
            pass
elif mode == "udp":             # count datagrams of size bytes
    host, port, count, size = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(count):
        s.sendto(b"x" * size, (host, port)); time.sleep(0.01)
elif mode == "tcp":             # send nbytes on one connection
    host, port, nbytes = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(b"y" * nbytes); s.shutdown(socket.SHUT_WR)
    s.recv(1); s.close()
elif mode == "connect":         # a connection attempt that the firewall rejects
    host, port = sys.argv[2], int(sys.argv[3])
    try:
        socket.create_connection((host, port), timeout=2)
    except OSError as e:
        print("refused", e, flush=True)
"""


def is_root() -> bool:
    return os.geteuid() == 0


def have(cmd: str) -> bool:
    return subprocess.run(["sh", "-c", f"command -v {cmd}"], capture_output=True).returncode == 0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def run(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, **kw)


@dataclass
class Lab:
    """Namespaces A and B joined by veth: A 10.77.1.10/24 (the monitored ENI), B 10.77.1.20/24."""

    tag: str
    ns_a: str = ""
    ns_b: str = ""
    if_a: str = ""
    if_b: str = ""
    ip_a: str = "10.77.1.10"
    ip_b: str = "10.77.1.20"
    made: list = field(default_factory=list)

    def up(self) -> "Lab":
        self.ns_a, self.ns_b = f"fla{self.tag}", f"flb{self.tag}"
        self.if_a, self.if_b = f"fva{self.tag}", f"fvb{self.tag}"
        for ns in (self.ns_a, self.ns_b):
            run("ip", "netns", "add", ns)
            self.made.append(ns)
            run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "link", "add", self.if_a, "type", "veth", "peer", "name", self.if_b)
        run("ip", "link", "set", self.if_a, "netns", self.ns_a)
        run("ip", "link", "set", self.if_b, "netns", self.ns_b)
        run("ip", "-n", self.ns_a, "addr", "add", f"{self.ip_a}/24", "dev", self.if_a)
        run("ip", "-n", self.ns_b, "addr", "add", f"{self.ip_b}/24", "dev", self.if_b)
        run("ip", "-n", self.ns_a, "link", "set", self.if_a, "up")
        run("ip", "-n", self.ns_b, "link", "set", self.if_b, "up")
        return self

    def down(self) -> None:
        for ns in self.made:
            run("ip", "netns", "del", ns, check=False)
        self.made.clear()

    def in_ns(self, ns: str, *args: str, **kw) -> subprocess.CompletedProcess:
        return run("ip", "netns", "exec", ns, *args, **kw)

    def py(self, ns: str, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.in_ns(ns, sys.executable, "-c", TEST_PROG, *args, **kw)

    def spawn_py(self, ns: str, *args: str) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", TEST_PROG, *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def inventory(self) -> str:
        return f"""
[[vpc]]
name = "lab"
cidr_block = "10.77.0.0/16"
[[subnet]]
name = "lab-a"
vpc = "lab"
cidr_block = "10.77.1.0/24"
[[network_interface]]
subnet = "lab-a"
interface = "{self.if_a}"
netns = "{self.ns_a}"
private_ip = "{self.ip_a}"
"""

    def reject_port(self, port: int, group: int) -> None:
        """nftables in A: log TCP to `port` to NFLOG `group`, then reject it."""
        rules = f"""
table inet flowlogtest {{
  chain input {{
    type filter hook input priority 0; policy accept;
    tcp dport {port} log group {group} reject with tcp reset
  }}
}}
"""
        self.in_ns(self.ns_a, "nft", "-f", "-", input=rules)


class Proc:
    """A background process, stopped by PID."""

    def __init__(self, args: list[str], log: Path, env: dict | None = None):
        self.log = log
        self.f = open(log, "w")
        self.p = subprocess.Popen(args, stdout=self.f, stderr=subprocess.STDOUT, text=True,
                                  env={**os.environ, **(env or {})})

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match:
        end = time.time() + timeout
        while time.time() < end:
            m = re.search(pattern, self.log.read_text())
            if m:
                return m
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} not seen in {self.log}:\n{self.log.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.f.close()
        return self.p.returncode


def start_moto(tmp: Path, host: str = "127.0.0.1", netns: str | None = None) -> tuple[Proc, str]:
    port = free_port() if netns is None else 5599
    args = [str(VENV_BIN / "moto_server"), "-H", host, "-p", str(port)]
    if netns:
        args = ["ip", "netns", "exec", netns, *args]
    p = Proc(args, tmp / "moto.log")
    url = f"http://{host}:{port}"
    end = time.time() + 30
    while time.time() < end:
        try:
            if netns:
                ok = run("ip", "netns", "exec", netns, sys.executable, "-c",
                         f"import urllib.request;urllib.request.urlopen('{url}/moto-api/')", check=False).returncode == 0
            else:
                import urllib.request
                urllib.request.urlopen(f"{url}/moto-api/")
                ok = True
            if ok:
                return p, url
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("moto_server did not start:\n" + (tmp / "moto.log").read_text())


def config(tmp: Path, *, moto: str | None, inventory: str | None, agent: bool = True,
           nflog_group: int | None = None, listen: str | None = None, server: dict | None = None) -> Path:
    inv_line = ""
    if inventory is not None:
        (tmp / "inventory.toml").write_text(inventory)
        inv_line = f'inventory = "{tmp / "inventory.toml"}"'
    text = f"""
account_id = "{ACCOUNT}"
region = "{REGION}"
{f'listen = "{listen}"' if listen else ''}
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
enabled = {"true" if agent else "false"}
window_secs = 2
sync_secs = 0.5
{inv_line}
{f"nflog_group = {nflog_group}" if nflog_group is not None else ""}
"""
    if server:
        import json
        text += "[server]\n" + "".join(
            f"{k} = {'true' if v is True else 'false' if v is False else json.dumps(v)}\n" for k, v in server.items())
    if moto:
        text += f"""
[s3]
endpoint = "{moto}"
region = "{REGION}"
access_key_id = "{MOTO_KEYS[0]}"
secret_access_key = "{MOTO_KEYS[1]}"
path_style = true
[cloudwatch_logs]
endpoint = "{moto}"
region = "{REGION}"
[[cloudwatch_logs.roles]]
role_arn = "{ROLE}"
access_key_id = "{MOTO_KEYS[0]}"
secret_access_key = "{MOTO_KEYS[1]}"
"""
    path = tmp / "flowlog.toml"
    path.write_text(text)
    return path


def start_serve(tmp: Path, cfg: Path, name: str = "serve", netns: str | None = None) -> tuple[Proc, str]:
    listen = [] if netns else ["--listen", "127.0.0.1:0"]
    args = [FLOWLOG_BIN, "serve", *listen, "--data-dir", str(tmp / "data"), "--config", str(cfg)]
    if netns:
        args = ["ip", "netns", "exec", netns, *args]
    p = Proc(args, tmp / f"{name}.log", env={"FLOWLOG_LOG": "info"})
    m = p.wait_for(r"listening on (http://[0-9.:]+)")
    return p, m.group(1)


def aws(endpoint: str, *args: str, netns: str | None = None, ca: Path | None = None) -> dict:
    import json
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ADMIN[0], "AWS_SECRET_ACCESS_KEY": ADMIN[1],
           "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
    if ca is not None:
        env["AWS_CA_BUNDLE"] = str(ca)
    cmd = [str(VENV_BIN / "aws"), "--endpoint-url", endpoint, "--output", "json", *args]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert r.returncode == 0, f"aws {' '.join(args)} failed: {r.stderr}"
    return json.loads(r.stdout) if r.stdout.strip() else {}


def parse_lines(text: str) -> list[list[str]]:
    return [line.split(" ") for line in text.splitlines() if line]


def flow_sum(records: list[list[str]], src: str, dst: str, proto: str, dport: str | None = None,
             action: str | None = None) -> tuple[int, int]:
    """Packets and bytes of OK records matching a 5-tuple pattern."""
    pk = by = 0
    for r in records:
        if len(r) != 14 or r[13] != "OK":
            continue
        if r[3] == src and r[4] == dst and r[7] == proto and (dport is None or r[6] == dport) \
                and (action is None or r[12] == action):
            pk += int(r[8])
            by += int(r[9])
    return pk, by


def gunzip_lines(data: bytes) -> list[str]:
    return gzip.decompress(data).decode().splitlines()
