//! Configuration of the delivery side: the `[s3]` and `[cloudwatch_logs]` sections the server
//! config embeds, and `[delivery]` for windows, spool and retries. Every struct denies unknown
//! fields so a typo in a config file is an error, not a silently ignored setting.

use serde::Deserialize;
use std::time::Duration;

/// `[s3]`: where S3 flow logs go. Without `endpoint` objects are written under
/// `<data-dir>/s3/<bucket>/` with the same key layout AWS uses.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Base URL of any S3-compatible service, e.g. `http://127.0.0.1:9000` or
    /// `https://s3.eu-west-1.amazonaws.com`. Absent: embedded storage in the data dir.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Signing region (`us-east-1` unless the service wants another one).
    #[serde(default = "default_region")]
    pub region: String,
    /// Access key of the writer. Required with `endpoint`.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Secret key of the writer. Required with `endpoint`.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Optional STS session token sent as `x-amz-security-token`.
    #[serde(default)]
    pub session_token: Option<String>,
    /// `true` (default): `endpoint/bucket/key`; `false`: `bucket.endpoint-host/key`.
    #[serde(default = "default_true")]
    pub path_style: bool,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            endpoint: None,
            region: default_region(),
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            path_style: true,
        }
    }
}

/// `[cloudwatch_logs]`: where CloudWatch Logs flow logs go. Without `endpoint` events are
/// kept in `<data-dir>/cwl/events.db` and read back with `flowlog logs`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CwlConfig {
    /// Base URL of any CloudWatch-Logs-compatible service (JSON 1.1 protocol).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Signing region; defaults to the flow log's region when absent.
    #[serde(default)]
    pub region: Option<String>,
    /// Credentials standing in for IAM roles: a flow log's `DeliverLogsPermissionArn` is looked
    /// up here. A role with no entry makes delivery fail with `Access error`.
    #[serde(default)]
    pub roles: Vec<RoleCredential>,
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

fn default_region() -> String {
    "us-east-1".into()
}
fn default_true() -> bool {
    true
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
        assert_eq!(s.s3.region, "us-east-1");
        assert_eq!(s.cloudwatch_logs.roles.len(), 1);
        assert_eq!(s.delivery.window_secs, 300);
        let bad = "[s3]\nendpint = \"x\"\n[cloudwatch_logs]\n";
        assert!(toml::from_str::<Server>(bad).is_err());
    }
}

// Hand-written so that `{:?}` (logs, panics) never shows a secret or session token.
impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("path_style", &self.path_style)
            .finish()
    }
}

impl std::fmt::Debug for RoleCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleCredential")
            .field("role_arn", &self.role_arn)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
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
