//! The seam to the control plane: delivery reports each flow log's `DeliverLogsStatus` and
//! every window it had to drop. The control plane implements [`StatusListener`] (writing to its
//! store); delivery calls it only when a flow log's status changes.

use crate::error::FailureKind;
use flowlog_model::DeliverStatus;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A window of records given up because the spool was full (reported as SKIPDATA counts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropReport {
    pub flow_log_ids: Vec<String>,
    /// Unix seconds of the dropped window's start.
    pub window_start: u64,
    pub records: u64,
    /// Of `records`, how many were bound for S3 and how many for Firehose (the rest for
    /// CloudWatch Logs).
    pub s3_records: u64,
    pub firehose_records: u64,
    pub bytes: u64,
}

/// Implemented by the control plane. Calls are edge-triggered per process: the first outcome
/// of each flow log after a start, then every change.
pub trait StatusListener: Send + Sync {
    /// `message` is `None` for SUCCESS, else `Access error` / `Rate limited` / `Unknown error`.
    fn status_changed(
        &self,
        flow_log_id: &str,
        status: DeliverStatus,
        message: Option<&'static str>,
    );
    /// A window was dropped from a full spool.
    fn window_dropped(&self, _report: &DropReport) {}
}

/// Remembers the last status per flow log and forwards changes only.
pub(crate) struct StatusTracker {
    listener: Arc<dyn StatusListener>,
    last: Mutex<HashMap<String, Option<FailureKind>>>,
}

impl StatusTracker {
    pub fn new(listener: Arc<dyn StatusListener>) -> Self {
        StatusTracker {
            listener,
            last: Mutex::new(HashMap::new()),
        }
    }

    pub fn report(&self, flow_log_ids: &[String], outcome: Option<FailureKind>) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        for id in flow_log_ids {
            let prev: Option<Option<FailureKind>> = last.get(id).copied();
            // The first outcome after a start is always reported: the store may still hold a
            // FAILED written before a restart.
            let changed = prev != Some(outcome);
            last.insert(id.clone(), outcome);
            if changed {
                match outcome {
                    None => self
                        .listener
                        .status_changed(id, DeliverStatus::Success, None),
                    Some(k) => {
                        self.listener
                            .status_changed(id, DeliverStatus::Failed, Some(k.message()))
                    }
                }
            }
        }
    }

    pub fn dropped(&self, report: &DropReport) {
        self.listener.window_dropped(report);
    }
}

/// A listener that records everything; handy for tests and the example binary.
#[derive(Debug, Default)]
pub struct RecordingListener {
    pub events: Mutex<Vec<(String, DeliverStatus, Option<&'static str>)>>,
    pub drops: Mutex<Vec<DropReport>>,
}

impl RecordingListener {
    /// Latest status of one flow log.
    pub fn latest(&self, flow_log_id: &str) -> Option<(DeliverStatus, Option<&'static str>)> {
        let ev = self.events.lock().unwrap_or_else(|e| e.into_inner());
        ev.iter()
            .rev()
            .find(|e| e.0 == flow_log_id)
            .map(|e| (e.1, e.2))
    }
}

impl StatusListener for RecordingListener {
    fn status_changed(
        &self,
        flow_log_id: &str,
        status: DeliverStatus,
        message: Option<&'static str>,
    ) {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).push((
            flow_log_id.to_string(),
            status,
            message,
        ));
    }
    fn window_dropped(&self, report: &DropReport) {
        self.drops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(report.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_are_forwarded() {
        let l = Arc::new(RecordingListener::default());
        let t = StatusTracker::new(l.clone());
        let ids = vec!["fl-1".to_string()];
        t.report(&ids, None);
        t.report(&ids, Some(FailureKind::AccessError));
        t.report(&ids, Some(FailureKind::AccessError));
        t.report(&ids, Some(FailureKind::RateLimited));
        t.report(&ids, None);
        let ev = l.events.lock().unwrap().clone();
        assert_eq!(
            ev,
            vec![
                ("fl-1".into(), DeliverStatus::Success, None),
                ("fl-1".into(), DeliverStatus::Failed, Some("Access error")),
                ("fl-1".into(), DeliverStatus::Failed, Some("Rate limited")),
                ("fl-1".into(), DeliverStatus::Success, None),
            ]
        );
    }
}
