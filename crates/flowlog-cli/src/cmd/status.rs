//! `flowlog status`: what a running `flowlog serve` is doing, from its `GET /status` (JSON):
//! every monitored ENI with its interface and capture state (and why not, with the fix), every
//! flow log with its destination, delivery status and lag, and the spool backlog. The server
//! side ([`snapshot`]) reads the store, the in-process agent's capture registry and delivery's
//! spool; the client side prints it as tables, or as the JSON itself with `--json`.
//!
//! `/status` is unauthenticated like `/metrics` (same listener): it shows ids and counts, no
//! secrets and no records.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use flowlog_agent::{CaptureReport, CaptureState};
use serde::{Deserialize, Serialize};

use crate::config::{Config, DEFAULT_PORT};
use flowlog_control::{CAPTURE_REASON_TAG, CAPTURE_TAG};

/// The `/status` document.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Status {
    /// Unix seconds when the server answered.
    pub now: u64,
    /// Whether this process runs a capture agent (`[agent] enabled`).
    pub agent: bool,
    pub enis: Vec<CaptureReport>,
    pub flow_logs: Vec<FlowLogStatus>,
    pub spool: SpoolStatus,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FlowLogStatus {
    pub flow_log_id: String,
    pub resource_id: String,
    pub destination: String,
    pub deliver_logs_status: String,
    #[serde(default)]
    pub deliver_logs_error_message: Option<String>,
    /// Age of the oldest undelivered batch since its window ended.
    pub lag_seconds: u64,
    pub spooled_units: u64,
    pub spooled_records: u64,
    /// Records of windows still open.
    pub open_records: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SpoolStatus {
    pub units: u64,
    pub bytes: u64,
    pub lag_seconds: u64,
}

fn destination(d: &flowlog_model::Destination) -> String {
    match d {
        flowlog_model::Destination::S3 { bucket, prefix, .. } if prefix.is_empty() => {
            format!("s3://{bucket}/")
        }
        flowlog_model::Destination::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}/"),
        flowlog_model::Destination::CloudWatchLogs { group, .. } => format!("logs:{group}"),
        flowlog_model::Destination::Firehose { stream, .. } => format!("firehose:{}", stream.name),
    }
}

/// Builds the document on the server. ENIs: the in-process agent's registry first (live
/// counters), then ENIs other agents reported through sync (tag `flowlog:capture`).
pub fn snapshot(
    store: &dyn flowlog_store::Store,
    delivery: &flowlog_delivery::Delivery,
) -> anyhow::Result<Status> {
    let now = flowlog_delivery::service::now_secs();
    let local = crate::metrics::captures();
    let mut enis: Vec<CaptureReport> = local.map(|c| c.reports()).unwrap_or_default();
    for e in store.all_network_interfaces()? {
        if enis.iter().any(|r| r.eni_id == e.id) {
            continue;
        }
        let tag = |k: &str| e.tags.iter().find(|(t, _)| t == k).map(|(_, v)| v.clone());
        let Some(state) = tag(CAPTURE_TAG).and_then(|s| CaptureState::parse(&s)) else {
            continue;
        };
        let binding = flowlog_inventory::Binding::of(&e);
        enis.push(CaptureReport {
            eni_id: e.id.clone(),
            interface: binding
                .as_ref()
                .map(|b| b.ifname.clone())
                .unwrap_or_default(),
            netns: binding.and_then(|b| b.netns),
            state,
            reason: tag(CAPTURE_REASON_TAG).unwrap_or_default(),
            since: 0,
            packets: 0,
            bytes: 0,
            kernel_drops: 0,
        });
    }
    let backlog = delivery.backlog(now);
    let flow_logs = store
        .all_flow_logs()?
        .into_iter()
        .map(|f| {
            let b = backlog
                .iter()
                .find(|b| b.flow_log_id == f.id)
                .cloned()
                .unwrap_or_default();
            FlowLogStatus {
                destination: destination(&f.destination),
                deliver_logs_status: f.deliver_status.as_str().to_string(),
                deliver_logs_error_message: f.deliver_error.clone(),
                flow_log_id: f.id,
                resource_id: f.resource_id,
                lag_seconds: b.lag_seconds,
                spooled_units: b.units,
                spooled_records: b.records,
                open_records: b.open_records,
            }
        })
        .collect();
    delivery.refresh_gauges(now);
    let m = delivery.metrics();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    Ok(Status {
        now,
        agent: local.is_some(),
        enis,
        flow_logs,
        spool: SpoolStatus {
            units: load(&m.spool_units),
            bytes: load(&m.spool_bytes),
            lag_seconds: load(&m.lag_seconds),
        },
    })
}

#[derive(clap::Args)]
#[command(
    after_help = "The endpoint is, in order: --endpoint, $FLOWLOG_ENDPOINT, the `listen` \
address of --config, http://127.0.0.1:4751. Exit status 0 when every ENI is captured and every \
flow log is SUCCESS, 1 otherwise (for scripts), 2 when the server cannot be asked."
)]
pub struct Args {
    /// URL of the running server, e.g. http://127.0.0.1:4751.
    #[arg(long, env = "FLOWLOG_ENDPOINT")]
    pub endpoint: Option<String>,
    /// The server's config file, to find its `listen` address.
    #[arg(long, env = "FLOWLOG_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the status document as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The server's base URL from `--endpoint`, or the config's `listen`.
pub fn endpoint(
    endpoint: Option<&str>,
    config: Option<&std::path::Path>,
) -> anyhow::Result<String> {
    if let Some(e) = endpoint {
        return Ok(e.trim_end_matches('/').to_string());
    }
    let listen = match config {
        Some(p) => Config::load(p)?.listen,
        None => None,
    };
    let mut addr =
        listen.unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)));
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    Ok(format!("http://{addr}"))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let base = endpoint(args.endpoint.as_deref(), args.config.as_deref())?;
    let url = format!("{base}/status");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let fetched = rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let resp = client.get(&url).send().await?;
        let code = resp.status();
        let text = resp.text().await?;
        Ok::<_, reqwest::Error>((code, text))
    });
    let (code, text) = match fetched {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "flowlog status: cannot reach {url}: {e}\n  Is `flowlog serve` running there? Pass --endpoint URL or --config FILE (its `listen`)."
            );
            std::process::exit(2);
        }
    };
    if !code.is_success() {
        bail!("{url} answered {code}: {}", text.trim());
    }
    let status: Status = serde_json::from_str(&text)
        .with_context(|| format!("{url} did not answer a flowlog status document"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render(&status));
    }
    let healthy = status
        .enis
        .iter()
        .all(|e| e.state == CaptureState::Capturing)
        && status
            .flow_logs
            .iter()
            .all(|f| f.deliver_logs_status == "SUCCESS");
    if !healthy {
        std::process::exit(1);
    }
    Ok(())
}

/// Human-readable tables.
pub fn render(s: &Status) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if !s.agent {
        let _ = writeln!(
            out,
            "capture agent: disabled in this process ([agent] enabled = false)"
        );
    }
    let _ = writeln!(out, "ENIs ({}):", s.enis.len());
    let _ = writeln!(
        out,
        "  {:<24} {:<24} {:<18} {:>12} {:>14}",
        "ENI", "INTERFACE", "CAPTURE", "PACKETS", "BYTES"
    );
    for e in &s.enis {
        let iface = match &e.netns {
            Some(ns) => format!("{ns}/{}", e.interface),
            None => e.interface.clone(),
        };
        let _ = writeln!(
            out,
            "  {:<24} {:<24} {:<18} {:>12} {:>14}",
            e.eni_id,
            iface,
            e.state.as_str(),
            e.packets,
            e.bytes
        );
        if !e.reason.is_empty() {
            let _ = writeln!(out, "      {}", e.reason);
        }
    }
    let _ = writeln!(out, "Flow logs ({}):", s.flow_logs.len());
    let _ = writeln!(
        out,
        "  {:<24} {:<24} {:<32} {:<22} {:>6} {:>9}",
        "FLOW LOG", "RESOURCE", "DESTINATION", "STATUS", "LAG", "SPOOLED"
    );
    for f in &s.flow_logs {
        let status = match &f.deliver_logs_error_message {
            Some(m) => format!("{} ({m})", f.deliver_logs_status),
            None => f.deliver_logs_status.clone(),
        };
        let _ = writeln!(
            out,
            "  {:<24} {:<24} {:<32} {:<22} {:>5}s {:>9}",
            f.flow_log_id, f.resource_id, f.destination, status, f.lag_seconds, f.spooled_records
        );
    }
    let _ = writeln!(
        out,
        "Spool: {} batches, {} bytes, lag {} s",
        s.spool.units, s.spool.bytes, s.spool.lag_seconds
    );
    out
}
