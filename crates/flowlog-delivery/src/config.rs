//! Configuration of the delivery side: the `[s3]` and `[cloudwatch_logs]` sections the server
//! config embeds, and `[delivery]` for windows, spool and retries. Every struct denies unknown
//! fields so a typo in a config file is an error, not a silently ignored setting.

use crate::aws::Section;
use serde::Deserialize;
use std::time::Duration;

/// `[s3]`: its presence selects real S3 (AWS or any S3-compatible service); without the
/// section objects are written under `<data-dir>/s3/<bucket>/` with the key layout AWS uses.
/// Credentials: the section's static keys when given, else the AWS default chain (environment,
/// shared config/credentials files and `profile`, web identity, ECS, IMDSv2).
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Base URL, e.g. `http://127.0.0.1:9000`. Absent: `AWS_ENDPOINT_URL_S3`,
    /// `AWS_ENDPOINT_URL` or the profile's `endpoint_url`, else AWS's own endpoint.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Region of the client; a bucket elsewhere is found from S3's redirect. Absent: the
    /// chain's region (`AWS_REGION`, profile, IMDS), else `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// A named profile of the shared config files instead of `AWS_PROFILE` / `default`.
    #[serde(default)]
    pub profile: Option<String>,
    /// Static access key; with `secret_access_key` it replaces the credential chain.
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Optional STS session token of the static keys.
    #[serde(default)]
    pub session_token: Option<String>,
    /// `false` (default): virtual-hosted style (`bucket.host/key`), as AWS wants; `true`:
    /// `endpoint/bucket/key`. An endpoint given as an IP address is always path style.
    #[serde(default, alias = "path_style")]
    pub force_path_style: bool,
}

impl S3Config {
    pub fn section(&self) -> Section<'_> {
        Section {
            name: "s3",
            endpoint: self.endpoint.as_deref(),
            region: self.region.as_deref(),
            profile: self.profile.as_deref(),
            access_key_id: self.access_key_id.as_deref(),
            secret_access_key: self.secret_access_key.as_deref(),
            session_token: self.session_token.as_deref(),
        }
    }
}

/// `[cloudwatch_logs]`: its presence selects real CloudWatch Logs; without it events are kept
/// in `<data-dir>/cwl/events.db` and read back with `flowlog logs`. A flow log's
/// `DeliverLogsPermissionArn` is assumed through STS with this section's credentials.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CwlConfig {
    /// Base URL. Absent: `AWS_ENDPOINT_URL_CLOUDWATCH_LOGS`, `AWS_ENDPOINT_URL`, the profile,
    /// else AWS.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Region of the calls; absent: the flow log's region (where its log group lives).
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub profile: Option<String>,
    /// Static keys assuming the roles (absent: the credential chain).
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<String>,
    #[serde(default)]
    pub session_token: Option<String>,
    /// Keys that stand in for a role instead of assuming it (test rigs without STS). A role
    /// listed here is not assumed; every other one is.
    #[serde(default)]
    pub roles: Vec<RoleCredential>,
}

impl CwlConfig {
    pub fn section(&self) -> Section<'_> {
        Section {
            name: "cloudwatch_logs",
            endpoint: self.endpoint.as_deref(),
            region: self.region.as_deref(),
            profile: self.profile.as_deref(),
            access_key_id: self.access_key_id.as_deref(),
            secret_access_key: self.secret_access_key.as_deref(),
            session_token: self.session_token.as_deref(),
        }
    }
}

/// `[firehose]`: Kinesis Data Firehose delivery (there is no embedded Firehose: a flow log of
/// that type without this section is reported FAILED).
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FirehoseConfig {
    /// Base URL. Absent: `AWS_ENDPOINT_URL_FIREHOSE`, `AWS_ENDPOINT_URL`, the profile, else AWS.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Region of the calls; absent: the delivery stream's region (from its ARN).
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub profile: Option<String>,
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<String>,
    #[serde(default)]
    pub session_token: Option<String>,
}

impl FirehoseConfig {
    pub fn section(&self) -> Section<'_> {
        Section {
            name: "firehose",
            endpoint: self.endpoint.as_deref(),
            region: self.region.as_deref(),
            profile: self.profile.as_deref(),
            access_key_id: self.access_key_id.as_deref(),
            secret_access_key: self.secret_access_key.as_deref(),
            session_token: self.session_token.as_deref(),
        }
    }
}

/// `[sts]`: where roles are assumed (`DeliverLogsPermissionArn`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StsConfig {
    /// Absent: `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`, the profile, else AWS's regional STS.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Absent: the region of the section whose credentials assume the role.
    #[serde(default)]
    pub region: Option<String>,
}

/// The remote services delivery may use; `None` = the embedded store (S3, CloudWatch Logs)
/// or no Firehose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Services {
    pub s3: Option<S3Config>,
    pub cloudwatch_logs: Option<CwlConfig>,
    pub firehose: Option<FirehoseConfig>,
    pub sts: Option<StsConfig>,
}

impl Services {
    /// Real S3 only (CloudWatch Logs embedded).
    pub fn s3(cfg: S3Config) -> Services {
        Services {
            s3: Some(cfg),
            ..Services::default()
        }
    }
    /// Real CloudWatch Logs only (S3 embedded).
    pub fn cloudwatch_logs(cfg: CwlConfig) -> Services {
        Services {
            cloudwatch_logs: Some(cfg),
            ..Services::default()
        }
    }
}

/// One `DeliverLogsPermissionArn` and the keys used when delivering on its behalf.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RoleCredential {
    /// The IAM role ARN exactly as given to CreateFlowLogs.
    pub role_arn: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    #[serde(default)]
    pub session_token: Option<String>,
}

/// `[delivery]`: timing, spool and retry knobs. Defaults follow AWS (5-minute S3 files,
/// 75 MB cap).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Length of one S3 file window in seconds (AWS: 300).
    #[serde(default = "default_window")]
    pub window_secs: u64,
    /// Seconds to wait after a window ends before its S3 object is closed, for records that
    /// the flow table drains late.
    #[serde(default = "default_grace")]
    pub close_grace_secs: u64,
    /// Uncompressed size at which an S3 object is closed early (AWS: 75 MB; spec §14 Q6).
    #[serde(default = "default_max_object")]
    pub max_object_bytes: u64,
    /// Bound of the on-disk spool; when exceeded the oldest undelivered window is dropped.
    #[serde(default = "default_spool_max")]
    pub spool_max_bytes: u64,
    /// First retry delay in milliseconds; doubles per failure (full jitter).
    #[serde(default = "default_retry_initial")]
    pub retry_initial_ms: u64,
    /// Upper bound of the retry delay in milliseconds.
    #[serde(default = "default_retry_max")]
    pub retry_max_ms: u64,
    /// Unique name of this agent, mixed into S3 object hashes so two agents never write the
    /// same key. Defaults to a random id persisted in the spool.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// Destinations (buckets, log streams, delivery streams) delivered at the same time; a
    /// destination that hangs holds one of these, never the others.
    #[serde(default = "default_concurrency")]
    pub max_concurrent_deliveries: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            window_secs: default_window(),
            close_grace_secs: default_grace(),
            max_object_bytes: default_max_object(),
            spool_max_bytes: default_spool_max(),
            retry_initial_ms: default_retry_initial(),
            retry_max_ms: default_retry_max(),
            agent_id: None,
            max_concurrent_deliveries: default_concurrency(),
        }
    }
}

impl DeliveryConfig {
    pub fn retry_initial(&self) -> Duration {
        Duration::from_millis(self.retry_initial_ms.max(1))
    }
    pub fn retry_max(&self) -> Duration {
        Duration::from_millis(self.retry_max_ms.max(self.retry_initial_ms).max(1))
    }
}

fn default_concurrency() -> usize {
    16
}
fn default_window() -> u64 {
    300
}
fn default_grace() -> u64 {
    30
}
fn default_max_object() -> u64 {
    75 * 1000 * 1000
}
fn default_spool_max() -> u64 {
    1 << 30
}
fn default_retry_initial() -> u64 {
    500
}
fn default_retry_max() -> u64 {
    60_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Server {
        s3: S3Config,
        cloudwatch_logs: CwlConfig,
        #[serde(default)]
        delivery: DeliveryConfig,
    }

    #[test]
    fn example_sections_parse() {
        let text = r#"
            [s3]
            endpoint = "http://127.0.0.1:9000"
            access_key_id = "AKIDEXAMPLE"
            secret_access_key = "secret"
            path_style = true

            [cloudwatch_logs]
            endpoint = "http://127.0.0.1:4566"
            region = "us-east-1"
            [[cloudwatch_logs.roles]]
            role_arn = "arn:aws:iam::123456789012:role/fl"
            access_key_id = "AKID2"
            secret_access_key = "s2"
        "#;
        let s: Server = toml::from_str(text).unwrap();
        assert_eq!(s.s3.region, None);
        assert!(s.s3.force_path_style, "path_style is an alias");
        assert_eq!(s.cloudwatch_logs.roles.len(), 1);
        assert_eq!(s.delivery.window_secs, 300);
        let empty: Server = toml::from_str("[s3]\n[cloudwatch_logs]\n").unwrap();
        assert!(!empty.s3.force_path_style);
        assert_eq!(empty.s3.endpoint, None);
        let bad = "[s3]\nendpint = \"x\"\n[cloudwatch_logs]\n";
        assert!(toml::from_str::<Server>(bad).is_err());
    }
}

// Hand-written so that `{:?}` (logs, panics) never shows a secret or session token.
fn redacted(v: &Option<String>) -> Option<&'static str> {
    v.as_ref().map(|_| "<redacted>")
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("profile", &self.profile)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &redacted(&self.secret_access_key))
            .field("session_token", &redacted(&self.session_token))
            .field("force_path_style", &self.force_path_style)
            .finish()
    }
}

impl std::fmt::Debug for CwlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CwlConfig")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("profile", &self.profile)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &redacted(&self.secret_access_key))
            .field("session_token", &redacted(&self.session_token))
            .field("roles", &self.roles)
            .finish()
    }
}

impl std::fmt::Debug for FirehoseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirehoseConfig")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("profile", &self.profile)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &redacted(&self.secret_access_key))
            .field("session_token", &redacted(&self.session_token))
            .finish()
    }
}

impl std::fmt::Debug for RoleCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleCredential")
            .field("role_arn", &self.role_arn)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &redacted(&self.session_token))
            .finish()
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let s3 = S3Config {
            secret_access_key: Some("s3-secret-value".into()),
            session_token: Some("s3-token-value".into()),
            ..S3Config::default()
        };
        let role = RoleCredential {
            role_arn: "arn:aws:iam::1:role/r".into(),
            access_key_id: "AKID".into(),
            secret_access_key: "role-secret-value".into(),
            session_token: Some("role-token-value".into()),
        };
        let text = format!("{s3:?} {role:?}");
        for secret in [
            "s3-secret-value",
            "s3-token-value",
            "role-secret-value",
            "role-token-value",
        ] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("AKID"));
    }
}
