"""Issue 9: TLS on the API listener (`[server] tls_cert/tls_key`), verified by real clients
against a self-signed lab CA (tests/api/tlsfiles.py): boto3 (`verify=`), the aws CLI
(`AWS_CA_BUNDLE`), requests; /metrics and agent sync over the same TLS; the certificate is
reloaded on SIGHUP and when the files change. The whole API suite also runs over TLS with
FLOWLOG_TEST_TLS=1; these tests force TLS on regardless."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import time

import pytest
import requests

from apiharness import Server, expect_ok
from test_security import AGENTS, NO_AGENT, sync, sync_body
from tlsfiles import TestCA, served_serial


@pytest.fixture
def tls_server(tmp_path):
    srv = Server(tmp_path, config_extra=NO_AGENT, name="s9tls", extra_credentials=AGENTS, tls=True)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_https_with_verified_clients(tls_server):
    """The banner says https://; boto3, the aws CLI and requests verify the certificate with the
    test CA and are answered; without the CA verification fails; plain HTTP gets no API answer."""
    srv = tls_server
    assert srv.url.startswith("https://127.0.0.1:"), srv.url
    vpc = srv.client().create_vpc(CidrBlock="10.60.0.0/16")["Vpc"]["VpcId"]
    got = srv.aws_json("ec2", "describe-vpcs", "--vpc-ids", vpc)
    assert [v["VpcId"] for v in got["Vpcs"]] == [vpc]
    expect_ok(srv.describe(), "DescribeFlowLogs")
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(srv.url + "/", timeout=5)  # system roots do not know the lab CA
    host, port = srv.hostport
    try:
        plain = requests.post(f"http://{host}:{port}/", data=b"Action=DescribeFlowLogs&Version=2016-11-15",
                              timeout=5)
        assert plain.status_code != 200 and "DescribeFlowLogsResponse" not in plain.text
    except requests.RequestException:
        pass  # a TLS listener closing a plaintext client is fine


def test_tls_is_modern(tls_server):
    """TLS 1.2 or newer only: a client limited to TLS 1.1 cannot connect; TLS 1.3 works."""
    host, port = tls_server.hostport
    ctx = ssl.create_default_context(cafile=str(tls_server.ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    with socket.create_connection((host, port), timeout=5) as raw, ctx.wrap_socket(raw, server_hostname=host) as t:
        assert t.version() == "TLSv1.3"
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(str(tls_server.ca))
    old.check_hostname = False
    try:
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        pytest.skip("this Python/OpenSSL cannot offer TLS 1.1 at all")
    with pytest.raises((ssl.SSLError, OSError)):
        with socket.create_connection((host, port), timeout=5) as raw, old.wrap_socket(raw, server_hostname=host):
            pass


def test_metrics_and_sync_over_tls(tls_server):
    """/metrics and POST /agent/v1/sync are served over the same TLS listener."""
    m = requests.get(tls_server.url + "/metrics", timeout=5, verify=tls_server.verify)
    assert m.status_code == 200, m.text[:300]
    r = sync(tls_server, sync_body("s9-tls"))
    assert r.status_code == 200 and "assignments" in r.json(), r.text[:300]


def wait_serial(srv: Server, serial: int, timeout: float) -> int:
    host, port = srv.hostport
    end = time.time() + timeout
    got = served_serial(host, port, srv.ca)
    while got != serial and time.time() < end:
        time.sleep(0.25)
        got = served_serial(host, port, srv.ca)
    return got


@pytest.mark.parametrize("trigger", ["sighup", "file-change"])
def test_certificate_reloaded(tls_server, trigger):
    """Replacing the certificate files and sending SIGHUP (or just waiting: the files are checked
    every 2 s) makes the server present the new certificate, without a restart."""
    srv = tls_server
    host, port = srv.hostport
    first = srv.server_cert.serial
    assert served_serial(host, port, srv.ca) == first
    new = srv.test_ca.issue(srv.server_cert.cert.parent, ["127.0.0.1", "localhost"])
    assert new.cert == srv.server_cert.cert and new.serial != first
    pid = srv.proc.pid
    if trigger == "sighup":
        os.kill(pid, signal.SIGHUP)
        got = wait_serial(srv, new.serial, 5)
    else:
        got = wait_serial(srv, new.serial, 8)
    assert got == new.serial, f"still serving serial {got:x} after {trigger}; new one is {new.serial:x}"
    assert srv.alive() and srv.proc.pid == pid, "the server restarted or died instead of reloading"
    expect_ok(srv.describe(), "DescribeFlowLogs")


def test_bad_certificate_files_refused(tmp_path):
    """tls_cert without tls_key, or a key that is not PEM, refuses to start naming the file."""
    ca = TestCA.create(tmp_path / "pki")
    cert = ca.issue(tmp_path / "pki", ["127.0.0.1"])
    cert.key.write_text("not a key\n")
    srv = Server(tmp_path, config_extra=NO_AGENT, name="s9badtls", tls=False,
                 server_opts={"tls_cert": str(cert.cert), "tls_key": str(cert.key)})
    with pytest.raises(RuntimeError) as e:
        srv.start(timeout=15)
    srv.stop()
    assert str(cert.key) in str(e.value) or "server-key.pem" in str(e.value), str(e.value)[-1500:]
    srv = Server(tmp_path / "b", config_extra=NO_AGENT, name="s9badtls2", tls=False,
                 server_opts={"tls_cert": str(cert.cert)})
    with pytest.raises(RuntimeError) as e:
        srv.start(timeout=15)
    srv.stop()
    assert "tls_key" in str(e.value), str(e.value)[-1500:]
