"""The same flow, with the capture agent as its own process (issue 6, multi-host setup).

Host B (namespace B) runs the control plane (`flowlog serve` with its agent disabled) and
moto_server on 10.77.1.20. Host A (namespace A) runs `flowlog agent --control-plane
http://10.77.1.20:PORT`, which registers A's interface from its inventory file, captures it,
and delivers to moto itself. Clients (aws CLI, boto3) run inside namespace B.

Issue 9: 10.77.1.20 is not loopback, so the control plane serves either HTTPS (a lab CA made by
tests/api/tlsfiles.py, a certificate for 10.77.1.20; the agent verifies it with --ca-file, the
aws CLI with AWS_CA_BUNDLE) or plain HTTP with the explicit `insecure_listen` opt-in. An agent
given the wrong CA refuses the control plane with a certificate verification error.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from lab import (ADMIN, FLOWLOG_BIN, MOTO_KEYS, REGION, VENV_BIN, Proc, TestCA, aws, config, flow_sum, parse_lines,
                 start_moto)

PORT = 4751


def read_objects(lab, moto, bucket, fl_id):
    code = f"""
import boto3, gzip, json
s3 = boto3.client("s3", endpoint_url="{moto}", region_name="{REGION}",
                  aws_access_key_id="{MOTO_KEYS[0]}", aws_secret_access_key="{MOTO_KEYS[1]}")
out = []
for o in s3.list_objects_v2(Bucket="{bucket}").get("Contents", []):
    if "_{fl_id}_" in o["Key"]:
        out.append(gzip.decompress(s3.get_object(Bucket="{bucket}", Key=o["Key"])["Body"].read()).decode())
print(json.dumps(out))
"""
    r = lab.in_ns(lab.ns_b, str(VENV_BIN / "python"), "-c", code)
    files = json.loads(r.stdout)
    for f in files:
        assert f.splitlines()[0].startswith("version account-id interface-id"), f[:200]
    return parse_lines("\n".join("\n".join(f.splitlines()[1:]) for f in files))


def control_plane(lab, cp_dir, moto, scheme):
    """Starts `flowlog serve` in namespace B on 10.77.1.20:PORT; returns (proc, endpoint, ca)."""
    ca = None
    server = {"insecure_listen": True}
    if scheme == "https":
        lab_ca = TestCA.create(cp_dir / "pki")
        cert = lab_ca.issue(cp_dir / "pki", [lab.ip_b])
        ca = lab_ca.path
        server = {"tls_cert": str(cert.cert), "tls_key": str(cert.key)}
    cp_cfg = config(cp_dir, moto=moto, inventory=None, agent=False, listen=f"{lab.ip_b}:{PORT}", server=server)
    serve = Proc(["ip", "netns", "exec", lab.ns_b, FLOWLOG_BIN, "serve", "--data-dir", str(cp_dir / "data"),
                  "--config", str(cp_cfg)], cp_dir / "serve.log")
    serve.wait_for(rf"listening on {scheme}://")
    return serve, f"{scheme}://{lab.ip_b}:{PORT}", ca


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_separate_agent_in_its_own_namespace(lab, tmp_path, scheme):
    moto_proc, moto = start_moto(tmp_path, host=lab.ip_b, netns=lab.ns_b)
    cp_dir, agent_dir = tmp_path / "cp", tmp_path / "agent"
    cp_dir.mkdir()
    agent_dir.mkdir()
    serve = agent = None
    try:
        lab.in_ns(lab.ns_b, str(VENV_BIN / "python"), "-c",
                  f"import boto3; boto3.client('s3', endpoint_url='{moto}', region_name='{REGION}', "
                  f"aws_access_key_id='x', aws_secret_access_key='y').create_bucket(Bucket='remote')")
        serve, ep, ca = control_plane(lab, cp_dir, moto, scheme)

        # The agent's inventory binds the interface of its own namespace (no netns key).
        inventory = lab.inventory().replace(f'netns = "{lab.ns_a}"\n', "")
        agent_cfg = config(agent_dir, moto=moto, inventory=inventory, agent=True)
        agent = Proc(["ip", "netns", "exec", lab.ns_a, FLOWLOG_BIN, "agent", "--control-plane", ep,
                      *(["--ca-file", str(ca)] if ca else []),
                      "--data-dir", str(agent_dir / "data"), "--config", str(agent_cfg)],
                     agent_dir / "agent.log",
                     env={"FLOWLOG_ACCESS_KEY_ID": ADMIN[0], "FLOWLOG_SECRET_ACCESS_KEY": ADMIN[1], "FLOWLOG_REGION": REGION})
        agent.wait_for(r"syncing with")

        def registered():
            enis = aws(ep, "ec2", "describe-network-interfaces", netns=lab.ns_b, ca=ca)["NetworkInterfaces"]
            return [e for e in enis if e["PrivateIpAddress"] == lab.ip_a and e["Status"] == "in-use"]
        end = time.time() + 15
        while not registered() and time.time() < end:
            time.sleep(0.3)
        eni = registered()[0]
        tags = {t["Key"]: t["Value"] for t in eni["TagSet"]}
        assert tags["flowlog:interface"] == lab.if_a
        fl = aws(ep, "ec2", "create-flow-logs", "--resource-type", "VPC", "--resource-ids", eni["VpcId"],
                 "--traffic-type", "ALL", "--log-destination-type", "s3",
                 "--log-destination", "arn:aws:s3:::remote/agent/", netns=lab.ns_b, ca=ca)["FlowLogIds"][0]
        agent.wait_for(r"capture started eni=\S*" + eni["NetworkInterfaceId"], timeout=10)

        sink = lab.spawn_py(lab.ns_a, "sink", lab.ip_a, "8080", "5000", "5")
        assert sink.stdout.readline().strip() == "ready"
        try:
            lab.py(lab.ns_b, "udp", lab.ip_a, "5000", "12", "200")
            lab.in_ns(lab.ns_b, "ping", "-c", "4", "-i", "0.2", lab.ip_a)
        finally:
            sink.kill()
            sink.wait()
        end = time.time() + 40
        recs = []
        while time.time() < end:
            recs = read_objects(lab, moto, "remote", fl)
            if flow_sum(recs, lab.ip_b, lab.ip_a, "1")[0] >= 4:
                break
            time.sleep(1)
        assert flow_sum(recs, lab.ip_b, lab.ip_a, "17", "5000") == (12, 12 * 228)
        assert flow_sum(recs, lab.ip_b, lab.ip_a, "1") == (4, 4 * 84)
        assert flow_sum(recs, lab.ip_a, lab.ip_b, "1") == (4, 4 * 84)
        assert all(r[2] == eni["NetworkInterfaceId"] for r in recs)

        # Delivery status travels back to the control plane with the agent's syncs.
        desc = aws(ep, "ec2", "describe-flow-logs", "--flow-log-ids", fl, netns=lab.ns_b, ca=ca)["FlowLogs"][0]
        assert desc["DeliverLogsStatus"] == "SUCCESS"
        assert agent.stop() == 0
    finally:
        for p in (agent, serve, moto_proc):
            if p is not None:
                p.stop()


def test_agent_with_wrong_ca_refuses_control_plane(lab, tmp_path):
    """`flowlog agent --ca-file` of another CA: every sync fails with an error naming certificate
    verification, and nothing is registered on the control plane."""
    cp_dir, agent_dir = tmp_path / "cp", tmp_path / "agent"
    cp_dir.mkdir()
    agent_dir.mkdir()
    serve = agent = None
    try:
        serve, ep, ca = control_plane(lab, cp_dir, None, "https")
        other = TestCA.create(agent_dir / "other-ca", name="some other CA")
        inventory = lab.inventory().replace(f'netns = "{lab.ns_a}"\n', "")
        agent_cfg = config(agent_dir, moto=None, inventory=inventory, agent=True)
        agent = Proc(["ip", "netns", "exec", lab.ns_a, FLOWLOG_BIN, "agent", "--control-plane", ep,
                      "--ca-file", str(other.path), "--data-dir", str(agent_dir / "data"),
                      "--config", str(agent_cfg)],
                     agent_dir / "agent.log",
                     env={"FLOWLOG_ACCESS_KEY_ID": ADMIN[0], "FLOWLOG_SECRET_ACCESS_KEY": ADMIN[1], "FLOWLOG_REGION": REGION})
        agent.wait_for(r"(?i)certificate", timeout=20)
        log = agent.log.read_text().lower()
        assert "verif" in log or "unknown issuer" in log or "unknownissuer" in log, log[-2000:]
        enis = aws(ep, "ec2", "describe-network-interfaces", netns=lab.ns_b, ca=ca)["NetworkInterfaces"]
        assert [e for e in enis if e["PrivateIpAddress"] == lab.ip_a] == [], "the agent synced despite the wrong CA"
    finally:
        for p in (agent, serve):
            if p is not None:
                p.stop()
