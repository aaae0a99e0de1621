//! Firehose delivery against `moto_server`: records go out with PutRecordBatch (one record per
//! line, `\n`-terminated, at most 500 per call), moto writes each call to an object of the
//! stream's S3 destination, and the objects are read back line for line. Cross-account: the
//! flow log's DeliverLogsPermissionArn is assumed through moto's STS and that role assumes the
//! DeliverCrossAccountRole of the stream's account, whose stream and bucket receive the
//! records. Skips when moto is not installed (a failure in CI).

mod common;

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use common::*;
use flowlog_delivery::aws::{AwsContext, Section};
use flowlog_delivery::config::{DeliveryConfig, FirehoseConfig, Services, StsConfig};
use flowlog_delivery::target::{Destination, FlowLogTarget};
use flowlog_delivery::{Delivery, RecordingListener};
use flowlog_model::record::RecordFormat;
use flowlog_model::{DeliverStatus, TrafficType};
use std::sync::Arc;
use std::time::Duration;

const OTHER: &str = "210987654321";

/// A setup client configuration (flowlog's own HTTPS client) for moto at `url`.
async fn sdk(url: &str, creds: Credentials) -> SdkConfig {
    let ctx = AwsContext::new(None).unwrap();
    let section = Section {
        name: "test",
        region: Some("us-east-1"),
        access_key_id: Some(creds.access_key_id()),
        secret_access_key: Some(creds.secret_access_key()),
        session_token: creds.session_token(),
        ..Section::default()
    };
    ctx.load(&section, None)
        .await
        .unwrap()
        .into_builder()
        .endpoint_url(url)
        .build()
}

fn testing() -> Credentials {
    Credentials::new("testing", "testing", None, None, "test")
}

/// Credentials of a role of `account` as moto's STS hands them out (moto files resources
/// made with them under that account).
async fn creds_of(url: &str, account: &str) -> Credentials {
    let sts = aws_sdk_sts::Client::new(&sdk(url, testing()).await);
    let c = sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/setup"))
        .role_session_name("setup")
        .send()
        .await
        .unwrap();
    let c = c.credentials().unwrap();
    Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        None,
        "moto",
    )
}

async fn make_stream(conf: &SdkConfig, stream: &str, bucket: &str) {
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(conf)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    let fh = aws_sdk_firehose::Client::new(conf);
    fh.create_delivery_stream()
        .delivery_stream_name(stream)
        .extended_s3_destination_configuration(
            aws_sdk_firehose::types::ExtendedS3DestinationConfiguration::builder()
                .role_arn("arn:aws:iam::123456789012:role/firehose-s3")
                .bucket_arn(format!("arn:aws:s3:::{bucket}"))
                .prefix("fl/")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

/// Bodies of the bucket's objects, in key order.
async fn objects(conf: &SdkConfig, bucket: &str) -> Vec<String> {
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(conf)
            .force_path_style(true)
            .build(),
    );
    let list = s3.list_objects_v2().bucket(bucket).send().await.unwrap();
    let mut keys: Vec<String> = list
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    keys.sort();
    let mut out = Vec::new();
    for k in keys {
        let o = s3.get_object().bucket(bucket).key(&k).send().await.unwrap();
        let body = o.body.collect().await.unwrap().into_bytes();
        out.push(String::from_utf8(body.to_vec()).unwrap());
    }
    out
}

fn target(id: &str, stream: &str, account: &str, roles: Option<(&str, &str)>) -> FlowLogTarget {
    FlowLogTarget {
        flow_log_id: id.into(),
        account_id: ACCOUNT.into(),
        region: "us-east-1".into(),
        traffic_type: TrafficType::All,
        format: RecordFormat::default(),
        destination: Destination::Firehose {
            stream_name: stream.into(),
            region: "us-east-1".into(),
            account: account.into(),
            role_arn: roles.map(|r| r.0.to_string()),
            cross_account_role: roles.map(|r| r.1.to_string()),
        },
        options: Default::default(),
    }
}

fn delivery(dir: &std::path::Path, url: &str, l: Arc<RecordingListener>) -> Delivery {
    let services = Services {
        firehose: Some(FirehoseConfig {
            endpoint: Some(url.into()),
            region: Some("us-east-1".into()),
            access_key_id: Some("testing".into()),
            secret_access_key: Some("testing".into()),
            ..FirehoseConfig::default()
        }),
        sts: Some(StsConfig {
            endpoint: Some(url.into()),
            region: Some("us-east-1".into()),
        }),
        ..Services::default()
    };
    let cfg = DeliveryConfig {
        retry_initial_ms: 20,
        retry_max_ms: 200,
        ..DeliveryConfig::default()
    };
    Delivery::open(dir, cfg, &services, l).unwrap()
}

fn expected(recs: &[flowlog_model::FlowRecord]) -> Vec<String> {
    let f = RecordFormat::default();
    let mut v: Vec<String> = recs.iter().map(|r| f.line(r)).collect();
    v.sort();
    v
}

fn lines_of(bodies: &[String]) -> Vec<String> {
    for b in bodies {
        assert!(
            b.ends_with('\n'),
            "every record ends in a newline: {:?}",
            &b[b.len().saturating_sub(100)..]
        );
    }
    let mut v: Vec<String> = bodies
        .iter()
        .flat_map(|b| b.lines().map(str::to_string))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn same_account_batches_of_500_into_moto_s3() {
    let Some((_moto, url)) = start_moto() else {
        return;
    };
    let admin = sdk(&url, testing()).await;
    make_stream(&admin, "fl-stream", "fh-bucket").await;
    let dir = tempfile::tempdir().unwrap();
    let l = Arc::new(RecordingListener::default());
    let d = delivery(dir.path(), &url, l.clone());
    d.set_targets([(
        "eni-00000001".to_string(),
        target("fl-same", "fl-stream", ACCOUNT, None),
    )]);
    let recs = records("eni-00000001", 1_200, recent_window(300), 0);
    d.submit(&recs).unwrap();
    assert!(d.flush(Duration::from_secs(60)).await.unwrap());
    assert_eq!(l.latest("fl-same"), Some((DeliverStatus::Success, None)));
    let bodies = objects(&admin, "fh-bucket").await;
    let mut sizes: Vec<usize> = bodies.iter().map(|b| b.lines().count()).collect();
    sizes.sort();
    // One object per PutRecordBatch: 1 200 records in one window = 500 + 500 + 200.
    assert_eq!(sizes, vec![200, 500, 500]);
    assert_eq!(lines_of(&bodies), expected(&recs));
    let m = d.metrics();
    assert_eq!(
        m.firehose
            .records_delivered
            .load(std::sync::atomic::Ordering::Relaxed),
        1_200
    );
    assert_eq!(
        m.firehose
            .requests
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
}

#[tokio::test]
async fn cross_account_assumes_both_roles_and_a_missing_stream_fails_then_recovers() {
    let Some((_moto, url)) = start_moto() else {
        return;
    };
    let other = sdk(&url, creds_of(&url, OTHER).await).await;
    make_stream(&other, "central", "central-bucket").await;
    let dir = tempfile::tempdir().unwrap();
    let l = Arc::new(RecordingListener::default());
    let d = delivery(dir.path(), &url, l.clone());
    let roles = (
        "arn:aws:iam::123456789012:role/flow-logs-source",
        "arn:aws:iam::210987654321:role/AWSLogDeliveryFirehoseCrossAccountRole",
    );
    d.set_targets([
        (
            "eni-00000001".to_string(),
            target("fl-cross", "central", OTHER, Some(roles)),
        ),
        // The caller's account has no stream of that name: FAILED until it exists.
        (
            "eni-00000002".to_string(),
            target("fl-late", "late", ACCOUNT, None),
        ),
    ]);
    let w = recent_window(300);
    let a = records("eni-00000001", 40, w, 0);
    let b = records("eni-00000002", 30, w, 1);
    d.submit(&a).unwrap();
    d.submit(&b).unwrap();
    let _ = d.flush(Duration::from_secs(3)).await;
    assert_eq!(l.latest("fl-cross"), Some((DeliverStatus::Success, None)));
    assert_eq!(
        lines_of(&objects(&other, "central-bucket").await),
        expected(&a)
    );
    // The records went to the other account's stream, not to one of the caller's.
    let admin = sdk(&url, testing()).await;
    let mine = aws_sdk_firehose::Client::new(&admin)
        .list_delivery_streams()
        .send()
        .await
        .unwrap();
    assert!(mine.delivery_stream_names().is_empty(), "{mine:?}");
    assert_eq!(
        l.latest("fl-late").map(|s| s.0),
        Some(DeliverStatus::Failed)
    );
    make_stream(&admin, "late", "late-bucket").await;
    assert!(d.flush(Duration::from_secs(60)).await.unwrap());
    assert_eq!(l.latest("fl-late"), Some((DeliverStatus::Success, None)));
    assert_eq!(
        lines_of(&objects(&admin, "late-bucket").await),
        expected(&b)
    );
}

#[tokio::test]
async fn without_a_firehose_section_the_flow_log_fails() {
    let dir = tempfile::tempdir().unwrap();
    let l = Arc::new(RecordingListener::default());
    let d = Delivery::open(
        dir.path(),
        DeliveryConfig::default(),
        &Services::default(),
        l.clone(),
    )
    .unwrap();
    d.set_targets([(
        "eni-00000001".to_string(),
        target("fl-none", "s", ACCOUNT, None),
    )]);
    d.submit(&records("eni-00000001", 5, recent_window(300), 0))
        .unwrap();
    assert!(!d.flush(Duration::from_secs(2)).await.unwrap());
    assert_eq!(
        l.latest("fl-none"),
        Some((DeliverStatus::Failed, Some("Unknown error")))
    );
    assert_eq!(d.pending().0, 1, "the records stay spooled (one unit)");
}
