"""Issue 10: nothing fails silently. Capture state is a fact the operator sees in the log, in
`/metrics` (`flowlog_capture_up`), in `flowlog status` and in the API (ENI tag
`flowlog:capture`, ENI status, DeliverLogsStatus); metrics after known traffic equal what was
sent; delivery lag grows during a destination outage and returns to 0.

Root only (namespaces, AF_PACKET); the unprivileged case runs `flowlog serve` through
`setpriv` as nobody with no capabilities. Names made here start with `o10`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3
import pytest

from lab import (FLOWLOG_BIN, MOTO_KEYS, REGION, Lab, Proc, aws, config, have, is_root, run,
                 start_serve)
from test_end_to_end import wait_until


def need_root():
    if not is_root() or not have("ip"):
        pytest.skip("needs root and iproute2: creates network namespaces and AF_PACKET sockets")


def metrics(ep: str) -> dict[str, float]:
    text = urllib.request.urlopen(f"{ep}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def status(ep: str, *extra: str) -> tuple[int, dict]:
    r = subprocess.run([FLOWLOG_BIN, "status", "--endpoint", ep, "--json", *extra],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, json.loads(r.stdout)


def eni_by_ip(ep: str, ip: str) -> dict:
    enis = aws(ep, "ec2", "describe-network-interfaces")["NetworkInterfaces"]
    return next(e for e in enis if e["PrivateIpAddress"] == ip)


def tag(eni: dict, key: str) -> str | None:
    return next((t["Value"] for t in eni.get("TagSet", []) if t["Key"] == key), None)


class QuietLab(Lab):
    """The two-namespace lab without IPv6 (no ND/MLD chatter) and with static neighbours (no
    ARP), so the only packets on the wire are the ones a test sends."""

    def up(self) -> "QuietLab":
        for ns in (self.ns_a, self.ns_b):
            run("ip", "netns", "add", ns)
            self.made.append(ns)
            self.in_ns(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
            self.in_ns(ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
            run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "link", "add", self.if_a, "type", "veth", "peer", "name", self.if_b)
        run("ip", "link", "set", self.if_a, "netns", self.ns_a)
        run("ip", "link", "set", self.if_b, "netns", self.ns_b)
        mac = {}
        for ns, ifn, ip in ((self.ns_a, self.if_a, self.ip_a), (self.ns_b, self.if_b, self.ip_b)):
            run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", ifn)
            run("ip", "-n", ns, "link", "set", ifn, "up")
            mac[ns] = json.loads(run("ip", "-n", ns, "-j", "link", "show", ifn).stdout)[0]["address"]
        run("ip", "-n", self.ns_a, "neigh", "replace", self.ip_b, "lladdr", mac[self.ns_b], "dev", self.if_a)
        run("ip", "-n", self.ns_b, "neigh", "replace", self.ip_a, "lladdr", mac[self.ns_a], "dev", self.if_b)
        return self


def o10_lab(suffix: str) -> QuietLab:
    tag_ = f"{os.getpid() % 100000}{suffix}"
    lab = QuietLab(tag=tag_)
    lab.ns_a, lab.ns_b = f"o10a{tag_}", f"o10b{tag_}"
    lab.if_a, lab.if_b = f"o10va{tag_}", f"o10vb{tag_}"
    return lab


def inventory(lab: Lab, missing_if: str, missing_ns: str) -> str:
    return lab.inventory() + f"""
[[network_interface]]
subnet = "lab-a"
interface = "{missing_if}"
netns = "{lab.ns_a}"
private_ip = "10.77.1.11"
[[network_interface]]
subnet = "lab-a"
interface = "o10vx"
netns = "{missing_ns}"
private_ip = "10.77.1.12"
"""


def test_capture_state_metrics_status_and_known_traffic(moto, tmp_path):
    need_root()
    lab = o10_lab("c")
    missing_if, missing_ns = "o10nope", f"o10gone{os.getpid() % 100000}"
    s3 = boto3.client("s3", endpoint_url=moto, region_name=REGION,
                      aws_access_key_id=MOTO_KEYS[0], aws_secret_access_key=MOTO_KEYS[1])
    s3.create_bucket(Bucket="o10")
    serve = None
    try:
        lab.up()
        cfg = config(tmp_path, moto=moto, inventory=inventory(lab, missing_if, missing_ns))
        serve, ep = start_serve(tmp_path, cfg)
        eni_a = eni_by_ip(ep, lab.ip_a)["NetworkInterfaceId"]
        eni_if = eni_by_ip(ep, "10.77.1.11")["NetworkInterfaceId"]
        eni_ns = eni_by_ip(ep, "10.77.1.12")["NetworkInterfaceId"]
        vpc = eni_by_ip(ep, lab.ip_a)["VpcId"]
        fl = aws(ep, "ec2", "create-flow-logs", "--resource-type", "VPC", "--resource-ids", vpc,
                 "--traffic-type", "ALL", "--log-destination-type", "s3",
                 "--log-destination", "arn:aws:s3:::o10/")["FlowLogIds"][0]
        serve.wait_for(r"capture started eni=\S*" + eni_a, timeout=15)

        # One WARN per state change, naming the fix.
        log = serve.wait_for(rf"WARN.*capture state: NOT capturing.*eni=\S*{eni_ns}.*", timeout=10).group(0)
        assert "namespace-missing" in log and f"ip netns add {missing_ns}" in log, log
        log = serve.wait_for(rf"WARN.*capture state: NOT capturing.*eni=\S*{eni_if}.*", timeout=10).group(0)
        assert "interface-missing" in log and "inventory" in log, log
        time.sleep(2)  # several syncs: still one line each
        text = serve.log.read_text()
        assert len(re.findall(rf"NOT capturing.*{eni_if}", text)) == 1, text[-3000:]
        assert len(re.findall(rf"NOT capturing.*{eni_ns}", text)) == 1, text[-3000:]

        m = metrics(ep)
        assert m[f'flowlog_capture_up{{eni="{eni_a}",interface="{lab.if_a}"}}'] == 1
        assert m[f'flowlog_capture_up{{eni="{eni_if}",interface="{missing_if}"}}'] == 0
        assert m[f'flowlog_capture_up{{eni="{eni_ns}",interface="o10vx"}}'] == 0

        code, st = status(ep)
        assert code == 1, "an ENI not captured makes status exit 1"
        states = {e["eni_id"]: e for e in st["enis"]}
        assert states[eni_a]["state"] == "capturing"
        assert states[eni_if]["state"] == "interface-missing"
        assert states[eni_ns]["state"] == "namespace-missing"
        assert f"ip netns add {missing_ns}" in states[eni_ns]["reason"]
        assert any(f["flow_log_id"] == fl and f["destination"] == "s3://o10/" for f in st["flow_logs"])
        human = subprocess.run([FLOWLOG_BIN, "status", "--endpoint", ep], capture_output=True, text=True)
        assert "namespace-missing" in human.stdout and eni_ns in human.stdout, human.stdout

        # The API: missing interfaces are `available` (detached), tagged with the state.
        def tagged():
            e = eni_by_ip(ep, "10.77.1.12")
            return e if tag(e, "flowlog:capture") == "namespace-missing" else None
        e = wait_until(tagged, timeout=10, what="flowlog:capture tag on the ENI")
        assert e["Status"] == "available"
        assert "ip netns add" in tag(e, "flowlog:capture-reason")
        a = eni_by_ip(ep, lab.ip_a)
        assert tag(a, "flowlog:capture") == "capturing" and a["Status"] == "in-use"
        flow = aws(ep, "ec2", "describe-flow-logs", "--flow-log-ids", fl)["FlowLogs"][0]
        assert flow["DeliverLogsStatus"] == "SUCCESS", "a detached ENI is not a delivery failure"

        # Known traffic: the packet and byte counters equal what was sent (20 x 48-byte IP).
        before = metrics(ep)
        key = f'{{eni="{eni_a}"}}'
        sink = lab.spawn_py(lab.ns_a, "sink", lab.ip_a, "6100", "6101", "6")
        assert sink.stdout.readline().strip() == "ready"
        lab.py(lab.ns_b, "udp", lab.ip_a, "6101", "20", "20")
        sink.wait(10)

        def counted():
            m = metrics(ep)
            return m if m["flowlog_capture_packets_total" + key] - before["flowlog_capture_packets_total" + key] >= 20 else None
        after = wait_until(counted, timeout=10, what="captured packets")
        time.sleep(1)
        after = metrics(ep)
        assert after["flowlog_capture_packets_total" + key] - before["flowlog_capture_packets_total" + key] == 20
        assert after["flowlog_capture_bytes_total" + key] - before["flowlog_capture_bytes_total" + key] == 20 * 48
        assert after["flowlog_capture_kernel_drops_total" + key] == 0
        assert after["flowlog_flow_table_capacity" + key] > 0
        assert f'flowlog_capture_records_total{{eni="{eni_a}",log_status="OK"}}' in after
        assert any(k.startswith('flowlog_api_requests_total{action="CreateFlowLogs"') for k in after)
        assert after['flowlog_api_request_duration_seconds_count{action="DescribeNetworkInterfaces"}'] >= 1

        # The namespace appears: captured at once (next sync), state logged back to capturing.
        lab.made.append(missing_ns)
        run("ip", "netns", "add", missing_ns)
        run("ip", "-n", missing_ns, "link", "add", "o10vx", "type", "veth", "peer", "name", "o10vy")
        run("ip", "-n", missing_ns, "link", "set", "o10vx", "up")
        t1 = time.time()
        serve.wait_for(r"capture started eni=\S*" + eni_ns, timeout=10)
        print(f"MEASURE namespace appears -> capture started: {time.time() - t1:.2f} s")
        wait_until(lambda: metrics(ep)[f'flowlog_capture_up{{eni="{eni_ns}",interface="o10vx"}}'] == 1,
                   timeout=5, what="capture_up = 1")
    finally:
        if serve:
            serve.stop()
        lab.down()


def test_unprivileged_serve_says_so():
    """`flowlog serve` as nobody with no capabilities (setpriv): a warning with the fix at
    start, the ENI `no-privilege` in metrics, status and its tag, the flow log FAILED with
    `Access error`."""
    need_root()
    if not have("setpriv"):
        pytest.skip("setpriv (util-linux) is not installed")
    # pytest's tmp_path is under a 0700 directory nobody cannot enter.
    tmp_path = Path(tempfile.mkdtemp(prefix="o10np"))
    os.chmod(tmp_path, 0o777)
    ns, dev = f"o10n{os.getpid() % 100000}", f"o10d{os.getpid() % 100000}"
    run("ip", "netns", "add", ns)
    cfg = config(tmp_path, moto=None, inventory=f"""
[[vpc]]
name = "np"
cidr_block = "10.78.0.0/16"
[[subnet]]
name = "np-a"
vpc = "np"
cidr_block = "10.78.1.0/24"
[[network_interface]]
subnet = "np-a"
interface = "{dev}"
netns = "{ns}"
private_ip = "10.78.1.10"
""")
    os.chmod(cfg, 0o644)
    os.chmod(tmp_path / "inventory.toml", 0o644)
    args = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", "--no-new-privs", "--", FLOWLOG_BIN, "serve", "--listen", "127.0.0.1:0",
            "--data-dir", str(tmp_path / "data"), "--config", str(cfg)]
    serve = None
    try:
        run("ip", "-n", ns, "link", "add", dev, "type", "veth", "peer", "name", dev + "p")
        run("ip", "-n", ns, "link", "set", dev, "up")
        serve = Proc(args, tmp_path / "serve.log", env={"FLOWLOG_LOG": "info"})
        ep = serve.wait_for(r"listening on (http://[0-9.:]+)").group(1)
        text = serve.log.read_text()
        assert "WARNING: no capture privilege (missing CAP_NET_RAW" in text, text
        assert "setcap cap_net_raw" in text and FLOWLOG_BIN in text, text
        eni = eni_by_ip(ep, "10.78.1.10")["NetworkInterfaceId"]
        fl = aws(ep, "ec2", "create-flow-logs", "--resource-type", "NetworkInterface", "--resource-ids", eni,
                 "--traffic-type", "ALL", "--log-destination-type", "s3",
                 "--log-destination", "arn:aws:s3:::o10np/")["FlowLogIds"][0]
        serve.wait_for(rf"WARN.*capture state: NOT capturing.*eni=\S*{eni}.*no-privilege", timeout=10)
        wait_until(lambda: metrics(ep).get(f'flowlog_capture_up{{eni="{eni}",interface="{dev}"}}') == 0,
                   timeout=5, what="capture_up = 0")

        def failed():
            f = aws(ep, "ec2", "describe-flow-logs", "--flow-log-ids", fl)["FlowLogs"][0]
            return f if f["DeliverLogsStatus"] == "FAILED" else None
        f = wait_until(failed, timeout=10, what="DeliverLogsStatus FAILED")
        assert f["DeliverLogsErrorMessage"] == "Access error"
        code, st = status(ep)
        assert code == 1
        e = next(e for e in st["enis"] if e["eni_id"] == eni)
        assert e["state"] == "no-privilege" and "setcap" in e["reason"], e
        wait_until(lambda: tag(eni_by_ip(ep, "10.78.1.10"), "flowlog:capture") == "no-privilege",
                   timeout=10, what="flowlog:capture tag")
    finally:
        if serve:
            serve.stop()
        run("ip", "netns", "del", ns, check=False)
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_lag_grows_during_an_outage_and_returns_to_zero(moto, tmp_path):
    need_root()
    lab = o10_lab("g")
    s3 = boto3.client("s3", endpoint_url=moto, region_name=REGION,
                      aws_access_key_id=MOTO_KEYS[0], aws_secret_access_key=MOTO_KEYS[1])
    s3.create_bucket(Bucket="o10lag")
    serve = None
    try:
        lab.up()
        cfg = config(tmp_path, moto=moto, inventory=lab.inventory())
        serve, ep = start_serve(tmp_path, cfg)
        eni = eni_by_ip(ep, lab.ip_a)["NetworkInterfaceId"]
        fl = aws(ep, "ec2", "create-flow-logs", "--resource-type", "NetworkInterface", "--resource-ids", eni,
                 "--traffic-type", "ALL", "--log-destination-type", "s3",
                 "--log-destination", "arn:aws:s3:::o10lag/")["FlowLogIds"][0]
        serve.wait_for(r"capture started eni=\S*" + eni, timeout=15)
        wait_until(lambda: s3.list_objects_v2(Bucket="o10lag").get("KeyCount", 0) > 0, what="first object")
        assert metrics(ep)["flowlog_delivery_lag_seconds"] <= 6
        # Outage: the bucket goes away, every put fails and is retried; NODATA keeps coming.
        for o in s3.list_objects_v2(Bucket="o10lag").get("Contents", []):
            s3.delete_object(Bucket="o10lag", Key=o["Key"])
        s3.delete_bucket(Bucket="o10lag")
        wait_until(lambda: metrics(ep)["flowlog_delivery_lag_seconds"] >= 8, timeout=30, what="lag to grow")
        m = metrics(ep)
        assert m["flowlog_delivery_spool_units"] >= 1
        assert m['flowlog_delivery_failures_total{sink="s3",reason="unknown_error"}'] >= 1
        _, st = status(ep)
        f = next(f for f in st["flow_logs"] if f["flow_log_id"] == fl)
        assert f["lag_seconds"] >= 8 and f["spooled_units"] >= 1, f
        s3.create_bucket(Bucket="o10lag")
        wait_until(lambda: metrics(ep)["flowlog_delivery_lag_seconds"] == 0, timeout=30, what="lag back to 0")
    finally:
        if serve:
            serve.stop()
        lab.down()


def test_kill9_loses_at_most_the_checkpoint_span(moto, tmp_path):
    """With a 600 s capture window, a kill -9 after the checkpoint span loses nothing: the
    restarted server spools the checkpointed window. (Without a checkpoint the whole window
    would be gone.)"""
    need_root()
    lab = o10_lab("k")
    s3 = boto3.client("s3", endpoint_url=moto, region_name=REGION,
                      aws_access_key_id=MOTO_KEYS[0], aws_secret_access_key=MOTO_KEYS[1])
    s3.create_bucket(Bucket="o10k9")
    serve = None
    try:
        lab.up()
        cfg = config(tmp_path, moto=moto, inventory=lab.inventory())
        text = cfg.read_text()
        assert "[agent]\nenabled = true\nwindow_secs = 2\n" in text
        cfg.write_text(text.replace("[agent]\nenabled = true\nwindow_secs = 2\n",
                                    "[agent]\nenabled = true\nwindow_secs = 600\ncheckpoint_secs = 1\n"))
        serve, ep = start_serve(tmp_path, cfg)
        eni = eni_by_ip(ep, lab.ip_a)["NetworkInterfaceId"]
        fl = aws(ep, "ec2", "create-flow-logs", "--resource-type", "NetworkInterface", "--resource-ids", eni,
                 "--traffic-type", "ALL", "--log-destination-type", "s3",
                 "--log-destination", "arn:aws:s3:::o10k9/")["FlowLogIds"][0]
        serve.wait_for(r"capture started eni=\S*" + eni, timeout=15)
        sink = lab.spawn_py(lab.ns_a, "sink", lab.ip_a, "6200", "6201", "5")
        assert sink.stdout.readline().strip() == "ready"
        lab.py(lab.ns_b, "udp", lab.ip_a, "6201", "30", "20")
        sink.wait(10)
        ckpt = tmp_path / "data" / "checkpoint"
        wait_until(lambda: any(ckpt.glob("*.json")), timeout=5, what="a checkpoint file")
        time.sleep(1.5)  # past one more checkpoint span
        serve.stop(signal.SIGKILL)
        assert any(ckpt.glob("*.json")), "the window was still open at the kill"
        serve, ep = start_serve(tmp_path, cfg, name="serve2")
        serve.wait_for("recovered from its checkpoint", timeout=15)
        from lab import flow_sum
        from test_end_to_end import s3_records

        def delivered():
            got = flow_sum(s3_records(s3, "o10k9", "", fl)[1], lab.ip_b, lab.ip_a, "17", "6201")
            return got if got[0] else None
        assert wait_until(delivered, timeout=30, what="recovered records in S3") == (30, 30 * 48)
    finally:
        if serve:
            serve.stop()
        lab.down()


def test_client_commands_name_the_file_and_the_fix(tmp_path):
    """`sudo flowlog serve` then a plain `flowlog credentials`: the error names the file and
    says what to run; `flowlog status` without a server says how to point it at one; a
    `--region` that is not the server's is refused."""
    need_root()
    if not have("setpriv"):
        pytest.skip("setpriv (util-linux) is not installed")
    base = Path(tempfile.mkdtemp(prefix="o10cli"))
    try:
        os.chmod(base, 0o755)
        data = base / "data"
        data.mkdir()
        creds = data / "credentials.toml"
        creds.write_text('access_key_id = "AKIAO10TEST000000000"\nsecret_access_key = "s"\n')
        os.chmod(creds, 0o600)
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                            FLOWLOG_BIN, "credentials", "--data-dir", str(data)],
                           capture_output=True, text=True)
        assert r.returncode != 0
        assert str(creds) in r.stderr and "sudo flowlog credentials" in r.stderr, r.stderr
        cfg = base / "flowlog.toml"
        cfg.write_text('region = "eu-west-1"\ndata_dir = "data"\n')
        ok = subprocess.run([FLOWLOG_BIN, "credentials", "--config", str(cfg)], capture_output=True, text=True)
        assert ok.returncode == 0 and "AWS_DEFAULT_REGION=eu-west-1" in ok.stdout, ok.stderr
        bad = subprocess.run([FLOWLOG_BIN, "credentials", "--config", str(cfg), "--region", "us-east-1"],
                             capture_output=True, text=True)
        assert bad.returncode != 0 and "eu-west-1" in bad.stderr, bad.stderr
        port = subprocess.run([sys.executable, "-c", "import socket;s=socket.socket();s.bind(('127.0.0.1',0));print(s.getsockname()[1])"],
                              capture_output=True, text=True).stdout.strip()
        st = subprocess.run([FLOWLOG_BIN, "status", "--endpoint", f"http://127.0.0.1:{port}"],
                            capture_output=True, text=True)
        assert st.returncode == 2 and "--endpoint" in st.stderr and "flowlog serve" in st.stderr, st.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_netlink_picks_up_a_new_namespace_within_a_second(tmp_path):
    """Discovery through rtnetlink with change subscriptions: with a 10 s sync tick, a
    namespace (and its interface) created after the start is captured within a second."""
    need_root()
    lab = o10_lab("n")
    serve = None
    try:
        cfg = config(tmp_path, moto=None, inventory=lab.inventory())
        cfg.write_text(cfg.read_text().replace("sync_secs = 0.5", "sync_secs = 10"))
        serve, ep = start_serve(tmp_path, cfg)
        eni = eni_by_ip(ep, lab.ip_a)["NetworkInterfaceId"]
        aws(ep, "ec2", "create-flow-logs", "--resource-type", "NetworkInterface", "--resource-ids", eni,
            "--traffic-type", "ALL", "--log-destination-type", "s3", "--log-destination", "arn:aws:s3:::o10n/")
        serve.wait_for(rf"NOT capturing.*{eni}", timeout=15)
        time.sleep(0.5)
        t0 = time.time()
        lab.up()
        serve.wait_for(r"capture started eni=\S*" + eni, timeout=5)
        took = time.time() - t0
        print(f"MEASURE netlink: namespace + veth created -> capture started in {took:.2f} s (sync tick 10 s)")
        assert took < 1.0, took
    finally:
        if serve:
            serve.stop()
        lab.down()
