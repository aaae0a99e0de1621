//! Delivery counters and their Prometheus text exposition (format 0.0.4), mounted by the
//! server at `/metrics`. Lock-free atomics; one set of counters per sink.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters of one sink (`s3`, `cloudwatch_logs` or `firehose`).
#[derive(Debug, Default)]
pub struct SinkMetrics {
    pub records_received: AtomicU64,
    pub records_delivered: AtomicU64,
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub dropped_spool_full: AtomicU64,
    pub dropped_too_old: AtomicU64,
    pub dropped_too_new: AtomicU64,
    pub dropped_rejected: AtomicU64,
    /// Records larger than the destination takes in one record (Firehose: 1,024,000 bytes).
    pub dropped_too_large: AtomicU64,
    /// Records the spool could not store: no space left (ENOSPC, EDQUOT).
    pub dropped_disk_full: AtomicU64,
    /// Records the spool could not store for another IO error.
    pub dropped_spool_error: AtomicU64,
    /// Records of flow logs deleted before they were delivered.
    pub dropped_flow_log_deleted: AtomicU64,
    pub bytes_delivered: AtomicU64,
    pub failures_access: AtomicU64,
    pub failures_rate_limited: AtomicU64,
    pub failures_unknown: AtomicU64,
}

impl SinkMetrics {
    /// Counts a failed attempt by the reason DescribeFlowLogs shows for it.
    pub fn failed(&self, kind: crate::FailureKind) {
        match kind {
            crate::FailureKind::AccessError => &self.failures_access,
            crate::FailureKind::RateLimited => &self.failures_rate_limited,
            crate::FailureKind::Unknown => &self.failures_unknown,
        }
        .fetch_add(1, Relaxed);
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub s3: SinkMetrics,
    pub cwl: SinkMetrics,
    pub firehose: SinkMetrics,
    pub records_unrouted: AtomicU64,
    pub spool_bytes: AtomicU64,
    pub spool_units: AtomicU64,
    /// Age of the oldest undelivered sealed unit, from its window's end (0 when none).
    pub lag_seconds: AtomicU64,
}

impl Metrics {
    /// The counters of the sink a spool unit goes to.
    pub fn sink(&self, s: crate::spool::Sink) -> &SinkMetrics {
        match s {
            crate::spool::Sink::S3 => &self.s3,
            crate::spool::Sink::Cwl => &self.cwl,
            crate::spool::Sink::Firehose => &self.firehose,
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let sinks = [
            ("s3", &self.s3),
            ("cloudwatch_logs", &self.cwl),
            ("firehose", &self.firehose),
        ];
        let counter =
            |out: &mut String, name: &str, help: &str, f: &dyn Fn(&SinkMetrics) -> u64| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
                for (label, m) in sinks {
                    let _ = writeln!(out, "{name}{{sink=\"{label}\"}} {}", f(m));
                }
            };
        counter(
            &mut out,
            "flowlog_delivery_records_received_total",
            "Records accepted into the spool.",
            &|m| m.records_received.load(Relaxed),
        );
        counter(
            &mut out,
            "flowlog_delivery_records_delivered_total",
            "Records acknowledged by the destination.",
            &|m| m.records_delivered.load(Relaxed),
        );
        counter(
            &mut out,
            "flowlog_delivery_bytes_delivered_total",
            "Bytes sent in acknowledged requests.",
            &|m| m.bytes_delivered.load(Relaxed),
        );
        counter(
            &mut out,
            "flowlog_delivery_requests_total",
            "Requests sent to the destination.",
            &|m| m.requests.load(Relaxed),
        );
        counter(
            &mut out,
            "flowlog_delivery_retries_total",
            "Failed attempts that will be retried.",
            &|m| m.retries.load(Relaxed),
        );
        let name = "flowlog_delivery_records_dropped_total";
        let _ = writeln!(
            out,
            "# HELP {name} Records given up, by reason.\n# TYPE {name} counter"
        );
        for (label, m) in sinks {
            for (reason, v) in [
                ("spool_full", &m.dropped_spool_full),
                ("too_old", &m.dropped_too_old),
                ("too_new", &m.dropped_too_new),
                ("rejected", &m.dropped_rejected),
                ("too_large", &m.dropped_too_large),
                ("disk_full", &m.dropped_disk_full),
                ("spool_error", &m.dropped_spool_error),
                ("flow_log_deleted", &m.dropped_flow_log_deleted),
            ] {
                let _ = writeln!(
                    out,
                    "{name}{{sink=\"{label}\",reason=\"{reason}\"}} {}",
                    v.load(Relaxed)
                );
            }
        }
        let name = "flowlog_delivery_failures_total";
        let _ = writeln!(
            out,
            "# HELP {name} Failed delivery attempts, by the DeliverLogsErrorMessage they cause.\n# TYPE {name} counter"
        );
        for (label, m) in sinks {
            for (reason, v) in [
                ("access_error", &m.failures_access),
                ("rate_limited", &m.failures_rate_limited),
                ("unknown_error", &m.failures_unknown),
            ] {
                let _ = writeln!(
                    out,
                    "{name}{{sink=\"{label}\",reason=\"{reason}\"}} {}",
                    v.load(Relaxed)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP flowlog_delivery_lag_seconds Age of the oldest undelivered batch since its window ended (0 when the spool holds no sealed batch).\n# TYPE flowlog_delivery_lag_seconds gauge\nflowlog_delivery_lag_seconds {}",
            self.lag_seconds.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP flowlog_delivery_records_unrouted_total Records of ENIs no flow log covers.\n# TYPE flowlog_delivery_records_unrouted_total counter\nflowlog_delivery_records_unrouted_total {}",
            self.records_unrouted.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP flowlog_delivery_spool_bytes Bytes waiting in the on-disk spool.\n# TYPE flowlog_delivery_spool_bytes gauge\nflowlog_delivery_spool_bytes {}",
            self.spool_bytes.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP flowlog_delivery_spool_units Batches waiting in the on-disk spool.\n# TYPE flowlog_delivery_spool_units gauge\nflowlog_delivery_spool_units {}",
            self.spool_units.load(Relaxed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.s3.records_delivered.fetch_add(5, Relaxed);
        m.spool_bytes.store(42, Relaxed);
        let text = m.render();
        assert!(text.contains("flowlog_delivery_records_delivered_total{sink=\"s3\"} 5\n"));
        assert!(
            text.contains("flowlog_delivery_records_delivered_total{sink=\"cloudwatch_logs\"} 0\n")
        );
        m.firehose.dropped_too_large.fetch_add(2, Relaxed);
        let text = m.render();
        assert!(text.contains(
            "flowlog_delivery_records_dropped_total{sink=\"firehose\",reason=\"too_large\"} 2\n"
        ));
        assert!(text.contains(
            "flowlog_delivery_records_dropped_total{sink=\"s3\",reason=\"spool_full\"} 0\n"
        ));
        assert!(text.contains("\nflowlog_delivery_spool_bytes 42\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, v) = line.rsplit_once(' ').unwrap();
            v.parse::<u64>().unwrap();
        }
    }
}
