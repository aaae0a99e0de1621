"""Writes the issue-9 seed inputs of the fuzz/api targets (tamper cases, bounds). Run it again
after changing a target's input format:

    .venv/bin/python tests/api/make_fuzz_seeds.py

Seeds are signed with botocore's SigV4 signer, with the fuzz targets' key, secret and clock
(AKIAFUZZ / fuzz-secret-that-the-fuzzer-cannot-guess / 2026-01-01T00:00:00Z), so that they
reach the code paths an attacker reaches: a real signature over one body, sent with another.
- sigv4_verify (method NUL path NUL query NUL header lines NUL body): each seed is a tamper case
  (tampered body, UNSIGNED-PAYLOAD, presigned with a body, X-Amz-Expires beyond 7 days). The
  target verifies with a secret of its own (not the seeds'), so a mutation that undoes the
  tamper still cannot pass: it asserts nothing it gets is accepted.
- sigv4_tamper (mode byte, [declared hash NUL], body): the replayed-body variants.
- handle_signed (action byte, form body): the bounds (1001 IDs, 201 / 999 filter values,
  filter values over 1024 characters).
"""

from __future__ import annotations

import datetime
import hashlib
import urllib.parse
from pathlib import Path
from unittest import mock

import botocore.auth
import botocore.awsrequest
import botocore.credentials

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO / "fuzz" / "api" / "seeds"
KEY, SECRET = "AKIAFUZZ", "fuzz-secret-that-the-fuzzer-cannot-guess"
WHEN = datetime.datetime(2026, 1, 1, 0, 0, 0)
EMPTY = hashlib.sha256(b"").hexdigest()
DESCRIBE = b"Action=DescribeVpcs&Version=2016-11-15"
CREATE = b"Action=CreateVpc&Version=2016-11-15&CidrBlock=10.123.0.0%2F16"
DELETE = b"Action=DeleteFlowLogs&Version=2016-11-15&FlowLogId.1=fl-0123456789abcdef0"


def _fixed(cls, payload):
    if payload is None:
        return cls
    return type("Fixed", (cls,), {"payload": lambda self, request: payload})


def signed(method="POST", body=b"", params=None, headers=None, payload=None, presign=False, expires=300):
    """(query, headers) of a request botocore signs for http://127.0.0.1/."""
    data = dict(params) if presign and params else body
    req = botocore.awsrequest.AWSRequest(method=method, url="http://127.0.0.1/", data=data,
                                         headers=dict(headers or {}))
    creds = botocore.credentials.Credentials(KEY, SECRET)
    with mock.patch("botocore.auth.get_current_datetime", return_value=WHEN):
        if presign:
            _fixed(botocore.auth.SigV4QueryAuth, payload)(creds, "ec2", "us-east-1", expires=expires).add_auth(req)
        else:
            _fixed(botocore.auth.SigV4Auth, payload)(creds, "ec2", "us-east-1").add_auth(req)
    p = req.prepare()
    query = urllib.parse.urlsplit(p.url).query
    hdrs = {k.lower(): v for k, v in p.headers.items() if k.lower() != "content-length"}
    hdrs.setdefault("host", "127.0.0.1")
    return query, hdrs


def verify_input(method, query, headers: dict, body: bytes) -> bytes:
    lines = "\n".join(f"{k}: {v}" for k, v in headers.items())
    return b"\0".join([method.encode(), b"/", query.encode(), lines.encode(), body])


def sigv4_verify_seeds() -> dict[str, bytes]:
    out = {}
    sha = hashlib.sha256(DESCRIBE).hexdigest()
    q, h = signed(body=DESCRIBE)
    out["tamper-unsigned-hash-header"] = verify_input("POST", q, {**h, "x-amz-content-sha256": sha}, CREATE)
    q, h = signed(body=DESCRIBE, headers={"X-Amz-Content-Sha256": sha})
    out["tamper-signed-hash-header"] = verify_input("POST", q, h, DELETE)
    q, h = signed(body=DESCRIBE, headers={"X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD"}, payload="UNSIGNED-PAYLOAD")
    out["header-unsigned-payload"] = verify_input("POST", q, h, DESCRIBE)
    out["header-unsigned-payload-swapped"] = verify_input("POST", q, h, CREATE)
    params = {"Action": "DeleteFlowLogs", "Version": "2016-11-15", "FlowLogId.1": "fl-0123456789abcdef0"}
    q, h = signed(params=params, presign=True)
    out["presigned-unsigned-payload-with-body"] = verify_input("POST", q, h, b"FlowLogId.2=fl-0fedcba987654321f")
    q, h = signed(params=params, presign=True, payload=EMPTY)
    out["presigned-empty-hash-with-body"] = verify_input(
        "POST", q, {**h, "x-amz-content-sha256": EMPTY}, b"FlowLogId.2=fl-0fedcba987654321f")
    for exp in (604801, 999999999, 0):
        q, h = signed(method="GET", params={"Action": "DescribeFlowLogs", "Version": "2016-11-15"},
                      presign=True, expires=exp)
        out[f"presigned-expires-{exp}"] = verify_input("GET", q, h, b"")
    return out


def sigv4_tamper_seeds() -> dict[str, bytes]:
    own = hashlib.sha256(CREATE).hexdigest().encode()
    return {
        "no-header-create": b"\x00" + CREATE,
        "original-hash-create": b"\x01" + CREATE,
        "original-hash-delete": b"\x01" + DELETE,
        "unsigned-payload-create": b"\x02" + CREATE,
        "declared-own-hash-create": b"\x03" + own + b"\0" + CREATE,
        "declared-empty-hash-create": b"\x03" + EMPTY.encode() + b"\0" + CREATE,
        "original-hash-appended": b"\x01" + DESCRIBE + b"&Action=CreateVpc&CidrBlock=10.0.0.0%2F16",
    }


def handle_signed_seeds() -> dict[str, bytes]:
    ids = "&".join(f"FlowLogId.{i}=fl-{i:017x}" for i in range(1, 1002)).encode()

    def values(n, f=1, v=lambda i: f"v{i}"):
        return "&".join([f"Filter.{f}.Name=vpc-id"] + [f"Filter.{f}.Value.{i}={v(i)}" for i in range(1, n + 1)])

    return {
        "delete-1001-ids": b"\x01" + ids,
        "describe-1001-ids": b"\x02" + ids,
        "delete-1000-unknown-ids": b"\x01" + "&".join(f"FlowLogId.{i}=fl-{i:017x}" for i in range(1, 1001)).encode(),
        "describe-vpcs-201-values": b"\x04" + values(201).encode(),
        "describe-vpcs-999-values": b"\x04" + values(999).encode(),
        "describe-vpcs-101-plus-100-values": b"\x04" + (values(101) + "&" + values(100, f=2)).encode(),
        "describe-flow-logs-glob-2000": b"\x02Filter.1.Name=log-group-name&Filter.1.Value.1=" + b"*a" * 1000,
        "describe-enis-value-1025": b"\x0aFilter.1.Name=network-interface-id&Filter.1.Value.1=" + b"b" * 1025,
    }


def main():
    for target, seeds in (("sigv4_verify", sigv4_verify_seeds()), ("sigv4_tamper", sigv4_tamper_seeds()),
                          ("handle_signed", handle_signed_seeds())):
        d = SEEDS / target
        d.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (d / f"s9-{name}").write_bytes(data)
        print(f"{target}: {len(seeds)} seeds in {d.relative_to(REPO)}")


if __name__ == "__main__":
    main()
