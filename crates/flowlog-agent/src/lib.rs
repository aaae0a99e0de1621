//! The agent: keeps this host's captures in line with the control plane's desired state.
//!
//! Every `sync_every` the [`Agent`] discovers the host's interfaces (`flowlog_inventory`),
//! sends them with its inventory file and the delivery status changes to the control plane
//! ([`ControlPlane`]: in-process inside `flowlog serve`, HTTP for `flowlog agent`), and gets
//! back which interfaces to capture and which flow logs each feeds. It then starts a
//! [`worker::Worker`] for each new interface, stops the ones no longer wanted (flushing their
//! window), and hands delivery the new routing. The agent knows no SQL and no HTTP server.

pub mod capture_state;
pub mod checkpoint;
pub mod netlink;
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

pub use capture_state::{CaptureRegistry, CaptureReport, CaptureState};
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
    captures: Arc<CaptureRegistry>,
    /// Flow logs reported FAILED because an ENI they cover cannot be captured.
    capture_failed: BTreeMap<String, &'static str>,
    /// Namespaces whose interfaces could not be listed in this pass, with the error.
    discover_errors: BTreeMap<Option<String>, String>,
    /// Whether the checkpoints of a previous run were submitted.
    recovered: bool,
    /// Link/address change subscriptions (set by `run`).
    watcher: Option<netlink::Watcher>,
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
            captures: Arc::default(),
            capture_failed: BTreeMap::new(),
            discover_errors: BTreeMap::new(),
            recovered: false,
            watcher: None,
        }
    }

    /// The capture state of every monitored ENI (for metrics and `flowlog status`).
    pub fn captures(&self) -> Arc<CaptureRegistry> {
        self.captures.clone()
    }

    /// Runs until `stop` is set, then stops every capture (flushing its window).
    /// A link or address change in a watched namespace (or the namespace appearing) starts
    /// the next pass at once instead of at the next `sync_every` tick.
    pub fn run(mut self, stop: Arc<AtomicBool>) {
        self.watcher = Some(netlink::Watcher::start());
        while !stop.load(Ordering::SeqCst) {
            let started = Instant::now();
            if let Err(e) = self.pass() {
                tracing::warn!(error = %format!("{e:#}"), "agent sync failed; keeping the current captures");
            }
            while started.elapsed() < self.cfg.sync_every && !stop.load(Ordering::SeqCst) {
                if self.watcher.as_ref().is_some_and(|w| w.take_changed()) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.stop_all();
    }

    /// Interfaces of one namespace; a failure is kept (it becomes the capture state of the
    /// ENIs bound there) and logged at debug, since the state change is what gets a WARN.
    fn discover(&mut self, ns: Option<&str>) -> Vec<flowlog_inventory::discover::HostInterface> {
        match netlink::interfaces(ns) {
            Ok(found) => found,
            Err(e) => {
                tracing::debug!(netns = ns.unwrap_or("-"), error = %e, "cannot list interfaces");
                self.discover_errors
                    .insert(ns.map(str::to_string), e.to_string());
                Vec::new()
            }
        }
    }

    /// One sync: discover, report, reconcile.
    pub fn pass(&mut self) -> anyhow::Result<()> {
        self.discover_errors.clear();
        let mut interfaces = self.discover(None);
        for ns in self.cfg.namespaces.clone() {
            interfaces.append(&mut self.discover(Some(&ns)));
        }
        let statuses = self.statuses.take();
        let req = SyncRequest {
            host: hostname(),
            interfaces,
            inventory: self.cfg.inventory.clone(),
            statuses: statuses.clone(),
            capture: self.captures.reports(),
            cursor: None,
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
                let found = self.discover(a.netns.as_deref());
                present.extend(found.into_iter().map(|i| (i.netns, i.name)));
            }
        }
        if let Some(w) = &self.watcher {
            w.watch(looked.iter().cloned().collect());
        }
        self.apply(resp, &present);
        Ok(())
    }

    /// Submits the open windows a crashed run checkpointed (once: after the first sync set
    /// the routing, before any worker starts and could replace them).
    /// Each record gets the interface context of its ENI's assignment (vpc-id, subnet-id,
    /// ... of custom formats), as the worker would have given it.
    fn recover_checkpoints(&self, wanted: &BTreeMap<String, Assignment>) {
        let Some(dir) = &self.cfg.worker.checkpoint_dir else {
            return;
        };
        for (path, mut records) in checkpoint::left_over(dir) {
            if let Some(a) = records.first().and_then(|r| wanted.get(&r.interface_id)) {
                let region = a.targets.first().map(|t| t.region.as_str()).unwrap_or("");
                let context = Arc::new(a.interface.context(region, self.cfg.aws_ip_ranges.clone()));
                for r in &mut records {
                    r.context = Some(context.clone());
                }
            }
            match self.delivery.submit(&records) {
                Ok(_) => {
                    tracing::info!(records = records.len(), path = %path.display(), "records of the window open at the last crash recovered from its checkpoint");
                }
                Err(e) => {
                    tracing::error!(error = %e, records = records.len(), "cannot spool the checkpointed records (counted as dropped)");
                }
            }
            checkpoint::remove(&path);
        }
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
        if !self.recovered {
            self.recovered = true;
            self.recover_checkpoints(&wanted);
        }
        let now = Instant::now();
        let wanted_now = wanted.clone();
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
                self.captures.counters(&a.eni_id),
            ) {
                Ok(w) => {
                    self.retry_at.remove(&eni);
                    self.workers.insert(eni, (a, w));
                }
                Err(e) => {
                    let state = CaptureState::of_error(&e);
                    self.captures.set(
                        &a.eni_id,
                        &a.account_id,
                        a.netns.as_deref(),
                        &a.ifname,
                        state,
                        &e.to_string(),
                    );
                    tracing::debug!(eni = %eni, interface = %a.ifname, error = %e, "cannot capture yet; will retry");
                    self.retry_at.insert(eni, now + Duration::from_secs(5));
                }
            }
        }
        self.note_capture_states(&wanted_now, present);
    }

    /// Sets the capture state of every wanted ENI that is running or absent (open errors were
    /// set where they happened), forgets the others, and reports to the control plane, as
    /// delivery status, the flow logs whose ENIs cannot be captured (and their recovery).
    fn note_capture_states(
        &mut self,
        wanted: &BTreeMap<String, Assignment>,
        present: &BTreeSet<(Option<String>, String)>,
    ) {
        for (eni, a) in wanted {
            let ns = a.netns.as_deref();
            if self.workers.contains_key(eni) {
                self.captures.set(
                    eni,
                    &a.account_id,
                    ns,
                    &a.ifname,
                    CaptureState::Capturing,
                    "",
                );
            } else if !present.contains(&(a.netns.clone(), a.ifname.clone())) {
                let listing = self.discover_errors.get(&a.netns);
                let (state, error) = match (ns, listing) {
                    (Some(n), _) if !flowlog_live::netns_path(n).exists() => (
                        CaptureState::NamespaceMissing,
                        format!("network namespace {n} not found"),
                    ),
                    (_, Some(e))
                        if e.contains("Operation not permitted") || e.contains("denied") =>
                    {
                        (CaptureState::NoPrivilege, e.clone())
                    }
                    (_, Some(e)) => (CaptureState::OpenError, e.clone()),
                    _ => (
                        CaptureState::InterfaceMissing,
                        format!("no interface {} found", a.ifname),
                    ),
                };
                self.captures
                    .set(eni, &a.account_id, ns, &a.ifname, state, &error);
            }
        }
        self.captures.retain(&wanted.keys().cloned().collect());
        // Flow log → the worst capture problem among the ENIs it covers.
        let mut failing: BTreeMap<String, &'static str> = BTreeMap::new();
        let mut covered: BTreeSet<String> = BTreeSet::new();
        for (eni, a) in wanted {
            let err = self
                .captures
                .state(eni)
                .and_then(CaptureState::deliver_error);
            for t in &a.targets {
                covered.insert(t.flow_log_id.clone());
                if let Some(err) = err {
                    let slot = failing.entry(t.flow_log_id.clone()).or_insert(err);
                    if err == "Access error" {
                        *slot = err;
                    }
                }
            }
        }
        for (fl, err) in &failing {
            if self.capture_failed.get(fl) != Some(err) {
                self.statuses
                    .status_changed(fl, DeliverStatus::Failed, Some(err));
            }
        }
        for fl in self.capture_failed.keys() {
            if !failing.contains_key(fl) && covered.contains(fl) {
                self.statuses
                    .status_changed(fl, DeliverStatus::Success, None);
            }
        }
        self.capture_failed = failing;
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
