//! A small S3 client for any S3-compatible endpoint: PutObject, HeadBucket, and the few reads
//! tests and tools need (GetObject, ListObjectsV2, CreateBucket). Requests are signed with our
//! SigV4 ([`crate::sigv4`]) and sent with `x-amz-content-sha256` of the full body.

use crate::config::S3Config;
use crate::sigv4::{self, Credentials};
use crate::DeliveryError;
use reqwest::{Method, StatusCode, Url};
use std::time::Duration;
use time::OffsetDateTime;

/// Outcome of the CreateFlowLogs bucket check (spec §3.1 rule 21).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketCheck {
    Ok,
    /// `LogDestination: <bucket> does not exist`
    Missing,
    /// `Access Denied for LogDestination: <bucket>. Please check LogDestination permission`
    AccessDenied,
    /// The endpoint could not be asked (down, 5xx).
    Unavailable(String),
}

#[derive(Debug, Clone)]
pub struct S3Client {
    http: reqwest::Client,
    endpoint: Url,
    region: String,
    creds: Credentials,
    path_style: bool,
}

impl S3Client {
    pub fn new(cfg: &S3Config) -> Result<S3Client, DeliveryError> {
        let endpoint = cfg
            .endpoint
            .as_deref()
            .ok_or_else(|| DeliveryError::Config("s3.endpoint is not set".into()))?;
        let endpoint = Url::parse(endpoint)
            .map_err(|e| DeliveryError::Config(format!("s3.endpoint {endpoint:?}: {e}")))?;
        let (Some(ak), Some(sk)) = (&cfg.access_key_id, &cfg.secret_access_key) else {
            return Err(DeliveryError::Config(
                "s3.access_key_id and s3.secret_access_key are required with s3.endpoint".into(),
            ));
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| DeliveryError::Config(e.to_string()))?;
        Ok(S3Client {
            http,
            endpoint,
            region: cfg.region.clone(),
            creds: Credentials {
                access_key_id: ak.clone(),
                secret_access_key: sk.clone(),
                session_token: cfg.session_token.clone(),
            },
            path_style: cfg.path_style,
        })
    }

    /// URL, Host header value and encoded path of `bucket/key`.
    fn locate(&self, bucket: &str, key: &str) -> Result<(Url, String, String), DeliveryError> {
        let base_path = self.endpoint.path().trim_end_matches('/');
        let enc_key = sigv4::encode_path(key);
        let mut url = self.endpoint.clone();
        let path = if self.path_style {
            format!("{base_path}/{bucket}/{enc_key}")
        } else {
            let host = self
                .endpoint
                .host_str()
                .ok_or_else(|| DeliveryError::Config("s3.endpoint has no host".into()))?;
            url.set_host(Some(&format!("{bucket}.{host}")))
                .map_err(|e| DeliveryError::Config(e.to_string()))?;
            format!("{base_path}/{enc_key}")
        };
        url.set_path(&path);
        let host = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        // Url keeps our percent-encoding as is; read the path back to sign exactly what is sent.
        let sent_path = url.path().to_string();
        Ok((url, host, sent_path))
    }

    async fn send(
        &self,
        method: Method,
        bucket: &str,
        key: &str,
        query: &[(&str, &str)],
        extra: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(StatusCode, Vec<u8>), DeliveryError> {
        let (mut url, host, path) = self.locate(bucket, key)?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query.iter().copied());
        }
        let payload = sigv4::sha256_hex(&body);
        let mut headers: Vec<(&str, &str)> = extra.to_vec();
        headers.push(("x-amz-content-sha256", &payload));
        let req = sigv4::Request {
            method: method.as_str(),
            host: &host,
            path: &path,
            query,
            headers: &headers,
            payload_sha256: &payload,
        };
        let auth = sigv4::sign(
            &req,
            &self.creds,
            &self.region,
            "s3",
            OffsetDateTime::now_utc(),
        );
        let mut rb = self.http.request(method, url);
        for (k, v) in headers.iter() {
            rb = rb.header(*k, *v);
        }
        for (k, v) in auth {
            rb = rb.header(k, v);
        }
        let resp = rb.body(body).send().await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        Ok((status, bytes.to_vec()))
    }

    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
    ) -> Result<(), DeliveryError> {
        let len = body.len().to_string();
        let (status, resp) = self
            .send(
                Method::PUT,
                bucket,
                key,
                &[],
                &[
                    ("content-type", super::content_type(key)),
                    ("content-length", &len),
                    ("x-amz-acl", "bucket-owner-full-control"),
                ],
                body,
            )
            .await?;
        check(status, &resp)
    }

    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<Vec<u8>, DeliveryError> {
        let (status, resp) = self
            .send(Method::GET, bucket, key, &[], &[], Vec::new())
            .await?;
        check(status, &resp)?;
        Ok(resp)
    }

    /// Creates a bucket (tests and tools; delivery never creates buckets).
    pub async fn create_bucket(&self, bucket: &str) -> Result<(), DeliveryError> {
        let (status, resp) = self
            .send(Method::PUT, bucket, "", &[], &[], Vec::new())
            .await?;
        match check(status, &resp) {
            Err(DeliveryError::Rejected(m)) if m.contains("BucketAlready") => Ok(()),
            other => other,
        }
    }

    /// Keys under `prefix` (ListObjectsV2, following continuation tokens).
    pub async fn list_keys(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<String>, DeliveryError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut q = vec![("list-type", "2"), ("prefix", prefix)];
            if let Some(t) = &token {
                q.push(("continuation-token", t));
            }
            let (status, resp) = self
                .send(Method::GET, bucket, "", &q, &[], Vec::new())
                .await?;
            check(status, &resp)?;
            let text = String::from_utf8_lossy(&resp);
            keys.extend(xml_values(&text, "Key"));
            token = xml_values(&text, "NextContinuationToken")
                .into_iter()
                .next();
            if token.is_none() {
                return Ok(keys);
            }
        }
    }

    /// CreateFlowLogs' check: does the bucket exist, and may we write into it? Exists via
    /// HeadBucket; writable via a zero-byte folder marker `<prefix>AWSLogs/` (what S3 consoles
    /// create for folders), the same prefix delivery writes under.
    pub async fn check_bucket(&self, bucket: &str, prefix: &str) -> BucketCheck {
        match self
            .send(Method::HEAD, bucket, "", &[], &[], Vec::new())
            .await
        {
            Err(e) => return BucketCheck::Unavailable(e.to_string()),
            Ok((s, _)) if s == StatusCode::NOT_FOUND => return BucketCheck::Missing,
            Ok((s, _)) if s == StatusCode::FORBIDDEN || s == StatusCode::UNAUTHORIZED => {
                return BucketCheck::AccessDenied
            }
            Ok((s, _)) if !s.is_success() => {
                return BucketCheck::Unavailable(format!("HeadBucket: HTTP {s}"))
            }
            Ok(_) => {}
        }
        let marker = format!("{prefix}AWSLogs/");
        match self.put_object(bucket, &marker, Vec::new()).await {
            Ok(()) => BucketCheck::Ok,
            Err(DeliveryError::Access(_)) => BucketCheck::AccessDenied,
            Err(DeliveryError::Rejected(m)) if m.contains("NoSuchBucket") => BucketCheck::Missing,
            Err(e) => BucketCheck::Unavailable(e.to_string()),
        }
    }
}

/// Maps an S3 response to our error kinds.
fn check(status: StatusCode, body: &[u8]) -> Result<(), DeliveryError> {
    if status.is_success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(body);
    let code = xml_values(&text, "Code")
        .into_iter()
        .next()
        .unwrap_or_default();
    let msg = format!("HTTP {} {code}", status.as_u16());
    Err(match (status.as_u16(), code.as_str()) {
        (_, "SlowDown" | "Throttling" | "ThrottlingException" | "RequestLimitExceeded")
        | (429, _) => DeliveryError::Throttled(msg),
        (401 | 403, _) | (_, "AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch") => {
            DeliveryError::Access(msg)
        }
        (500..=599, _) => DeliveryError::Server(msg),
        _ => DeliveryError::Rejected(msg),
    })
}

/// Text of every `<tag>…</tag>` (S3 XML is flat enough for this).
fn xml_values(text: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(&open) {
        rest = &rest[i + open.len()..];
        let Some(j) = rest.find(&close) else { break };
        out.push(
            rest[..j]
                .replace("&amp;", "&")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'"),
        );
        rest = &rest[j + close.len()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified() {
        let body = b"<Error><Code>AccessDenied</Code></Error>";
        assert!(matches!(
            check(StatusCode::FORBIDDEN, body),
            Err(DeliveryError::Access(_))
        ));
        let body = b"<Error><Code>SlowDown</Code></Error>";
        assert!(matches!(
            check(StatusCode::SERVICE_UNAVAILABLE, body),
            Err(DeliveryError::Throttled(_))
        ));
        assert!(matches!(
            check(StatusCode::BAD_GATEWAY, b""),
            Err(DeliveryError::Server(_))
        ));
        let body = b"<Error><Code>NoSuchBucket</Code></Error>";
        assert!(matches!(
            check(StatusCode::NOT_FOUND, body),
            Err(DeliveryError::Rejected(_))
        ));
        assert!(check(StatusCode::OK, b"").is_ok());
    }

    #[test]
    fn urls_path_and_virtual_host() {
        let mut cfg = S3Config {
            endpoint: Some("http://127.0.0.1:9000".into()),
            access_key_id: Some("a".into()),
            secret_access_key: Some("b".into()),
            ..S3Config::default()
        };
        let c = S3Client::new(&cfg).unwrap();
        let (url, host, path) = c.locate("b1", "AWSLogs/x y.log.gz").unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9000/b1/AWSLogs/x%20y.log.gz"
        );
        assert_eq!(host, "127.0.0.1:9000");
        assert_eq!(path, "/b1/AWSLogs/x%20y.log.gz");
        cfg.endpoint = Some("https://s3.example.com".into());
        cfg.path_style = false;
        let c = S3Client::new(&cfg).unwrap();
        let (url, host, _) = c.locate("b1", "k").unwrap();
        assert_eq!(url.as_str(), "https://b1.s3.example.com/k");
        assert_eq!(host, "b1.s3.example.com");
    }
}
