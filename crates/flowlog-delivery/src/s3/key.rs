//! S3 object keys exactly as AWS names flow log files (spec §5.1, §5.5):
//! `[prefix/]AWSLogs/{account}/vpcflowlogs/{region}/{yyyy}/{mm}/{dd}/{account}_vpcflowlogs_{region}_{flow-log-id}_{YYYYMMDDTHHmmZ}_{hash}.log.gz`,
//! with `DestinationOptions`: Hive-compatible directories
//! (`AWSLogs/aws-account-id={account}/aws-service=vpcflowlogs/aws-region={region}/year={yyyy}/month={mm}/day={dd}/`),
//! a per-hour level (`{HH}/`, or `hour={HH}/` with Hive), and `.log.parquet` for Parquet.
//!
//! The timestamp is the window **start** (spec §14 Q3). The 8-hex `hash` is derived from the
//! spooled batch id (random per batch, mixed with the agent id), so two agents never share a key
//! while a batch re-sent after a crash overwrites its own object.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// The key layout and file format of one flow log's objects (its `DestinationOptions`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    #[serde(default)]
    pub hive: bool,
    #[serde(default)]
    pub per_hour: bool,
    #[serde(default)]
    pub parquet: bool,
}

impl From<flowlog_model::DestinationOptions> for Layout {
    fn from(o: flowlog_model::DestinationOptions) -> Layout {
        Layout {
            hive: o.hive_compatible_partitions,
            per_hour: o.per_hour_partition,
            parquet: o.file_format == flowlog_model::FileFormat::Parquet,
        }
    }
}

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
    pub layout: Layout,
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
        let (y, m, d, hh) = (t.year(), u8::from(t.month()), t.day(), t.hour());
        let (acct, region) = (self.account_id, self.region);
        let l = self.layout;
        let dir = match (l.hive, l.per_hour) {
            (false, false) => format!("{acct}/vpcflowlogs/{region}/{y:04}/{m:02}/{d:02}/"),
            (false, true) => format!("{acct}/vpcflowlogs/{region}/{y:04}/{m:02}/{d:02}/{hh:02}/"),
            (true, per_hour) => format!(
                "aws-account-id={acct}/aws-service=vpcflowlogs/aws-region={region}/year={y:04}/month={m:02}/day={d:02}/{}",
                if per_hour { format!("hour={hh:02}/") } else { String::new() }
            ),
        };
        format!(
            "{prefix}AWSLogs/{dir}{acct}_vpcflowlogs_{region}_{fl}_{y:04}{m:02}{d:02}T{hh:02}{mm:02}Z_{hash}.log.{ext}",
            prefix = self.prefix,
            fl = self.flow_log_id,
            mm = t.minute(),
            hash = batch_hash(self.batch_id),
            ext = if l.parquet { "parquet" } else { "gz" },
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
            layout: Layout::default(),
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

    #[test]
    fn destination_options_change_directories_and_extension() {
        let key = |hive, per_hour, parquet| {
            ObjectName {
                prefix: "p/",
                account_id: "123456789012",
                region: "us-east-1",
                flow_log_id: "fl-1234abcd",
                // 2018-06-20T16:20:00Z
                window_start: 1529511600,
                batch_id: "x",
                layout: Layout {
                    hive,
                    per_hour,
                    parquet,
                },
            }
            .key()
        };
        let dir = |k: String| k.rsplit_once('/').unwrap().0.to_string();
        assert_eq!(
            dir(key(false, true, false)),
            "p/AWSLogs/123456789012/vpcflowlogs/us-east-1/2018/06/20/16"
        );
        assert_eq!(
            dir(key(true, false, false)),
            "p/AWSLogs/aws-account-id=123456789012/aws-service=vpcflowlogs/aws-region=us-east-1/year=2018/month=06/day=20"
        );
        assert_eq!(
            dir(key(true, true, true)),
            "p/AWSLogs/aws-account-id=123456789012/aws-service=vpcflowlogs/aws-region=us-east-1/year=2018/month=06/day=20/hour=16"
        );
        assert!(key(true, true, true).ends_with(".log.parquet"));
        assert!(key(false, false, false).ends_with(".log.gz"));
        let file = |k: String| k.rsplit_once('/').unwrap().1.to_string();
        assert_eq!(
            file(key(true, true, true)).replace(".log.parquet", ""),
            file(key(false, false, false)).replace(".log.gz", "")
        );
    }
}
