//! The spool and the embedded sinks, no servers needed: the 75 MB rollover (cap made small),
//! the embedded S3 layout, crash recovery of a torn segment, deterministic keys on re-delivery,
//! the spool bound, and the embedded CloudWatch Logs store.

mod common;

use common::*;
use flowlog_delivery::config::{DeliveryConfig, S3Config, Services};
use flowlog_delivery::cwl::local::{LocalLogs, Query};
use flowlog_delivery::{Delivery, RecordingListener};
use flowlog_model::record::RecordFormat;
use flowlog_model::{FlowRecord, TrafficType};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

const HEADER: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";

fn cfg() -> DeliveryConfig {
    DeliveryConfig {
        window_secs: 300,
        close_grace_secs: 0,
        retry_initial_ms: 20,
        retry_max_ms: 100,
        ..DeliveryConfig::default()
    }
}

fn open(dir: &Path, cfg: DeliveryConfig) -> (Delivery, Arc<RecordingListener>) {
    let l = Arc::new(RecordingListener::default());
    (
        Delivery::open(dir, cfg, &Services::default(), l.clone()).unwrap(),
        l,
    )
}

fn objects(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".log.gz") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn all_lines(files: &[PathBuf]) -> Vec<String> {
    let mut v = Vec::new();
    for f in files {
        let text = gunzip(&std::fs::read(f).unwrap());
        let mut it = text.lines();
        assert_eq!(it.next(), Some(HEADER));
        v.extend(it.map(String::from));
    }
    v.sort();
    v
}

fn expected(recs: &[FlowRecord]) -> Vec<String> {
    let f = RecordFormat::default();
    let mut v: Vec<String> = recs.iter().map(|r| f.line(r)).collect();
    v.sort();
    v
}

#[tokio::test]
async fn embedded_s3_layout_and_rollover_at_the_size_cap() {
    let dir = tempfile::tempdir().unwrap();
    let cap = 20_000u64;
    let (d, _) = open(
        dir.path(),
        DeliveryConfig {
            max_object_bytes: cap,
            ..cfg()
        },
    );
    d.set_targets([(
        "eni-00000001".to_string(),
        s3_target("fl-00000001", "my-bucket", "logs/"),
    )]);
    assert!(
        !dir.path().join("s3/my-bucket").exists(),
        "bucket folder created on first use only"
    );
    let w = recent_window(300);
    let recs = records("eni-00000001", 1000, w, 0);
    for chunk in recs.chunks(100) {
        d.submit(chunk).unwrap();
    }
    assert!(d.flush(Duration::from_secs(10)).await.unwrap());
    let files = objects(&dir.path().join("s3"));
    assert!(
        files.len() >= 5,
        "~100 KB of lines at a 20 KB cap: {} objects",
        files.len()
    );
    for f in &files {
        let rel = f
            .strip_prefix(
                dir.path()
                    .join("s3/my-bucket/logs/AWSLogs/123456789012/vpcflowlogs/us-east-1"),
            )
            .unwrap();
        assert_eq!(rel.components().count(), 4, "yyyy/mm/dd/file: {rel:?}");
        let text = gunzip(&std::fs::read(f).unwrap());
        assert!(
            text.len() as u64 <= cap,
            "object of {} bytes over the cap",
            text.len()
        );
        // Same window, different hash per object.
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            name.contains(&format!("_fl-00000001_{}", window_stamp(w))),
            "{name}"
        );
    }
    let names: std::collections::HashSet<_> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), files.len());
    assert_eq!(all_lines(&files), expected(&recs));
    assert_eq!(d.metrics().s3.records_delivered.load(Relaxed), 1000);
}

fn window_stamp(w: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(w as i64).unwrap();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

#[tokio::test]
async fn torn_segment_after_a_crash_is_recovered_without_the_partial_line() {
    let dir = tempfile::tempdir().unwrap();
    let recs = records("eni-00000001", 200, recent_window(300), 0);
    {
        let (d, _) = open(dir.path(), cfg());
        d.set_targets([(
            "eni-00000001".to_string(),
            s3_target("fl-00000001", "bkt", ""),
        )]);
        d.submit(&recs).unwrap();
        // "Crash": no flush, and a half-written line at the end of the segment.
    }
    let seg = std::fs::read_dir(dir.path().join("spool/open"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(b"2 123456789012 eni-000")
        .unwrap();
    let (d, _) = open(dir.path(), cfg());
    assert!(d.flush(Duration::from_secs(10)).await.unwrap());
    assert_eq!(all_lines(&objects(&dir.path().join("s3"))), expected(&recs));
}

#[tokio::test]
async fn a_unit_re_sent_after_a_crash_overwrites_its_own_object() {
    let dir = tempfile::tempdir().unwrap();
    let recs = records("eni-00000001", 50, recent_window(300), 0);
    let (d, _) = open(dir.path(), cfg());
    d.set_targets([(
        "eni-00000001".to_string(),
        s3_target("fl-00000001", "bkt", ""),
    )]);
    d.submit(&recs).unwrap();
    drop(d);
    // Reopening seals the segment into a unit; keep a copy, as if the process died after the
    // PUT but before removing the unit.
    let (d, _) = open(dir.path(), cfg());
    let ready = dir.path().join("spool/ready");
    let unit = std::fs::read_dir(&ready)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let saved = std::fs::read(&unit).unwrap();
    assert!(d.flush(Duration::from_secs(10)).await.unwrap());
    drop(d);
    std::fs::write(&unit, saved).unwrap();
    let (d, _) = open(dir.path(), cfg());
    assert_eq!(d.pending().0, 1);
    assert!(d.flush(Duration::from_secs(10)).await.unwrap());
    let files = objects(&dir.path().join("s3"));
    assert_eq!(files.len(), 1, "same key both times: {files:?}");
    assert_eq!(all_lines(&files), expected(&recs));
}

#[tokio::test]
async fn full_spool_drops_the_oldest_window_and_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port(); // nothing listens: the destination is down
    let s3 = S3Config {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        access_key_id: Some("a".into()),
        secret_access_key: Some("b".into()),
        region: Some("us-east-1".into()),
        ..S3Config::default()
    };
    let l = Arc::new(RecordingListener::default());
    let bound = 60_000;
    let c = DeliveryConfig {
        window_secs: 60,
        spool_max_bytes: bound,
        ..cfg()
    };
    let d = Delivery::open(dir.path(), c, &Services::s3(s3.clone()), l.clone()).unwrap();
    d.set_targets([(
        "eni-00000001".to_string(),
        s3_target("fl-00000001", "bkt", ""),
    )]);
    let w = recent_window(300) - 3600;
    for i in 0..40u64 {
        let win = w + 60 * i;
        d.submit(&records("eni-00000001", 200, win, i as u32))
            .unwrap();
        d.run_once(win + 60).await.unwrap();
        assert!(
            d.pending().1 <= bound,
            "spool over its bound: {}",
            d.pending().1
        );
    }
    let drops = l.drops.lock().unwrap().clone();
    assert!(!drops.is_empty());
    assert!(
        drops
            .windows(2)
            .all(|p| p[0].window_start < p[1].window_start),
        "oldest first"
    );
    assert_eq!(drops[0].window_start, w);
    assert_eq!(drops[0].flow_log_ids, vec!["fl-00000001"]);
    let dropped: u64 = drops.iter().map(|r| r.records).sum();
    let m = d.metrics();
    assert_eq!(m.s3.dropped_spool_full.load(Relaxed), dropped);
    assert!(m.render().contains(&format!(
        "flowlog_delivery_records_dropped_total{{sink=\"s3\",reason=\"spool_full\"}} {dropped}"
    )));
}

#[tokio::test]
async fn embedded_cloudwatch_logs_store_is_idempotent_and_readable() {
    let dir = tempfile::tempdir().unwrap();
    let (d, _) = open(dir.path(), cfg());
    d.set_targets([
        (
            "eni-00000001".to_string(),
            cwl_target("fl-1", "/flowlogs/g", TrafficType::Accept),
        ),
        (
            "eni-00000002".to_string(),
            cwl_target("fl-1", "/flowlogs/g", TrafficType::Accept),
        ),
    ]);
    let w = recent_window(300);
    let mut recs = records("eni-00000001", 30, w, 0);
    recs.extend(records("eni-00000002", 30, w, 1));
    d.submit(&recs).unwrap();
    assert!(d.flush(Duration::from_secs(10)).await.unwrap());
    let logs = LocalLogs::open(dir.path()).unwrap();
    assert_eq!(logs.groups().unwrap(), vec!["/flowlogs/g"]);
    let streams = logs.streams("/flowlogs/g").unwrap();
    assert_eq!(
        streams.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
        vec!["eni-00000001-all", "eni-00000002-all"]
    );
    let accepted = recs
        .iter()
        .filter(|r| r.action() == Some(flowlog_model::Action::Accept))
        .count();
    let ev = logs
        .events(&Query {
            group: Some("/flowlogs/g".into()),
            ..Query::default()
        })
        .unwrap();
    assert_eq!(ev.len(), accepted);
    assert!(ev.iter().all(|e| e.message.ends_with("ACCEPT OK")));
    assert!(ev.windows(2).all(|p| p[0].timestamp <= p[1].timestamp));
}
