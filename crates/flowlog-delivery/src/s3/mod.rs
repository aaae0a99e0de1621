//! S3 delivery: object naming ([`key`]), the SDK client for AWS or any S3-compatible service
//! ([`client`]), and the embedded store that writes the same layout under the data dir
//! ([`local`]).
//!
//! Object metadata. AWS's vended log files are gzip files served as such: the VPC guide says a
//! downloaded file "must be decompressed", and consumers of other AWS log files (ALB) report
//! objects without `Content-Encoding: gzip`, so SDKs do not inflate them on download. We store
//! `Content-Type: application/x-gzip` and **no** `Content-Encoding`, so `aws s3 cp` and
//! `get_object` return the `.log.gz` bytes unchanged, like AWS. Objects also carry
//! `x-amz-acl: bucket-owner-full-control` (spec §5.3).

pub mod client;
pub mod ddl;
pub mod key;
pub mod local;
pub mod parquet;

pub use client::{BucketCheck, S3Client};
pub use key::{Layout, ObjectName};
pub use local::LocalS3;

/// `Content-Type` of every flow log object.
pub const CONTENT_TYPE: &str = "application/x-gzip";
/// Content type of Parquet objects (`.log.parquet`).
pub const PARQUET_CONTENT_TYPE: &str = "application/octet-stream";

/// The content type of an object by its key's file name.
pub fn content_type(key: &str) -> &'static str {
    if key.ends_with(".parquet") {
        PARQUET_CONTENT_TYPE
    } else {
        CONTENT_TYPE
    }
}

/// Real S3, connected on first use (loading the credential chain may ask IMDS for a region).
pub struct RemoteS3 {
    ctx: std::sync::Arc<crate::aws::AwsContext>,
    cfg: crate::config::S3Config,
    client: tokio::sync::OnceCell<S3Client>,
}

impl RemoteS3 {
    pub fn new(ctx: std::sync::Arc<crate::aws::AwsContext>, cfg: &crate::config::S3Config) -> Self {
        RemoteS3 {
            ctx,
            cfg: cfg.clone(),
            client: tokio::sync::OnceCell::new(),
        }
    }

    pub async fn client(&self) -> Result<&S3Client, crate::DeliveryError> {
        self.client
            .get_or_try_init(|| S3Client::connect(&self.ctx, &self.cfg))
            .await
    }
}

/// Where S3 objects go: a remote service or the embedded directory.
pub enum S3Sink {
    Remote(Box<RemoteS3>),
    Local(LocalS3),
}

impl S3Sink {
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
    ) -> Result<(), crate::DeliveryError> {
        match self {
            S3Sink::Remote(r) => r.client().await?.put_object(bucket, key, body).await,
            S3Sink::Local(l) => l.put(bucket, key, &body),
        }
    }

    /// CreateFlowLogs' bucket check; `Ok` for the embedded store (it creates the bucket
    /// folder on first delivery).
    pub async fn check_bucket(&self, bucket: &str, prefix: &str) -> BucketCheck {
        match self {
            S3Sink::Remote(r) => match r.client().await {
                Ok(c) => c.check_bucket(bucket, prefix).await,
                Err(e) => BucketCheck::Unavailable(e.to_string()),
            },
            S3Sink::Local(_) => BucketCheck::Ok,
        }
    }
}
