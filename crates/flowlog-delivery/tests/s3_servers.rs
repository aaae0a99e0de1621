//! S3 delivery against real servers on 127.0.0.1: `moto_server` and `s3s-fs` (which checks
//! SigV4 with the configured keys). Objects are listed, read back, decompressed and compared.
//! Skips with a printed reason when a server is not installed.

mod common;

use common::*;
use flowlog_delivery::config::{DeliveryConfig, S3Config, Services};
use flowlog_delivery::s3::S3Client;
use flowlog_delivery::{BucketCheck, Delivery, RecordingListener};
use flowlog_model::record::RecordFormat;
use flowlog_model::{DeliverStatus, FlowRecord};
use std::sync::Arc;
use std::time::Duration;

const HEADER: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";

fn s3_cfg(endpoint: &str, ak: &str, sk: &str) -> S3Config {
    S3Config {
        endpoint: Some(endpoint.into()),
        access_key_id: Some(ak.into()),
        secret_access_key: Some(sk.into()),
        region: Some("us-east-1".into()),
        ..S3Config::default()
    }
}

fn cfg() -> DeliveryConfig {
    DeliveryConfig {
        window_secs: 300,
        close_grace_secs: 0,
        retry_initial_ms: 20,
        retry_max_ms: 200,
        ..DeliveryConfig::default()
    }
}

fn key_re_ok(key: &str, prefix: &str, fl: &str, step_minutes: u32) -> bool {
    // ^prefix AWSLogs/123456789012/vpcflowlogs/us-east-1/\d{4}/\d{2}/\d{2}/123456789012_vpcflowlogs_us-east-1_<fl>_\d{8}T\d{4}Z_[0-9a-f]{8}\.log\.gz$
    let Some(rest) = key.strip_prefix(prefix) else {
        return false;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.len() != 8 || parts[..4] != ["AWSLogs", ACCOUNT, "vpcflowlogs", "us-east-1"] {
        return false;
    }
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(parts[4], 4) && digits(parts[5], 2) && digits(parts[6], 2)) {
        return false;
    }
    let Some(f) = parts[7].strip_prefix(&format!("{ACCOUNT}_vpcflowlogs_us-east-1_{fl}_")) else {
        return false;
    };
    let Some(f) = f.strip_suffix(".log.gz") else {
        return false;
    };
    let (ts, hash) = f.split_once('_').unwrap_or(("", ""));
    let minute_ok = ts.len() == 14
        && ts[11..13]
            .parse::<u32>()
            .is_ok_and(|m| m % step_minutes == 0);
    digits(&ts[..8.min(ts.len())], 8)
        && ts.get(8..9) == Some("T")
        && ts.ends_with('Z')
        && minute_ok
        && hash.len() == 8
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && format!("{}{}{}", parts[4], parts[5], parts[6]) == ts[..8]
}

async fn read_back(
    client: &S3Client,
    bucket: &str,
    prefix: &str,
    fl: &str,
    step: u32,
) -> (Vec<String>, Vec<String>) {
    let keys = client.list_keys(bucket, prefix).await.unwrap();
    let keys: Vec<String> = keys
        .into_iter()
        .filter(|k| k.ends_with(".log.gz") && k.contains(fl))
        .collect();
    let mut lines = Vec::new();
    for k in &keys {
        assert!(key_re_ok(k, prefix, fl, step), "bad key {k}");
        let text = gunzip(&client.get_object(bucket, k).await.unwrap());
        let mut it = text.lines();
        assert_eq!(it.next(), Some(HEADER), "first line is the header");
        assert!(text.ends_with('\n'));
        lines.extend(it.map(String::from));
    }
    lines.sort();
    (keys, lines)
}

fn expected(recs: &[FlowRecord]) -> Vec<String> {
    let f = RecordFormat::default();
    let mut v: Vec<String> = recs.iter().map(|r| f.line(r)).collect();
    v.sort();
    v
}

async fn round_trip(endpoint: &str, ak: &str, sk: &str) {
    let s3 = s3_cfg(endpoint, ak, sk);
    let client = S3Client::new(&s3).await.unwrap();
    client.create_bucket("flowlogs").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let l = Arc::new(RecordingListener::default());
    let d = Delivery::open(dir.path(), cfg(), &Services::s3(s3.clone()), l.clone()).unwrap();
    d.set_targets([
        (
            "eni-00000001".to_string(),
            s3_target("fl-00000001", "flowlogs", "my-logs/"),
        ),
        (
            "eni-00000002".to_string(),
            s3_target("fl-00000001", "flowlogs", "my-logs/"),
        ),
        (
            "eni-00000002".to_string(),
            s3_target("fl-00000002", "flowlogs", ""),
        ),
    ]);
    let w = recent_window(300);
    let mut r1 = records("eni-00000001", 500, w, 0);
    let r2 = records("eni-00000002", 300, w, 1);
    let r3 = records("eni-00000002", 50, w + 300, 2);
    d.submit(&r1).unwrap();
    d.submit(&r2).unwrap();
    d.submit(&r3).unwrap();
    assert!(d.flush(Duration::from_secs(30)).await.unwrap());
    assert_eq!(
        l.latest("fl-00000001"),
        Some((DeliverStatus::Success, None))
    );

    let (keys, lines) = read_back(&client, "flowlogs", "my-logs/", "fl-00000001", 5).await;
    assert_eq!(
        keys.len(),
        2,
        "one object per window for all ENIs of the flow log: {keys:?}"
    );
    r1.extend(r2.iter().cloned());
    r1.extend(r3.iter().cloned());
    assert_eq!(lines, expected(&r1));
    let (keys2, lines2) = read_back(&client, "flowlogs", "", "fl-00000002", 5).await;
    assert!(keys2.iter().all(|k| k.starts_with("AWSLogs/")));
    let mut both = r2.clone();
    both.extend(r3);
    assert_eq!(lines2, expected(&both));

    // CreateFlowLogs' check.
    assert_eq!(
        d.check_bucket("flowlogs", "my-logs/").await,
        BucketCheck::Ok
    );
    assert_eq!(
        d.check_bucket("no-such-bucket-here", "").await,
        BucketCheck::Missing
    );
}

#[tokio::test]
async fn moto_round_trip() {
    let Some((_moto, url)) = start_moto() else {
        return;
    };
    round_trip(&url, "testing", "testing").await;
}

#[tokio::test]
async fn s3s_fs_round_trip_with_signature_check() {
    let root = tempfile::tempdir().unwrap();
    let Some((_srv, url)) = start_s3s(root.path(), "AKIAFLOWLOG", "s3cr3t/key+x") else {
        return;
    };
    round_trip(&url, "AKIAFLOWLOG", "s3cr3t/key+x").await;
}

#[tokio::test]
async fn s3s_fs_wrong_keys_are_access_error_then_success_when_fixed() {
    let root = tempfile::tempdir().unwrap();
    let Some((_srv, url)) = start_s3s(root.path(), "AKIAFLOWLOG", "right") else {
        return;
    };
    let good = s3_cfg(&url, "AKIAFLOWLOG", "right");
    S3Client::new(&good)
        .await
        .unwrap()
        .create_bucket("bkt1")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let recs = records("eni-00000001", 100, recent_window(300), 0);
    {
        let bad = s3_cfg(&url, "AKIAFLOWLOG", "wrong");
        let l = Arc::new(RecordingListener::default());
        let d = Delivery::open(dir.path(), cfg(), &Services::s3(bad.clone()), l.clone()).unwrap();
        assert_eq!(d.check_bucket("bkt1", "").await, BucketCheck::AccessDenied);
        d.set_targets([(
            "eni-00000001".to_string(),
            s3_target("fl-00000001", "bkt1", ""),
        )]);
        d.submit(&recs).unwrap();
        assert!(!d.flush(Duration::from_millis(300)).await.unwrap());
        assert_eq!(
            l.latest("fl-00000001"),
            Some((DeliverStatus::Failed, Some("Access error")))
        );
    }
    let l = Arc::new(RecordingListener::default());
    let d = Delivery::open(dir.path(), cfg(), &Services::s3(good.clone()), l.clone()).unwrap();
    d.set_targets([(
        "eni-00000001".to_string(),
        s3_target("fl-00000001", "bkt1", ""),
    )]);
    assert!(d.flush(Duration::from_secs(10)).await.unwrap());
    assert_eq!(
        l.latest("fl-00000001"),
        Some((DeliverStatus::Success, None)),
        "fixed keys: SUCCESS again"
    );
    let client = S3Client::new(&good).await.unwrap();
    let (keys, lines) = read_back(&client, "bkt1", "", "fl-00000001", 5).await;
    assert_eq!(keys.len(), 1);
    assert_eq!(lines, expected(&recs));
}

#[tokio::test]
async fn outage_then_back_overwrites_nothing_twice() {
    // Destination down (nothing listens), records keep coming, then the server appears on that
    // port: every record lands exactly once, one object per sealed batch.
    let Some(bin) = find_tool("MOTO_SERVER", "moto_server") else {
        common::missing("moto_server");
        return;
    };
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let s3 = s3_cfg(&url, "testing", "testing");
    let dir = tempfile::tempdir().unwrap();
    let l = Arc::new(RecordingListener::default());
    let small = DeliveryConfig {
        window_secs: 60,
        ..cfg()
    };
    let d = Delivery::open(dir.path(), small, &Services::s3(s3.clone()), l.clone()).unwrap();
    d.set_targets([(
        "eni-00000001".to_string(),
        s3_target("fl-00000001", "bkt1", ""),
    )]);
    let w = recent_window(300);
    let mut all = Vec::new();
    for i in 0..4u64 {
        let r = records("eni-00000001", 100, w + 60 * i, i as u32);
        d.submit(&r).unwrap();
        all.extend(r);
        d.run_once(w + 60 * (i + 1)).await.unwrap();
    }
    assert_eq!(
        l.latest("fl-00000001"),
        Some((DeliverStatus::Failed, Some("Unknown error")))
    );
    let child = std::process::Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _guard = ChildGuard(child);
    assert!(wait_port(port, Duration::from_secs(30)));
    let client = S3Client::new(&s3).await.unwrap();
    client.create_bucket("bkt1").await.unwrap();
    assert!(d.flush(Duration::from_secs(30)).await.unwrap());
    assert_eq!(
        l.latest("fl-00000001"),
        Some((DeliverStatus::Success, None))
    );
    let (keys, lines) = read_back(&client, "bkt1", "", "fl-00000001", 1).await;
    assert_eq!(keys.len(), 4, "one object per 60 s window");
    assert_eq!(lines, expected(&all));
}
