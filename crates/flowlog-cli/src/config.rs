//! The server's configuration file (TOML, unknown keys refused) and the embedded defaults
//! used when there is none. Every field is documented here; `flowlog.example.toml` at the
//! repository root shows them all and is tested to parse.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

/// Port of the EC2 API when `--listen` and `listen` are not given.
pub const DEFAULT_PORT: u16 = 4751;
pub const DEFAULT_ACCOUNT: &str = "123456789012";
pub const DEFAULT_REGION: &str = "us-east-1";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Account that owns the resources created through credentials without their own
    /// `account_id`. Twelve digits.
    #[serde(default = "default_account")]
    pub account_id: String,
    /// Region this endpoint serves; SigV4 scopes must name it.
    #[serde(default = "default_region")]
    pub region: String,
    /// Address of the EC2 API (`--listen` overrides it). Default `127.0.0.1:4751`.
    pub listen: Option<SocketAddr>,
    /// Directory for the database, spool and embedded destinations (`--data-dir` overrides).
    pub data_dir: Option<PathBuf>,
    /// Credentials allowed to call the API.
    #[serde(default)]
    pub credentials: Vec<CredentialConfig>,
    #[serde(default)]
    pub api: ApiSection,
    /// S3 destination service; absent: objects go to `<data-dir>/s3/<bucket>/...`.
    pub s3: Option<flowlog_delivery::S3Config>,
    /// CloudWatch Logs destination service; absent: events go to the embedded store read by
    /// `flowlog logs`.
    pub cloudwatch_logs: Option<flowlog_delivery::CwlConfig>,
    /// Delivery windows, spool bound and retries.
    #[serde(default)]
    pub delivery: flowlog_delivery::DeliveryConfig,
    /// The capture agent that runs inside `flowlog serve` (and `flowlog agent`).
    #[serde(default)]
    pub agent: AgentSection,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// Run the capture agent (needs root or CAP_NET_RAW + CAP_SYS_ADMIN for namespaces).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Aggregation window of flow records in seconds (AWS: 600, or 60).
    #[serde(default = "default_window")]
    pub window_secs: u64,
    /// NFLOG group of the nftables `log group N` rules that mark REJECTs.
    pub nflog_group: Option<u16>,
    /// Inventory file naming VPCs, subnets and ENIs and their interfaces; absent: this
    /// host's interfaces are registered in a default VPC.
    pub inventory: Option<PathBuf>,
    /// Seconds between two syncs with the desired state.
    #[serde(default = "default_sync")]
    pub sync_secs: f64,
    /// Flow entries per interface before new flows are reported as SKIPDATA.
    #[serde(default = "default_capacity")]
    pub capacity: usize,
    /// AF_PACKET ring size per interface in MiB.
    #[serde(default = "default_ring")]
    pub ring_mb: u32,
    /// A copy of AWS's `ip-ranges.json` (or a file of the same shape): fills the records'
    /// `pkt-src-aws-service` / `pkt-dst-aws-service`. Absent: those fields are `-`.
    pub aws_ip_ranges: Option<PathBuf>,
}

impl Default for AgentSection {
    fn default() -> Self {
        AgentSection {
            enabled: true,
            window_secs: default_window(),
            nflog_group: None,
            inventory: None,
            sync_secs: default_sync(),
            capacity: default_capacity(),
            ring_mb: default_ring(),
            aws_ip_ranges: None,
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_window() -> u64 {
    600
}
fn default_sync() -> f64 {
    2.0
}
fn default_capacity() -> usize {
    1_000_000
}
fn default_ring() -> u32 {
    16
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialConfig {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Account of this credential; defaults to the top-level `account_id`.
    pub account_id: Option<String>,
    /// Allowed actions, IAM style: `["ec2:*"]`, `["ec2:Describe*"]`. Default: nothing.
    #[serde(default)]
    pub allow: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// Flow logs allowed on one VPC, subnet or network interface: 2 as in 2018 (default);
    /// 0 lifts the limit.
    #[serde(default = "default_limit")]
    pub max_flow_logs_per_resource: u32,
}

impl Default for ApiSection {
    fn default() -> Self {
        ApiSection {
            max_flow_logs_per_resource: default_limit(),
        }
    }
}

fn default_account() -> String {
    DEFAULT_ACCOUNT.to_string()
}
fn default_region() -> String {
    DEFAULT_REGION.to_string()
}
fn default_limit() -> u32 {
    2
}

impl Default for Config {
    fn default() -> Self {
        Config {
            account_id: default_account(),
            region: default_region(),
            listen: None,
            data_dir: None,
            credentials: Vec::new(),
            api: ApiSection::default(),
            s3: None,
            cloudwatch_logs: None,
            delivery: Default::default(),
            agent: AgentSection::default(),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let c: Config = toml::from_str(text)?;
        c.validate()?;
        Ok(c)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let account_ok = |a: &str| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit());
        if !account_ok(&self.account_id) {
            bail!("account_id must be 12 digits, not {:?}", self.account_id);
        }
        if self.region.is_empty()
            || !self
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            bail!("region must look like us-east-1, not {:?}", self.region);
        }
        if self.agent.window_secs == 0 {
            bail!("agent.window_secs must be at least 1");
        }
        if !(self.agent.sync_secs.is_finite() && self.agent.sync_secs >= 0.1) {
            bail!("agent.sync_secs must be at least 0.1");
        }
        let mut seen = std::collections::HashSet::new();
        for c in &self.credentials {
            if c.access_key_id.len() < 16
                || !c.access_key_id.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                bail!(
                    "access_key_id {:?} must be at least 16 letters or digits",
                    c.access_key_id
                );
            }
            if c.secret_access_key.len() < 16 {
                bail!(
                    "the secret_access_key of {} is shorter than 16 characters",
                    c.access_key_id
                );
            }
            if let Some(a) = &c.account_id {
                if !account_ok(a) {
                    bail!(
                        "account_id of credential {} must be 12 digits",
                        c.access_key_id
                    );
                }
            }
            if !seen.insert(&c.access_key_id) {
                bail!("access_key_id {} is listed twice", c.access_key_id);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses() {
        let text = include_str!("../../../flowlog.example.toml");
        let c = Config::parse(text).unwrap();
        assert_eq!(c.region, "us-east-1");
        assert!(!c.credentials.is_empty());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(Config::parse("bogus = 1").is_err());
        assert!(Config::parse("account_id = \"12\"").is_err());
        let c = Config::parse("").unwrap();
        assert_eq!(c.api.max_flow_logs_per_resource, 2);
    }
}
