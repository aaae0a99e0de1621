//! AWS Signature Version 4, both directions, in one place: the signing key, the canonical
//! request and the string to sign ([`canonical_request`], [`signature`]) are shared by
//! [`sign`] (the requests flowlog makes: S3, CloudWatch Logs, agent sync) and by the API's
//! verifier (`flowlog_api::sigv4`), so the two can never disagree about the algorithm.
//!
//! Our own ~150 lines on `hmac` + `sha2`: the AWS SDK crates cost minutes of cold build on this
//! project's 2-core machine and have no verify API. Integration tests check signatures against
//! servers that verify them (s3s-fs, the strict CloudWatch Logs fake, `flowlog serve` itself).

use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

type HmacSha256 = Hmac<Sha256>;

/// Keys used to sign.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// The parts of a request that enter the signature.
pub struct Request<'a> {
    pub method: &'a str,
    /// `host[:port]` exactly as in the Host header.
    pub host: &'a str,
    /// URI-encoded path as sent (`/bucket/key`).
    pub path: &'a str,
    /// Query pairs, unencoded.
    pub query: &'a [(&'a str, &'a str)],
    /// Extra headers to sign (names lowercase), e.g. `content-type`, `x-amz-target`.
    pub headers: &'a [(&'a str, &'a str)],
    /// Hex SHA-256 of the body.
    pub payload_sha256: &'a str,
}

/// RFC 3986 unreserved characters stay, everything else is percent-encoded.
const STRICT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
const PATH: &AsciiSet = &STRICT.remove(b'/');

/// Encodes an object key for a URL path (keeps `/`).
pub fn encode_path(s: &str) -> String {
    utf8_percent_encode(s, PATH).to_string()
}

/// SigV4's URI encoding: unreserved characters kept, everything else `%XX` (upper case).
pub fn uri_encode(s: &str, encode_slash: bool) -> String {
    let set = if encode_slash { STRICT } else { PATH };
    utf8_percent_encode(s, set).to_string()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The signing key of one day (`YYYYMMDD`), region and service.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    hmac(&k, b"aws4_request")
}

/// The canonical request. `query` is the canonical query string (encoded, sorted, joined);
/// `headers` are the signed headers in order, names lower case, values already trimmed.
pub fn canonical_request(
    method: &str,
    canonical_uri: &str,
    query: &str,
    headers: &[(String, String)],
    payload_sha256: &str,
) -> String {
    let mut c = String::with_capacity(256);
    c.push_str(method);
    c.push('\n');
    c.push_str(canonical_uri);
    c.push('\n');
    c.push_str(query);
    c.push('\n');
    for (k, v) in headers {
        c.push_str(k);
        c.push(':');
        c.push_str(v);
        c.push('\n');
    }
    c.push('\n');
    c.push_str(&signed_headers(headers));
    c.push('\n');
    c.push_str(payload_sha256);
    c
}

/// `host;x-amz-date;...` of the headers in order.
pub fn signed_headers(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";")
}

/// The hex signature of a canonical request with the key of `scope` (`date/region/service/aws4_request`).
pub fn signature(key: &[u8], amz_date: &str, scope: &str, canonical_request: &str) -> String {
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    hex::encode(hmac(key, to_sign.as_bytes()))
}

/// Canonical query string of unencoded pairs: each side encoded, sorted, joined with `&`.
pub fn canonical_query<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut q: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (uri_encode(k.as_ref(), true), uri_encode(v.as_ref(), true)))
        .collect();
    q.sort();
    q.into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Returns the headers to add: `x-amz-date`, `x-amz-security-token` (if any) and
/// `authorization`. The caller sends every header listed in `req.headers` plus `host`.
pub fn sign(
    req: &Request<'_>,
    creds: &Credentials,
    region: &str,
    service: &str,
    now: OffsetDateTime,
) -> Vec<(&'static str, String)> {
    let date = format!(
        "{:04}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    );
    let amz_date = format!(
        "{date}T{:02}{:02}{:02}Z",
        now.hour(),
        now.minute(),
        now.second()
    );

    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    headers.push(("host".into(), req.host.to_string()));
    headers.push(("x-amz-date".into(), amz_date.clone()));
    if let Some(t) = &creds.session_token {
        headers.push(("x-amz-security-token".into(), t.clone()));
    }
    headers.sort();
    let canonical = canonical_request(
        req.method,
        req.path,
        &canonical_query(req.query),
        &headers,
        req.payload_sha256,
    );
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let key = signing_key(&creds.secret_access_key, &date, region, service);
    let sig = signature(&key, &amz_date, &scope, &canonical);

    let mut out = vec![("x-amz-date", amz_date)];
    if let Some(t) = &creds.session_token {
        out.push(("x-amz-security-token", t.clone()));
    }
    out.push((
        "authorization",
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={}, Signature={sig}",
            creds.access_key_id,
            signed_headers(&headers)
        ),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    #[test]
    fn aws_test_suite_get_vanilla() {
        // From the published SigV4 test suite ("get-vanilla").
        let now = time::macros::datetime!(2015-08-30 12:36:00 UTC);
        let req = Request {
            method: "GET",
            host: "example.amazonaws.com",
            path: "/",
            query: &[],
            headers: &[],
            payload_sha256: &sha256_hex(b""),
        };
        let h = sign(&req, &example(), "us-east-1", "service", now);
        assert_eq!(h[0].1, "20150830T123600Z");
        assert_eq!(
            h[1].1,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn aws_test_suite_get_vanilla_query_order() {
        // "get-vanilla-query-order-key-case": parameters sorted by encoded name.
        let now = time::macros::datetime!(2015-08-30 12:36:00 UTC);
        let req = Request {
            method: "GET",
            host: "example.amazonaws.com",
            path: "/",
            query: &[("Param2", "value2"), ("Param1", "value1")],
            headers: &[],
            payload_sha256: &sha256_hex(b""),
        };
        let h = sign(&req, &example(), "us-east-1", "service", now);
        assert!(h[1].1.ends_with(
            "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        ));
    }

    #[test]
    fn path_encoding_keeps_slashes() {
        assert_eq!(encode_path("a b/c+d_e.log.gz"), "a%20b/c%2Bd_e.log.gz");
    }

    #[test]
    fn known_signing_key_vector() {
        // The derived key for the documented example secret, date, region and service.
        let k = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(k),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
    }
}
