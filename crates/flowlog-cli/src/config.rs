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
    /// The listeners: TLS, exposure, connection limits and timeouts.
    #[serde(default)]
    pub server: ServerSection,
    /// S3 (AWS or compatible); the section alone, even empty, selects it. Absent: objects go
    /// to `<data-dir>/s3/<bucket>/...`, whatever AWS variables the environment holds.
    pub s3: Option<flowlog_delivery::S3Config>,
    /// CloudWatch Logs (AWS or compatible); absent: events go to the embedded store read by
    /// `flowlog logs`.
    pub cloudwatch_logs: Option<flowlog_delivery::CwlConfig>,
    /// Kinesis Data Firehose; absent: Firehose flow logs are reported FAILED.
    pub firehose: Option<flowlog_delivery::FirehoseConfig>,
    /// Where roles are assumed (`DeliverLogsPermissionArn`).
    pub sts: Option<flowlog_delivery::StsConfig>,
    /// Delivery windows, spool bound and retries.
    #[serde(default)]
    pub delivery: flowlog_delivery::DeliveryConfig,
    /// The capture agent that runs inside `flowlog serve` (and `flowlog agent`).
    #[serde(default)]
    pub agent: AgentSection,
    /// Where the control plane keeps its state (`--store` overrides `url`).
    #[serde(default)]
    pub store: StoreSection,
    /// `flowlog agent` only: where its control plane is and the credential it signs syncs
    /// with (flags and `FLOWLOG_*` variables override it). `flowlog serve` ignores it.
    pub control_plane: Option<ControlPlaneSection>,
}

/// `[control_plane]` of a `flowlog agent` config: the control plane's URL, its region and the
/// agent's own credential (never the `AWS_*` variables, which are for delivery).
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlPlaneSection {
    /// Base URL, e.g. `https://flowlog.internal:4751` (`--control-plane` overrides it).
    pub endpoint: Option<String>,
    /// Region the control plane serves [default: the file's `region`, us-east-1].
    pub region: Option<String>,
    /// PEM bundle of the CA(s) that signed the control plane's certificate.
    pub ca_file: Option<PathBuf>,
    /// A credential allowed `flowlog:AgentSync`, given inline...
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// ...or in a file: the `credentials.toml` that `flowlog serve` writes in its data dir, or
    /// the output of `flowlog credentials` (`export AWS_ACCESS_KEY_ID=...` lines).
    pub credentials_file: Option<PathBuf>,
}

impl std::fmt::Debug for ControlPlaneSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlaneSection")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("ca_file", &self.ca_file)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("credentials_file", &self.credentials_file)
            .finish()
    }
}

/// `[store]`: the control plane's database.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// `postgres://user@host[:port]/database[?sslmode=require|verify-full&sslrootcert=ca.pem]`
    /// for PostgreSQL (several `flowlog serve` replicas may share it), or `sqlite://PATH`.
    /// Absent: SQLite in `<data-dir>/flowlog.db`.
    pub url: Option<String>,
    /// File whose first line is the PostgreSQL password, when the URL has none (else
    /// `PGPASSWORD` is used). Relative paths are taken from the config file's folder.
    pub password_file: Option<PathBuf>,
    /// Database connections per process (PostgreSQL; default 8).
    pub pool_size: Option<usize>,
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
    /// Flow entries held by all interfaces of the agent together (about 64 bytes each: the
    /// default 2 000 000 bounds every flow table of the host to about 122 MiB). When it is
    /// reached, new flows become SKIPDATA for the interfaces that meet it.
    #[serde(default = "default_max_flows")]
    pub max_flows: usize,
    /// AF_PACKET ring size per interface in MiB.
    #[serde(default = "default_ring")]
    pub ring_mb: u32,
    /// Seconds between checkpoints of the open capture window (under
    /// `<data-dir>/checkpoint`): a kill -9 loses at most this much traffic. 0 = never (a
    /// crash loses the open window, up to `window_secs`).
    #[serde(default = "default_checkpoint")]
    pub checkpoint_secs: f64,
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
            max_flows: default_max_flows(),
            ring_mb: default_ring(),
            checkpoint_secs: default_checkpoint(),
            aws_ip_ranges: None,
        }
    }
}

fn default_checkpoint() -> f64 {
    5.0
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
fn default_max_flows() -> usize {
    2_000_000
}
fn default_ring() -> u32 {
    16
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialConfig {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Account of this credential; defaults to the top-level `account_id`.
    pub account_id: Option<String>,
    /// Allowed actions, IAM style: `["ec2:*"]`, `["ec2:Describe*"]`. Default: nothing.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Host names an agent using this credential may sync as (`flowlog:AgentSync`), so one
    /// host's credential cannot take over another host's ENIs. Absent: any host name.
    pub hosts: Option<Vec<String>>,
}

// Hand-written so that `{:?}` of a config never shows a secret.
impl std::fmt::Debug for CredentialConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialConfig")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("account_id", &self.account_id)
            .field("allow", &self.allow)
            .field("hosts", &self.hosts)
            .finish()
    }
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

/// `[server]`: how `flowlog serve` listens. Relative paths are taken from the working
/// directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// PEM certificate chain (server certificate first); with `tls_key`, the API, agent sync
    /// and metrics are served over HTTPS. Reloaded on SIGHUP and when the file changes.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
    /// Allow plain HTTP on an address other than loopback (behind a TLS proxy, or a lab).
    #[serde(default)]
    pub insecure_listen: bool,
    /// Serve `/metrics` on this address only (and not on the API's).
    pub metrics_listen: Option<SocketAddr>,
    /// Open connections per listener; past it a client gets 503 with `Retry-After`.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds a client has to send a request head (also the idle keep-alive limit).
    #[serde(default = "default_header_timeout")]
    pub header_timeout_secs: u64,
    /// Seconds a client has to send a whole request body; past it: 408 and close.
    #[serde(default = "default_body_timeout")]
    pub body_timeout_secs: u64,
    /// Seconds open connections get after SIGTERM before they are dropped; the capture
    /// window is flushed in any case.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout_secs: u64,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            tls_cert: None,
            tls_key: None,
            insecure_listen: false,
            metrics_listen: None,
            max_connections: default_max_connections(),
            header_timeout_secs: default_header_timeout(),
            body_timeout_secs: default_body_timeout(),
            shutdown_timeout_secs: default_shutdown_timeout(),
        }
    }
}

fn default_max_connections() -> usize {
    512
}
fn default_header_timeout() -> u64 {
    10
}
fn default_body_timeout() -> u64 {
    30
}
fn default_shutdown_timeout() -> u64 {
    10
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

impl Config {
    /// The remote services delivery uses (the sections present in the file).
    pub fn services(&self) -> flowlog_delivery::Services {
        flowlog_delivery::Services {
            s3: self.s3.clone(),
            cloudwatch_logs: self.cloudwatch_logs.clone(),
            firehose: self.firehose.clone(),
            sts: self.sts.clone(),
        }
    }
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
            firehose: None,
            sts: None,
            delivery: Default::default(),
            agent: AgentSection::default(),
            server: ServerSection::default(),
            store: StoreSection::default(),
            control_plane: None,
        }
    }
}

impl Config {
    /// Reads and checks a config file; relative `data_dir` and `[agent] inventory` paths are
    /// taken relative to the file's folder (not the current directory).
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read config file {} (check the path given to --config / FLOWLOG_CONFIG)",
                path.display()
            )
        })?;
        let mut c = Config::parse(&text)
            .with_context(|| format!("invalid config file {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new(""));
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(d) = c.data_dir.as_mut() {
            rebase(d);
        }
        if let Some(i) = c.agent.inventory.as_mut() {
            rebase(i);
        }
        if let Some(p) = c.store.password_file.as_mut() {
            rebase(p);
        }
        if let Some(cp) = c.control_plane.as_mut() {
            for p in [cp.ca_file.as_mut(), cp.credentials_file.as_mut()]
                .into_iter()
                .flatten()
            {
                rebase(p);
            }
        }
        Ok(c)
    }

    /// The data dir of a client command (`credentials`, `logs`): `--data-dir`, else the
    /// config's `data_dir`, else `./.flowlog`; with the loaded config when one was given.
    pub fn client_data_dir(
        data_dir: Option<&Path>,
        config: Option<&Path>,
    ) -> anyhow::Result<(PathBuf, Option<Config>)> {
        let config = config.map(Config::load).transpose()?;
        let dir = data_dir
            .map(Path::to_path_buf)
            .or_else(|| config.as_ref().and_then(|c| c.data_dir.clone()))
            .unwrap_or_else(|| PathBuf::from(".flowlog"));
        Ok((dir, config))
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
        if self.agent.max_flows == 0 {
            bail!("agent.max_flows must be at least 1 (about 64 bytes of memory per flow)");
        }
        if self.agent.window_secs == 0 {
            bail!("agent.window_secs must be at least 1");
        }
        if self.delivery.window_secs == 0 {
            bail!("[delivery] window_secs must be at least 1 (AWS: 300)");
        }
        if !(self.agent.checkpoint_secs.is_finite()
            && (self.agent.checkpoint_secs == 0.0 || self.agent.checkpoint_secs >= 0.1))
        {
            bail!("agent.checkpoint_secs must be 0 (off) or at least 0.1");
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
            if let Some(hosts) = &c.hosts {
                if hosts.is_empty() || hosts.iter().any(|h| h.is_empty()) {
                    bail!(
                        "hosts of credential {} must list host names (leave it out to allow any host)",
                        c.access_key_id
                    );
                }
            }
        }
        if let Some(cp) = &self.control_plane {
            if cp.access_key_id.is_some() != cp.secret_access_key.is_some() {
                bail!("[control_plane] access_key_id and secret_access_key go together: give both or neither");
            }
            if cp.access_key_id.is_some() && cp.credentials_file.is_some() {
                bail!("[control_plane] has both access_key_id and credentials_file: keep one");
            }
        }
        let sv = &self.server;
        if sv.tls_cert.is_some() != sv.tls_key.is_some() {
            bail!("[server] tls_cert and tls_key go together: give both or neither");
        }
        if sv.max_connections == 0 {
            bail!("[server] max_connections must be at least 1");
        }
        for (name, v) in [
            ("header_timeout_secs", sv.header_timeout_secs),
            ("body_timeout_secs", sv.body_timeout_secs),
            ("shutdown_timeout_secs", sv.shutdown_timeout_secs),
        ] {
            if v == 0 {
                bail!("[server] {name} must be at least 1");
            }
        }
        Ok(())
    }

    /// Credentials whose secret is one published in `flowlog.example.toml` (or any secret
    /// still starting with its `change-me` placeholder): fine on loopback, never beyond.
    pub fn published_secrets(&self) -> Vec<&str> {
        let example: Vec<String> = toml::from_str::<Config>(EXAMPLE_CONFIG)
            .map(|c| {
                c.credentials
                    .into_iter()
                    .map(|c| c.secret_access_key)
                    .collect()
            })
            .unwrap_or_default();
        self.credentials
            .iter()
            .filter(|c| {
                c.secret_access_key.starts_with("change-me")
                    || example.contains(&c.secret_access_key)
            })
            .map(|c| c.access_key_id.as_str())
            .collect()
    }
}

/// The example shipped in the repository; its secrets are public.
const EXAMPLE_CONFIG: &str = include_str!("../../../flowlog.example.toml");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses() {
        let c = Config::parse(EXAMPLE_CONFIG).unwrap();
        assert_eq!(c.region, "us-east-1");
        assert!(!c.credentials.is_empty());
        // Its secrets are published, so they are flagged.
        assert_eq!(c.published_secrets().len(), c.credentials.len());
        let own = Config::parse(
            "[[credentials]]\naccess_key_id = \"AKIAOWNKEY0000000001\"\nsecret_access_key = \"a-secret-nobody-has-seen-0001\"\n",
        )
        .unwrap();
        assert!(own.published_secrets().is_empty());
        assert!(!format!("{own:?}").contains("a-secret-nobody-has-seen"));
    }

    #[test]
    fn server_section_is_checked() {
        assert!(Config::parse("[server]\ntls_cert = \"c.pem\"").is_err());
        assert!(Config::parse("[server]\nmax_connections = 0").is_err());
        assert!(Config::parse("[server]\nbody_timeout_secs = 0").is_err());
        let c = Config::parse("[server]\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"").unwrap();
        assert_eq!(c.server.max_connections, 512);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(Config::parse("bogus = 1").is_err());
        assert!(Config::parse("account_id = \"12\"").is_err());
        let c = Config::parse("").unwrap();
        assert_eq!(c.api.max_flow_logs_per_resource, 2);
        let e = Config::parse("[delivery]\nwindow_secs = 0").unwrap_err();
        assert!(e.to_string().contains("window_secs"), "{e}");
        assert!(Config::parse("[agent]\ncheckpoint_secs = 0.01").is_err());
    }

    #[test]
    fn paths_are_relative_to_the_config_file() {
        let dir = std::env::temp_dir().join(format!("o10-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("flowlog.toml");
        std::fs::write(
            &p,
            "data_dir = \"state\"\n[agent]\ninventory = \"inv.toml\"\n",
        )
        .unwrap();
        let c = Config::load(&p).unwrap();
        assert_eq!(c.data_dir.unwrap(), dir.join("state"));
        assert_eq!(c.agent.inventory.unwrap(), dir.join("inv.toml"));
        let (d, _) = Config::client_data_dir(None, Some(&p)).unwrap();
        assert_eq!(d, dir.join("state"));
        let e = Config::load(&dir.join("missing.toml")).unwrap_err();
        assert!(e.to_string().contains("missing.toml"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
