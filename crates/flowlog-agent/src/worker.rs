//! One capture worker: a thread that owns the AF_PACKET ring (and NFLOG socket) of one
//! interface, counts packets into its flow table, and at every window end hands the records
//! to delivery, which spools them before returning. Stopping the worker flushes the window
//! in progress.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use std::sync::mpsc::Receiver;

use flowlog_delivery::Delivery;
use flowlog_live::{Capture, CaptureConfig, LiveError, RingConfig};

use crate::nflog_hub::NflogHubs;
use flowlog_model::FlowRecord;

/// Settings shared by every worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Aggregation window in seconds.
    pub interval_s: u64,
    /// Flow entries per interface before new flows become SKIPDATA.
    pub capacity: usize,
    /// Ring size in MiB.
    pub ring_mb: u32,
    /// NFLOG group carrying the firewall's rejects, if any.
    pub nflog_group: Option<u16>,
    /// Flow entries shared by every interface of the agent (`[agent] max_flows`).
    pub budget: Option<flowlog_flow::FlowBudget>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            interval_s: 600,
            capacity: 1_000_000,
            ring_mb: 16,
            nflog_group: None,
            budget: None,
        }
    }
}

/// A running capture.
pub struct Worker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl Worker {
    /// Opens the interface and starts the thread. Fails when the interface cannot be
    /// opened (absent, no permission); the caller retries on its next pass.
    pub fn start(
        eni_id: &str,
        account_id: &str,
        netns: Option<&str>,
        ifname: &str,
        cfg: &WorkerConfig,
        delivery: Delivery,
        hubs: &NflogHubs,
    ) -> Result<Worker, LiveError> {
        let ring_cfg = RingConfig {
            block_size: 1 << 20,
            block_count: cfg.ring_mb.max(1),
            ..RingConfig::default()
        };
        let ns_path = netns.map(flowlog_live::netns_path);
        let opened = flowlog_live::open(ifname, ns_path.as_deref(), ring_cfg, None)?;
        // REJECT verdicts come from the namespace's shared NFLOG listener.
        let verdicts = match cfg.nflog_group {
            Some(group) => match hubs.subscribe(netns, group) {
                Ok(rx) => Some(rx),
                Err(e) => {
                    tracing::warn!(eni = eni_id, group, error = %e, "no NFLOG verdicts for this interface; every packet counts as ACCEPT");
                    None
                }
            },
            None => None,
        };
        let mut ccfg = CaptureConfig::new(opened.ifindex, cfg.interval_s.max(1));
        ccfg.capacity = cfg.capacity.max(1);
        ccfg.block_timeout = Duration::from_millis(u64::from(ring_cfg.retire_timeout_ms));
        ccfg.nflog_group = verdicts.as_ref().and(cfg.nflog_group);
        let capture: Capture<_, flowlog_live::sys::netlink::NetlinkSocket> =
            Capture::new(opened.ring, None, ccfg);
        let mut capture = capture;
        if let Some(b) = &cfg.budget {
            capture.set_budget(b.clone());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (eni, account) = (eni_id.to_string(), account_id.to_string());
        let stop2 = stop.clone();
        let settle = ccfg.block_timeout * 2 + Duration::from_millis(100);
        let thread = std::thread::Builder::new()
            .name(format!("capture-{ifname}"))
            .spawn(move || run(capture, verdicts, stop2, settle, &eni, &account, &delivery))
            .map_err(|e| LiveError::from_os("spawning the capture thread", e))?;
        tracing::info!(
            eni = eni_id,
            interface = ifname,
            netns = netns.unwrap_or("-"),
            "capture started"
        );
        Ok(Worker {
            stop,
            thread: Some(thread),
        })
    }

    /// Asks the thread to flush the current window and stop, and waits for it.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Records handed to delivery at once while a window closes.
const SUBMIT_CHUNK: usize = 8192;

fn run<R: flowlog_live::Source, N: flowlog_live::Source>(
    mut capture: Capture<R, N>,
    verdicts: Option<Receiver<Arc<[u8]>>>,
    stop: Arc<AtomicBool>,
    settle: Duration,
    eni: &str,
    account: &str,
    delivery: &Delivery,
) {
    let mut batch: Vec<FlowRecord> = Vec::new();
    let deliver = |batch: &mut Vec<FlowRecord>| {
        if batch.is_empty() {
            return;
        }
        if let Err(e) = delivery.submit(batch) {
            tracing::error!(eni, error = %e, records = batch.len(), "cannot spool records");
        }
        batch.clear();
    };
    while !stop.load(Ordering::SeqCst) {
        if let Err(e) = capture.step(Duration::from_millis(100), now_ns()) {
            tracing::error!(eni, error = %e, "capture failed; stopping this interface");
            break;
        }
        if let Some(rx) = &verdicts {
            while let Ok(d) = rx.try_recv() {
                capture.feed_nflog(&d, now_ns());
            }
        }
        // a closing window goes to the spool in chunks: a flood's window of a budget's worth
        // of flows is never held twice (as records and as routed lines) in full
        capture.close_due(now_ns(), &mut |r| {
            batch.push(r.into_record(account, eni));
            if batch.len() >= SUBMIT_CHUNK {
                deliver(&mut batch);
            }
        });
        deliver(&mut batch);
    }
    if let Err(e) = capture.finish(now_ns, settle, &mut |r| {
        batch.push(r.into_record(account, eni));
        if batch.len() >= SUBMIT_CHUNK {
            deliver(&mut batch);
        }
    }) {
        tracing::warn!(eni, error = %e, "error while flushing the last window");
    }
    deliver(&mut batch);
    let s = capture.stats();
    tracing::info!(
        eni,
        packets = s.packets,
        frames = s.frames,
        kernel_drops = s.kernel_drops,
        "capture stopped"
    );
}
