//! What `/metrics` serves: delivery's counters (`flowlog_delivery::Metrics`), the capture
//! agent's per-ENI state and counters (`flowlog_agent::CaptureRegistry`) and the API's request
//! counter and latency histogram, kept here with the `prometheus` crate (histogram buckets and
//! the text format are its job, not ours). Names, types and example alerts: README "Metrics".

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// The API's metrics.
pub struct ApiMetrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
}

impl ApiMetrics {
    fn new() -> ApiMetrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "flowlog_api_requests_total",
                "EC2 API requests answered, by action and error code (\"\" = success).",
            ),
            &["action", "code"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "flowlog_api_request_duration_seconds",
                "Time from the request's body read to its answer, by action.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["action"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(requests.clone()))
            .expect("registered once");
        registry
            .register(Box::new(latency.clone()))
            .expect("registered once");
        ApiMetrics {
            registry,
            requests,
            latency,
        }
    }

    /// Counts one answered request.
    pub fn observe(&self, action: &str, error_code: Option<&str>, took: Duration) {
        // Unknown actions are answered InvalidAction with action "-": labels stay bounded.
        let action = if action.len() > 64 { "-" } else { action };
        self.requests
            .with_label_values(&[action, error_code.unwrap_or("")])
            .inc();
        self.latency
            .with_label_values(&[action])
            .observe(took.as_secs_f64());
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// The process's API metrics.
pub fn api() -> &'static ApiMetrics {
    static API: OnceLock<ApiMetrics> = OnceLock::new();
    API.get_or_init(ApiMetrics::new)
}

static CAPTURES: OnceLock<Arc<flowlog_agent::CaptureRegistry>> = OnceLock::new();

/// Hands the in-process agent's capture registry to `/metrics` and `/status`.
pub fn set_captures(c: Arc<flowlog_agent::CaptureRegistry>) {
    let _ = CAPTURES.set(c);
}

pub fn captures() -> Option<&'static flowlog_agent::CaptureRegistry> {
    CAPTURES.get().map(|c| &**c)
}

/// The whole `/metrics` body (Prometheus text format 0.0.4).
pub fn render(delivery: &flowlog_delivery::Delivery) -> String {
    delivery.refresh_gauges(flowlog_delivery::service::now_secs());
    let mut out = delivery.metrics().render();
    if let Some(c) = captures() {
        out.push_str(&c.render());
    }
    out.push_str(&api().render());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_metrics_count_and_time() {
        let m = ApiMetrics::new();
        m.observe("DescribeFlowLogs", None, Duration::from_millis(3));
        m.observe("DescribeFlowLogs", None, Duration::from_millis(30));
        m.observe(
            "CreateFlowLogs",
            Some("InvalidParameter"),
            Duration::from_millis(1),
        );
        let text = m.render();
        assert!(text.contains("# TYPE flowlog_api_requests_total counter"));
        assert!(
            text.contains("flowlog_api_requests_total{action=\"DescribeFlowLogs\",code=\"\"} 2")
        );
        assert!(text.contains(
            "flowlog_api_requests_total{action=\"CreateFlowLogs\",code=\"InvalidParameter\"} 1"
        ));
        assert!(text.contains(
            "flowlog_api_request_duration_seconds_bucket{action=\"DescribeFlowLogs\",le=\"0.005\"} 1"
        ));
        assert!(text
            .contains("flowlog_api_request_duration_seconds_count{action=\"DescribeFlowLogs\"} 2"));
    }
}
