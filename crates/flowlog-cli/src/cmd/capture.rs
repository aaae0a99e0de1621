//! `flowlog capture`: live capture on one Linux interface → VPC flow log v2 records.
//!
//! Opens an AF_PACKET TPACKET_V3 ring on `--interface` (inside `--netns` when given) and,
//! with `--nflog-group`, an NFLOG listener that turns packets logged by the host firewall into
//! REJECT records (see README "Live capture"). Every window is written and flushed as soon as
//! it closes (shortly after its end); an idle window gives NODATA, kernel drops SKIPDATA.
//! SIGINT/SIGTERM or `--duration` end the capture after flushing the current window. A summary
//! line (frames, packets, drops, rejects) goes to stderr at the end.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use flowlog_flow::WindowRecord;
use flowlog_live::{Capture, CaptureConfig, LiveError, NflogConfig, RingConfig};
use flowlog_model::record::RecordFormat;
use flowlog_model::{FlowRecord, LogStatus};

#[derive(clap::Args)]
pub struct Args {
    /// Interface to capture on (e.g. eth0, veth0).
    #[arg(long)]
    pub interface: String,
    /// Network namespace of the interface: a name from `ip netns` or a path such as
    /// /proc/PID/ns/net.
    #[arg(long)]
    pub netns: Option<String>,
    /// interface-id written in every record.
    #[arg(long)]
    pub eni: String,
    /// account-id written in every record.
    #[arg(long, default_value = "000000000000")]
    pub account: String,
    /// Aggregation window in seconds; windows are aligned to multiples of it since the epoch.
    #[arg(long, default_value_t = 600)]
    pub interval: u64,
    /// NFLOG group that nftables `log group N` rules before reject/drop write to; packets
    /// logged there are recorded as REJECT. Without it every packet is ACCEPT.
    #[arg(long)]
    pub nflog_group: Option<u16>,
    /// Write records to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Stop after this many seconds (the current window is flushed).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Start with the field-name header line (as in S3 log files).
    #[arg(long)]
    pub header: bool,
    /// Most flow entries held at once; each costs at most 64 bytes of table (1000000 flows
    /// is about 61 MiB). New flows beyond it are reported as SKIPDATA.
    #[arg(long, default_value_t = 1_000_000)]
    pub capacity: usize,
    /// Ring size in MiB (1 MiB blocks).
    #[arg(long, default_value_t = 16)]
    pub ring_mb: u32,
    /// Record format, as CreateFlowLogs' LogFormat (`${field}` tokens separated by single
    /// spaces); `flow-direction` comes from the capture. Default: the v2 format.
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Writes records as v2 lines and flushes once per closed window.
struct Output {
    w: Box<dyn Write>,
    format: RecordFormat,
    template: FlowRecord,
    line: String,
    records: u64,
}

impl Output {
    fn record(&mut self, r: WindowRecord) {
        self.template.start = r.start;
        self.template.end = r.end;
        self.template.traffic = r.traffic;
        self.template.status = r.status;
        self.format.write_line(&self.template, &mut self.line);
        self.line.push('\n');
        self.records += 1;
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.write_all(self.line.as_bytes())?;
        self.line.clear();
        self.w.flush()
    }
}

fn explain(e: LiveError, args: &Args) -> anyhow::Error {
    match e {
        LiveError::NoSuchInterface { name } => match &args.netns {
            Some(ns) => anyhow::anyhow!("no such interface: {name} (in network namespace {ns})"),
            None => anyhow::anyhow!("no such interface: {name}"),
        },
        other => anyhow::Error::new(other),
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.interval == 0 {
        bail!("--interval must be at least 1 second");
    }
    if args.capacity == 0 {
        bail!("--capacity must be at least 1");
    }
    if args.ring_mb == 0 {
        bail!("--ring-mb must be at least 1");
    }
    let format = match &args.log_format {
        None => RecordFormat::default(),
        Some(f) => RecordFormat::parse_checked(f)
            .map_err(|e| anyhow::anyhow!("--log-format {f:?} is not valid: {e}"))?,
    };
    if let Some(d) = args.duration {
        if !(d.is_finite() && d > 0.0) {
            bail!("--duration must be a positive number of seconds");
        }
    }
    let stop = flowlog_live::sys::signal::stop_flag().context("installing signal handlers")?;

    let ring_cfg = RingConfig {
        block_size: 1 << 20,
        block_count: args.ring_mb,
        ..RingConfig::default()
    };
    let netns = args.netns.as_deref().map(flowlog_live::netns_path);
    let opened = flowlog_live::open(
        &args.interface,
        netns.as_deref(),
        ring_cfg,
        args.nflog_group.map(NflogConfig::new),
    )
    .map_err(|e| explain(e, &args))?;

    let w: Box<dyn Write> = match &args.out {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(io::stdout()),
    };
    let mut out = Output {
        w,
        format,
        template: FlowRecord {
            account_id: args.account.clone(),
            interface_id: args.eni.clone(),
            start: 0,
            end: 0,
            traffic: None,
            status: LogStatus::Ok,
            context: None,
        },
        line: String::new(),
        records: 0,
    };
    if args.header {
        out.line.push_str(&out.format.header());
        out.line.push('\n');
        out.flush().context("writing records")?;
    }

    let mut cfg = CaptureConfig::new(opened.ifindex, args.interval);
    cfg.capacity = args.capacity;
    cfg.block_timeout = Duration::from_millis(u64::from(ring_cfg.retire_timeout_ms));
    cfg.nflog_group = args.nflog_group;
    if !opened.ring.has_vnet() {
        eprintln!(
            "flowlog capture: warning: PACKET_VNET_HDR unavailable, GSO frames count as one packet"
        );
    }
    let mut capture = Capture::new(opened.ring, opened.nflog, cfg);
    // Tests and scripts wait for this line: the ring is bound from here on.
    eprintln!(
        "flowlog capture: listening on {} (ifindex {}){}",
        args.interface,
        opened.ifindex,
        match args.nflog_group {
            Some(g) => format!(", NFLOG group {g}"),
            None => String::new(),
        }
    );

    let started = Instant::now();
    let deadline = args.duration.map(Duration::from_secs_f64);
    while !stop.load(Ordering::SeqCst) && deadline.is_none_or(|d| started.elapsed() < d) {
        capture.step(Duration::from_millis(100), now_ns())?;
        if capture.close_due(now_ns(), &mut |r| out.record(r)) > 0 {
            out.flush().context("writing records")?;
        }
    }
    let settle = cfg.block_timeout * 2 + Duration::from_millis(100);
    capture.finish(now_ns, settle, &mut |r| out.record(r))?;
    out.flush().context("writing records")?;

    let s = capture.stats();
    eprintln!(
        "flowlog capture: records={} frames={} packets={} gso_frames={} kernel_drops={} \
         skipped={} not_ours={} rejects_moved={} rejects_unmatched={} rejects_outbound={} \
         nflog_ignored={} nflog_overruns={}",
        out.records,
        s.frames,
        s.packets,
        s.gso_frames,
        s.kernel_drops,
        s.skipped.total(),
        s.not_ours,
        s.rejects_moved,
        s.rejects_unmatched,
        s.rejects_outbound,
        s.nflog_ignored,
        s.nflog_overruns,
    );
    Ok(())
}
