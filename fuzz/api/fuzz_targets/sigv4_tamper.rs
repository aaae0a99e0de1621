//! Fuzzes the binding of the body to a SigV4 signature: a request honestly signed over one
//! body is replayed with the fuzzer's body and the fuzzer's choice of `x-amz-content-sha256`
//! header (none, the original body's hash, `UNSIGNED-PAYLOAD`, or a value of its own).
//! Verification may succeed only when the body is byte for byte the one that was signed.
#![no_main]

use flowlog_api::sigv4::{parse_amz_date, sign_headers, verify, SignedRequest};
use libfuzzer_sys::fuzz_target;

const SIGNED_BODY: &[u8] = b"Action=DescribeVpcs&Version=2016-11-15";
const SECRET: &str = "fuzz-secret-that-the-fuzzer-cannot-guess";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (declared, body) = match rest.iter().position(|b| *b == 0) {
        Some(i) if mode % 4 == 3 => (Some(String::from_utf8_lossy(&rest[..i]).into_owned()), &rest[i + 1..]),
        _ => (None, rest),
    };
    let date = "20260101T000000Z";
    let mut headers = sign_headers(
        "POST",
        "127.0.0.1:4751",
        "/",
        SIGNED_BODY,
        "AKIAFUZZ",
        SECRET,
        "us-east-1",
        date,
    );
    let header = match mode % 4 {
        0 => None,
        1 => Some(flowlog_sigv4::sha256_hex(SIGNED_BODY)),
        2 => Some("UNSIGNED-PAYLOAD".to_string()),
        _ => declared,
    };
    if let Some(h) = header {
        headers.push(("X-Amz-Content-Sha256".to_string(), h));
    }
    let req = SignedRequest {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body,
    };
    let now = parse_amz_date(date).unwrap_or(1_767_225_600);
    let res = verify(&req, "us-east-1", now, |key| {
        (key == "AKIAFUZZ").then(|| SECRET.to_string())
    });
    if body != SIGNED_BODY {
        assert!(res.is_err(), "a tampered body was accepted: {body:?} {res:?}");
    }
});
