//! CloudWatch Logs delivery against `moto_server`: groups and streams created on first
//! traffic, events read back with GetLogEvents. Skips when moto is not installed.

mod common;

use common::*;
use flowlog_delivery::config::{CwlConfig, DeliveryConfig, RoleCredential, Services};
use flowlog_delivery::cwl::client::CwlClient;
use flowlog_delivery::{Delivery, RecordingListener};
use flowlog_model::record::RecordFormat;
use flowlog_model::{DeliverStatus, TrafficType};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn moto_groups_streams_and_events() {
    let Some((_moto, url)) = start_moto() else {
        return;
    };
    let cwl = CwlConfig {
        endpoint: Some(url.clone()),
        region: Some("us-east-1".into()),
        roles: vec![RoleCredential {
            role_arn: ROLE.into(),
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
            session_token: None,
        }],
        access_key_id: Some("testing".into()),
        secret_access_key: Some("testing".into()),
        ..CwlConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let l = Arc::new(RecordingListener::default());
    let cfg = DeliveryConfig {
        retry_initial_ms: 20,
        retry_max_ms: 200,
        ..DeliveryConfig::default()
    };
    let d = Delivery::open(
        dir.path(),
        cfg,
        &Services::cloudwatch_logs(cwl.clone()),
        l.clone(),
    )
    .unwrap();
    d.set_targets([
        (
            "eni-00000001".to_string(),
            cwl_target("fl-a", "vpc-flow", TrafficType::Accept),
        ),
        (
            "eni-00000001".to_string(),
            cwl_target("fl-r", "vpc-flow", TrafficType::Reject),
        ),
        (
            "eni-00000002".to_string(),
            cwl_target("fl-a", "vpc-flow", TrafficType::Accept),
        ),
    ]);
    let w = recent_window(300);
    let r1 = records("eni-00000001", 12_000, w, 0);
    let r2 = records("eni-00000002", 90, w, 1);
    d.submit(&r1).unwrap();
    d.submit(&r2).unwrap();
    // Twice, to exercise sequence tokens on an existing stream.
    let r3 = records("eni-00000001", 10, w + 60, 2);
    assert!(d.flush(Duration::from_secs(60)).await.unwrap());
    d.submit(&r3).unwrap();
    assert!(d.flush(Duration::from_secs(60)).await.unwrap());
    assert_eq!(l.latest("fl-a"), Some((DeliverStatus::Success, None)));

    let client = CwlClient::for_section(&cwl, "us-east-1").await.unwrap();
    let mut streams = client.stream_names("vpc-flow").await.unwrap();
    streams.sort();
    assert_eq!(streams, vec!["eni-00000001-all", "eni-00000002-all"]);
    let f = RecordFormat::default();
    let mut want1: Vec<(i64, String)> = r1
        .iter()
        .chain(&r3)
        .map(|r| (r.start as i64 * 1000, f.line(r)))
        .collect();
    want1.sort();
    let mut got1: Vec<(i64, String)> = client
        .get_log_events("vpc-flow", "eni-00000001-all")
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.timestamp, e.message))
        .collect();
    got1.sort();
    assert_eq!(got1.len(), want1.len());
    assert_eq!(got1, want1);
    // eni-00000002 is covered by the ACCEPT flow log only.
    let got2 = client
        .get_log_events("vpc-flow", "eni-00000002-all")
        .await
        .unwrap();
    let accepts = r2
        .iter()
        .filter(|r| r.action() == Some(flowlog_model::Action::Accept))
        .count();
    assert_eq!(got2.len(), accepts);
    assert!(got2.iter().all(|e| e.message.ends_with(" ACCEPT OK")));
}
