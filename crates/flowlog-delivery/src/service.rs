//! [`Delivery`]: the service the server runs. `submit` routes a drained window's records and
//! makes them durable in the spool (synchronously, before returning); a background task seals
//! windows when they end and delivers sealed units with per-destination exponential backoff
//! and full jitter, reporting each flow log's status and counting everything in [`Metrics`].

use crate::aws::AwsContext;
use crate::config::{DeliveryConfig, Services};
use crate::cwl::batch::{self, Limits};
use crate::cwl::local::LocalLogs;
use crate::cwl::{CwlSink, RemoteCwl};
use crate::error::FailureKind;
use crate::firehose::{self as fh, PutRecords};
use crate::metrics::Metrics;
use crate::router::{Router, StreamKey};
use crate::s3::{BucketCheck, LocalS3, RemoteS3, S3Sink};
use crate::spool::{self, Payload, Sink, Spool, SpoolLimits, UnitInfo, UnitMeta};
use crate::status::{StatusListener, StatusTracker};
use crate::target::FlowLogTarget;
use crate::DeliveryError;
use flowlog_model::FlowRecord;
use rand::Rng;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

/// What `submit` did with a batch of records.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SubmitSummary {
    pub s3_records: u64,
    pub cwl_events: u64,
    pub firehose_records: u64,
    pub unrouted: u64,
    pub dropped_windows: usize,
}

/// Counts of one delivery pass.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassSummary {
    pub delivered_units: usize,
    pub failed_units: usize,
    pub remaining_units: usize,
}

/// A running lane (see `Inner::in_flight`).
type Lane = tokio::task::JoinHandle<Result<PassSummary, DeliveryError>>;

struct Backoff {
    failures: u32,
    until: Instant,
}

struct Inner {
    cfg: DeliveryConfig,
    spool: Mutex<Spool>,
    router: RwLock<Router>,
    /// CloudWatch Logs streams that have had traffic (see `submit`).
    cwl_streams_with_traffic: Mutex<std::collections::HashSet<StreamKey>>,
    /// Flow logs of the last `set_targets`; None until the first (then nothing is dropped
    /// for being unknown: the spool may hold records from before a restart).
    live: RwLock<Option<std::collections::HashSet<String>>>,
    s3: S3Sink,
    cwl: CwlSink,
    /// Kinesis Data Firehose: the SDK client when the configuration has a `[firehose]`
    /// section (or what `set_firehose` put there); None: Firehose flow logs are FAILED.
    firehose_sink: RwLock<Option<Arc<dyn PutRecords>>>,
    firehose_limits: fh::batch::Limits,
    firehose_retry: fh::RetryPolicy,
    metrics: Arc<Metrics>,
    status: StatusTracker,
    backoff: Mutex<HashMap<String, Backoff>>,
    notify: Notify,
    limits: Limits,
    /// Lanes (one destination: a bucket, a CloudWatch Logs stream) being delivered now. A lane
    /// delivers its units in order; lanes run side by side, at most `max_concurrent_deliveries`.
    in_flight: Mutex<std::collections::HashSet<String>>,
    lanes: Arc<tokio::sync::Semaphore>,
}

/// One flow log's share of the spool (`flowlog status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FlowLogBacklog {
    pub flow_log_id: String,
    /// Sealed batches waiting for the destination.
    pub units: u64,
    pub records: u64,
    pub bytes: u64,
    /// Records in windows still open (not yet due).
    pub open_records: u64,
    /// Age of the oldest sealed batch since its window ended.
    pub lag_seconds: u64,
}

/// The delivery service; cheap to clone.
#[derive(Clone)]
pub struct Delivery {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Delivery {
    /// Opens the spool under `<data_dir>/spool` (recovering what a previous run left) and sets
    /// up the sinks: the real service for each configured section of `services`, else the
    /// embedded stores under `<data_dir>/s3` and `<data_dir>/cwl`.
    pub fn open(
        data_dir: &Path,
        cfg: DeliveryConfig,
        services: &Services,
        listener: Arc<dyn StatusListener>,
    ) -> Result<Delivery, DeliveryError> {
        Self::open_with_spool(data_dir, &data_dir.join("spool"), cfg, services, listener)
    }

    /// Like [`Delivery::open`] with an explicit spool directory.
    pub fn open_with_spool(
        data_dir: &Path,
        spool_dir: &Path,
        cfg: DeliveryConfig,
        services: &Services,
        listener: Arc<dyn StatusListener>,
    ) -> Result<Delivery, DeliveryError> {
        let limits = SpoolLimits {
            window_secs: cfg.window_secs.max(1),
            max_object_bytes: cfg.max_object_bytes.max(1),
            max_bytes: cfg.spool_max_bytes,
        };
        let spool = Spool::open(spool_dir, limits, cfg.agent_id.as_deref())?;
        let ctx = Arc::new(AwsContext::new(services.sts.as_ref())?);
        let s3 = match &services.s3 {
            Some(c) => S3Sink::Remote(Box::new(RemoteS3::new(ctx.clone(), c))),
            None => S3Sink::Local(LocalS3::new(data_dir.join("s3"))),
        };
        let cwl = match &services.cloudwatch_logs {
            Some(c) => CwlSink::Remote(Box::new(RemoteCwl::new(ctx.clone(), c))),
            None => CwlSink::Local(Mutex::new(LocalLogs::open(data_dir)?)),
        };
        let firehose = services
            .firehose
            .as_ref()
            .map(|c| Arc::new(fh::RemoteFirehose::new(ctx.clone(), c)) as Arc<dyn PutRecords>);
        let lanes = Arc::new(tokio::sync::Semaphore::new(
            cfg.max_concurrent_deliveries.max(1),
        ));
        let metrics = Arc::new(Metrics::default());
        metrics.spool_bytes.store(spool.bytes(), Relaxed);
        metrics
            .spool_units
            .store(spool.units().len() as u64, Relaxed);
        Ok(Delivery {
            inner: Arc::new(Inner {
                cfg,
                spool: Mutex::new(spool),
                router: RwLock::new(Router::default()),
                cwl_streams_with_traffic: Mutex::new(Default::default()),
                live: RwLock::new(None),
                s3,
                cwl,
                firehose_sink: RwLock::new(firehose),
                firehose_limits: fh::batch::Limits::default(),
                firehose_retry: fh::RetryPolicy::default(),
                metrics,
                status: StatusTracker::new(listener),
                backoff: Mutex::new(HashMap::new()),
                notify: Notify::new(),
                limits: Limits::default(),
                in_flight: Mutex::new(Default::default()),
                lanes,
            }),
        })
    }

    /// Replaces the Kinesis Data Firehose transport (tests: a scripted stand-in). Without one
    /// (no `[firehose]` section) Firehose flow logs stay FAILED and their records stay spooled.
    pub fn set_firehose(&self, sink: Arc<dyn PutRecords>) {
        *self
            .inner
            .firehose_sink
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(sink);
        self.inner.notify.notify_one();
    }

    /// Replaces the active targets: (ENI id, flow log covering it).
    /// Records spooled for a flow log that is not among them are dropped (counted as
    /// `flow_log_deleted`) instead of being retried forever.
    pub fn set_targets(&self, targets: impl IntoIterator<Item = (String, FlowLogTarget)>) {
        let targets: Vec<(String, FlowLogTarget)> = targets.into_iter().collect();
        let live = targets.iter().map(|(_, t)| t.flow_log_id.clone()).collect();
        *self.inner.router.write().unwrap_or_else(|e| e.into_inner()) = Router::new(targets);
        *self.inner.live.write().unwrap_or_else(|e| e.into_inner()) = Some(live);
        self.inner.notify.notify_one();
    }

    /// Whether none of `ids` is a current flow log (known only after the first `set_targets`).
    fn all_deleted(&self, ids: &[String]) -> bool {
        match &*self.inner.live.read().unwrap_or_else(|e| e.into_inner()) {
            Some(live) => !ids.iter().any(|id| live.contains(id)),
            None => false,
        }
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.inner.metrics.clone()
    }

    pub fn spool_dir(&self) -> PathBuf {
        lock(&self.inner.spool).dir().to_path_buf()
    }

    /// Routes `records` and writes them to the spool; durable when this returns Ok.
    pub fn submit(&self, records: &[FlowRecord]) -> Result<SubmitSummary, DeliveryError> {
        let mut routed = self
            .inner
            .router
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .route(records);
        {
            // A CloudWatch Logs stream (and its group) comes into being with the ENI's first
            // traffic: NODATA before that creates nothing, as on AWS. Streams seen with
            // traffic are remembered for the life of the process.
            let mut live = lock(&self.inner.cwl_streams_with_traffic);
            routed.cwl.retain(|c| {
                if c.has_traffic {
                    live.insert(c.key.clone());
                    true
                } else {
                    live.contains(&c.key)
                }
            });
        }
        let m = &self.inner.metrics;
        let mut sum = SubmitSummary {
            unrouted: routed.unrouted,
            ..SubmitSummary::default()
        };
        m.records_unrouted.fetch_add(routed.unrouted, Relaxed);
        let mut spool = lock(&self.inner.spool);
        // Whatever cannot be written (disk full) is counted dropped, logged, and shows as
        // FAILED (Unknown error) until a later delivery succeeds; nothing vanishes unseen.
        let mut first_err: Option<DeliveryError> = None;
        for s in &routed.s3 {
            let total = s.lines.len() as u64;
            let written = match spool.append_s3(s) {
                Ok(()) => total,
                Err(p) => {
                    self.write_failed(
                        std::slice::from_ref(&s.target.flow_log_id),
                        total - p.written,
                        &p.error,
                        Sink::S3,
                    );
                    first_err = first_err.or(Some(p.error));
                    p.written
                }
            };
            sum.s3_records += written;
        }
        for c in &routed.cwl {
            let total = c.events.len() as u64;
            match spool.push_cwl(c) {
                Ok(()) => sum.cwl_events += total,
                Err(e) => {
                    self.write_failed(&c.flow_log_ids, total, &e, Sink::Cwl);
                    first_err = first_err.or(Some(e));
                }
            }
        }
        for f in &routed.firehose {
            let total = f.lines.len() as u64;
            let written = match spool.push_firehose(f) {
                Ok(()) => total,
                Err(p) => {
                    self.write_failed(
                        std::slice::from_ref(&f.target.flow_log_id),
                        total - p.written,
                        &p.error,
                        Sink::Firehose,
                    );
                    first_err = first_err.or(Some(p.error));
                    p.written
                }
            };
            sum.firehose_records += written;
        }
        m.s3.records_received.fetch_add(sum.s3_records, Relaxed);
        m.cwl.records_received.fetch_add(sum.cwl_events, Relaxed);
        m.firehose
            .records_received
            .fetch_add(sum.firehose_records, Relaxed);
        sum.dropped_windows = self.enforce_bound(&mut spool)?;
        drop(spool);
        self.inner.notify.notify_one();
        match first_err {
            Some(e) => Err(e),
            None => Ok(sum),
        }
    }

    /// Accounts for records the spool could not store.
    fn write_failed(&self, flow_log_ids: &[String], records: u64, e: &DeliveryError, sink: Sink) {
        if records == 0 {
            return;
        }
        // Linux ENOSPC and EDQUOT (`ErrorKind::StorageFull` needs a newer Rust than ours).
        const ENOSPC: i32 = 28;
        const EDQUOT: i32 = 122;
        let disk_full = matches!(e, DeliveryError::Io(io)
            if matches!(io.raw_os_error(), Some(ENOSPC) | Some(EDQUOT)));
        let m = self.inner.metrics.sink(sink);
        if disk_full {
            m.dropped_disk_full.fetch_add(records, Relaxed);
        } else {
            m.dropped_spool_error.fetch_add(records, Relaxed);
        }
        tracing::error!(error = %e, records, flow_log_ids = ?flow_log_ids,
            reason = if disk_full { "disk_full" } else { "spool_error" },
            "cannot spool records: dropped (counted in flowlog_delivery_records_dropped_total)");
        self.inner
            .status
            .report(flow_log_ids, Some(FailureKind::Unknown));
    }

    fn enforce_bound(&self, spool: &mut Spool) -> Result<usize, DeliveryError> {
        let reports = spool.enforce_bound()?;
        for r in &reports {
            tracing::warn!(
                window_start = r.window_start,
                records = r.records,
                bytes = r.bytes,
                flow_log_ids = ?r.flow_log_ids,
                "spool full: dropped the oldest undelivered window"
            );
            let m = &self.inner.metrics;
            m.s3.dropped_spool_full.fetch_add(r.s3_records, Relaxed);
            m.firehose
                .dropped_spool_full
                .fetch_add(r.firehose_records, Relaxed);
            m.cwl
                .dropped_spool_full
                .fetch_add(r.records - r.s3_records - r.firehose_records, Relaxed);
            self.inner.status.dropped(r);
        }
        self.update_gauges(spool);
        Ok(reports.len())
    }

    fn update_gauges(&self, spool: &Spool) {
        self.inner.metrics.spool_bytes.store(spool.bytes(), Relaxed);
        self.inner
            .metrics
            .spool_units
            .store(spool.units().len() as u64, Relaxed);
    }

    /// CreateFlowLogs' bucket check; `Ok` without an S3 endpoint (embedded storage creates the
    /// bucket folder on first delivery).
    pub async fn check_bucket(&self, bucket: &str, prefix: &str) -> BucketCheck {
        self.inner.s3.check_bucket(bucket, prefix).await
    }

    /// One pass: seal due windows, start a lane for every destination with sealed units that
    /// is not backing off or already being delivered, and wait for the lanes it started.
    /// `now` is unix seconds.
    pub async fn run_once(&self, now: u64) -> Result<PassSummary, DeliveryError> {
        let (mut sum, started) = self.start_pass(now)?;
        for h in started {
            let lane = h
                .await
                .map_err(|e| DeliveryError::Config(format!("delivery lane: {e}")))??;
            sum.delivered_units += lane.delivered_units;
            sum.failed_units += lane.failed_units;
            sum.remaining_units += lane.remaining_units;
        }
        Ok(sum)
    }

    /// Seals due windows and starts the lanes that can go; does not wait for them.
    fn start_pass(&self, now: u64) -> Result<(PassSummary, Vec<Lane>), DeliveryError> {
        let units = {
            let mut spool = lock(&self.inner.spool);
            spool.seal_due(now, self.inner.cfg.close_grace_secs)?;
            self.update_gauges(&spool);
            spool.units()
        };
        let mut sum = PassSummary::default();
        // Units per lane, in spool order.
        let mut lanes: Vec<(String, Vec<UnitInfo>)> = Vec::new();
        for u in units {
            let ids = u.meta.flow_log_ids();
            if self.all_deleted(&ids) {
                let mut spool = lock(&self.inner.spool);
                spool.complete(&u.name)?;
                self.update_gauges(&spool);
                let m = self.inner.metrics.sink(u.meta.sink());
                m.dropped_flow_log_deleted
                    .fetch_add(u.meta.records(), Relaxed);
                tracing::info!(flow_log_ids = ?ids, records = u.meta.records(), "flow log deleted: its spooled records are dropped");
                continue;
            }
            let lane = u.meta.lane();
            match lanes.iter_mut().find(|(l, _)| *l == lane) {
                Some((_, v)) => v.push(u),
                None => lanes.push((lane, vec![u])),
            }
        }
        let mut started = Vec::new();
        for (lane, units) in lanes {
            let dest = units[0].meta.destination();
            if self.backing_off(&dest) || lock(&self.inner.in_flight).contains(&lane) {
                sum.remaining_units += units.len();
                continue;
            }
            let Ok(permit) = self.inner.lanes.clone().try_acquire_owned() else {
                // Every lane slot is busy (some destinations are slow): next pass.
                sum.remaining_units += units.len();
                continue;
            };
            lock(&self.inner.in_flight).insert(lane.clone());
            let this = self.clone();
            started.push(tokio::spawn(async move {
                let r = this.deliver_lane(&units).await;
                if let Err(e) = &r {
                    tracing::error!(error = %e, %lane, "delivery lane failed");
                }
                lock(&this.inner.in_flight).remove(&lane);
                drop(permit);
                // Whoever waits for the next pass (the background loop) looks again.
                this.inner.notify.notify_one();
                r
            }));
        }
        Ok((sum, started))
    }

    /// Delivers one lane's units in order, stopping at the first failure (its destination
    /// then backs off).
    async fn deliver_lane(&self, units: &[UnitInfo]) -> Result<PassSummary, DeliveryError> {
        let mut sum = PassSummary::default();
        for (n, u) in units.iter().enumerate() {
            let dest = u.meta.destination();
            if n > 0 && self.backing_off(&dest) {
                sum.remaining_units += units.len() - n;
                break;
            }
            match self.deliver(u).await {
                Ok(()) => {
                    {
                        let mut spool = lock(&self.inner.spool);
                        spool.complete(&u.name)?;
                        self.update_gauges(&spool);
                    }
                    lock(&self.inner.backoff).remove(&dest);
                    self.inner.status.report(&u.meta.flow_log_ids(), None);
                    sum.delivered_units += 1;
                }
                Err(DeliveryError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                    // Dropped by the spool bound while we were sending.
                }
                Err(e) => {
                    let kind = e.kind();
                    tracing::warn!(error = %e, destination = %dest, unit = %u.name, "delivery failed, will retry");
                    let sink = self.inner.metrics.sink(u.meta.sink());
                    sink.retries.fetch_add(1, Relaxed);
                    sink.failed(kind);
                    self.back_off(&dest, kind);
                    self.inner.status.report(&u.meta.flow_log_ids(), Some(kind));
                    sum.failed_units += 1;
                    sum.remaining_units += units.len() - n;
                    break;
                }
            }
        }
        Ok(sum)
    }

    fn backing_off(&self, dest: &str) -> bool {
        lock(&self.inner.backoff)
            .get(dest)
            .is_some_and(|b| b.until > Instant::now())
    }

    fn back_off(&self, dest: &str, _kind: FailureKind) {
        let mut map = lock(&self.inner.backoff);
        let b = map.entry(dest.to_string()).or_insert(Backoff {
            failures: 0,
            until: Instant::now(),
        });
        b.failures = b.failures.saturating_add(1);
        let base = self.inner.cfg.retry_initial().as_millis() as u64;
        let cap = self.inner.cfg.retry_max().as_millis() as u64;
        let ceiling = base
            .saturating_mul(1u64 << (b.failures - 1).min(20))
            .min(cap);
        // Full jitter, but never below a tenth of the ceiling so a hot loop cannot form.
        let wait = rand::thread_rng().gen_range(ceiling / 10..=ceiling.max(1));
        b.until = Instant::now() + Duration::from_millis(wait);
    }

    async fn deliver(&self, u: &UnitInfo) -> Result<(), DeliveryError> {
        let path = lock(&self.inner.spool).unit_path(&u.name);
        let (meta, payload) = spool::read_payload(&path)?;
        match (meta, payload) {
            (
                UnitMeta::S3 {
                    bucket,
                    key,
                    records,
                    ..
                },
                Payload::S3(body),
            ) => {
                let m = &self.inner.metrics.s3;
                let len = body.len() as u64;
                m.requests.fetch_add(1, Relaxed);
                self.inner.s3.put(&bucket, &key, body).await?;
                m.records_delivered.fetch_add(records, Relaxed);
                m.bytes_delivered.fetch_add(len, Relaxed);
                tracing::debug!(%bucket, %key, records, "S3 object delivered");
                Ok(())
            }
            (
                UnitMeta::Cwl {
                    role_arn,
                    stream,
                    flow_log_ids,
                    ..
                },
                Payload::Cwl(events),
            ) => {
                let fl = flow_log_ids.first().map(String::as_str).unwrap_or("");
                self.deliver_cwl(&path, &u.name, &role_arn, fl, &stream, &events)
                    .await
            }
            (
                UnitMeta::Firehose {
                    flow_log_id,
                    stream_name,
                    region,
                    account,
                    role_arn,
                    cross_account_role,
                    ..
                },
                Payload::Firehose(lines),
            ) => {
                let sink = self
                    .inner
                    .firehose_sink
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                let Some(sink) = sink else {
                    return Err(DeliveryError::Config(format!(
                        "flow log {flow_log_id} delivers to Kinesis Data Firehose stream {stream_name}, \
                         but the configuration has no [firehose] section (there is no embedded Firehose)"
                    )));
                };
                let to = fh::StreamRef {
                    flow_log_id,
                    stream_name,
                    region,
                    account,
                    role_arn,
                    cross_account_role,
                };
                fh::deliver_unit(
                    &path,
                    &to,
                    &lines,
                    sink.as_ref(),
                    &self.inner.firehose_limits,
                    &self.inner.firehose_retry,
                    &self.inner.metrics.firehose,
                )
                .await
            }
            _ => Err(DeliveryError::Rejected(format!(
                "unit {} has a mismatched payload",
                u.name
            ))),
        }
    }

    async fn deliver_cwl(
        &self,
        path: &Path,
        unit: &str,
        role_arn: &str,
        flow_log_id: &str,
        key: &StreamKey,
        events: &[crate::router::Event],
    ) -> Result<(), DeliveryError> {
        let m = &self.inner.metrics.cwl;
        let done = spool::read_progress(path).min(events.len());
        let rest = &events[done..];
        let batches = batch::plan(rest, now_ms(), &self.inner.limits);
        let last = batches.len().saturating_sub(1);
        for (n, b) in batches.into_iter().enumerate() {
            let sel: Vec<&crate::router::Event> = b.events.iter().map(|&i| &rest[i]).collect();
            let bytes: u64 = sel
                .iter()
                .map(|e| batch::event_size(e, &self.inner.limits) as u64)
                .sum();
            if !sel.is_empty() {
                m.requests.fetch_add(1, Relaxed);
                match &self.inner.cwl {
                    CwlSink::Remote(r) => {
                        let out = r.put(role_arn, flow_log_id, key, &sel).await?;
                        m.records_delivered.fetch_add(out.accepted, Relaxed);
                        m.dropped_rejected.fetch_add(out.rejected, Relaxed);
                        if out.rejected > 0 {
                            tracing::warn!(group = %key.group, stream = %key.stream, rejected = out.rejected, "CloudWatch Logs rejected events");
                        }
                    }
                    CwlSink::Local(l) => {
                        let indexed: Vec<(usize, &crate::router::Event)> =
                            b.events.iter().map(|&i| (done + i, &rest[i])).collect();
                        lock(l).put(unit, key, &indexed, now_ms())?;
                        m.records_delivered.fetch_add(sel.len() as u64, Relaxed);
                    }
                }
                m.bytes_delivered.fetch_add(bytes, Relaxed);
            }
            m.dropped_too_old.fetch_add(b.too_old, Relaxed);
            m.dropped_too_new
                .fetch_add(b.too_new + b.too_large, Relaxed);
            if b.skipped() > 0 {
                tracing::warn!(group = %key.group, stream = %key.stream, too_old = b.too_old, too_new = b.too_new, too_large = b.too_large, "events outside CloudWatch Logs limits dropped");
            }
            if n < last {
                // After the last batch the unit itself is removed.
                spool::write_progress(path, done + b.end)?;
            }
        }
        Ok(())
    }

    /// Runs delivery until the returned handle is aborted. Wakes on `submit`, at window ends
    /// and when a backoff expires (at least once a second).
    pub fn spawn(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            // Lanes run on their own (a hanging destination must not hold up the next pass
            // for every other one) and log their own errors.
            loop {
                if let Err(e) = this.start_pass(now_secs()) {
                    tracing::error!(error = %e, "delivery pass failed");
                }
                let wait = this.next_wake();
                tokio::select! {
                    _ = this.inner.notify.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        })
    }

    fn next_wake(&self) -> Duration {
        let mut wait = Duration::from_secs(1);
        let now = Instant::now();
        {
            let spool = lock(&self.inner.spool);
            if let Some(due) = spool.next_due(self.inner.cfg.close_grace_secs) {
                let secs = due.saturating_sub(now_secs());
                wait = wait.min(Duration::from_secs(secs));
            }
        }
        if let Some(b) = lock(&self.inner.backoff).values().map(|b| b.until).min() {
            if b > now {
                wait = wait.min(b - now);
            }
        }
        wait.max(Duration::from_millis(20))
    }

    /// Seals every open window and delivers until the spool is empty or `timeout` passes.
    /// Returns true when everything was delivered.
    pub async fn flush(&self, timeout: Duration) -> Result<bool, DeliveryError> {
        lock(&self.inner.spool).seal_all()?;
        let deadline = Instant::now() + timeout;
        let mut lanes: Vec<Lane> = Vec::new();
        loop {
            let (_, started) = self.start_pass(now_secs())?;
            lanes.extend(started);
            let mut running = Vec::new();
            for h in lanes {
                if h.is_finished() {
                    h.await
                        .map_err(|e| DeliveryError::Config(format!("delivery lane: {e}")))??;
                } else {
                    running.push(h);
                }
            }
            lanes = running;
            if lanes.is_empty() && lock(&self.inner.spool).is_empty() {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            let wait = self
                .next_wake()
                .min(Duration::from_millis(50))
                .min(deadline.saturating_duration_since(Instant::now()));
            tokio::select! {
                _ = self.inner.notify.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Updates the spool gauges and the delivery lag for a scrape at `now`.
    pub fn refresh_gauges(&self, now: u64) {
        let spool = lock(&self.inner.spool);
        self.update_gauges(&spool);
        let window = self.inner.cfg.window_secs.max(1);
        let lag = spool
            .units()
            .iter()
            .map(|u| now.saturating_sub(u.meta.window_start() + window))
            .max()
            .unwrap_or(0);
        self.inner.metrics.lag_seconds.store(lag, Relaxed);
    }

    /// What is still spooled, per flow log: sealed units (and their records and bytes) with
    /// the lag of the oldest, and records in open segments (windows not yet closed).
    pub fn backlog(&self, now: u64) -> Vec<FlowLogBacklog> {
        let spool = lock(&self.inner.spool);
        let window = self.inner.cfg.window_secs.max(1);
        let mut by: std::collections::BTreeMap<String, FlowLogBacklog> = Default::default();
        for u in spool.units() {
            for id in u.meta.flow_log_ids() {
                let b = by.entry(id.clone()).or_insert_with(|| FlowLogBacklog {
                    flow_log_id: id,
                    ..Default::default()
                });
                b.units += 1;
                b.records += u.meta.records();
                b.bytes += u.bytes;
                b.lag_seconds = b
                    .lag_seconds
                    .max(now.saturating_sub(u.meta.window_start() + window));
            }
        }
        for (id, records) in spool.open_records() {
            by.entry(id.clone())
                .or_insert_with(|| FlowLogBacklog {
                    flow_log_id: id,
                    ..Default::default()
                })
                .open_records += records;
        }
        by.into_values().collect()
    }

    /// Units and bytes still spooled.
    pub fn pending(&self) -> (usize, u64) {
        let s = lock(&self.inner.spool);
        (s.units().len() + s.open_segments(), s.bytes())
    }
}
