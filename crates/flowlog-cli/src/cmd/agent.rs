//! `flowlog agent`: the capture agent alone, for hosts other than the control plane's. It
//! asks the control plane (`--control-plane URL`, SigV4-signed with its credentials) which of
//! its interfaces to capture, captures them, spools and delivers the records itself, and
//! reports its interfaces and delivery status back at every sync.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::config::{AgentSection, Config};

#[derive(clap::Args)]
#[command(
    after_help = "Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the flags); \
the caller needs `flowlog:AgentSync` (or `flowlog:*`) in its allow list on the control plane. \
The config file's [s3], [cloudwatch_logs], [firehose], [sts], [delivery] and [agent] sections apply."
)]
pub struct Args {
    /// Base URL of the control plane, e.g. https://flowlog.internal:4751.
    #[arg(long, env = "FLOWLOG_CONTROL_PLANE")]
    pub control_plane: String,
    /// PEM bundle of the CA(s) that signed the control plane's certificate (a private or
    /// self-signed one); without it the system's roots verify it.
    #[arg(long, env = "FLOWLOG_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Region the control plane serves (signing scope).
    #[arg(long, env = "AWS_DEFAULT_REGION", default_value = crate::config::DEFAULT_REGION)]
    pub region: String,
    /// Access key of a control-plane credential allowed `flowlog:AgentSync`.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    pub access_key_id: String,
    /// Its secret (prefer the environment variable to the flag).
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub secret_access_key: String,
    /// Directory for the spool and embedded destinations [default: ./.flowlog-agent].
    #[arg(long, env = "FLOWLOG_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Configuration file (TOML): [s3], [cloudwatch_logs], [firehose], [sts], [delivery], [agent].
    #[arg(long, env = "FLOWLOG_CONFIG")]
    pub config: Option<PathBuf>,
    /// Inventory file (overrides [agent] inventory).
    #[arg(long)]
    pub inventory: Option<PathBuf>,
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
    if args.secret_access_key.is_empty() || args.access_key_id.is_empty() {
        bail!("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or --access-key-id/--secret-access-key)");
    }
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
        &args.control_plane,
        &args.region,
        flowlog_sigv4::Credentials {
            access_key_id: args.access_key_id.clone(),
            secret_access_key: args.secret_access_key.clone(),
            session_token: None,
        },
        args.ca_file.as_deref(),
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
        "flowlog agent: syncing with {} every {}s; data dir {}",
        args.control_plane,
        config.agent.sync_secs,
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
