//! Model test of the spool: random sequences of submits, delivery passes, crashes (the
//! service dropped without a flush, i.e. everything not yet acknowledged stays on disk) and
//! restarts, with a tiny object cap so rollover happens often. Whatever the sequence, the
//! embedded S3 store ends with every submitted record exactly once and CloudWatch Logs with
//! every kept record exactly once.

mod common;

use common::*;
use flowlog_delivery::config::{DeliveryConfig, Services};
use flowlog_delivery::cwl::local::{LocalLogs, Query};
use flowlog_delivery::{Delivery, RecordingListener};
use flowlog_model::record::RecordFormat;
use flowlog_model::TrafficType;
use proptest::prelude::*;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
enum Op {
    Submit { window: u64, n: usize },
    Pass { window: u64 },
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..4, 1usize..60).prop_map(|(window, n)| Op::Submit { window, n }),
        2 => (0u64..6).prop_map(|window| Op::Pass { window }),
        1 => Just(Op::Crash),
    ]
}

fn open(dir: &std::path::Path) -> Delivery {
    let cfg = DeliveryConfig {
        window_secs: 60,
        close_grace_secs: 0,
        max_object_bytes: 1500,
        ..DeliveryConfig::default()
    };
    let d = Delivery::open(
        dir,
        cfg,
        &Services::default(),
        Arc::new(RecordingListener::default()),
    )
    .unwrap();
    d.set_targets([
        (
            "eni-00000001".to_string(),
            s3_target("fl-00000001", "bkt", "p/"),
        ),
        (
            "eni-00000001".to_string(),
            cwl_target("fl-2", "g", TrafficType::Accept),
        ),
    ]);
    d
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let base = recent_window(300);
    let f = RecordFormat::default();
    let mut want = Vec::new();
    let mut seed = 0u32;
    rt.block_on(async {
        let mut d = open(dir.path());
        for op in ops {
            match op {
                Op::Submit { window, n } => {
                    seed += 1;
                    let recs = records("eni-00000001", n, base + 60 * window, seed);
                    d.submit(&recs).unwrap();
                    want.extend(recs);
                }
                Op::Pass { window } => {
                    d.run_once(base + 60 * window).await.unwrap();
                }
                Op::Crash => {
                    drop(d);
                    d = open(dir.path());
                }
            }
        }
        assert!(d.flush(Duration::from_secs(30)).await.unwrap());
    });
    let mut s3_lines = Vec::new();
    let mut stack = vec![dir.path().join("s3")];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else if e.path().to_string_lossy().ends_with(".log.gz") {
                let text = gunzip(&std::fs::read(e.path()).unwrap());
                prop_assert!(text.len() <= 1500, "object over the cap");
                s3_lines.extend(text.lines().skip(1).map(String::from));
            }
        }
    }
    s3_lines.sort();
    let mut expect: Vec<String> = want.iter().map(|r| f.line(r)).collect();
    expect.sort();
    prop_assert_eq!(s3_lines, expect);

    let mut cwl: Vec<String> = LocalLogs::open(dir.path())
        .unwrap()
        .events(&Query::default())
        .unwrap()
        .into_iter()
        .map(|e| e.message)
        .collect();
    cwl.sort();
    let mut expect: Vec<String> = want
        .iter()
        .filter(|r| r.action() == Some(flowlog_model::Action::Accept))
        .map(|r| f.line(r))
        .collect();
    expect.sort();
    prop_assert_eq!(cwl, expect);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    #[test]
    fn every_record_lands_exactly_once(ops in proptest::collection::vec(op(), 1..16)) {
        run(ops)?;
    }
}
