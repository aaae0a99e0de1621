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

use crate::capture_state::CaptureCounters;
use crate::nflog_hub::NflogHubs;
use flowlog_model::record::{InterfaceContext, LogStatus};
use flowlog_model::FlowRecord;

/// What a worker's records carry besides the counts.
#[derive(Debug, Clone)]
pub struct RecordNames {
    pub eni_id: String,
    pub account_id: String,
    pub context: Arc<InterfaceContext>,
}

impl RecordNames {
    fn record(&self, r: flowlog_flow::WindowRecord) -> FlowRecord {
        let mut rec = r.into_record(&self.account_id, &self.eni_id);
        rec.context = Some(self.context.clone());
        rec
    }
}

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
    /// Where open windows are checkpointed (None: not at all; a crash loses the window).
    pub checkpoint_dir: Option<std::path::PathBuf>,
    /// How often the open windows are checkpointed when they changed.
    pub checkpoint_every: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            interval_s: 600,
            capacity: 1_000_000,
            ring_mb: 16,
            nflog_group: None,
            budget: None,
            checkpoint_dir: None,
            checkpoint_every: Duration::from_secs(5),
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
    #[allow(clippy::too_many_arguments)] // each is a separate fact of this ENI's capture
    pub fn start(
        names: RecordNames,
        netns: Option<&str>,
        ifname: &str,
        cfg: &WorkerConfig,
        delivery: Delivery,
        hubs: &NflogHubs,
        counters: Arc<CaptureCounters>,
    ) -> Result<Worker, LiveError> {
        let eni_id = names.eni_id.as_str();
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
        let stop2 = stop.clone();
        let ckpt = cfg.checkpoint_dir.as_ref().map(|d| Checkpoint {
            path: crate::checkpoint::path(d, eni_id),
            every: cfg.checkpoint_every.max(Duration::from_millis(100)),
        });
        let settle = ccfg.block_timeout * 2 + Duration::from_millis(100);
        counters
            .flow_capacity
            .store(ccfg.capacity as u64, Ordering::Relaxed);
        let thread = std::thread::Builder::new()
            .name(format!("capture-{ifname}"))
            .spawn({
                let names = names.clone();
                move || {
                    run(
                        capture, verdicts, stop2, settle, &names, &delivery, &counters, ckpt,
                    )
                }
            })
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

struct Checkpoint {
    path: std::path::PathBuf,
    every: Duration,
}

/// Adds what the capture counted since the last call to the ENI's shared counters.
struct Publish {
    last: flowlog_live::LiveStats,
}

impl Publish {
    fn stats(&mut self, s: &flowlog_live::LiveStats, entries: usize, c: &CaptureCounters) {
        let add = |a: &std::sync::atomic::AtomicU64, now: u64, before: u64| {
            a.fetch_add(now.saturating_sub(before), Ordering::Relaxed);
        };
        add(&c.packets, s.packets, self.last.packets);
        add(&c.bytes, s.bytes, self.last.bytes);
        add(&c.kernel_drops, s.kernel_drops, self.last.kernel_drops);
        add(
            &c.nflog_overruns,
            s.nflog_overruns,
            self.last.nflog_overruns,
        );
        c.flow_entries.store(entries as u64, Ordering::Relaxed);
        self.last = s.clone();
    }

    fn records(batch: &[FlowRecord], c: &CaptureCounters) {
        for r in batch {
            let n = match r.status {
                LogStatus::Ok => &c.records_ok,
                LogStatus::NoData => &c.records_nodata,
                LogStatus::SkipData => &c.records_skipdata,
            };
            n.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Records handed to delivery at once while a window closes.
const SUBMIT_CHUNK: usize = 8192;

#[allow(clippy::too_many_arguments)]
fn run<R: flowlog_live::Source, N: flowlog_live::Source>(
    mut capture: Capture<R, N>,
    verdicts: Option<Receiver<Arc<[u8]>>>,
    stop: Arc<AtomicBool>,
    settle: Duration,
    names: &RecordNames,
    delivery: &Delivery,
    counters: &CaptureCounters,
    ckpt: Option<Checkpoint>,
) {
    let eni = names.eni_id.as_str();
    let account = names.account_id.as_str();
    let mut last_ckpt = std::time::Instant::now();
    let mut ckpt_packets = 0u64;
    let mut saved: Vec<FlowRecord> = Vec::new();
    let mut checkpoint = |capture: &Capture<R, N>, closed: bool| {
        let Some(c) = &ckpt else { return };
        let packets = capture.stats().packets + capture.stats().kernel_drops;
        if !closed && (packets == ckpt_packets || last_ckpt.elapsed() < c.every) {
            return;
        }
        saved.clear();
        capture.snapshot(&mut |r| saved.push(names.record(r)));
        let done = if saved.is_empty() {
            crate::checkpoint::remove(&c.path);
            Ok(())
        } else {
            crate::checkpoint::write(&c.path, account, eni, &saved)
        };
        if let Err(e) = done {
            tracing::warn!(eni, error = %e, path = %c.path.display(), "cannot checkpoint the open window");
        }
        ckpt_packets = packets;
        last_ckpt = std::time::Instant::now();
    };
    let mut publish = Publish {
        last: Default::default(),
    };
    let mut batch: Vec<FlowRecord> = Vec::new();
    let deliver = |batch: &mut Vec<FlowRecord>| {
        if batch.is_empty() {
            return;
        }
        Publish::records(batch, counters);
        if let Err(e) = delivery.submit(batch) {
            tracing::error!(eni, error = %e, records = batch.len(), "cannot spool all records (the ones lost are counted in flowlog_delivery_records_dropped_total)");
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
        let mut closed = false;
        capture.close_due(now_ns(), &mut |r| {
            closed = true;
            batch.push(names.record(r));
            if batch.len() >= SUBMIT_CHUNK {
                deliver(&mut batch);
            }
        });
        deliver(&mut batch);
        // After the closed windows are spooled, so the checkpoint never holds spooled records
        // for longer than this call.
        checkpoint(&capture, closed);
        publish.stats(capture.stats(), capture.table_entries(), counters);
    }
    if let Err(e) = capture.finish(now_ns, settle, &mut |r| {
        batch.push(names.record(r));
        if batch.len() >= SUBMIT_CHUNK {
            deliver(&mut batch);
        }
    }) {
        tracing::warn!(eni, error = %e, "error while flushing the last window");
    }
    deliver(&mut batch);
    if let Some(c) = &ckpt {
        crate::checkpoint::remove(&c.path);
    }
    publish.stats(capture.stats(), 0, counters);
    let s = capture.stats();
    tracing::info!(
        eni,
        packets = s.packets,
        frames = s.frames,
        kernel_drops = s.kernel_drops,
        "capture stopped"
    );
}
