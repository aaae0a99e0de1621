"""End-to-end checks of delivery with real clients: objects in moto's S3 and events in moto's
CloudWatch Logs read back with boto3, and `flowlog logs` reading the embedded store.

Records are produced by the `deliver` example of crates/flowlog-delivery (built by
`cargo test --workspace`); the test skips with a reason when it or moto_server is missing.
"""

import gzip
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLOWLOG_BIN = Path(os.environ.get("FLOWLOG_BIN", ROOT / "target/debug/flowlog"))
DELIVER = Path(os.environ.get("DELIVER_EXAMPLE", FLOWLOG_BIN.parent / "examples" / "deliver"))
HEADER = ("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets "
          "bytes start end action log-status")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need(path: Path, what: str):
    if not path.exists():
        pytest.skip(f"{what} not built: {path}")


@pytest.fixture(scope="module")
def moto():
    exe = shutil.which("moto_server") or str(ROOT / ".venv/bin/moto_server")
    if not Path(exe).exists():
        pytest.skip("moto_server not installed (scripts/setup.sh)")
    port = free_port()
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("moto_server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


def boto(service, url):
    import boto3
    return boto3.client(service, endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def deliver(tmp_path, *args):
    need(DELIVER, "deliver example")
    out = subprocess.run([str(DELIVER), "--data-dir", str(tmp_path / "data"), *args],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["done"], summary
    return summary


def logs(tmp_path, *args, check=True):
    need(FLOWLOG_BIN, "flowlog binary")
    out = subprocess.run([str(FLOWLOG_BIN), "logs", "--data-dir", str(tmp_path / "data"), *args],
                         capture_output=True, text=True, timeout=60)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def test_s3_objects_in_moto_read_back_with_boto3(tmp_path, moto):
    s3 = boto("s3", moto)
    s3.create_bucket(Bucket="flow-bucket")
    summary = deliver(tmp_path, "--s3", "arn:aws:s3:::flow-bucket/team-a/", "--s3-endpoint", moto,
                      "--records", "3000", "--enis", "3")
    assert summary["s3_delivered"] == 3000
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="flow-bucket")["Contents"]]
    logs_keys = [k for k in keys if k.endswith(".log.gz")]
    assert logs_keys, keys
    lines = []
    enis = set()
    for k in logs_keys:
        assert k.startswith("team-a/AWSLogs/123456789012/vpcflowlogs/us-east-1/")
        obj = s3.get_object(Bucket="flow-bucket", Key=k)
        assert obj["ContentType"] == "application/x-gzip"
        assert "ContentEncoding" not in obj, "stored like AWS: the client gets the gzip bytes"
        text = gzip.decompress(obj["Body"].read()).decode()
        first, *rest = text.splitlines()
        assert first == HEADER
        lines += rest
        enis |= {line.split()[2] for line in rest}
    assert len(lines) == 3000
    assert len(set(lines)) == 3000
    assert len(enis) == 3, "one object holds every ENI of the flow log"


def test_cloudwatch_logs_in_moto_read_back_with_boto3(tmp_path, moto):
    summary = deliver(tmp_path, "--cwl", "flow-group", "--cwl-endpoint", moto,
                      "--records", "2000", "--enis", "3", "--traffic-type", "REJECT")
    cwl = boto("logs", moto)
    streams = sorted(s["logStreamName"] for s in cwl.describe_log_streams(logGroupName="flow-group")["logStreams"])
    # Streams appear only for ENIs with kept (REJECT) records.
    assert streams == ["eni-00000000000000000-all", "eni-00000000000000001-all", "eni-00000000000000002-all"]
    total = 0
    for s in streams:
        ev = cwl.get_log_events(logGroupName="flow-group", logStreamName=s, startFromHead=True)["events"]
        assert ev
        for e in ev:
            parts = e["message"].split()
            assert parts[2] + "-all" == s
            assert parts[12] == "REJECT"
            assert e["timestamp"] == int(parts[10]) * 1000
        total += len(ev)
    assert total == summary["cwl_delivered"] == 500  # every 4th record is a REJECT


def test_flowlog_logs_reads_the_embedded_store(tmp_path):
    deliver(tmp_path, "--cwl", "/vpc/flows", "--records", "400", "--enis", "2")
    assert logs(tmp_path, "groups").stdout.split() == ["/vpc/flows"]
    streams = logs(tmp_path, "streams", "--group", "/vpc/flows").stdout.splitlines()
    assert [s.split("\t")[0] for s in streams] == ["eni-00000000000000000-all", "eni-00000000000000001-all"]
    assert [int(s.split("\t")[2]) for s in streams] == [200, 200]

    got = logs(tmp_path, "--json", "get", "--group", "/vpc/flows", "--stream", "eni-00000000000000001-all")
    events = [json.loads(line) for line in got.stdout.splitlines()]
    assert len(events) == 200
    assert all(e["logStreamName"] == "eni-00000000000000001-all" for e in events)
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)
    assert all(e["timestamp"] == int(e["message"].split()[10]) * 1000 for e in events)

    rejects = logs(tmp_path, "filter", "--group", "/vpc/flows", "--pattern", "REJECT").stdout.splitlines()
    assert len(rejects) == 100 and all(" REJECT OK" in r for r in rejects)
    assert len(logs(tmp_path, "filter", "--group", "/vpc/flows", "--pattern", "REJECT", "--limit", "7").stdout.splitlines()) == 7

    # Time range: everything is from the last few minutes.
    assert len(logs(tmp_path, "filter", "--group", "/vpc/flows", "--start", "1h").stdout.splitlines()) == 400
    assert logs(tmp_path, "filter", "--group", "/vpc/flows", "--end", "1h").stdout == ""
    assert len(logs(tmp_path, "tail", "--group", "/vpc/flows", "-n", "5").stdout.splitlines()) == 5

    missing = logs(tmp_path, "get", "--group", "nope", "--stream", "x", check=False)
    assert missing.returncode != 0 and "does not exist" in missing.stderr
    bad = logs(tmp_path, "filter", "--group", "/vpc/flows", "--start", "yesterday", check=False)
    assert bad.returncode != 0 and "invalid time" in bad.stderr


def test_embedded_s3_layout_under_the_data_dir(tmp_path):
    deliver(tmp_path, "--s3", "arn:aws:s3:::local-bucket", "--records", "100", "--enis", "1")
    files = list((tmp_path / "data/s3/local-bucket/AWSLogs/123456789012/vpcflowlogs/us-east-1").rglob("*.log.gz"))
    # One object per 5-minute window: two when the records' times straddle a window boundary.
    assert 1 <= len(files) <= 2, files
    lines = 0
    for f in files:
        assert f.name.startswith("123456789012_vpcflowlogs_us-east-1_fl-0000000000000000a_")
        text = gzip.decompress(f.read_bytes()).decode()
        assert text.splitlines()[0] == HEADER
        lines += len(text.splitlines()) - 1
    assert lines == 100
