//! `flowlog agent`: the capture agent alone, for hosts other than the control plane's. It
//! asks the control plane (`--control-plane URL`, SigV4-signed with its credentials) which of
//! its interfaces to capture, captures them, spools and delivers the records itself, and
//! reports its interfaces and delivery status back at every sync.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::config::{AgentSection, Config};

#[derive(clap::Args)]
#[command(
    after_help = "The control plane's URL, region and this agent's own credential come from the flags \
(or FLOWLOG_CONTROL_PLANE, FLOWLOG_REGION, FLOWLOG_ACCESS_KEY_ID, FLOWLOG_SECRET_ACCESS_KEY), else from the \
config file's [control_plane] section (endpoint, region, ca_file, access_key_id + secret_access_key or \
credentials_file). The credential needs `flowlog:AgentSync` (or `flowlog:*`) in its allow list on the control \
plane. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_PROFILE are not read for it: they are for delivery \
(the AWS credential chain of [s3], [cloudwatch_logs], [firehose], [sts]). The config file's [s3], \
[cloudwatch_logs], [firehose], [sts], [delivery] and [agent] sections apply."
)]
pub struct Args {
    /// Base URL of the control plane, e.g. https://flowlog.internal:4751 [default: the
    /// config's [control_plane] endpoint].
    #[arg(long, env = "FLOWLOG_CONTROL_PLANE")]
    pub control_plane: Option<String>,
    /// PEM bundle of the CA(s) that signed the control plane's certificate (a private or
    /// self-signed one); without it (and without [control_plane] ca_file) the system's roots
    /// verify it.
    #[arg(long, env = "FLOWLOG_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Region the control plane serves (signing scope) [default: [control_plane] region, else
    /// the config's `region`, else us-east-1].
    #[arg(long, env = "FLOWLOG_REGION")]
    pub region: Option<String>,
    /// Access key of this agent's control-plane credential (allowed `flowlog:AgentSync`)
    /// [default: [control_plane] access_key_id or credentials_file].
    #[arg(long, env = "FLOWLOG_ACCESS_KEY_ID", hide_env_values = true)]
    pub access_key_id: Option<String>,
    /// Its secret (prefer the environment variable to the flag).
    #[arg(long, env = "FLOWLOG_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub secret_access_key: Option<String>,
    /// Directory for the spool and embedded destinations [default: ./.flowlog-agent].
    #[arg(long, env = "FLOWLOG_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Configuration file (TOML): [control_plane], [s3], [cloudwatch_logs], [firehose], [sts],
    /// [delivery], [agent].
    #[arg(long, env = "FLOWLOG_CONFIG")]
    pub config: Option<PathBuf>,
    /// Inventory file (overrides [agent] inventory).
    #[arg(long)]
    pub inventory: Option<PathBuf>,
}

/// Where the agent syncs and what it signs with, once flags, `FLOWLOG_*` variables and the
/// config's `[control_plane]` section are merged.
pub struct ControlPlaneSettings {
    pub endpoint: String,
    pub region: String,
    pub ca_file: Option<PathBuf>,
    pub credentials: flowlog_sigv4::Credentials,
    /// Where the credential came from, for the start message (never the secret).
    pub credential_source: &'static str,
}

/// Why the agent cannot tell where its control plane is or what to sign with.
#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    #[error("no control plane: pass --control-plane URL (or FLOWLOG_CONTROL_PLANE), or set endpoint in the config file's [control_plane] section")]
    NoEndpoint,
    #[error("{given} is set but {missing} is not: the control-plane credential takes both")]
    HalfCredential {
        given: &'static str,
        missing: &'static str,
    },
    #[error("AWS_ACCESS_KEY_ID is set, but `flowlog agent` no longer takes its control-plane credential from it: AWS_* variables are now for delivery (the AWS credential chain of [s3], [cloudwatch_logs], [firehose]). Set FLOWLOG_ACCESS_KEY_ID and FLOWLOG_SECRET_ACCESS_KEY (or --access-key-id/--secret-access-key, or [control_plane] in the config file) to the agent's credential")]
    LegacyAwsVariables,
    #[error("no control-plane credential: set FLOWLOG_ACCESS_KEY_ID and FLOWLOG_SECRET_ACCESS_KEY (or --access-key-id/--secret-access-key), or access_key_id + secret_access_key or credentials_file in the config file's [control_plane] section")]
    NoCredential,
    #[error("[control_plane] credentials_file: {0}")]
    CredentialsFile(String),
}

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_ref().filter(|s| !s.is_empty()).cloned()
}

/// Flags / `FLOWLOG_*` variables first, then `[control_plane]`; `aws_key_in_env` says whether
/// AWS_ACCESS_KEY_ID is set (where older agents took their credential), which only changes
/// the error when nothing else gives one.
pub fn control_plane_settings(
    args: &Args,
    config: &Config,
    aws_key_in_env: bool,
) -> Result<ControlPlaneSettings, ControlPlaneError> {
    let section = config.control_plane.clone().unwrap_or_default();
    let endpoint = non_empty(&args.control_plane)
        .or(non_empty(&section.endpoint))
        .ok_or(ControlPlaneError::NoEndpoint)?;
    let region = non_empty(&args.region)
        .or(non_empty(&section.region))
        .unwrap_or_else(|| config.region.clone());
    let ca_file = args.ca_file.clone().or(section.ca_file.clone());
    let (access_key_id, secret_access_key, credential_source) = match (
        non_empty(&args.access_key_id),
        non_empty(&args.secret_access_key),
    ) {
        (Some(k), Some(s)) => (k, s, "flags/FLOWLOG_ACCESS_KEY_ID"),
        (Some(_), None) => {
            return Err(ControlPlaneError::HalfCredential {
                given: "FLOWLOG_ACCESS_KEY_ID (--access-key-id)",
                missing: "FLOWLOG_SECRET_ACCESS_KEY (--secret-access-key)",
            })
        }
        (None, Some(_)) => {
            return Err(ControlPlaneError::HalfCredential {
                given: "FLOWLOG_SECRET_ACCESS_KEY (--secret-access-key)",
                missing: "FLOWLOG_ACCESS_KEY_ID (--access-key-id)",
            })
        }
        (None, None) => {
            if let (Some(k), Some(s)) = (
                non_empty(&section.access_key_id),
                non_empty(&section.secret_access_key),
            ) {
                (k, s, "[control_plane] access_key_id")
            } else if let Some(p) = &section.credentials_file {
                let c = crate::credentials::load_file(p)
                    .map_err(|e| ControlPlaneError::CredentialsFile(format!("{e:#}")))?;
                (
                    c.access_key_id,
                    c.secret_access_key,
                    "[control_plane] credentials_file",
                )
            } else if aws_key_in_env {
                return Err(ControlPlaneError::LegacyAwsVariables);
            } else {
                return Err(ControlPlaneError::NoCredential);
            }
        }
    };
    Ok(ControlPlaneSettings {
        endpoint,
        region,
        ca_file,
        credentials: flowlog_sigv4::Credentials {
            access_key_id,
            secret_access_key,
            session_token: None,
        },
        credential_source,
    })
}

/// The agent settings of a config's `[agent]` section, with the inventory file read;
/// capture checkpoints go under `<data_dir>/checkpoint`.
pub fn agent_config(
    section: &AgentSection,
    data_dir: &std::path::Path,
) -> anyhow::Result<flowlog_agent::AgentConfig> {
    let checkpoint_dir = if section.checkpoint_secs > 0.0 {
        let d = data_dir.join("checkpoint");
        std::fs::create_dir_all(&d)
            .with_context(|| format!("cannot create the checkpoint dir {}", d.display()))?;
        Some(d)
    } else {
        None
    };
    let inventory = match &section.inventory {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("cannot read inventory file {}", p.display()))?,
        ),
        None => None,
    };
    let mut namespaces = Vec::new();
    if let Some(text) = &inventory {
        // Checked here so a broken file stops the start instead of every sync.
        let inv =
            flowlog_inventory::file::parse(text, "000000000000", "check").with_context(|| {
                format!(
                    "invalid inventory file {}",
                    section
                        .inventory
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                )
            })?;
        for e in &inv.enis {
            if let Some(ns) = flowlog_inventory::Binding::of(e).and_then(|b| b.netns) {
                if !namespaces.contains(&ns) {
                    namespaces.push(ns);
                }
            }
        }
    }
    Ok(flowlog_agent::AgentConfig {
        worker: flowlog_agent::WorkerConfig {
            interval_s: section.window_secs,
            capacity: section.capacity,
            ring_mb: section.ring_mb,
            nflog_group: section.nflog_group,
            budget: Some(flowlog_flow::FlowBudget::new(section.max_flows)),
            checkpoint_dir,
            checkpoint_every: Duration::from_secs_f64(section.checkpoint_secs.max(0.1)),
        },
        sync_every: Duration::from_secs_f64(section.sync_secs),
        inventory,
        namespaces,
        aws_ip_ranges: match &section.aws_ip_ranges {
            Some(p) => Some(std::sync::Arc::new(
                flowlog_inventory::ip_ranges::load(p).with_context(|| {
                    format!(
                        "[agent] aws_ip_ranges = {:?}: fix the path or remove the setting",
                        p.display()
                    )
                })?,
            )),
            None => None,
        },
    })
}

/// Delivery with the config's sinks, spooling under `data_dir`; status changes go to `statuses`.
pub fn open_delivery(
    config: &Config,
    data_dir: &std::path::Path,
    statuses: Arc<flowlog_agent::StatusQueue>,
) -> anyhow::Result<flowlog_delivery::Delivery> {
    flowlog_delivery::Delivery::open(
        data_dir,
        config.delivery.clone(),
        &config.services(),
        statuses,
    )
    .context("cannot open the delivery spool")
}

/// Says at start, on stderr and in the log, when this process cannot capture, with the fix.
/// (The per-ENI capture state says it again for every interface that fails to open.)
pub fn warn_capture_privilege(section: &AgentSection, cfg: &flowlog_agent::AgentConfig, who: &str) {
    if !section.enabled {
        return;
    }
    let netns = !cfg.namespaces.is_empty();
    let missing = flowlog_live::missing_capabilities(section.nflog_group.is_some(), netns);
    if missing.is_empty() {
        return;
    }
    let caps = missing
        .iter()
        .map(|c| c.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(",");
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "flowlog".into());
    eprintln!(
        "{who}: WARNING: no capture privilege (missing {}): no traffic will be recorded and flow logs show DeliverLogsStatus FAILED (Access error).\n  Fix: run as root, or: sudo setcap {caps}+ep {exe}",
        missing.join(", ")
    );
    tracing::warn!(missing = %missing.join(","), fix = %format!("sudo setcap {caps}+ep {exe}"), "no capture privilege: nothing will be captured");
}

pub fn run(args: Args) -> anyhow::Result<()> {
    crate::logging::init();
    let mut config = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if args.inventory.is_some() {
        config.agent.inventory = args.inventory.clone();
    }
    let aws_key_in_env = std::env::var_os("AWS_ACCESS_KEY_ID").is_some_and(|v| !v.is_empty());
    let cp = control_plane_settings(&args, &config, aws_key_in_env)?;
    let data_dir = args
        .data_dir
        .clone()
        .or(config.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from(".flowlog-agent"));
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let statuses = Arc::new(flowlog_agent::StatusQueue::default());
    let delivery = open_delivery(&config, &data_dir, statuses.clone())?;
    let control = flowlog_agent::remote::RemoteControlPlane::new(
        &cp.endpoint,
        &cp.region,
        cp.credentials.clone(),
        cp.ca_file.as_deref(),
        rt.handle().clone(),
    )?;
    let agent_cfg = agent_config(&config.agent, &data_dir)?;
    warn_capture_privilege(&config.agent, &agent_cfg, "flowlog agent");
    let agent = flowlog_agent::Agent::new(agent_cfg, Arc::new(control), delivery.clone(), statuses);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let stop = stop.clone();
        rt.spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
            tracing::info!("shutting down: flushing captures");
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        });
    }
    let _delivery_task = rt.enter();
    let task = delivery.spawn();
    println!(
        "flowlog agent: syncing with {} every {}s as {} (from {}); data dir {}",
        cp.endpoint,
        config.agent.sync_secs,
        cp.credentials.access_key_id,
        cp.credential_source,
        data_dir.display()
    );
    use std::io::Write;
    std::io::stdout().flush().ok();
    agent.run(stop);
    rt.block_on(async {
        match delivery.flush(Duration::from_secs(5)).await {
            Ok(true) => tracing::info!("every spooled record delivered"),
            Ok(false) => {
                tracing::info!("records left in the spool; they are delivered after the next start")
            }
            Err(e) => {
                tracing::warn!(error = %e, "final delivery pass failed; records stay spooled")
            }
        }
    });
    task.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> Args {
        Args {
            control_plane: None,
            ca_file: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            data_dir: None,
            config: None,
            inventory: None,
        }
    }

    const SECTION: &str = "region = \"eu-west-1\"\n[control_plane]\nendpoint = \"https://cp.example:4751\"\nregion = \"eu-central-1\"\nca_file = \"/etc/ca.pem\"\naccess_key_id = \"AKIAFROMCONFIG000001\"\nsecret_access_key = \"config-secret\"\n";

    #[test]
    fn flags_and_env_win_over_the_config_section() {
        let config = Config::parse(SECTION).unwrap();
        let mut a = args();
        a.control_plane = Some("https://flag.example".into());
        a.region = Some("ap-south-1".into());
        a.ca_file = Some("/flag/ca.pem".into());
        a.access_key_id = Some("AKIAFROMFLAGS0000001".into());
        a.secret_access_key = Some("flag-secret".into());
        let s = control_plane_settings(&a, &config, true).unwrap();
        assert_eq!(s.endpoint, "https://flag.example");
        assert_eq!(s.region, "ap-south-1");
        assert_eq!(s.ca_file.unwrap(), PathBuf::from("/flag/ca.pem"));
        assert_eq!(s.credentials.access_key_id, "AKIAFROMFLAGS0000001");
        assert_eq!(s.credentials.secret_access_key, "flag-secret");
        assert_eq!(s.credential_source, "flags/FLOWLOG_ACCESS_KEY_ID");

        // Nothing on the command line: the section, whatever AWS_* holds.
        let s = control_plane_settings(&args(), &config, true).unwrap();
        assert_eq!(s.endpoint, "https://cp.example:4751");
        assert_eq!(s.region, "eu-central-1");
        assert_eq!(s.ca_file.unwrap(), PathBuf::from("/etc/ca.pem"));
        assert_eq!(s.credentials.access_key_id, "AKIAFROMCONFIG000001");
        assert_eq!(s.credentials.secret_access_key, "config-secret");
        assert!(s.credentials.session_token.is_none());

        // Empty values count as unset.
        let mut a = args();
        a.control_plane = Some(String::new());
        a.access_key_id = Some(String::new());
        a.secret_access_key = Some(String::new());
        let s = control_plane_settings(&a, &config, false).unwrap();
        assert_eq!(s.endpoint, "https://cp.example:4751");
        assert_eq!(s.credentials.access_key_id, "AKIAFROMCONFIG000001");
    }

    #[test]
    fn region_falls_back_to_the_file_then_us_east_1() {
        let mut a = args();
        a.control_plane = Some("http://127.0.0.1:1".into());
        a.access_key_id = Some("AKIAFROMFLAGS0000001".into());
        a.secret_access_key = Some("flag-secret".into());
        let c = Config::parse("region = \"eu-west-1\"").unwrap();
        assert_eq!(
            control_plane_settings(&a, &c, false).unwrap().region,
            "eu-west-1"
        );
        let c = Config::default();
        assert_eq!(
            control_plane_settings(&a, &c, false).unwrap().region,
            "us-east-1"
        );
    }

    #[test]
    fn credentials_file_of_the_section_is_read() {
        let dir = std::env::temp_dir().join(format!("flowlog-cp-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("cred.env"),
            "export AWS_ACCESS_KEY_ID=AKIAFROMFILE00000001\nexport AWS_SECRET_ACCESS_KEY='file-secret'\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("agent.toml"),
            "[control_plane]\nendpoint = \"http://127.0.0.1:1\"\ncredentials_file = \"cred.env\"\n",
        )
        .unwrap();
        let config = Config::load(&dir.join("agent.toml")).unwrap();
        let s = control_plane_settings(&args(), &config, true).unwrap();
        assert_eq!(s.credentials.access_key_id, "AKIAFROMFILE00000001");
        assert_eq!(s.credentials.secret_access_key, "file-secret");
        assert_eq!(s.credential_source, "[control_plane] credentials_file");
        std::fs::remove_file(dir.join("cred.env")).unwrap();
        let e = control_plane_settings(&args(), &config, false)
            .err()
            .unwrap();
        assert!(matches!(e, ControlPlaneError::CredentialsFile(_)), "{e}");
        assert!(e.to_string().contains("cred.env"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn aws_variables_alone_give_the_migration_error() {
        let mut a = args();
        a.control_plane = Some("http://127.0.0.1:1".into());
        let e = control_plane_settings(&a, &Config::default(), true)
            .err()
            .unwrap();
        assert!(matches!(e, ControlPlaneError::LegacyAwsVariables));
        let msg = e.to_string();
        for word in [
            "AWS_ACCESS_KEY_ID",
            "delivery",
            "FLOWLOG_ACCESS_KEY_ID",
            "FLOWLOG_SECRET_ACCESS_KEY",
        ] {
            assert!(msg.contains(word), "{word} missing from: {msg}");
        }
        let e = control_plane_settings(&a, &Config::default(), false)
            .err()
            .unwrap();
        assert!(matches!(e, ControlPlaneError::NoCredential));
        assert!(e.to_string().contains("FLOWLOG_ACCESS_KEY_ID"), "{e}");
    }

    #[test]
    fn half_a_credential_and_no_endpoint_are_refused() {
        let mut a = args();
        a.control_plane = Some("http://127.0.0.1:1".into());
        a.access_key_id = Some("AKIAFROMFLAGS0000001".into());
        let e = control_plane_settings(&a, &Config::parse(SECTION).unwrap(), false)
            .err()
            .unwrap();
        assert!(matches!(e, ControlPlaneError::HalfCredential { .. }), "{e}");
        assert!(e.to_string().contains("FLOWLOG_SECRET_ACCESS_KEY"), "{e}");
        let e = control_plane_settings(&args(), &Config::default(), false)
            .err()
            .unwrap();
        assert!(matches!(e, ControlPlaneError::NoEndpoint), "{e}");
        assert!(
            Config::parse("[control_plane]\naccess_key_id = \"AKIAFROMCONFIG000001\"").is_err()
        );
        assert!(Config::parse(
            "[control_plane]\naccess_key_id = \"A\"\nsecret_access_key = \"s\"\ncredentials_file = \"f\""
        )
        .is_err());
        let c = Config::parse(SECTION).unwrap();
        assert!(!format!("{c:?}").contains("config-secret"));
    }
}
