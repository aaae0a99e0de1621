//! S3 through the AWS SDK for Rust: PutObject and HeadBucket for delivery, and the few reads
//! tests and tools need (GetObject, ListObjectsV2, CreateBucket).
//!
//! A bucket may live in another region than the client's: S3 answers 301 (or 400
//! `AuthorizationHeaderMalformed`) with an `x-amz-bucket-region` header. The SDK does not follow
//! that, so we do: the bucket's region is remembered and its calls go through a client of that
//! region from then on.

use crate::aws::{self, AwsContext};
use crate::config::S3Config;
use crate::DeliveryError;
use aws_config::{Region, SdkConfig};
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ObjectCannedAcl;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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

#[derive(Clone)]
pub struct S3Client {
    base: SdkConfig,
    endpoint: Option<String>,
    force_path_style: bool,
    /// One SDK client per region (the configured one first).
    clients: Arc<Mutex<HashMap<String, aws_sdk_s3::Client>>>,
    /// Buckets found in another region than the configured one.
    bucket_region: Arc<Mutex<HashMap<String, String>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The region S3 says a bucket is in, from a redirect or a wrong-region answer.
fn redirect_region<E>(e: &SdkError<E, HttpResponse>) -> Option<String> {
    let raw = match e {
        SdkError::ServiceError(c) => c.raw(),
        SdkError::ResponseError(c) => c.raw(),
        _ => return None,
    };
    if !matches!(raw.status().as_u16(), 301 | 307 | 400) {
        return None;
    }
    raw.headers()
        .get("x-amz-bucket-region")
        .map(|r| r.to_string())
        .filter(|r| !r.is_empty())
}

impl S3Client {
    /// A client for `[s3]` with `ctx`'s HTTPS client and the section's credentials.
    pub async fn connect(ctx: &AwsContext, cfg: &S3Config) -> Result<S3Client, DeliveryError> {
        let base = ctx.load(&cfg.section(), None).await?;
        Ok(S3Client {
            base,
            endpoint: cfg.endpoint.clone(),
            force_path_style: cfg.force_path_style,
            clients: Default::default(),
            bucket_region: Default::default(),
        })
    }

    /// For tests and tools: a context of its own (no `[sts]`).
    pub async fn new(cfg: &S3Config) -> Result<S3Client, DeliveryError> {
        Self::connect(&AwsContext::new(None)?, cfg).await
    }

    /// The configured region.
    pub fn region(&self) -> String {
        self.base
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| aws::FALLBACK_REGION.into())
    }

    fn client_in(&self, region: &str) -> aws_sdk_s3::Client {
        let mut clients = lock(&self.clients);
        if let Some(c) = clients.get(region) {
            return c.clone();
        }
        let mut b = aws_sdk_s3::config::Builder::from(&self.base)
            .region(Region::new(region.to_string()))
            .force_path_style(self.force_path_style)
            // Checksums only where S3 requires them: S3-compatible servers that predate
            // flexible checksums reject the extra headers, and SigV4 already covers the body.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(e) = &self.endpoint {
            b = b.endpoint_url(e.clone());
        }
        let c = aws_sdk_s3::Client::from_conf(b.build());
        clients.insert(region.to_string(), c.clone());
        c
    }

    fn client_for(&self, bucket: &str) -> (aws_sdk_s3::Client, String) {
        let region = lock(&self.bucket_region)
            .get(bucket)
            .cloned()
            .unwrap_or_else(|| self.region());
        (self.client_in(&region), region)
    }

    /// Runs `call` for `bucket`, once more in the bucket's own region when S3 redirects.
    async fn with_bucket<T, E, F, Fut>(
        &self,
        what: &str,
        bucket: &str,
        call: F,
    ) -> Result<T, SdkError<E, HttpResponse>>
    where
        F: Fn(aws_sdk_s3::Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    {
        let (client, region) = self.client_for(bucket);
        match call(client).await {
            Err(e) => match redirect_region(&e) {
                Some(r) if r != region => {
                    tracing::info!(%bucket, from = %region, to = %r, call = what, "S3 bucket is in another region: following");
                    lock(&self.bucket_region).insert(bucket.to_string(), r.clone());
                    call(self.client_in(&r)).await
                }
                _ => Err(e),
            },
            ok => ok,
        }
    }

    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
    ) -> Result<(), DeliveryError> {
        let body = bytes::Bytes::from(body);
        self.with_bucket("PutObject", bucket, |c| {
            c.put_object()
                .bucket(bucket)
                .key(key)
                .content_type(super::content_type(key))
                .acl(ObjectCannedAcl::BucketOwnerFullControl)
                .body(ByteStream::from(body.clone()))
                .send()
        })
        .await
        .map(|_| ())
        .map_err(|e| aws::classify("S3 PutObject", &e))
    }

    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<Vec<u8>, DeliveryError> {
        let out = self
            .with_bucket("GetObject", bucket, |c| {
                c.get_object().bucket(bucket).key(key).send()
            })
            .await
            .map_err(|e| aws::classify("S3 GetObject", &e))?;
        let data = out
            .body
            .collect()
            .await
            .map_err(|e| DeliveryError::Transport(format!("S3 GetObject body: {e}")))?;
        Ok(data.into_bytes().to_vec())
    }

    /// Creates a bucket (tests and tools; delivery never creates buckets).
    pub async fn create_bucket(&self, bucket: &str) -> Result<(), DeliveryError> {
        let (client, _) = self.client_for(bucket);
        match client.create_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) => match aws::classify("S3 CreateBucket", &e) {
                DeliveryError::Rejected(m) if m.contains("BucketAlready") => Ok(()),
                other => Err(other),
            },
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
            let t = token.clone();
            let out = self
                .with_bucket("ListObjectsV2", bucket, |c| {
                    c.list_objects_v2()
                        .bucket(bucket)
                        .prefix(prefix)
                        .set_continuation_token(t.clone())
                        .send()
                })
                .await
                .map_err(|e| aws::classify("S3 ListObjectsV2", &e))?;
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
            token = out.next_continuation_token().map(str::to_string);
            if token.is_none() {
                return Ok(keys);
            }
        }
    }

    /// CreateFlowLogs' check: does the bucket exist, and may we write into it? Exists via
    /// HeadBucket; writable via a zero-byte folder marker `<prefix>AWSLogs/` (what S3 consoles
    /// create for folders), the same prefix delivery writes under.
    pub async fn check_bucket(&self, bucket: &str, prefix: &str) -> BucketCheck {
        let head = self
            .with_bucket("HeadBucket", bucket, |c| {
                c.head_bucket().bucket(bucket).send()
            })
            .await;
        if let Err(e) = head {
            let status = match &e {
                SdkError::ServiceError(c) => Some(c.raw().status().as_u16()),
                SdkError::ResponseError(c) => Some(c.raw().status().as_u16()),
                _ => None,
            };
            return match (status, aws::classify("S3 HeadBucket", &e)) {
                (Some(404), _) => BucketCheck::Missing,
                (_, DeliveryError::Access(_)) => BucketCheck::AccessDenied,
                (_, other) => BucketCheck::Unavailable(other.to_string()),
            };
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
