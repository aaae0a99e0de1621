//! `deliver`: drives the delivery service end to end outside the server, for the pytest suite
//! and `bench/delivery.sh`. Generates synthetic records for some ENIs, routes them to one S3
//! and/or one CloudWatch Logs flow log, delivers, and prints a JSON summary (records/s, gzip
//! bytes per record, peak RSS).
//!
//! `--stream-secs S --rate R` instead submits R records per second for S seconds while the
//! background task delivers (used to measure memory while a destination is down).

use clap::Parser;
use flowlog_delivery::config::{
    CwlConfig, DeliveryConfig, FirehoseConfig, RoleCredential, S3Config, Services,
};
use flowlog_delivery::target::{Destination, FlowLogTarget};
use flowlog_delivery::{Delivery, RecordingListener};
use flowlog_model::record::{RecordFormat, Traffic};
use flowlog_model::{Action, FlowRecord, LogStatus, TrafficType};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    data_dir: PathBuf,
    /// S3 destination ARN, e.g. arn:aws:s3:::bucket/prefix/
    #[arg(long)]
    s3: Option<String>,
    /// CloudWatch Logs group name.
    #[arg(long)]
    cwl: Option<String>,
    #[arg(long, default_value = "ALL")]
    traffic_type: String,
    #[arg(long)]
    s3_endpoint: Option<String>,
    #[arg(long)]
    cwl_endpoint: Option<String>,
    /// Firehose delivery stream ARN (same account: no role).
    #[arg(long)]
    firehose: Option<String>,
    #[arg(long)]
    firehose_endpoint: Option<String>,
    #[arg(long, default_value = "testing")]
    access_key: String,
    #[arg(long, default_value = "testing")]
    secret_key: String,
    #[arg(long, default_value_t = 1000)]
    records: usize,
    #[arg(long, default_value_t = 4)]
    enis: usize,
    #[arg(long, default_value_t = 300)]
    window_secs: u64,
    #[arg(long, default_value_t = 1 << 30)]
    spool_max_bytes: u64,
    /// Steady-stream mode: seconds to stream for.
    #[arg(long)]
    stream_secs: Option<u64>,
    /// Records per second in steady-stream mode.
    #[arg(long, default_value_t = 10_000)]
    rate: usize,
    /// Seconds to wait for delivery at the end.
    #[arg(long, default_value_t = 120)]
    flush_timeout: u64,
}

const ROLE: &str = "arn:aws:iam::123456789012:role/flowlog";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn record(i: u64, enis: usize, t: u64) -> FlowRecord {
    let action = if i.is_multiple_of(4) {
        Action::Reject
    } else {
        Action::Accept
    };
    FlowRecord {
        account_id: "123456789012".into(),
        interface_id: format!("eni-{:017x}", i % enis as u64),
        start: t - 50 + (i % 20),
        end: t - 10 + (i % 10),
        traffic: Some(Traffic {
            src: std::net::Ipv4Addr::from(0x0a00_0000u32 + (i as u32 % 65_000)).into(),
            dst: std::net::Ipv4Addr::from(0x0a01_0000u32 + (i as u32 % 250)).into(),
            src_port: 1024 + (i % 60_000) as u16,
            dst_port: [443, 80, 22, 53][(i % 4) as usize],
            protocol: if i.is_multiple_of(5) { 17 } else { 6 },
            packets: 1 + i % 40,
            bytes: 40 + (i * 37) % 60_000,
            action,
            tcp_flags: 0,
            direction: None,
        }),
        status: LogStatus::Ok,
        context: None,
    }
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    let s3 = S3Config {
        endpoint: a.s3_endpoint.clone(),
        access_key_id: Some(a.access_key.clone()),
        secret_access_key: Some(a.secret_key.clone()),
        region: Some("us-east-1".into()),
        ..S3Config::default()
    };
    let cwl = CwlConfig {
        endpoint: a.cwl_endpoint.clone(),
        region: Some("us-east-1".into()),
        roles: vec![RoleCredential {
            role_arn: ROLE.into(),
            access_key_id: a.access_key.clone(),
            secret_access_key: a.secret_key.clone(),
            session_token: None,
        }],
        access_key_id: Some(a.access_key.clone()),
        secret_access_key: Some(a.secret_key.clone()),
        ..CwlConfig::default()
    };
    let cfg = DeliveryConfig {
        window_secs: a.window_secs,
        close_grace_secs: 0,
        spool_max_bytes: a.spool_max_bytes,
        retry_initial_ms: 100,
        retry_max_ms: 2000,
        ..DeliveryConfig::default()
    };
    let listener = Arc::new(RecordingListener::default());
    let services = Services {
        s3: a.s3_endpoint.as_ref().map(|_| s3.clone()),
        cloudwatch_logs: a.cwl_endpoint.as_ref().map(|_| cwl.clone()),
        firehose: a.firehose_endpoint.as_ref().map(|e| FirehoseConfig {
            endpoint: Some(e.clone()),
            region: Some("us-east-1".into()),
            access_key_id: Some(a.access_key.clone()),
            secret_access_key: Some(a.secret_key.clone()),
            ..FirehoseConfig::default()
        }),
        ..Services::default()
    };
    let d = Delivery::open(&a.data_dir, cfg, &services, listener.clone())?;
    let tt = TrafficType::parse(&a.traffic_type).ok_or("bad --traffic-type")?;
    let mut targets = Vec::new();
    for e in 0..a.enis {
        let eni = format!("eni-{e:017x}");
        let base = |id: &str, destination| FlowLogTarget {
            flow_log_id: id.into(),
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
            traffic_type: tt,
            format: RecordFormat::default(),
            destination,
            options: Default::default(),
        };
        if let Some(arn) = &a.s3 {
            targets.push((
                eni.clone(),
                base("fl-0000000000000000a", Destination::s3_from_arn(arn)?),
            ));
        }
        if let Some(arn) = &a.firehose {
            targets.push((
                eni.clone(),
                base(
                    "fl-0000000000000000c",
                    Destination::firehose_from_arn(arn, None, None)?,
                ),
            ));
        }
        if let Some(g) = &a.cwl {
            targets.push((
                eni.clone(),
                base(
                    "fl-0000000000000000b",
                    Destination::CloudWatchLogs {
                        group: g.clone(),
                        role_arn: ROLE.into(),
                    },
                ),
            ));
        }
    }
    d.set_targets(targets);
    let m = d.metrics();
    let started = Instant::now();
    let mut submitted = 0u64;
    if let Some(secs) = a.stream_secs {
        let worker = d.spawn();
        let mut i = 0u64;
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            let tick = Instant::now();
            let t = now();
            let batch: Vec<FlowRecord> = (0..a.rate / 10)
                .map(|k| record(i + k as u64, a.enis, t))
                .collect();
            i += batch.len() as u64;
            submitted += batch.len() as u64;
            d.submit(&batch)?;
            tokio::time::sleep(Duration::from_millis(100).saturating_sub(tick.elapsed())).await;
        }
        worker.abort();
    } else {
        let t = now();
        for chunk in (0..a.records as u64).collect::<Vec<_>>().chunks(5000) {
            let batch: Vec<FlowRecord> = chunk.iter().map(|&i| record(i, a.enis, t)).collect();
            submitted += batch.len() as u64;
            d.submit(&batch)?;
        }
    }
    let submit_secs = started.elapsed().as_secs_f64();
    let rss_during = peak_rss_kb();
    let done = d.flush(Duration::from_secs(a.flush_timeout)).await?;
    let secs = started.elapsed().as_secs_f64();
    let (pending_units, pending_bytes) = d.pending();
    let delivered = m.s3.records_delivered.load(Relaxed)
        + m.cwl.records_delivered.load(Relaxed)
        + m.firehose.records_delivered.load(Relaxed);
    let summary = serde_json::json!({
        "done": done,
        "submitted": submitted,
        "delivered": delivered,
        "s3_delivered": m.s3.records_delivered.load(Relaxed),
        "cwl_delivered": m.cwl.records_delivered.load(Relaxed),
        "firehose_delivered": m.firehose.records_delivered.load(Relaxed),
        "s3_gzip_bytes": m.s3.bytes_delivered.load(Relaxed),
        "s3_objects": m.s3.requests.load(Relaxed) - m.s3.retries.load(Relaxed),
        "gzip_bytes_per_record": if m.s3.records_delivered.load(Relaxed) > 0 { m.s3.bytes_delivered.load(Relaxed) as f64 / m.s3.records_delivered.load(Relaxed) as f64 } else { 0.0 },
        "submit_secs": submit_secs,
        "total_secs": secs,
        "records_per_sec": delivered as f64 / secs,
        "peak_rss_kb_before_flush": rss_during,
        "peak_rss_kb": peak_rss_kb(),
        "pending_units": pending_units,
        "pending_bytes": pending_bytes,
        "dropped_spool_full": m.s3.dropped_spool_full.load(Relaxed) + m.cwl.dropped_spool_full.load(Relaxed),
        "status": listener.events.lock().unwrap().iter().map(|(id, s, msg)| format!("{id} {s} {}", msg.unwrap_or(""))).collect::<Vec<_>>(),
    });
    println!("{summary}");
    Ok(())
}
