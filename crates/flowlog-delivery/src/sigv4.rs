//! SigV4 signing for the requests delivery makes (S3 PUT/HEAD/GET, CloudWatch Logs JSON POST):
//! the shared implementation in `flowlog-sigv4`, re-exported under its old path.

pub use flowlog_sigv4::{encode_path, sha256_hex, sign, Credentials, Request};
