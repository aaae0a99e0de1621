//! S3 delivery: object naming ([`key`]), the HTTP client for any S3-compatible endpoint
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

/// Where S3 objects go: a remote endpoint or the embedded directory.
pub enum S3Sink {
    Remote(S3Client),
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
            S3Sink::Remote(c) => c.put_object(bucket, key, body).await,
            S3Sink::Local(l) => l.put(bucket, key, &body),
        }
    }
}
