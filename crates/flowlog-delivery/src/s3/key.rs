//! S3 object keys exactly as AWS names flow log files (spec §5.1):
//! `[prefix/]AWSLogs/{account}/vpcflowlogs/{region}/{yyyy}/{mm}/{dd}/{account}_vpcflowlogs_{region}_{flow-log-id}_{YYYYMMDDTHHmmZ}_{hash}.log.gz`.
//!
//! The timestamp is the window **start** (spec §14 Q3). The 8-hex `hash` is derived from the
//! spooled batch id (random per batch, mixed with the agent id), so two agents never share a key
//! while a batch re-sent after a crash overwrites its own object.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// Everything that names one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectName<'a> {
    pub prefix: &'a str,
    pub account_id: &'a str,
    pub region: &'a str,
    pub flow_log_id: &'a str,
    /// Unix seconds of the window start.
    pub window_start: u64,
    /// Identity of the spooled batch (agent id + batch id).
    pub batch_id: &'a str,
}

/// 8 lowercase hex characters, deterministic per batch id.
pub fn batch_hash(batch_id: &str) -> String {
    let digest = Sha256::digest(batch_id.as_bytes());
    hex::encode(&digest[..4])
}

impl ObjectName<'_> {
    pub fn key(&self) -> String {
        let t = OffsetDateTime::from_unix_timestamp(self.window_start as i64)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let (y, m, d) = (t.year(), u8::from(t.month()), t.day());
        format!(
            "{prefix}AWSLogs/{acct}/vpcflowlogs/{region}/{y:04}/{m:02}/{d:02}/{acct}_vpcflowlogs_{region}_{fl}_{y:04}{m:02}{d:02}T{hh:02}{mm:02}Z_{hash}.log.gz",
            prefix = self.prefix,
            acct = self.account_id,
            region = self.region,
            fl = self.flow_log_id,
            hh = t.hour(),
            mm = t.minute(),
            hash = batch_hash(self.batch_id),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(prefix: &str, start: u64, batch: &str) -> String {
        ObjectName {
            prefix,
            account_id: "123456789012",
            region: "us-east-1",
            flow_log_id: "fl-1234abcd",
            window_start: start,
            batch_id: batch,
        }
        .key()
    }

    #[test]
    fn key_matches_the_aws_layout() {
        // 2018-06-20T16:20:00Z
        let k = name("", 1529511600, "agent/batch-1");
        let (dir, file) = k.rsplit_once('/').unwrap();
        assert_eq!(dir, "AWSLogs/123456789012/vpcflowlogs/us-east-1/2018/06/20");
        assert!(file.starts_with("123456789012_vpcflowlogs_us-east-1_fl-1234abcd_20180620T1620Z_"));
        assert!(file.ends_with(".log.gz"));
        let hash = &file[file.len() - 15..file.len() - 7];
        assert_eq!(hash.len(), 8);
        assert!(hash
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(
            name("my-logs/", 1529511600, "x").split('/').next(),
            Some("my-logs")
        );
        // Padding on single-digit months, days, hours, minutes.
        assert!(name("", 1_104_541_500, "x").contains("/2005/01/01/"));
        assert!(name("", 1_104_541_500, "x").contains("_20050101T0105Z_"));
    }

    #[test]
    fn hash_is_deterministic_per_batch_and_differs_between_batches() {
        assert_eq!(name("", 0, "a/1"), name("", 0, "a/1"));
        assert_ne!(name("", 0, "a/1"), name("", 0, "b/1"));
        assert_ne!(batch_hash("a/1"), batch_hash("a/2"));
    }
}
