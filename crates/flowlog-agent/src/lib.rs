//! The agent: keeps this host's captures in line with the control plane's desired state.
//!
//! Every `sync_every` the [`Agent`] discovers the host's interfaces (`flowlog_inventory`),
//! sends them with its inventory file and the delivery status changes to the control plane
//! ([`ControlPlane`]: in-process inside `flowlog serve`, HTTP for `flowlog agent`), and gets
//! back which interfaces to capture and which flow logs each feeds. It then starts a
//! [`worker::Worker`] for each new interface, stops the ones no longer wanted (flushing their
//! window), and hands delivery the new routing. The agent knows no SQL and no HTTP server.

pub mod nflog_hub;
pub mod protocol;
pub mod remote;
pub mod worker;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowlog_delivery::{Delivery, StatusListener};
use flowlog_model::DeliverStatus;

pub use protocol::{Assignment, StatusReport, SyncRequest, SyncResponse, TargetSpec};
pub use worker::{Worker, WorkerConfig};

/// The control plane as the agent sees it.
pub trait ControlPlane: Send + Sync {
    fn sync(&self, req: &SyncRequest) -> anyhow::Result<SyncResponse>;
}

/// Settings of the agent.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub worker: WorkerConfig,
    /// How often to re-read interfaces and desired state.
    pub sync_every: Duration,
    /// Inventory file text; None = register this namespace's interfaces by discovery.
    pub inventory: Option<String>,
    /// Namespaces the inventory file names (discovered each pass).
    pub namespaces: Vec<String>,
    /// AWS address ranges for `pkt-src-aws-service` / `pkt-dst-aws-service` (none: `-`).
    pub aws_ip_ranges: Option<Arc<flowlog_model::record::AwsIpRanges>>,
}

/// Collects delivery status changes until the next sync reports them.
#[derive(Default)]
pub struct StatusQueue {
    pending: Mutex<Vec<StatusReport>>,
}

impl StatusListener for StatusQueue {
    fn status_changed(
        &self,
        flow_log_id: &str,
        status: DeliverStatus,
        message: Option<&'static str>,
    ) {
        let mut q = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        q.retain(|r| r.flow_log_id != flow_log_id);
        q.push(StatusReport {
            flow_log_id: flow_log_id.to_string(),
            status: status.as_str().to_string(),
            message: message.map(str::to_string),
        });
    }
}

impl StatusQueue {
    fn take(&self) -> Vec<StatusReport> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn put_back(&self, mut reports: Vec<StatusReport>) {
        let mut q = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        reports.retain(|r| !q.iter().any(|n| n.flow_log_id == r.flow_log_id));
        q.splice(0..0, reports);
    }
}

pub struct Agent {
    cfg: AgentConfig,
    control: Arc<dyn ControlPlane>,
    delivery: Delivery,
    statuses: Arc<StatusQueue>,
    workers: BTreeMap<String, (Assignment, Worker)>,
    /// Interfaces that failed to open, with when to try again.
    retry_at: BTreeMap<String, Instant>,
    nflog: nflog_hub::NflogHubs,
}

impl Agent {
    pub fn new(
        cfg: AgentConfig,
        control: Arc<dyn ControlPlane>,
        delivery: Delivery,
        statuses: Arc<StatusQueue>,
    ) -> Agent {
        Agent {
            cfg,
            control,
            delivery,
            statuses,
            workers: BTreeMap::new(),
            retry_at: BTreeMap::new(),
            nflog: Default::default(),
        }
    }

    /// Runs until `stop` is set, then stops every capture (flushing its window).
    pub fn run(mut self, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::SeqCst) {
            let started = Instant::now();
            if let Err(e) = self.pass() {
                tracing::warn!(error = %format!("{e:#}"), "agent sync failed; keeping the current captures");
            }
            while started.elapsed() < self.cfg.sync_every && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.stop_all();
    }

    /// One sync: discover, report, reconcile.
    pub fn pass(&mut self) -> anyhow::Result<()> {
        let mut interfaces = match flowlog_inventory::discover::interfaces(None) {
            Ok(i) => i,
            Err(e) => {
                tracing::debug!(error = %e, "cannot list this namespace's interfaces");
                Vec::new()
            }
        };
        for ns in &self.cfg.namespaces {
            if let Ok(mut found) = flowlog_inventory::discover::interfaces(Some(ns)) {
                interfaces.append(&mut found);
            }
        }
        let statuses = self.statuses.take();
        let req = SyncRequest {
            host: hostname(),
            interfaces,
            inventory: self.cfg.inventory.clone(),
            statuses: statuses.clone(),
        };
        let resp = match self.control.sync(&req) {
            Ok(r) => r,
            Err(e) => {
                self.statuses.put_back(statuses);
                return Err(e);
            }
        };
        // Which bound interfaces exist right now (namespaces not yet looked at included).
        let mut present: BTreeSet<(Option<String>, String)> = req
            .interfaces
            .iter()
            .map(|i| (i.netns.clone(), i.name.clone()))
            .collect();
        let mut looked: BTreeSet<Option<String>> =
            self.cfg.namespaces.iter().cloned().map(Some).collect();
        looked.insert(None);
        for a in &resp.assignments {
            if looked.insert(a.netns.clone()) {
                if let Ok(found) = flowlog_inventory::discover::interfaces(a.netns.as_deref()) {
                    present.extend(found.into_iter().map(|i| (i.netns, i.name)));
                }
            }
        }
        self.apply(resp, &present);
        Ok(())
    }

    fn apply(&mut self, resp: SyncResponse, present: &BTreeSet<(Option<String>, String)>) {
        let is_present = |a: &Assignment| present.contains(&(a.netns.clone(), a.ifname.clone()));
        let wanted: BTreeMap<String, Assignment> = resp
            .assignments
            .into_iter()
            .map(|a| (a.eni_id.clone(), a))
            .collect();
        // Routing first, so records of a new flow log are kept from the first window.
        let mut targets = Vec::new();
        for a in wanted.values() {
            for t in &a.targets {
                match t.to_target() {
                    Some(target) => targets.push((a.eni_id.clone(), target)),
                    None => {
                        tracing::warn!(flow_log = %t.flow_log_id, "cannot deliver this flow log: unknown destination or format")
                    }
                }
            }
        }
        // Stop captures no longer wanted, whose interface or window changed or vanished, or
        // whose thread died. (A ring socket keeps a deleted namespace alive but silent, so
        // absence has to be noticed here rather than by the worker.) A stopped capture flushes
        // its window and is started again below when still wanted.
        let window = self.cfg.worker.interval_s;
        let stale: BTreeSet<String> = self
            .workers
            .iter()
            .filter(|(eni, (a, w))| {
                w.is_finished()
                    || !is_present(a)
                    || wanted.get(*eni).is_none_or(|n| {
                        n.netns != a.netns
                            || n.ifname != a.ifname
                            || n.interface != a.interface
                            || n.interval_s(window) != a.interval_s(window)
                    })
            })
            .map(|(eni, _)| eni.clone())
            .collect();
        for eni in stale {
            if let Some((a, w)) = self.workers.remove(&eni) {
                w.stop();
                tracing::info!(eni = %eni, interface = %a.ifname, "capture removed");
            }
        }
        self.delivery.set_targets(targets);
        let now = Instant::now();
        for (eni, a) in wanted {
            if !is_present(&a) {
                continue;
            }
            if self.workers.contains_key(&eni) || self.retry_at.get(&eni).is_some_and(|t| *t > now)
            {
                if let Some((cur, _)) = self.workers.get_mut(&eni) {
                    *cur = a;
                }
                continue;
            }
            // Every flow log of one control plane has its region; the records carry it.
            let region = a.targets.first().map(|t| t.region.as_str()).unwrap_or("");
            let context = Arc::new(a.interface.context(region, self.cfg.aws_ip_ranges.clone()));
            let worker_cfg = WorkerConfig {
                interval_s: a.interval_s(self.cfg.worker.interval_s),
                ..self.cfg.worker.clone()
            };
            let names = worker::RecordNames {
                eni_id: a.eni_id.clone(),
                account_id: a.account_id.clone(),
                context,
            };
            match Worker::start(
                names,
                a.netns.as_deref(),
                &a.ifname,
                &worker_cfg,
                self.delivery.clone(),
                &self.nflog,
            ) {
                Ok(w) => {
                    self.retry_at.remove(&eni);
                    self.workers.insert(eni, (a, w));
                }
                Err(e) => {
                    tracing::warn!(eni = %eni, interface = %a.ifname, netns = a.netns.as_deref().unwrap_or("-"), error = %e, "cannot capture yet; will retry");
                    self.retry_at.insert(eni, now + Duration::from_secs(5));
                }
            }
        }
    }

    /// ENIs being captured now.
    pub fn capturing(&self) -> Vec<String> {
        self.workers.keys().cloned().collect()
    }

    fn stop_all(&mut self) {
        for (_, (_, w)) in std::mem::take(&mut self.workers) {
            w.stop();
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
