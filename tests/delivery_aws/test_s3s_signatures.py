"""Issue 11: s3s-fs (an S3 server that verifies every SigV4 signature) still accepts everything
flowlog sends when the keys come from the environment and the config has none; the same run
with a wrong secret in the environment is refused (so the check is real)."""

from __future__ import annotations

import gzip
import shutil
import time

import pytest

from awsrig import (REPO, Proc, Traffic, flow_log_status, free_port, hermetic_env, is_ours, src_ports, start_case,
                    wait_capturing, wait_port, ec2)

S3S_KEY = ("AKIAS3SFSWRITER00001", "s3sFsSecret/0000000000000000000000000000")


def s3s_records(root, bucket: str, fl: str, lab) -> list[list[str]]:
    out = []
    for f in sorted((root / bucket).rglob("*.log.gz")):
        if fl in f.name:
            lines = gzip.decompress(f.read_bytes()).decode().splitlines()
            out += [ln.split(" ") for ln in lines[1:] if is_ours(ln.split(" "), lab)]
    return out


def test_s3s_fs_verifies_every_signature_with_environment_keys(tmp_path, lab):
    exe = shutil.which("s3s-fs") or str(REPO / ".tools" / "bin" / "s3s-fs")
    if not (REPO / ".tools" / "bin" / "s3s-fs").exists() and shutil.which("s3s-fs") is None:
        pytest.skip("s3s-fs not installed (scripts/setup.sh)")
    root = tmp_path / "s3root"
    (root / "sig-bucket").mkdir(parents=True)
    port = free_port()
    s3s = Proc([exe, "--host", "127.0.0.1", "--port", str(port), "--access-key", S3S_KEY[0],
                "--secret-key", S3S_KEY[1], str(root)], tmp_path / "s3s.log", env={"PATH": "/usr/bin:/bin"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_port(port)
        section = f'[s3]\nendpoint = "{url}"\nregion = "us-east-1"\n'

        # Wrong secret in the environment: s3s-fs refuses the signature at CreateFlowLogs' check.
        bad = tmp_path / "bad"
        bad.mkdir()
        env = hermetic_env(bad, AWS_ACCESS_KEY_ID=S3S_KEY[0], AWS_SECRET_ACCESS_KEY="not-the-secret-of-s3s-fs-0000",
                           AWS_REGION="us-east-1", AWS_ENDPOINT_URL="http://127.0.0.1:9")
        serve, api, eni = start_case(bad, lab, env, section)
        try:
            out = ec2(api).create_flow_logs(ResourceType="VPC", ResourceIds=[eni["VpcId"]], TrafficType="ALL",
                                            LogDestinationType="s3", LogDestination="arn:aws:s3:::sig-bucket/")
            assert out["FlowLogIds"] == [], out
            assert [u["Error"]["Message"] for u in out["Unsuccessful"]] == [
                "Access Denied for LogDestination: sig-bucket. Please check LogDestination permission"], out
        finally:
            serve.stop()

        good = tmp_path / "good"
        good.mkdir()
        env = hermetic_env(good, AWS_ACCESS_KEY_ID=S3S_KEY[0], AWS_SECRET_ACCESS_KEY=S3S_KEY[1],
                           AWS_REGION="us-east-1", AWS_ENDPOINT_URL="http://127.0.0.1:9")
        serve, api, eni = start_case(good, lab, env, section)
        try:
            out = ec2(api).create_flow_logs(ResourceType="VPC", ResourceIds=[eni["VpcId"]], TrafficType="ALL",
                                            LogDestinationType="s3", LogDestination="arn:aws:s3:::sig-bucket/")
            assert out["Unsuccessful"] == [], out
            fl = out["FlowLogIds"][0]
            wait_capturing(serve, eni["NetworkInterfaceId"])
            t = Traffic(lab)
            t.send(30)
            end = time.time() + 60
            got = []
            while time.time() < end and len(got) < t.sent:
                time.sleep(1)
                got = s3s_records(root, "sig-bucket", fl, lab)
            time.sleep(6)
            got = s3s_records(root, "sig-bucket", fl, lab)
            assert len(got) == t.sent and src_ports(got) == list(range(20000, 20000 + t.sent)), \
                (len(got), serve.text()[-3000:], s3s.text()[-2000:])
            assert flow_log_status(api, fl) == ("SUCCESS", None)
        finally:
            serve.stop()
    finally:
        s3s.stop()
