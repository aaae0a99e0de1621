//! AWS Signature Version 4 for the requests delivery makes (S3 PUT/HEAD/GET, CloudWatch Logs
//! JSON POST). Our own ~100 lines on `hmac` + `sha2` instead of the AWS SDK: the SDK crates
//! cost minutes of cold build on this project's 2-core machine for two request shapes we can
//! sign ourselves, and the integration tests check every signature against servers that verify
//! them (s3s-fs with credentials, the strict CloudWatch Logs fake).

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

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
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
    let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    let signed = signed.join(";");

    let mut query: Vec<(String, String)> = req
        .query
        .iter()
        .map(|(k, v)| {
            (
                utf8_percent_encode(k, STRICT).to_string(),
                utf8_percent_encode(v, STRICT).to_string(),
            )
        })
        .collect();
    query.sort();
    let query: Vec<String> = query.into_iter().map(|(k, v)| format!("{k}={v}")).collect();

    let mut canonical = String::with_capacity(256);
    canonical.push_str(req.method);
    canonical.push('\n');
    canonical.push_str(req.path);
    canonical.push('\n');
    canonical.push_str(&query.join("&"));
    canonical.push('\n');
    for (k, v) in &headers {
        canonical.push_str(k);
        canonical.push(':');
        canonical.push_str(v);
        canonical.push('\n');
    }
    canonical.push('\n');
    canonical.push_str(&signed);
    canonical.push('\n');
    canonical.push_str(req.payload_sha256);

    let scope = format!("{date}/{region}/{service}/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let k_date = hmac(
        format!("AWS4{}", creds.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    let signature = hex::encode(hmac(&k_signing, to_sign.as_bytes()));

    let mut out = vec![("x-amz-date", amz_date)];
    if let Some(t) = &creds.session_token {
        out.push(("x-amz-security-token", t.clone()));
    }
    out.push((
        "authorization",
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
            creds.access_key_id
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
}
