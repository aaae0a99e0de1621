//! S3 throttling and 5xx, which moto and s3s-fs never produce: a tiny in-test S3 stand-in
//! answers PutObject with `503 SlowDown` or `500 InternalError` a given number of times.
//! The flow log goes FAILED / `Rate limited` (resp. `Unknown error`) and back to SUCCESS, and
//! each object is stored once under its key. And a bucket that hangs holds up only its own
//! flow log: the other flow log's objects go out while it hangs, window after window.

mod common;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use common::*;
use flowlog_delivery::config::{DeliveryConfig, S3Config, Services};
use flowlog_delivery::{Delivery, RecordingListener};
use flowlog_model::DeliverStatus;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Fake {
    faults: VecDeque<(StatusCode, &'static str)>,
    objects: HashMap<String, Vec<u8>>,
    puts: usize,
}

type Shared = Arc<Mutex<Fake>>;

async fn put(
    State(s): State<Shared>,
    Path((bucket, key)): Path<(String, String)>,
    body: Bytes,
) -> (StatusCode, String) {
    let mut f = s.lock().unwrap();
    f.puts += 1;
    if let Some((status, code)) = f.faults.pop_front() {
        return (
            status,
            format!("<Error><Code>{code}</Code><Message>injected</Message></Error>"),
        );
    }
    f.objects.insert(format!("{bucket}/{key}"), body.to_vec());
    (StatusCode::OK, String::new())
}

#[tokio::test]
async fn slow_down_is_rate_limited_and_500_unknown_then_success() {
    let state: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/{bucket}/{*key}", axum::routing::put(put))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let s3 = S3Config {
        endpoint: Some(url),
        access_key_id: Some("a".into()),
        secret_access_key: Some("b".into()),
        region: Some("us-east-1".into()),
        ..S3Config::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let l = Arc::new(RecordingListener::default());
    let cfg = DeliveryConfig {
        window_secs: 60,
        close_grace_secs: 0,
        retry_initial_ms: 10,
        retry_max_ms: 50,
        ..DeliveryConfig::default()
    };
    let d = Delivery::open(dir.path(), cfg, &Services::s3(s3.clone()), l.clone()).unwrap();
    d.set_targets([(
        "eni-00000001".to_string(),
        s3_target("fl-00000001", "bkt", ""),
    )]);
    let w = recent_window(300);

    state
        .lock()
        .unwrap()
        .faults
        .extend([(StatusCode::SERVICE_UNAVAILABLE, "SlowDown"); 3]);
    d.submit(&records("eni-00000001", 100, w, 0)).unwrap();
    d.run_once(w + 60).await.unwrap();
    assert_eq!(
        l.latest("fl-00000001"),
        Some((DeliverStatus::Failed, Some("Rate limited")))
    );
    assert!(d.flush(Duration::from_secs(10)).await.unwrap());
    assert_eq!(
        l.latest("fl-00000001"),
        Some((DeliverStatus::Success, None))
    );

    state
        .lock()
        .unwrap()
        .faults
        .extend([(StatusCode::INTERNAL_SERVER_ERROR, "InternalError"); 3]);
    d.submit(&records("eni-00000001", 100, w + 60, 1)).unwrap();
    d.run_once(w + 120).await.unwrap();
    assert_eq!(
        l.latest("fl-00000001"),
        Some((DeliverStatus::Failed, Some("Unknown error")))
    );
    assert!(d.flush(Duration::from_secs(10)).await.unwrap());
    assert_eq!(
        l.latest("fl-00000001"),
        Some((DeliverStatus::Success, None))
    );

    let f = state.lock().unwrap();
    assert_eq!(
        f.objects.len(),
        2,
        "one object per window, retries overwrite the same key"
    );
    // The SDK makes up to 3 attempts per call (standard retry mode); each fault set exhausts
    // one call, then our own backoff retries and the next call succeeds.
    assert_eq!(f.puts, 3 + 1 + 3 + 1);
    for body in f.objects.values() {
        assert_eq!(gunzip(body).lines().count(), 101);
    }
    assert!(
        d.metrics()
            .s3
            .retries
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2
    );
    drop(f);
    server.abort();
}

async fn put_or_hang(
    State(s): State<Shared>,
    Path((bucket, key)): Path<(String, String)>,
    body: Bytes,
) -> (StatusCode, String) {
    if bucket == "slow" {
        // Accepts the request and never answers (within the test).
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    let mut f = s.lock().unwrap();
    f.puts += 1;
    f.objects.insert(format!("{bucket}/{key}"), body.to_vec());
    (StatusCode::OK, String::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_bucket_does_not_hold_up_another_flow_log() {
    let state: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/{bucket}/{*key}", axum::routing::put(put_or_hang))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let s3 = S3Config {
        endpoint: Some(url),
        access_key_id: Some("a".into()),
        secret_access_key: Some("b".into()),
        region: Some("us-east-1".into()),
        ..S3Config::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let l = Arc::new(RecordingListener::default());
    let cfg = DeliveryConfig {
        window_secs: 60,
        close_grace_secs: 0,
        ..DeliveryConfig::default()
    };
    let d = Delivery::open(dir.path(), cfg, &Services::s3(s3), l.clone()).unwrap();
    d.set_targets([
        (
            "eni-00000001".to_string(),
            s3_target("fl-0000000slow", "slow", ""),
        ),
        (
            "eni-00000001".to_string(),
            s3_target("fl-0000000fast", "fast", ""),
        ),
    ]);
    let task = d.spawn();
    let fast_objects = || {
        state
            .lock()
            .unwrap()
            .objects
            .keys()
            .filter(|k| k.starts_with("fast/"))
            .count()
    };
    // Three windows that have all ended: each is sealed at once (no grace) and delivered.
    let w = recent_window(300);
    for (n, window) in [w, w + 60, w + 120].into_iter().enumerate() {
        d.submit(&records("eni-00000001", 50, window, n as u32))
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while fast_objects() < n + 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "window {n} of the fast bucket not delivered while the slow one hangs"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(fast_objects(), 3);
    assert_eq!(
        l.latest("fl-0000000fast"),
        Some((DeliverStatus::Success, None))
    );
    let backlog = d.backlog(flowlog_delivery::service::now_secs());
    let slow = backlog
        .iter()
        .find(|b| b.flow_log_id == "fl-0000000slow")
        .expect("the slow flow log's objects are still spooled");
    assert_eq!(slow.records + slow.open_records, 150, "{backlog:?}");
    task.abort();
    server.abort();
}
