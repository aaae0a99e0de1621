//! Capture state as a first-class fact: for every monitored ENI, whether its interface is
//! being captured, and if not, why (no privilege, interface missing, namespace missing, open
//! error). The agent sets it on every pass; a change is logged once at WARN with the fix;
//! the state travels to the control plane in the next sync (ENI tag `flowlog:capture`, flow
//! log `DeliverLogsStatus`), is exported as `flowlog_capture_up{eni,interface}` with the
//! per-ENI capture counters, and is shown by `flowlog status`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use flowlog_live::LiveError;
use serde::{Deserialize, Serialize};

/// Why an ENI is or is not captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaptureState {
    Capturing,
    /// The process lacks CAP_NET_RAW (or CAP_NET_ADMIN / CAP_SYS_ADMIN where needed).
    NoPrivilege,
    /// The bound interface does not exist (in its namespace).
    InterfaceMissing,
    /// The bound network namespace does not exist.
    NamespaceMissing,
    /// Opening the capture failed for another reason.
    OpenError,
}

impl CaptureState {
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureState::Capturing => "capturing",
            CaptureState::NoPrivilege => "no-privilege",
            CaptureState::InterfaceMissing => "interface-missing",
            CaptureState::NamespaceMissing => "namespace-missing",
            CaptureState::OpenError => "open-error",
        }
    }

    pub fn parse(s: &str) -> Option<CaptureState> {
        [
            CaptureState::Capturing,
            CaptureState::NoPrivilege,
            CaptureState::InterfaceMissing,
            CaptureState::NamespaceMissing,
            CaptureState::OpenError,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    /// The state an open error stands for.
    pub fn of_error(e: &LiveError) -> CaptureState {
        match e {
            LiveError::PermissionDenied { .. } => CaptureState::NoPrivilege,
            LiveError::NoSuchInterface { .. } => CaptureState::InterfaceMissing,
            LiveError::NetnsMissing { .. } => CaptureState::NamespaceMissing,
            _ => CaptureState::OpenError,
        }
    }

    /// How a flow log covering an ENI in this state shows it in DescribeFlowLogs: capture
    /// that cannot work on a present interface is a delivery failure (`Access error` for
    /// privileges, `Unknown error` otherwise). A missing interface or namespace is what AWS
    /// calls a detached ENI: the ENI is `available` and the flow log stays `SUCCESS`.
    pub fn deliver_error(self) -> Option<&'static str> {
        match self {
            CaptureState::NoPrivilege => Some("Access error"),
            CaptureState::OpenError => Some("Unknown error"),
            _ => None,
        }
    }
}

/// Live counters of one ENI's capture, kept across worker restarts (Prometheus counters
/// never go back).
#[derive(Debug, Default)]
pub struct CaptureCounters {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    pub kernel_drops: AtomicU64,
    pub nflog_overruns: AtomicU64,
    pub records_ok: AtomicU64,
    pub records_nodata: AtomicU64,
    pub records_skipdata: AtomicU64,
    pub flow_entries: AtomicU64,
    pub flow_capacity: AtomicU64,
}

/// One ENI's entry.
#[derive(Debug, Clone)]
struct Entry {
    account_id: String,
    netns: Option<String>,
    interface: String,
    state: CaptureState,
    reason: String,
    since: u64,
    counters: Arc<CaptureCounters>,
}

/// What `flowlog status` and the sync report carry for an ENI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureReport {
    pub eni_id: String,
    pub interface: String,
    #[serde(default)]
    pub netns: Option<String>,
    pub state: CaptureState,
    /// Empty when capturing; otherwise the error and the fix.
    #[serde(default)]
    pub reason: String,
    /// Unix seconds of the last change.
    #[serde(default)]
    pub since: u64,
    #[serde(default)]
    pub packets: u64,
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub kernel_drops: u64,
}

/// Capture state of every monitored ENI of this agent; shared with the HTTP handlers.
#[derive(Debug, Default)]
pub struct CaptureRegistry {
    inner: Mutex<BTreeMap<String, Entry>>,
    counters: Mutex<BTreeMap<String, Arc<CaptureCounters>>>,
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The operator's fix for a state, for the WARN line.
pub fn fix_for(state: CaptureState, netns: Option<&str>, interface: &str) -> String {
    match state {
        CaptureState::Capturing => String::new(),
        CaptureState::NoPrivilege => format!(
            "run flowlog as root, or grant the capabilities: sudo setcap cap_net_raw,cap_net_admin{}+ep $(command -v flowlog)",
            if netns.is_some() { ",cap_sys_admin" } else { "" }
        ),
        CaptureState::InterfaceMissing => format!(
            "create interface {interface}{} or fix the ENI's `interface` line in the inventory file",
            netns.map(|n| format!(" in namespace {n}")).unwrap_or_default()
        ),
        CaptureState::NamespaceMissing => format!(
            "create it (ip netns add {}) or fix the ENI's `netns` line in the inventory file",
            netns.unwrap_or("-")
        ),
        CaptureState::OpenError => "see the error; capture is retried every 5 s".to_string(),
    }
}

impl CaptureRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The counters a worker of `eni` adds to.
    pub fn counters(&self, eni: &str) -> Arc<CaptureCounters> {
        self.counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(eni.to_string())
            .or_default()
            .clone()
    }

    /// Sets `eni`'s state; logs at WARN (or INFO when capture (re)starts) only when it changed.
    /// Returns whether it changed.
    pub fn set(
        &self,
        eni: &str,
        account_id: &str,
        netns: Option<&str>,
        interface: &str,
        state: CaptureState,
        error: &str,
    ) -> bool {
        let counters = self.counters(eni);
        let mut map = self.lock();
        let fix = fix_for(state, netns, interface);
        let reason = match (error.is_empty(), fix.is_empty()) {
            (true, _) => fix.clone(),
            (false, true) => error.to_string(),
            (false, false) => format!("{error}; fix: {fix}"),
        };
        let entry = map.entry(eni.to_string()).or_insert_with(|| Entry {
            account_id: account_id.to_string(),
            netns: netns.map(str::to_string),
            interface: interface.to_string(),
            // A new ENI counts as a change whatever its first state.
            state: if state == CaptureState::Capturing {
                CaptureState::OpenError
            } else {
                CaptureState::Capturing
            },
            reason: String::new(),
            since: 0,
            counters,
        });
        let moved = entry.interface != interface || entry.netns.as_deref() != netns;
        if !moved && entry.state == state {
            return false;
        }
        entry.account_id = account_id.to_string();
        entry.netns = netns.map(str::to_string);
        entry.interface = interface.to_string();
        entry.state = state;
        entry.reason = reason.clone();
        entry.since = now_s();
        let ns = netns.unwrap_or("-");
        if state == CaptureState::Capturing {
            tracing::info!(eni, interface, netns = ns, "capture state: capturing");
        } else {
            tracing::warn!(eni, interface, netns = ns, state = state.as_str(), error, fix = %fix,
                "capture state: NOT capturing");
        }
        true
    }

    /// Forgets ENIs no longer monitored.
    pub fn retain(&self, wanted: &BTreeSet<String>) {
        self.lock().retain(|eni, _| wanted.contains(eni));
        self.counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|eni, _| wanted.contains(eni));
    }

    pub fn state(&self, eni: &str) -> Option<CaptureState> {
        self.lock().get(eni).map(|e| e.state)
    }

    /// Every ENI's state with its counters, in ENI order.
    pub fn reports(&self) -> Vec<CaptureReport> {
        self.lock()
            .iter()
            .map(|(eni, e)| CaptureReport {
                eni_id: eni.clone(),
                interface: e.interface.clone(),
                netns: e.netns.clone(),
                state: e.state,
                reason: e.reason.clone(),
                since: e.since,
                packets: e.counters.packets.load(Relaxed),
                bytes: e.counters.bytes.load(Relaxed),
                kernel_drops: e.counters.kernel_drops.load(Relaxed),
            })
            .collect()
    }

    /// Prometheus text (format 0.0.4) of the capture metrics. Hand-written like delivery's:
    /// per-ENI label sets come from this registry at scrape time.
    pub fn render(&self) -> String {
        let map = self.lock();
        let mut out = String::with_capacity(1024);
        let up = "flowlog_capture_up";
        let _ = writeln!(
            out,
            "# HELP {up} 1 when the ENI's interface is being captured, 0 when not (see flowlog status for why).\n# TYPE {up} gauge"
        );
        for (eni, e) in map.iter() {
            let _ = writeln!(
                out,
                "{up}{{eni=\"{}\",interface=\"{}\"}} {}",
                esc(eni),
                esc(&e.interface),
                u8::from(e.state == CaptureState::Capturing)
            );
        }
        type Get = fn(&CaptureCounters) -> &AtomicU64;
        let families: [(&str, &str, &str, Get); 6] = [
            (
                "flowlog_capture_packets_total",
                "counter",
                "Packets captured on the ENI's interface (GSO super-frames counted as wire packets).",
                |c| &c.packets,
            ),
            (
                "flowlog_capture_bytes_total",
                "counter",
                "IP bytes of the captured packets.",
                |c| &c.bytes,
            ),
            (
                "flowlog_capture_kernel_drops_total",
                "counter",
                "Packets the kernel dropped because the capture ring was full (reported as SKIPDATA).",
                |c| &c.kernel_drops,
            ),
            (
                "flowlog_capture_nflog_overruns_total",
                "counter",
                "Times the NFLOG socket overflowed and REJECT verdicts were lost.",
                |c| &c.nflog_overruns,
            ),
            (
                "flowlog_flow_table_entries",
                "gauge",
                "Flow entries held in the ENI's open windows.",
                |c| &c.flow_entries,
            ),
            (
                "flowlog_flow_table_capacity",
                "gauge",
                "Flow entries the ENI's table holds before new flows become SKIPDATA.",
                |c| &c.flow_capacity,
            ),
        ];
        for (name, kind, help, get) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (eni, e) in map.iter() {
                let _ = writeln!(
                    out,
                    "{name}{{eni=\"{}\"}} {}",
                    esc(eni),
                    get(&e.counters).load(Relaxed)
                );
            }
        }
        let name = "flowlog_capture_records_total";
        let _ = writeln!(
            out,
            "# HELP {name} Records the capture closed, by log status (OK, NODATA, SKIPDATA).\n# TYPE {name} counter"
        );
        for (eni, e) in map.iter() {
            for (status, v) in [
                ("OK", &e.counters.records_ok),
                ("NODATA", &e.counters.records_nodata),
                ("SKIPDATA", &e.counters.records_skipdata),
            ] {
                let _ = writeln!(
                    out,
                    "{name}{{eni=\"{}\",log_status=\"{status}\"}} {}",
                    esc(eni),
                    v.load(Relaxed)
                );
            }
        }
        out
    }
}

/// Escapes a Prometheus label value.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_changes_only_and_renders() {
        let r = CaptureRegistry::default();
        assert!(r.set(
            "eni-1",
            "1",
            None,
            "eth0",
            CaptureState::NoPrivilege,
            "denied"
        ));
        assert!(!r.set(
            "eni-1",
            "1",
            None,
            "eth0",
            CaptureState::NoPrivilege,
            "denied"
        ));
        assert!(r.set("eni-1", "1", None, "eth0", CaptureState::Capturing, ""));
        assert!(r.set(
            "eni-2",
            "1",
            Some("ns"),
            "v0",
            CaptureState::NamespaceMissing,
            ""
        ));
        r.counters("eni-1").packets.fetch_add(7, Relaxed);
        let text = r.render();
        assert!(text.contains("flowlog_capture_up{eni=\"eni-1\",interface=\"eth0\"} 1\n"));
        assert!(text.contains("flowlog_capture_up{eni=\"eni-2\",interface=\"v0\"} 0\n"));
        assert!(text.contains("flowlog_capture_packets_total{eni=\"eni-1\"} 7\n"));
        let reports = r.reports();
        assert_eq!(reports[1].state, CaptureState::NamespaceMissing);
        assert!(
            reports[1].reason.contains("ip netns add ns"),
            "{}",
            reports[1].reason
        );
        r.retain(&BTreeSet::from(["eni-2".to_string()]));
        assert_eq!(r.reports().len(), 1);
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            line.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap();
        }
    }

    #[test]
    fn states_round_trip() {
        for s in [
            "capturing",
            "no-privilege",
            "interface-missing",
            "namespace-missing",
            "open-error",
        ] {
            assert_eq!(CaptureState::parse(s).unwrap().as_str(), s);
            let json = serde_json::to_string(&CaptureState::parse(s).unwrap()).unwrap();
            assert_eq!(json, format!("\"{s}\""));
        }
    }
}
