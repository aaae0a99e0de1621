//! CloudWatch Logs delivery against the strict in-repo fake: every PutLogEvents limit, age
//! window drops, throttling and 5xx injection with status reporting, credentials, outages.

mod common;

use common::cwl_fake::{CwlFake, Fault};
use common::*;
use flowlog_delivery::config::{CwlConfig, DeliveryConfig, RoleCredential, Services, StsConfig};
use flowlog_delivery::{Delivery, RecordingListener};
use flowlog_model::record::RecordFormat;
use flowlog_model::{DeliverStatus, FlowRecord, TrafficType};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

fn cfg() -> DeliveryConfig {
    DeliveryConfig {
        window_secs: 60,
        close_grace_secs: 0,
        retry_initial_ms: 20,
        retry_max_ms: 200,
        ..DeliveryConfig::default()
    }
}

fn cwl_cfg(endpoint: &str, key: &str) -> CwlConfig {
    CwlConfig {
        endpoint: Some(endpoint.into()),
        roles: vec![RoleCredential {
            role_arn: ROLE.into(),
            access_key_id: key.into(),
            secret_access_key: "secret".into(),
            session_token: None,
        }],
        ..CwlConfig::default()
    }
}

fn open(dir: &std::path::Path, cwl: &CwlConfig, l: Arc<RecordingListener>) -> Delivery {
    Delivery::open(dir, cfg(), &Services::cloudwatch_logs(cwl.clone()), l).unwrap()
}

fn lines(recs: &[FlowRecord]) -> Vec<(i64, String)> {
    let f = RecordFormat::default();
    let mut v: Vec<(i64, String)> = recs
        .iter()
        .map(|r| (r.start as i64 * 1000, f.line(r)))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn batches_respect_count_size_and_span_limits() {
    let fake = CwlFake::new(&["AK1"]);
    let (url, server) = fake.serve(0).await;
    let dir = tempfile::tempdir().unwrap();
    let l = Arc::new(RecordingListener::default());
    let d = open(dir.path(), &cwl_cfg(&url, "AK1"), l.clone());
    d.set_targets([(
        "eni-00000001".to_string(),
        cwl_target("fl-1", "g", TrafficType::All),
    )]);
    let now = recent_window(60);
    let day = 24 * 3600;
    let mut recs = records("eni-00000001", 25_000, now, 0);
    // Spread over three days (all within 14 days) and add one too old and one too new.
    recs.extend(records("eni-00000001", 10, now - 3 * day, 1));
    recs.extend(records("eni-00000001", 10, now - 2 * day, 2));
    let mut old = records("eni-00000001", 1, now - 15 * day, 3);
    let mut new = records("eni-00000001", 1, now + 4 * 3600, 4);
    let expected = lines(&recs);
    recs.append(&mut old);
    recs.append(&mut new);
    d.submit(&recs).unwrap();
    assert!(d.flush(Duration::from_secs(60)).await.unwrap());
    let got = fake.events("g", "eni-00000001-all");
    assert_eq!(got, expected, "every kept record delivered once, in order");
    let st = fake.0.lock().unwrap();
    assert!(st.violations.is_empty(), "{:?}", st.violations);
    assert!(
        st.puts >= 5,
        "25 000 ~110-byte events need at least 3 size-bound batches plus the day splits"
    );
    assert!(st.max_batch_seen <= 10_000);
    drop(st);
    let m = d.metrics();
    assert_eq!(m.cwl.dropped_too_old.load(Relaxed), 1);
    assert_eq!(m.cwl.dropped_too_new.load(Relaxed), 1);
    assert_eq!(m.cwl.records_delivered.load(Relaxed), expected.len() as u64);
    assert_eq!(d.pending().0, 0);
    assert_eq!(
        l.latest("fl-1"),
        Some((DeliverStatus::Success, None)),
        "status stayed SUCCESS"
    );
    server.abort();
}

#[tokio::test]
async fn throttling_and_5xx_report_failed_then_success() {
    let fake = CwlFake::new(&["AK1"]);
    let (url, server) = fake.serve(0).await;
    let dir = tempfile::tempdir().unwrap();
    let l = Arc::new(RecordingListener::default());
    let d = open(dir.path(), &cwl_cfg(&url, "AK1"), l.clone());
    d.set_targets([(
        "eni-00000001".to_string(),
        cwl_target("fl-1", "g", TrafficType::All),
    )]);
    let recs = records("eni-00000001", 100, recent_window(60), 0);
    d.submit(&recs).unwrap();

    fake.inject(Fault::Throttle, 3);
    let pass = d
        .run_once(flowlog_delivery::service::now_secs())
        .await
        .unwrap();
    assert_eq!(pass.failed_units, 1);
    assert_eq!(
        l.latest("fl-1"),
        Some((DeliverStatus::Failed, Some("Rate limited")))
    );
    assert!(d.flush(Duration::from_secs(30)).await.unwrap());
    assert_eq!(l.latest("fl-1"), Some((DeliverStatus::Success, None)));

    d.submit(&records("eni-00000001", 50, recent_window(60), 1))
        .unwrap();
    // 3: the SDK's own attempts per call (standard retry mode) are exhausted once.
    fake.inject(Fault::ServerError, 3);
    d.run_once(flowlog_delivery::service::now_secs())
        .await
        .unwrap();
    assert_eq!(
        l.latest("fl-1"),
        Some((DeliverStatus::Failed, Some("Unknown error")))
    );
    assert!(d.flush(Duration::from_secs(30)).await.unwrap());
    assert_eq!(l.latest("fl-1"), Some((DeliverStatus::Success, None)));

    let mut all = recs.clone();
    all.extend(records("eni-00000001", 50, recent_window(60), 1));
    assert_eq!(fake.events("g", "eni-00000001-all").len(), 150);
    let mut got = fake.events("g", "eni-00000001-all");
    got.sort();
    assert_eq!(got, lines(&all), "exactly once despite faults");
    assert!(d.metrics().cwl.retries.load(Relaxed) >= 2);
    server.abort();
}

#[tokio::test]
async fn missing_or_wrong_credentials_are_access_errors_until_fixed() {
    let fake = CwlFake::new(&["GOOD"]);
    let (url, server) = fake.serve(0).await;
    let dir = tempfile::tempdir().unwrap();
    let recs = records("eni-00000001", 20, recent_window(60), 0);
    {
        // A role without keys of its own is assumed through STS, which refuses (nothing
        // listens on its port): Access error. Static section keys, so no credential chain
        // (and no IMDS) is asked.
        let l = Arc::new(RecordingListener::default());
        let services = Services {
            cloudwatch_logs: Some(CwlConfig {
                endpoint: Some(url.clone()),
                access_key_id: Some("GOOD".into()),
                secret_access_key: Some("secret".into()),
                ..CwlConfig::default()
            }),
            sts: Some(StsConfig {
                endpoint: Some(format!("http://127.0.0.1:{}", free_port())),
                region: Some("us-east-1".into()),
            }),
            ..Services::default()
        };
        let d = Delivery::open(dir.path(), cfg(), &services, l.clone()).unwrap();
        d.set_targets([(
            "eni-00000001".to_string(),
            cwl_target("fl-1", "g", TrafficType::All),
        )]);
        d.submit(&recs).unwrap();
        // The SDK retries the refused STS connection before giving up.
        assert!(!d.flush(Duration::from_secs(8)).await.unwrap());
        assert_eq!(
            l.latest("fl-1"),
            Some((DeliverStatus::Failed, Some("Access error")))
        );
    }
    {
        // Wrong key.
        let l = Arc::new(RecordingListener::default());
        let d = open(dir.path(), &cwl_cfg(&url, "BAD"), l.clone());
        assert!(!d.flush(Duration::from_millis(300)).await.unwrap());
        assert_eq!(
            l.latest("fl-1"),
            Some((DeliverStatus::Failed, Some("Access error")))
        );
    }
    assert!(fake.events("g", "eni-00000001-all").is_empty());
    {
        // Fixed: the spooled records go out and the flow log is SUCCESS again.
        let l = Arc::new(RecordingListener::default());
        let d = open(dir.path(), &cwl_cfg(&url, "GOOD"), l.clone());
        d.run_once(flowlog_delivery::service::now_secs())
            .await
            .unwrap();
        assert!(d.flush(Duration::from_secs(10)).await.unwrap());
        assert_eq!(
            l.latest("fl-1"),
            Some((DeliverStatus::Success, None)),
            "SUCCESS reported after the restart, replacing the stored FAILED"
        );
    }
    assert_eq!(fake.events("g", "eni-00000001-all"), lines(&recs));
    server.abort();
}

#[tokio::test]
async fn outage_then_recovery_delivers_everything_exactly_once() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let l = Arc::new(RecordingListener::default());
    let d = open(dir.path(), &cwl_cfg(&url, "AK1"), l.clone());
    d.set_targets([
        (
            "eni-00000001".to_string(),
            cwl_target("fl-1", "g", TrafficType::All),
        ),
        (
            "eni-00000002".to_string(),
            cwl_target("fl-1", "g", TrafficType::All),
        ),
    ]);
    let w = recent_window(60);
    let mut all = Vec::new();
    for i in 0..5 {
        let mut batch = records("eni-00000001", 200, w, i);
        batch.extend(records("eni-00000002", 100, w, i + 10));
        d.submit(&batch).unwrap();
        all.extend(batch);
        d.run_once(flowlog_delivery::service::now_secs())
            .await
            .unwrap();
    }
    assert_eq!(
        l.latest("fl-1"),
        Some((DeliverStatus::Failed, Some("Unknown error")))
    );
    assert!(d.pending().0 >= 5);
    let fake = CwlFake::new(&["AK1"]);
    let (_, server) = fake.serve(port).await;
    assert!(d.flush(Duration::from_secs(30)).await.unwrap());
    assert_eq!(l.latest("fl-1"), Some((DeliverStatus::Success, None)));
    let mut got = fake.events("g", "eni-00000001-all");
    got.extend(fake.events("g", "eni-00000002-all"));
    got.sort();
    assert_eq!(got, lines(&all));
    assert_eq!(
        fake.streams("g"),
        vec!["eni-00000001-all", "eni-00000002-all"]
    );
    server.abort();
}

#[tokio::test]
async fn accept_and_reject_flow_logs_share_one_stream_without_duplicates() {
    let fake = CwlFake::new(&["AK1"]);
    let (url, server) = fake.serve(0).await;
    let dir = tempfile::tempdir().unwrap();
    let d = open(
        dir.path(),
        &cwl_cfg(&url, "AK1"),
        Arc::new(RecordingListener::default()),
    );
    d.set_targets([
        (
            "eni-00000001".to_string(),
            cwl_target("fl-acc", "g", TrafficType::Accept),
        ),
        (
            "eni-00000001".to_string(),
            cwl_target("fl-rej", "g", TrafficType::Reject),
        ),
        (
            "eni-00000001".to_string(),
            cwl_target("fl-all", "g", TrafficType::All),
        ),
    ]);
    let recs = records("eni-00000001", 300, recent_window(60), 0);
    d.submit(&recs).unwrap();
    assert!(d.flush(Duration::from_secs(10)).await.unwrap());
    assert_eq!(fake.streams("g"), vec!["eni-00000001-all"]);
    assert_eq!(fake.events("g", "eni-00000001-all"), lines(&recs));
    server.abort();
}
