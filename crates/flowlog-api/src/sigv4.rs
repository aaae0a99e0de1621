//! Verification of AWS Signature Version 4, in both forms the SDKs send: the
//! `Authorization: AWS4-HMAC-SHA256 ...` header and the presigned query string
//! (`X-Amz-Signature=...`). We rebuild the canonical request from what arrived, derive the
//! signing key from the stored secret and compare signatures in constant time.
//!
//! Pure: the caller passes the request parts, the current time and a secret lookup.

use subtle::ConstantTimeEq;

pub use flowlog_sigv4::{signing_key, uri_encode};

/// Allowed difference between the request's `X-Amz-Date` and our clock.
pub const MAX_SKEW_SECS: i64 = 15 * 60;

/// Longest validity of a presigned request (`X-Amz-Expires`), as AWS allows: 7 days.
pub const MAX_EXPIRES_SECS: i64 = 7 * 24 * 3600;

/// The payload marker some signers use instead of the body's hash. This API never accepts it:
/// the signature must cover the body, or a captured request could carry any other body.
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// The parts of an HTTP request that SigV4 covers.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// Raw query string as received (without `?`), still percent-encoded.
    pub query: &'a str,
    /// Header names in any case; repeated headers appear several times.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// What a verified signature proves: who signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub access_key_id: String,
}

/// Why a request is not authenticated. All of these are answered as `AuthFailure`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(
        "The request is not signed: no Authorization header and no X-Amz-Signature parameter."
    )]
    Missing,
    #[error("The Authorization header is malformed: {0}")]
    Malformed(&'static str),
    #[error("Only AWS4-HMAC-SHA256 signatures are supported.")]
    Algorithm,
    #[error("AWS was not able to validate the provided access credentials")]
    UnknownKey,
    #[error("Credential should be scoped to a valid region, not '{0}'.")]
    Region(String),
    #[error("Credential should be scoped to the correct service: 'ec2'.")]
    Service,
    #[error("The credential scope date does not match X-Amz-Date.")]
    ScopeDate,
    #[error(
        "Request timestamp is more than 15 minutes away from the server time (signature date {0})."
    )]
    Skew(String),
    #[error("The presigned request has expired.")]
    Expired,
    #[error("X-Amz-Expires must be a whole number of seconds from 1 to 604800 (7 days).")]
    ExpiresRange,
    #[error("The x-amz-content-sha256 header does not match the SHA-256 of the request body.")]
    PayloadHash,
    #[error("UNSIGNED-PAYLOAD is not accepted by this API: sign the SHA-256 of the request body.")]
    UnsignedPayload,
    #[error(
        "A presigned request carries its parameters in the query string; its body must be empty."
    )]
    PresignedBody,
    #[error("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")]
    Mismatch,
}

/// Parsed `Credential=AKID/20240101/us-east-1/ec2/aws4_request`, signed headers, signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Parses the value of an `Authorization` header.
pub fn parse_authorization(value: &str) -> Result<Authorization, AuthError> {
    let rest = value
        .strip_prefix("AWS4-HMAC-SHA256")
        .ok_or(AuthError::Algorithm)?;
    let (mut cred, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            cred = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            sig = Some(v);
        }
    }
    build_authorization(
        cred.ok_or(AuthError::Malformed("missing Credential"))?,
        signed.ok_or(AuthError::Malformed("missing SignedHeaders"))?,
        sig.ok_or(AuthError::Malformed("missing Signature"))?,
    )
}

fn build_authorization(cred: &str, signed: &str, sig: &str) -> Result<Authorization, AuthError> {
    let parts: Vec<&str> = cred.split('/').collect();
    if parts.len() != 5 || parts[4] != "aws4_request" || parts.iter().any(|p| p.is_empty()) {
        return Err(AuthError::Malformed(
            "Credential must be KEY/DATE/REGION/SERVICE/aws4_request",
        ));
    }
    if sig.len() != 64 || !sig.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AuthError::Malformed("Signature must be 64 hex characters"));
    }
    let signed_headers: Vec<String> = signed.split(';').map(|h| h.to_ascii_lowercase()).collect();
    if signed_headers.iter().any(|h| h.is_empty()) {
        return Err(AuthError::Malformed("empty name in SignedHeaders"));
    }
    Ok(Authorization {
        access_key_id: parts[0].to_string(),
        date: parts[1].to_string(),
        region: parts[2].to_string(),
        service: parts[3].to_string(),
        signed_headers,
        signature: sig.to_ascii_lowercase(),
    })
}

/// Verifies `req`. `secret_for` maps an access key id to its secret. `now` is Unix seconds.
pub fn verify(
    req: &SignedRequest<'_>,
    region: &str,
    now: i64,
    secret_for: impl Fn(&str) -> Option<String>,
) -> Result<Verified, AuthError> {
    verify_inner(req, region, now, secret_for, true)
}

/// Checks the signature of a header-form request that declares its payload hash in
/// `x-amz-content-sha256`, before the body has been read (`req.body` is ignored). `Ok(None)`:
/// the request declares no hash, so only [`verify`] on the whole body can decide. Passing
/// here proves who signed and what body they signed; the caller must still run [`verify`]
/// once the body is in, which compares the body with the declared hash.
pub fn verify_head(
    req: &SignedRequest<'_>,
    region: &str,
    now: i64,
    secret_for: impl Fn(&str) -> Option<String>,
) -> Result<Option<Verified>, AuthError> {
    match header(req.headers, "x-amz-content-sha256") {
        Some(h) if header(req.headers, "authorization").is_some() => {
            if h == UNSIGNED_PAYLOAD {
                return Err(AuthError::UnsignedPayload);
            }
            verify_inner(req, region, now, secret_for, false).map(Some)
        }
        _ => Ok(None),
    }
}

fn verify_inner(
    req: &SignedRequest<'_>,
    region: &str,
    now: i64,
    secret_for: impl Fn(&str) -> Option<String>,
    with_body: bool,
) -> Result<Verified, AuthError> {
    let auth_header = header(req.headers, "authorization");
    let query_pairs = split_query(req.query);
    let presigned = query_pairs.iter().any(|(k, _)| k == "X-Amz-Signature");
    if presigned && auth_header.is_some() {
        // One request, one signature: an extra X-Amz-Signature would be a parameter nobody
        // signed (and would switch the header form's payload rules to the presigned ones).
        return Err(AuthError::Malformed(
            "a request carries either an Authorization header or X-Amz-Signature, not both",
        ));
    }
    let (auth, amz_date, expires) = match (auth_header, presigned) {
        (Some(h), _) => {
            let auth = parse_authorization(h)?;
            let date = header(req.headers, "x-amz-date")
                .map(str::to_string)
                .ok_or(AuthError::Malformed("missing X-Amz-Date header"))?;
            (auth, date, None)
        }
        (None, true) => {
            let q = |name: &str| {
                query_pairs
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
            };
            if q("X-Amz-Algorithm") != Some("AWS4-HMAC-SHA256") {
                return Err(AuthError::Algorithm);
            }
            let auth = build_authorization(
                q("X-Amz-Credential").ok_or(AuthError::Malformed("missing X-Amz-Credential"))?,
                q("X-Amz-SignedHeaders")
                    .ok_or(AuthError::Malformed("missing X-Amz-SignedHeaders"))?,
                q("X-Amz-Signature").unwrap_or_default(),
            )?;
            let date = q("X-Amz-Date").ok_or(AuthError::Malformed("missing X-Amz-Date"))?;
            // AWS refuses presigned URLs valid for longer than 7 days.
            let expires = q("X-Amz-Expires")
                .map(|e| match e.parse::<i64>() {
                    Ok(n) if (1..=MAX_EXPIRES_SECS).contains(&n) => Ok(n),
                    _ => Err(AuthError::ExpiresRange),
                })
                .transpose()?;
            (auth, date.to_string(), expires)
        }
        (None, false) => return Err(AuthError::Missing),
    };

    let secret = secret_for(&auth.access_key_id).ok_or(AuthError::UnknownKey)?;
    if auth.service != "ec2" {
        return Err(AuthError::Service);
    }
    if auth.region != region {
        return Err(AuthError::Region(auth.region.clone()));
    }
    let signed_at = parse_amz_date(&amz_date)
        .ok_or(AuthError::Malformed("X-Amz-Date must be YYYYMMDDTHHMMSSZ"))?;
    if !amz_date.starts_with(&auth.date) {
        return Err(AuthError::ScopeDate);
    }
    match expires {
        Some(exp) => {
            if now > signed_at + exp || signed_at - now > MAX_SKEW_SECS {
                return Err(AuthError::Expired);
            }
        }
        None => {
            if (now - signed_at).abs() > MAX_SKEW_SECS {
                return Err(AuthError::Skew(amz_date.clone()));
            }
        }
    }
    if !auth.signed_headers.iter().any(|h| h == "host") {
        return Err(AuthError::Malformed("SignedHeaders must include host"));
    }

    // The signature must cover the body that arrived. The body is always hashed here; a
    // declared hash is only accepted when it is that hash, and a presigned request (whose
    // signature covers an empty payload) must have no body at all.
    let declared = header(req.headers, "x-amz-content-sha256");
    let body_hash = match (with_body, declared) {
        (true, _) => flowlog_sigv4::sha256_hex(req.body),
        // Head only: the declared hash stands in for the body until it has been read.
        (false, Some(d)) => d.to_ascii_lowercase(),
        (false, None) => return Err(AuthError::PayloadHash),
    };
    if presigned && !req.body.is_empty() {
        return Err(AuthError::PresignedBody);
    }
    if let Some(declared) = declared {
        if declared == UNSIGNED_PAYLOAD && !presigned {
            return Err(AuthError::UnsignedPayload);
        }
        if declared != UNSIGNED_PAYLOAD && !declared.eq_ignore_ascii_case(&body_hash) {
            return Err(AuthError::PayloadHash);
        }
    }
    let key = signing_key(&secret, &auth.date, &auth.region, &auth.service);
    let matches = |payload_hash: &str| {
        let expected = signature(
            req,
            &auth,
            &amz_date,
            &query_pairs,
            presigned,
            payload_hash,
            &key,
        );
        bool::from(expected.as_bytes().ct_eq(auth.signature.as_bytes()))
    };
    // Presigned URLs of some signers cover `UNSIGNED-PAYLOAD`; with the body proven empty
    // above, that marker and the empty body's hash mean the same thing.
    if matches(&body_hash) || (presigned && matches(UNSIGNED_PAYLOAD)) {
        return Ok(Verified {
            access_key_id: auth.access_key_id,
        });
    }
    Err(AuthError::Mismatch)
}

#[allow(clippy::too_many_arguments)]
fn signature(
    req: &SignedRequest<'_>,
    auth: &Authorization,
    amz_date: &str,
    query_pairs: &[(String, String)],
    presigned: bool,
    payload_hash: &str,
    key: &[u8],
) -> String {
    let pairs: Vec<&(String, String)> = query_pairs
        .iter()
        .filter(|(k, _)| !(presigned && k == "X-Amz-Signature"))
        .collect();
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // Each signed header with its values (repeated headers joined by commas, spaces collapsed),
    // in the order the client listed them.
    let headers: Vec<(String, String)> = auth
        .signed_headers
        .iter()
        .map(|name| {
            let values: Vec<String> = req
                .headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| collapse_spaces(v))
                .collect();
            (name.clone(), values.join(","))
        })
        .collect();
    let canonical = flowlog_sigv4::canonical_request(
        req.method,
        &canonical_path(req.path),
        &flowlog_sigv4::canonical_query(&pairs),
        &headers,
        payload_hash,
    );
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    flowlog_sigv4::signature(key, amz_date, &scope, &canonical)
}

/// The raw path with each segment encoded once more, as botocore does for non-S3 services.
fn canonical_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_string();
    }
    let segs: Vec<String> = path.split('/').map(|s| uri_encode(s, true)).collect();
    segs.join("/")
}

fn collapse_spaces(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Splits a raw query string into decoded pairs, decoding exactly as the parameters are
/// decoded for execution (`query::decode`: `+` is a space, then `%XX`). Signers send a space
/// as `%20` and `+` as `%2B`; a literal `+` therefore means what the action will see, a space,
/// and re-encodes as `%20`, so a `%2B` swapped for `+` no longer matches the signature.
fn split_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let s = s.replace('+', " ");
    percent_encoding::percent_decode_str(&s)
        .decode_utf8_lossy()
        .into_owned()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// `YYYYMMDDTHHMMSSZ` to Unix seconds.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    let month = time::Month::try_from(u8::try_from(mo).ok()?).ok()?;
    let date = time::Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(d).ok()?)
        .ok()?;
    let t = time::Time::from_hms(
        u8::try_from(h).ok()?,
        u8::try_from(mi).ok()?,
        u8::try_from(se).ok()?,
    )
    .ok()?;
    Some(
        time::PrimitiveDateTime::new(date, t)
            .assume_utc()
            .unix_timestamp(),
    )
}

/// Signs a request as an SDK would (header form). Used by tests.
#[allow(clippy::too_many_arguments)]
pub fn sign_headers(
    method: &str,
    host: &str,
    path: &str,
    body: &[u8],
    key_id: &str,
    secret: &str,
    region: &str,
    amz_date: &str,
) -> Vec<(String, String)> {
    let mut headers = vec![
        ("host".to_string(), host.to_string()),
        ("x-amz-date".to_string(), amz_date.to_string()),
    ];
    let auth = Authorization {
        access_key_id: key_id.to_string(),
        date: amz_date[..8].to_string(),
        region: region.to_string(),
        service: "ec2".to_string(),
        signed_headers: vec!["host".into(), "x-amz-date".into()],
        signature: String::new(),
    };
    let req = SignedRequest {
        method,
        path,
        query: "",
        headers: &headers,
        body,
    };
    let key = signing_key(secret, &auth.date, region, "ec2");
    let payload = flowlog_sigv4::sha256_hex(body);
    let sig = signature(&req, &auth, amz_date, &[], false, &payload, &key);
    headers.push((
        "authorization".to_string(),
        format!(
            "AWS4-HMAC-SHA256 Credential={key_id}/{}/{region}/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature={sig}",
            auth.date
        ),
    ));
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn lookup(k: &str) -> Option<String> {
        (k == KEY).then(|| SECRET.to_string())
    }

    #[test]
    fn round_trip_and_tampering() {
        let body = b"Action=DescribeFlowLogs&Version=2016-11-15";
        let now = parse_amz_date("20240101T120000Z").unwrap();
        let headers = sign_headers(
            "POST",
            "127.0.0.1:4751",
            "/",
            body,
            KEY,
            SECRET,
            "us-east-1",
            "20240101T120000Z",
        );
        let req = SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body,
        };
        assert_eq!(
            verify(&req, "us-east-1", now, lookup)
                .unwrap()
                .access_key_id,
            KEY
        );
        // Another body, another region, a stale clock, an unknown key.
        let bad = SignedRequest {
            body: b"Action=DeleteFlowLogs",
            ..req
        };
        assert_eq!(
            verify(&bad, "us-east-1", now, lookup),
            Err(AuthError::Mismatch)
        );
        let req = SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body,
        };
        assert!(matches!(
            verify(&req, "eu-west-1", now, lookup),
            Err(AuthError::Region(_))
        ));
        assert!(matches!(
            verify(&req, "us-east-1", now + 16 * 60, lookup),
            Err(AuthError::Skew(_))
        ));
        assert_eq!(
            verify(&req, "us-east-1", now, |_| None),
            Err(AuthError::UnknownKey)
        );
        let wrong = |_: &str| Some("other".to_string());
        assert_eq!(
            verify(&req, "us-east-1", now, wrong),
            Err(AuthError::Mismatch)
        );
    }

    const DATE: &str = "20240101T120000Z";

    /// Signs in header form with `host`, `x-amz-date` and, when given, a signed
    /// `x-amz-content-sha256` of `declared`.
    fn sign_with_hash(body: &[u8], declared: Option<&str>) -> Vec<(String, String)> {
        let mut headers = vec![
            ("host".to_string(), "h".to_string()),
            ("x-amz-date".to_string(), DATE.to_string()),
        ];
        let mut signed = vec!["host".to_string(), "x-amz-date".to_string()];
        if let Some(d) = declared {
            headers.push(("x-amz-content-sha256".to_string(), d.to_string()));
            signed.insert(1, "x-amz-content-sha256".to_string());
        }
        let auth = Authorization {
            access_key_id: KEY.into(),
            date: DATE[..8].into(),
            region: "us-east-1".into(),
            service: "ec2".into(),
            signed_headers: signed.clone(),
            signature: String::new(),
        };
        let req = SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body,
        };
        let key = signing_key(SECRET, &auth.date, "us-east-1", "ec2");
        let payload = declared
            .map(str::to_string)
            .unwrap_or_else(|| flowlog_sigv4::sha256_hex(body));
        let sig = signature(&req, &auth, DATE, &[], false, &payload, &key);
        headers.push((
            "authorization".into(),
            format!(
                "AWS4-HMAC-SHA256 Credential={KEY}/{}/us-east-1/ec2/aws4_request, SignedHeaders={}, Signature={sig}",
                &DATE[..8],
                signed.join(";")
            ),
        ));
        headers
    }

    fn post<'a>(headers: &'a [(String, String)], body: &'a [u8]) -> SignedRequest<'a> {
        SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            headers,
            body,
        }
    }

    #[test]
    fn the_body_is_bound_to_the_signature() {
        let now = parse_amz_date(DATE).unwrap();
        let a = b"Action=DescribeVpcs&Version=2016-11-15";
        let b = b"Action=CreateVpc&CidrBlock=10.0.0.0/16&Version=2016-11-15";
        let hash_a = flowlog_sigv4::sha256_hex(a);
        // Honest requests, with and without a declared (signed) hash.
        let plain = sign_with_hash(a, None);
        assert!(verify(&post(&plain, a), "us-east-1", now, lookup).is_ok());
        let declared = sign_with_hash(a, Some(&hash_a));
        assert!(verify(&post(&declared, a), "us-east-1", now, lookup).is_ok());
        // Replayed with another body and the original hash: unsigned header added by the
        // attacker, and the client's own signed header.
        let mut added = plain.clone();
        added.push(("X-Amz-Content-Sha256".into(), hash_a.clone()));
        assert_eq!(
            verify(&post(&added, b), "us-east-1", now, lookup),
            Err(AuthError::PayloadHash)
        );
        assert_eq!(
            verify(&post(&declared, b), "us-east-1", now, lookup),
            Err(AuthError::PayloadHash)
        );
        // Without any header, the other body is simply a mismatch.
        assert_eq!(
            verify(&post(&plain, b), "us-east-1", now, lookup),
            Err(AuthError::Mismatch)
        );
        // A signer's UNSIGNED-PAYLOAD in header form is refused, whatever the body.
        let unsigned = sign_with_hash(a, Some("UNSIGNED-PAYLOAD"));
        assert_eq!(
            verify(&post(&unsigned, a), "us-east-1", now, lookup),
            Err(AuthError::UnsignedPayload)
        );
        // Head-only check: the signature over the declared hash, before the body is read.
        assert!(matches!(
            verify_head(&post(&declared, b""), "us-east-1", now, lookup),
            Ok(Some(_))
        ));
        assert_eq!(
            verify_head(&post(&plain, b""), "us-east-1", now, lookup),
            Ok(None)
        );
        let mut forged = declared.clone();
        for (k, v) in forged.iter_mut() {
            if k == "x-amz-content-sha256" {
                *v = flowlog_sigv4::sha256_hex(b);
            }
        }
        assert_eq!(
            verify_head(&post(&forged, b""), "us-east-1", now, lookup),
            Err(AuthError::Mismatch)
        );
    }

    /// Builds a presigned query string for `POST /` as botocore does.
    fn presign(extra: &[(&str, &str)], expires: &str, payload: &str) -> String {
        let host = [("host".to_string(), "h".to_string())];
        let mut pairs: Vec<(String, String)> = extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let cred = format!("{KEY}/{}/us-east-1/ec2/aws4_request", &DATE[..8]);
        pairs.extend([
            (
                "X-Amz-Algorithm".to_string(),
                "AWS4-HMAC-SHA256".to_string(),
            ),
            ("X-Amz-Credential".to_string(), cred),
            ("X-Amz-Date".to_string(), DATE.to_string()),
            ("X-Amz-Expires".to_string(), expires.to_string()),
            ("X-Amz-SignedHeaders".to_string(), "host".to_string()),
        ]);
        let auth = Authorization {
            access_key_id: KEY.into(),
            date: DATE[..8].into(),
            region: "us-east-1".into(),
            service: "ec2".into(),
            signed_headers: vec!["host".into()],
            signature: String::new(),
        };
        let req = SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &host,
            body: b"",
        };
        let key = signing_key(SECRET, &auth.date, "us-east-1", "ec2");
        let sig = signature(&req, &auth, DATE, &pairs, true, payload, &key);
        pairs.push(("X-Amz-Signature".to_string(), sig));
        pairs
            .iter()
            .map(|(k, v)| format!("{}={}", uri_encode(k, true), uri_encode(v, true)))
            .collect::<Vec<_>>()
            .join("&")
    }

    #[test]
    fn presigned_requests_have_no_body_and_a_bounded_life() {
        let now = parse_amz_date(DATE).unwrap();
        let host = [("host".to_string(), "h".to_string())];
        let params = [("Action", "DeleteFlowLogs"), ("FlowLogId.1", "fl-1")];
        let empty = flowlog_sigv4::sha256_hex(b"");
        for payload in [empty.as_str(), "UNSIGNED-PAYLOAD"] {
            let q = presign(&params, "300", payload);
            let req = |body: &'static [u8]| SignedRequest {
                method: "POST",
                path: "/",
                query: &q,
                headers: &host,
                body,
            };
            assert!(verify(&req(b""), "us-east-1", now, lookup).is_ok());
            // Stretched with more IDs in the body: refused.
            assert_eq!(
                verify(&req(b"FlowLogId.2=fl-2"), "us-east-1", now, lookup),
                Err(AuthError::PresignedBody)
            );
            // ... also when the attacker declares the empty body's hash.
            let with_hash = [
                host[0].clone(),
                ("x-amz-content-sha256".to_string(), empty.clone()),
            ];
            let stretched = SignedRequest {
                headers: &with_hash,
                ..req(b"FlowLogId.2=fl-2")
            };
            assert_eq!(
                verify(&stretched, "us-east-1", now, lookup),
                Err(AuthError::PresignedBody)
            );
        }
        for (expires, ok) in [
            ("604800", true),
            ("604801", false),
            ("999999999", false),
            ("0", false),
            ("-5", false),
            ("1e3", false),
        ] {
            let q = presign(&params, expires, &empty);
            let req = SignedRequest {
                method: "POST",
                path: "/",
                query: &q,
                headers: &host,
                body: b"",
            };
            let got = verify(&req, "us-east-1", now, lookup);
            assert_eq!(got.is_ok(), ok, "X-Amz-Expires={expires}: {got:?}");
            if !ok {
                assert_eq!(got, Err(AuthError::ExpiresRange));
            }
        }
        // Within its week a URL works; after it, it has expired.
        let q = presign(&params, "604800", &empty);
        let req = SignedRequest {
            method: "POST",
            path: "/",
            query: &q,
            headers: &host,
            body: b"",
        };
        assert!(verify(&req, "us-east-1", now + 604_000, lookup).is_ok());
        assert_eq!(
            verify(&req, "us-east-1", now + 604_801, lookup),
            Err(AuthError::Expired)
        );
    }

    #[test]
    fn query_decoding_matches_execution() {
        // `+` is a space for the action, so it must be a space for the signature too.
        assert_eq!(
            split_query("Tag.1.Value=a+b&x=a%2Bb"),
            vec![
                ("Tag.1.Value".to_string(), "a b".to_string()),
                ("x".to_string(), "a+b".to_string())
            ]
        );
        // Both forms at once: refused.
        let now = parse_amz_date(DATE).unwrap();
        let headers = sign_with_hash(b"", None);
        let req = SignedRequest {
            method: "POST",
            path: "/",
            query: "X-Amz-Signature=00",
            headers: &headers,
            body: b"",
        };
        assert!(matches!(
            verify(&req, "us-east-1", now, lookup),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn header_parsing_rejects_garbage() {
        assert_eq!(parse_authorization("Basic abc"), Err(AuthError::Algorithm));
        assert!(parse_authorization("AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request").is_err());
        assert!(parse_authorization(
            "AWS4-HMAC-SHA256 Credential=a/b, SignedHeaders=host, Signature=00"
        )
        .is_err());
        assert!(parse_amz_date("20241301T000000Z").is_none());
        assert!(parse_amz_date("2024010１T000000Z").is_none());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,300}") {
            let _ = parse_authorization(&s);
            let _ = parse_amz_date(&s);
        }
    }
}
