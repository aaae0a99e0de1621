//! Delivery to Kinesis Data Firehose: one spool unit per (flow log, window) holds the flow
//! log's lines; each line (with its `\n`) is one Firehose record. [`batch::plan`] cuts the
//! unit into PutRecordBatch calls within Firehose's limits; [`deliver_unit`] sends them,
//! retrying only the records a call reports failed (by their position in the response),
//! with a short backoff, and saves the unit's progress after every call.
//!
//! The transport is [`PutRecords`] so that the retry and progress logic is tested without a
//! network; the server's implementation is [`RemoteFirehose`] (the AWS SDK client).

pub mod batch;
pub mod client;

pub use client::RemoteFirehose;

use crate::error::DeliveryError;
use crate::metrics::SinkMetrics;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// Where a unit goes: the delivery stream and the roles of its flow log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRef {
    /// The flow log the unit belongs to (names the STS session of its roles).
    pub flow_log_id: String,
    pub stream_name: String,
    pub region: String,
    pub account: String,
    /// `DeliverLogsPermissionArn` (assumed for cross-account delivery).
    pub role_arn: Option<String>,
    /// `DeliverCrossAccountRole`.
    pub cross_account_role: Option<String>,
}

/// A record PutRecordBatch reported failed: its position in the call and the error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRecord {
    pub index: usize,
    pub code: String,
    pub message: String,
}

pub type PutFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<FailedRecord>, DeliveryError>> + Send + 'a>>;

/// One PutRecordBatch call. `Ok` lists the records the response marked failed (empty when
/// `FailedPutCount` is 0); `Err` is a failure of the whole call.
pub trait PutRecords: Send + Sync {
    fn put_record_batch<'a>(&'a self, to: &'a StreamRef, records: Vec<Vec<u8>>) -> PutFuture<'a>;
}

/// How often a call's failed records are retried within one delivery attempt before the
/// unit is given back to the service's per-destination backoff.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub initial: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
        }
    }
}

/// The error a record's `ErrorCode` stands for: Firehose answers
/// `ServiceUnavailableException` when the stream is over its throughput, and
/// `InternalFailure` (or a KMS code) otherwise.
pub fn record_error(code: &str, message: &str) -> DeliveryError {
    let what = format!("{code}: {message}");
    if code == "ServiceUnavailableException" || code.contains("Throttl") {
        DeliveryError::Throttled(what)
    } else if code.starts_with("KMS.AccessDenied") || code == "AccessDeniedException" {
        DeliveryError::Access(what)
    } else {
        DeliveryError::Server(what)
    }
}

/// Sends the lines of one unit from its saved progress on. Returns Ok once every record is
/// acknowledged (or skipped as too large); an error leaves the progress of what was
/// acknowledged, so the next attempt resumes there.
pub async fn deliver_unit(
    unit_path: &Path,
    to: &StreamRef,
    lines: &[String],
    sink: &dyn PutRecords,
    limits: &batch::Limits,
    retry: &RetryPolicy,
    m: &SinkMetrics,
) -> Result<(), DeliveryError> {
    let done = crate::spool::read_progress(unit_path).min(lines.len());
    let rest = &lines[done..];
    let sizes: Vec<usize> = rest.iter().map(|l| l.len() + 1).collect();
    for b in batch::plan(&sizes, limits) {
        if !b.too_large.is_empty() {
            m.dropped_too_large
                .fetch_add(b.too_large.len() as u64, Relaxed);
            let largest = b.too_large.iter().map(|&i| sizes[i]).max().unwrap_or(0);
            tracing::warn!(stream = %to.stream_name, records = b.too_large.len(), largest_bytes = largest,
                limit_bytes = limits.max_record_bytes,
                "records over the Firehose record limit dropped (never sent)");
        }
        // Positions (in `rest`) still to be acknowledged, in order.
        let mut pending: Vec<usize> = b.records.clone();
        let mut attempt = 0u32;
        while !pending.is_empty() {
            let data: Vec<Vec<u8>> = pending
                .iter()
                .map(|&i| {
                    let mut v = Vec::with_capacity(rest[i].len() + 1);
                    v.extend_from_slice(rest[i].as_bytes());
                    v.push(b'\n');
                    v
                })
                .collect();
            let bytes: u64 = data.iter().map(|d| d.len() as u64).sum();
            m.requests.fetch_add(1, Relaxed);
            let failed = sink.put_record_batch(to, data).await?;
            let failed_pos: Vec<usize> = failed
                .iter()
                .filter_map(|f| pending.get(f.index).copied())
                .collect();
            let acked = pending.len() - failed_pos.len();
            m.records_delivered.fetch_add(acked as u64, Relaxed);
            let failed_bytes: u64 = failed_pos.iter().map(|&i| sizes[i] as u64).sum();
            m.bytes_delivered.fetch_add(bytes - failed_bytes, Relaxed);
            // Progress: everything before the first record still unacknowledged.
            let resume = failed_pos.first().copied().unwrap_or(b.end);
            crate::spool::write_progress(unit_path, done + resume)?;
            if failed_pos.is_empty() {
                break;
            }
            attempt += 1;
            let first = &failed[0];
            let err = record_error(&first.code, &first.message);
            if attempt >= retry.attempts {
                tracing::warn!(stream = %to.stream_name, failed = failed_pos.len(), error = %err,
                    "Firehose records still failing; the unit waits for the next attempt");
                return Err(err);
            }
            m.retries.fetch_add(1, Relaxed);
            tracing::debug!(stream = %to.stream_name, failed = failed_pos.len(), attempt, error = %err,
                "retrying the failed Firehose records");
            let wait = retry
                .initial
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(retry.max);
            tokio::time::sleep(wait).await;
            pending = failed_pos;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    /// Answers each call from a script: a list of positions to fail, or a whole-call error.
    struct Scripted {
        script: Mutex<VecDeque<Result<Vec<usize>, DeliveryError>>>,
        calls: Mutex<Vec<Vec<String>>>,
    }

    impl Scripted {
        fn new(script: Vec<Result<Vec<usize>, DeliveryError>>) -> Scripted {
            Scripted {
                script: Mutex::new(script.into()),
                calls: Mutex::new(Vec::new()),
            }
        }
        fn calls(&self) -> Vec<Vec<String>> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl PutRecords for Scripted {
        fn put_record_batch<'a>(
            &'a self,
            _to: &'a StreamRef,
            records: Vec<Vec<u8>>,
        ) -> PutFuture<'a> {
            let text: Vec<String> = records
                .iter()
                .map(|r| String::from_utf8(r.clone()).unwrap())
                .collect();
            self.calls.lock().unwrap().push(text);
            let next = self
                .script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Ok(vec![]));
            Box::pin(async move {
                next.map(|fails| {
                    fails
                        .into_iter()
                        .map(|index| FailedRecord {
                            index,
                            code: "ServiceUnavailableException".into(),
                            message: "Slow down.".into(),
                        })
                        .collect()
                })
            })
        }
    }

    fn stream() -> StreamRef {
        StreamRef {
            flow_log_id: "fl-1".into(),
            stream_name: "s".into(),
            region: "us-east-1".into(),
            account: "123456789012".into(),
            role_arn: None,
            cross_account_role: None,
        }
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            initial: Duration::from_millis(1),
            max: Duration::from_millis(2),
        }
    }

    fn unit() -> (tempfile::TempDir, std::path::PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("u.unit");
        std::fs::write(&p, b"").unwrap();
        (d, p)
    }

    fn lines(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("line {i}")).collect()
    }

    #[tokio::test]
    async fn only_failed_records_are_retried_and_each_line_ends_in_newline() {
        let (_d, p) = unit();
        let sink = Scripted::new(vec![Ok(vec![1, 3]), Ok(vec![1]), Ok(vec![])]);
        let m = SinkMetrics::default();
        let l = lines(5);
        deliver_unit(
            &p,
            &stream(),
            &l,
            &sink,
            &batch::Limits::default(),
            &fast(),
            &m,
        )
        .await
        .unwrap();
        let calls = sink.calls();
        assert_eq!(calls.len(), 3);
        assert_eq!(
            calls[0],
            l.iter().map(|s| format!("{s}\n")).collect::<Vec<_>>()
        );
        assert_eq!(calls[1], vec!["line 1\n", "line 3\n"]);
        assert_eq!(
            calls[2],
            vec!["line 3\n"],
            "the second position of the retry is line 3"
        );
        assert_eq!(m.records_delivered.load(Relaxed), 5);
        assert_eq!(m.requests.load(Relaxed), 3);
        assert_eq!(m.retries.load(Relaxed), 2);
        assert_eq!(crate::spool::read_progress(&p), 5);
    }

    #[tokio::test]
    async fn progress_survives_a_failed_attempt_and_the_next_resumes_there() {
        let (_d, p) = unit();
        let l = lines(7);
        let limits = batch::Limits {
            max_records: 3,
            ..Default::default()
        };
        // Batch [0,3) ok; batch [3,6): position 1 (line 4) keeps failing.
        let sink = Scripted::new(vec![Ok(vec![]), Ok(vec![1]), Ok(vec![0]), Ok(vec![0])]);
        let m = SinkMetrics::default();
        let err = deliver_unit(&p, &stream(), &l, &sink, &limits, &fast(), &m)
            .await
            .unwrap_err();
        assert!(matches!(err, DeliveryError::Throttled(_)), "{err}");
        assert_eq!(
            crate::spool::read_progress(&p),
            4,
            "lines 0..4 acknowledged"
        );
        let sink = Scripted::new(vec![]);
        deliver_unit(&p, &stream(), &l, &sink, &limits, &fast(), &m)
            .await
            .unwrap();
        assert_eq!(
            sink.calls(),
            vec![vec![
                "line 4\n".to_string(),
                "line 5\n".into(),
                "line 6\n".into()
            ],]
        );
        assert_eq!(crate::spool::read_progress(&p), 7);
    }

    #[tokio::test]
    async fn a_failed_call_keeps_progress_and_maps_the_error() {
        let (_d, p) = unit();
        let sink = Scripted::new(vec![Err(DeliveryError::Access(
            "AccessDeniedException".into(),
        ))]);
        let m = SinkMetrics::default();
        let err = deliver_unit(
            &p,
            &stream(),
            &lines(3),
            &sink,
            &batch::Limits::default(),
            &fast(),
            &m,
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), crate::FailureKind::AccessError);
        assert_eq!(crate::spool::read_progress(&p), 0);
        assert_eq!(m.records_delivered.load(Relaxed), 0);
    }

    #[tokio::test]
    async fn too_large_records_are_counted_and_never_sent() {
        let (_d, p) = unit();
        let mut l = lines(3);
        l[1] = "x".repeat(1_024_000); // with its newline one byte over the limit
        let sink = Scripted::new(vec![]);
        let m = SinkMetrics::default();
        deliver_unit(
            &p,
            &stream(),
            &l,
            &sink,
            &batch::Limits::default(),
            &fast(),
            &m,
        )
        .await
        .unwrap();
        assert_eq!(
            sink.calls(),
            vec![vec!["line 0\n".to_string(), "line 2\n".into()]]
        );
        assert_eq!(m.dropped_too_large.load(Relaxed), 1);
        assert_eq!(m.records_delivered.load(Relaxed), 2);
    }

    #[test]
    fn record_error_codes() {
        use crate::FailureKind::*;
        assert_eq!(
            record_error("ServiceUnavailableException", "").kind(),
            RateLimited
        );
        assert_eq!(
            record_error("KMS.AccessDeniedException", "").kind(),
            AccessError
        );
        assert_eq!(record_error("InternalFailure", "").kind(), Unknown);
    }
}
