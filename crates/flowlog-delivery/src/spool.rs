//! The on-disk spool: every record is on disk before any network call and leaves only when
//! its destination acknowledged it.
//!
//! Layout under `<data-dir>/spool`:
//! - `agent-id`: random id of this agent, mixed into S3 object hashes.
//! - `open/<flow-log-id>.<window>.<batch>.seg`: the S3 object being filled for one flow log and
//!   window: one JSON [`SegmentMeta`] line, then record lines. Appended and fdatasync'ed on
//!   every submit; a torn last line after a crash is cut off on recovery.
//! - `ready/<window>.<batch>.unit`: a sealed delivery unit: one JSON [`UnitMeta`] line, then
//!   the payload (S3: the gzip object; CWL: JSON array of events). Written to a temp file,
//!   fsynced and renamed, so a unit is either whole or absent. Its name derives from the batch
//!   id, so re-sealing a segment after a crash replaces the same unit and the same S3 key.
//! - `ready/<window>.<batch>.progress`: events of a CWL unit already acknowledged.
//!
//! Bound: when open + ready bytes exceed `spool_max_bytes`, the oldest window is dropped and
//! returned as [`DropReport`]s; the caller counts and reports them.

use crate::router::{CwlEvents, Event, S3Lines, StreamKey};
use crate::s3::ObjectName;
use crate::status::DropReport;
use crate::DeliveryError;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// First line of an open S3 segment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SegmentMeta {
    pub flow_log_id: String,
    pub account_id: String,
    pub region: String,
    pub bucket: String,
    pub prefix: String,
    pub header: String,
    pub window_start: u64,
    pub batch_id: String,
    /// Key layout and file format (`DestinationOptions`); absent in older segments.
    #[serde(default)]
    pub layout: crate::s3::Layout,
}

/// First line of a sealed unit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UnitMeta {
    S3 {
        flow_log_id: String,
        bucket: String,
        key: String,
        window_start: u64,
        records: u64,
    },
    Cwl {
        flow_log_ids: Vec<String>,
        role_arn: String,
        stream: StreamKey,
        window_start: u64,
        records: u64,
    },
}

impl UnitMeta {
    pub fn flow_log_ids(&self) -> Vec<String> {
        match self {
            UnitMeta::S3 { flow_log_id, .. } => vec![flow_log_id.clone()],
            UnitMeta::Cwl { flow_log_ids, .. } => flow_log_ids.clone(),
        }
    }
    pub fn records(&self) -> u64 {
        match self {
            UnitMeta::S3 { records, .. } | UnitMeta::Cwl { records, .. } => *records,
        }
    }
    pub fn window_start(&self) -> u64 {
        match self {
            UnitMeta::S3 { window_start, .. } | UnitMeta::Cwl { window_start, .. } => *window_start,
        }
    }
    /// Retries back off per destination: one bucket or one log group.
    pub fn destination(&self) -> String {
        match self {
            UnitMeta::S3 { bucket, .. } => format!("s3:{bucket}"),
            UnitMeta::Cwl { stream, .. } => format!(
                "cwl:{}:{}:{}",
                stream.account_id, stream.region, stream.group
            ),
        }
    }
    /// What is delivered in order, one unit at a time: a bucket, or one CloudWatch Logs
    /// stream (streams of one group go side by side; backoff stays per group).
    pub fn lane(&self) -> String {
        match self {
            UnitMeta::S3 { .. } => self.destination(),
            UnitMeta::Cwl { stream, .. } => {
                format!("{}:{}", self.destination(), stream.stream)
            }
        }
    }
    pub fn is_s3(&self) -> bool {
        matches!(self, UnitMeta::S3 { .. })
    }
}

/// A sealed unit in the index.
#[derive(Debug, Clone)]
pub struct UnitInfo {
    pub name: String,
    pub meta: UnitMeta,
    pub bytes: u64,
}

struct Segment {
    path: PathBuf,
    meta: SegmentMeta,
    file: File,
    bytes: u64,
    records: u64,
    /// Length of the file: a failed append is cut back to it, so a disk-full write never
    /// leaves half a line in the middle of a segment.
    len: u64,
}

impl Segment {
    /// Appends `buf` (`records` whole lines, `bytes` toward the object cap) and syncs; on any
    /// error the file is cut back to what it held, and the counts stay as they were.
    fn append(&mut self, buf: &[u8], records: u64, bytes: u64) -> std::io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let wrote = self.file.write_all(buf).and_then(|_| self.file.sync_data());
        match wrote {
            Ok(()) => {
                self.len += buf.len() as u64;
                self.records += records;
                self.bytes += bytes;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                let _ = self.file.seek(SeekFrom::End(0));
                Err(e)
            }
        }
    }
}

/// An append that stored only part of its records: `written` are durable, the rest are not.
#[derive(Debug)]
pub struct PartialWrite {
    pub written: u64,
    pub error: DeliveryError,
}

impl From<PartialWrite> for DeliveryError {
    fn from(p: PartialWrite) -> Self {
        p.error
    }
}

#[derive(Debug, Clone, Copy)]
pub struct SpoolLimits {
    pub window_secs: u64,
    pub max_object_bytes: u64,
    pub max_bytes: u64,
}

pub struct Spool {
    dir: PathBuf,
    agent_id: String,
    limits: SpoolLimits,
    open: HashMap<(String, u64), Segment>,
    ready: BTreeMap<String, UnitInfo>,
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn new_batch_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl Spool {
    /// Opens (or creates) the spool; seals every segment left open by a previous run.
    pub fn open(
        dir: &Path,
        limits: SpoolLimits,
        agent_id: Option<&str>,
    ) -> Result<Spool, DeliveryError> {
        fs::create_dir_all(dir.join("open"))?;
        fs::create_dir_all(dir.join("ready"))?;
        let agent_id = match agent_id {
            Some(a) => a.to_string(),
            None => {
                let p = dir.join("agent-id");
                match fs::read_to_string(&p) {
                    Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
                    _ => {
                        let id = new_batch_id();
                        write_atomic(&p, id.as_bytes())?;
                        id
                    }
                }
            }
        };
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            agent_id,
            limits,
            open: HashMap::new(),
            ready: BTreeMap::new(),
        };
        for entry in fs::read_dir(dir.join("ready"))? {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            if name.ends_with(".tmp") || name.ends_with(".progress-tmp") {
                let _ = fs::remove_file(&path);
            } else if let Some(stem) = name.strip_suffix(".unit") {
                match read_meta(&path) {
                    Ok(meta) => {
                        let bytes = fs::metadata(&path)?.len();
                        spool.ready.insert(
                            stem.to_string(),
                            UnitInfo {
                                name: stem.to_string(),
                                meta,
                                bytes,
                            },
                        );
                    }
                    Err(e) => {
                        tracing::warn!(%e, path = %path.display(), "unreadable spool unit moved aside");
                        let _ = fs::rename(&path, path.with_extension("bad"));
                    }
                }
            }
        }
        // Progress files whose unit is gone.
        for entry in fs::read_dir(dir.join("ready"))? {
            let path = entry?.path();
            if let Some(stem) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".progress"))
            {
                if !spool.ready.contains_key(stem) {
                    let _ = fs::remove_file(&path);
                }
            }
        }
        let mut recovered = Vec::new();
        for entry in fs::read_dir(dir.join("open"))? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) == Some("seg") {
                match recover_segment(&path) {
                    Ok(Some(seg)) => recovered.push(seg),
                    // Created but its meta line never made it to disk: it holds no record.
                    Ok(None) => {
                        let _ = fs::remove_file(&path);
                    }
                    Err(e) => {
                        tracing::error!(%e, path = %path.display(), "unreadable open segment moved aside (its records cannot be delivered)");
                        let _ = fs::rename(&path, path.with_extension("bad"));
                    }
                }
            }
        }
        for seg in recovered {
            if let Err(e) = spool.seal(seg) {
                tracing::warn!(error = %e, "cannot seal a recovered segment yet; it stays spooled and is retried");
            }
        }
        Ok(spool)
    }

    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes held (open segments + sealed units).
    pub fn bytes(&self) -> u64 {
        self.open.values().map(|s| s.bytes).sum::<u64>()
            + self.ready.values().map(|u| u.bytes).sum::<u64>()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty() && self.ready.is_empty()
    }

    /// Records in open segments, per flow log.
    pub fn open_records(&self) -> Vec<(String, u64)> {
        self.open
            .values()
            .map(|s| (s.meta.flow_log_id.clone(), s.records))
            .collect()
    }

    pub fn open_segments(&self) -> usize {
        self.open.len()
    }

    /// Appends one flow log's S3 lines to the open segment of each line's window (by record
    /// `end`), closing a segment early at `max_object_bytes`. Durable on return.
    pub fn append_s3(&mut self, s3: &S3Lines) -> Result<(), PartialWrite> {
        let t = &s3.target;
        let crate::target::Destination::S3 { bucket, prefix } = &t.destination else {
            return Ok(());
        };
        let window = self.limits.window_secs.max(1);
        let mut by_window: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
        for (end, line) in &s3.lines {
            by_window.entry(end - end % window).or_default().push(line);
        }
        let mut written = 0u64;
        let fail = |written: u64, e: DeliveryError| PartialWrite { written, error: e };
        for (window_start, lines) in by_window {
            let key = (t.flow_log_id.clone(), window_start);
            // Lines are collected and written in one call per segment, not one per record.
            let mut buf: Vec<u8> = Vec::with_capacity(lines.len() * 128);
            let (mut n, mut add_bytes) = (0u64, 0u64);
            for line in lines {
                let add = line.len() as u64 + 1;
                let full = self.open.get(&key).is_some_and(|s| {
                    s.records + n > 0 && s.bytes + add_bytes + add > self.limits.max_object_bytes
                });
                if full {
                    let seg = self.open.get_mut(&key).expect("checked above");
                    seg.append(&buf, n, add_bytes)
                        .map_err(|e| fail(written, e.into()))?;
                    written += n;
                    (n, add_bytes) = (0, 0);
                    buf.clear();
                    // A failed seal keeps the segment open (and over the cap): retried on the
                    // next append or pass, never lost.
                    if let Err(e) = self.seal_key(&key) {
                        tracing::warn!(error = %e, "cannot seal a full segment; will retry");
                    }
                }
                if !self.open.contains_key(&key) {
                    let meta = SegmentMeta {
                        flow_log_id: t.flow_log_id.clone(),
                        account_id: t.account_id.clone(),
                        region: t.region.clone(),
                        bucket: bucket.clone(),
                        prefix: prefix.clone(),
                        header: t.format.header(),
                        window_start,
                        batch_id: new_batch_id(),
                        layout: t.options.into(),
                    };
                    let seg = self.create_segment(meta).map_err(|e| fail(written, e))?;
                    self.open.insert(key.clone(), seg);
                }
                buf.extend_from_slice(line.as_bytes());
                buf.push(b'\n');
                n += 1;
                add_bytes += add;
            }
            if let Some(seg) = self.open.get_mut(&key) {
                seg.append(&buf, n, add_bytes)
                    .map_err(|e| fail(written, e.into()))?;
                written += n;
            }
        }
        Ok(())
    }

    fn create_segment(&self, meta: SegmentMeta) -> Result<Segment, DeliveryError> {
        let path = self.dir.join("open").join(format!(
            "{}.{:012}.{}.seg",
            sanitize(&meta.flow_log_id),
            meta.window_start,
            meta.batch_id
        ));
        let head =
            serde_json::to_string(&meta).map_err(|e| DeliveryError::Config(e.to_string()))?;
        let made = (|| {
            let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
            file.write_all(head.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            sync_dir(&self.dir.join("open"))?;
            Ok::<_, std::io::Error>(file)
        })();
        let file = match made {
            Ok(f) => f,
            Err(e) => {
                // No half-written segment is left behind (it would hold no record anyway).
                let _ = fs::remove_file(&path);
                return Err(e.into());
            }
        };
        // Size counts toward the object cap as the header line does in the object.
        let bytes = meta.header.len() as u64 + 1;
        Ok(Segment {
            path,
            meta,
            file,
            bytes,
            records: 0,
            len: head.len() as u64 + 1,
        })
    }

    /// Turns a segment into a ready unit: header + lines gzip-compressed under the segment's
    /// deterministic key, then removes the segment.
    /// Seals the open segment under `key`; it leaves `open` only once its unit is durable, so
    /// a failed seal (disk full) keeps it for the next try.
    fn seal_key(&mut self, key: &(String, u64)) -> Result<(), DeliveryError> {
        let Some(seg) = self.open.get(key) else {
            return Ok(());
        };
        let unit = self.write_sealed(seg)?;
        let seg = self.open.remove(key).expect("present above");
        self.finish_seal(seg, unit)
    }

    /// Seals a segment that is not in `open` (recovery); on failure it is kept in `open`.
    fn seal(&mut self, seg: Segment) -> Result<(), DeliveryError> {
        match self.write_sealed(&seg) {
            Ok(unit) => self.finish_seal(seg, unit),
            Err(e) => {
                let key = (seg.meta.flow_log_id.clone(), seg.meta.window_start);
                self.open.entry(key).or_insert(seg);
                Err(e)
            }
        }
    }

    fn finish_seal(&mut self, seg: Segment, unit: UnitInfo) -> Result<(), DeliveryError> {
        drop(seg.file);
        remove_if_exists(&seg.path)?;
        sync_dir(&self.dir.join("open"))?;
        self.ready.insert(unit.name.clone(), unit);
        Ok(())
    }

    fn write_sealed(&self, seg: &Segment) -> Result<UnitInfo, DeliveryError> {
        let m = &seg.meta;
        let batch = format!("{}/{}", self.agent_id, m.batch_id);
        let key = ObjectName {
            prefix: &m.prefix,
            account_id: &m.account_id,
            region: &m.region,
            flow_log_id: &m.flow_log_id,
            window_start: m.window_start,
            batch_id: &batch,
            layout: m.layout,
        }
        .key();
        let meta = UnitMeta::S3 {
            flow_log_id: m.flow_log_id.clone(),
            bucket: m.bucket.clone(),
            key,
            window_start: m.window_start,
            records: seg.records,
        };
        let name = format!("{:012}.{}", m.window_start, m.batch_id);
        let src = File::open(&seg.path)?;
        let mut reader = BufReader::new(src);
        let mut skip = String::new();
        reader.read_line(&mut skip)?;
        let header = m.header.clone();
        let parquet = m.layout.parquet;
        let bytes = self.write_unit(&name, &meta, |w| {
            if parquet {
                return crate::s3::parquet::write_from_lines(&header, &mut reader, w);
            }
            let mut gz = GzEncoder::new(w, Compression::default());
            gz.write_all(header.as_bytes())?;
            gz.write_all(b"\n")?;
            std::io::copy(&mut reader.take(seg.len), &mut gz)?;
            gz.finish()?;
            Ok(())
        })?;
        Ok(UnitInfo { name, meta, bytes })
    }

    fn write_unit(
        &self,
        name: &str,
        meta: &UnitMeta,
        body: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<u64, DeliveryError> {
        let dir = self.dir.join("ready");
        let tmp = dir.join(format!("{name}.tmp"));
        let path = dir.join(format!("{name}.unit"));
        let head = serde_json::to_string(meta).map_err(|e| DeliveryError::Config(e.to_string()))?;
        let wrote = (|| {
            let mut f = std::io::BufWriter::new(File::create(&tmp)?);
            f.write_all(head.as_bytes())?;
            f.write_all(b"\n")?;
            body(&mut f)?;
            let f = f.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            sync_dir(&dir)
        })();
        if let Err(e) = wrote {
            // Disk full or the like: no `.tmp` is left to pile up; the caller keeps its data.
            let _ = fs::remove_file(&tmp);
            return Err(e.into());
        }
        Ok(fs::metadata(&path)?.len())
    }

    /// Stores one CWL stream's events as a ready unit. Durable on return.
    pub fn push_cwl(&mut self, c: &CwlEvents) -> Result<(), DeliveryError> {
        if c.events.is_empty() {
            return Ok(());
        }
        let window = self.limits.window_secs.max(1);
        let first = c
            .events
            .iter()
            .map(|e| e.timestamp)
            .min()
            .unwrap_or(0)
            .max(0) as u64
            / 1000;
        let window_start = first - first % window;
        let meta = UnitMeta::Cwl {
            flow_log_ids: c.flow_log_ids.clone(),
            role_arn: c.role_arn.clone(),
            stream: c.key.clone(),
            window_start,
            records: c.events.len() as u64,
        };
        let name = format!("{:012}.{}", window_start, new_batch_id());
        let events = &c.events;
        let bytes = self.write_unit(&name, &meta, |w| {
            serde_json::to_writer(w, events).map_err(std::io::Error::other)
        })?;
        self.ready
            .insert(name.clone(), UnitInfo { name, meta, bytes });
        Ok(())
    }

    /// Seals segments whose window ended at least `grace` seconds before `now`.
    pub fn seal_due(&mut self, now: u64, grace: u64) -> Result<usize, DeliveryError> {
        let window = self.limits.window_secs.max(1);
        let due: Vec<(String, u64)> = self
            .open
            .keys()
            .filter(|(_, w)| w + window + grace <= now)
            .cloned()
            .collect();
        let mut sealed = 0;
        let mut first_err = None;
        for k in &due {
            match self.seal_key(k) {
                Ok(()) => sealed += 1,
                // Stays open and due: the next pass tries again.
                Err(e) => first_err = first_err.or(Some(e)),
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(sealed),
        }
    }

    /// Seals every open segment (shutdown, flush).
    pub fn seal_all(&mut self) -> Result<(), DeliveryError> {
        self.seal_due(u64::MAX / 4, 0).map(|_| ())
    }

    /// Earliest time (unix s) at which an open segment becomes due.
    pub fn next_due(&self, grace: u64) -> Option<u64> {
        let window = self.limits.window_secs.max(1);
        self.open.keys().map(|(_, w)| w + window + grace).min()
    }

    /// Sealed units, oldest window first.
    pub fn units(&self) -> Vec<UnitInfo> {
        self.ready.values().cloned().collect()
    }

    pub fn unit_path(&self, name: &str) -> PathBuf {
        self.dir.join("ready").join(format!("{name}.unit"))
    }

    /// Removes a delivered unit.
    pub fn complete(&mut self, name: &str) -> Result<(), DeliveryError> {
        self.ready.remove(name);
        remove_if_exists(&self.dir.join("ready").join(format!("{name}.progress")))?;
        remove_if_exists(&self.unit_path(name))?;
        sync_dir(&self.dir.join("ready"))?;
        Ok(())
    }

    /// Drops the oldest windows until the spool fits its bound. Sealed units go first (oldest
    /// window first); open segments only when nothing sealed is left.
    pub fn enforce_bound(&mut self) -> Result<Vec<DropReport>, DeliveryError> {
        let mut reports = Vec::new();
        while self.bytes() > self.limits.max_bytes {
            if let Some(oldest) = self.ready.values().map(|u| u.meta.window_start()).min() {
                let names: Vec<String> = self
                    .ready
                    .values()
                    .filter(|u| u.meta.window_start() == oldest)
                    .map(|u| u.name.clone())
                    .collect();
                let mut ids = Vec::new();
                let (mut records, mut s3_records, mut bytes) = (0, 0, 0);
                for n in names {
                    if let Some(u) = self.ready.get(&n).cloned() {
                        records += u.meta.records();
                        if u.meta.is_s3() {
                            s3_records += u.meta.records();
                        }
                        bytes += u.bytes;
                        ids.extend(u.meta.flow_log_ids());
                        self.complete(&n)?;
                    }
                }
                ids.sort();
                ids.dedup();
                reports.push(DropReport {
                    flow_log_ids: ids,
                    window_start: oldest,
                    records,
                    s3_records,
                    bytes,
                });
            } else if let Some(k) = self.open.keys().min_by_key(|(_, w)| *w).cloned() {
                let seg = self.open.remove(&k).expect("key listed above");
                remove_if_exists(&seg.path)?;
                reports.push(DropReport {
                    flow_log_ids: vec![seg.meta.flow_log_id.clone()],
                    window_start: seg.meta.window_start,
                    records: seg.records,
                    s3_records: seg.records,
                    bytes: seg.bytes,
                });
            } else {
                break;
            }
        }
        Ok(reports)
    }
}

/// Payload of a sealed unit.
pub enum Payload {
    S3(Vec<u8>),
    Cwl(Vec<Event>),
}

/// Reads a unit's payload (outside the spool lock: sealed units never change).
pub fn read_payload(path: &Path) -> Result<(UnitMeta, Payload), DeliveryError> {
    let mut r = BufReader::new(File::open(path)?);
    let mut head = String::new();
    r.read_line(&mut head)?;
    let meta: UnitMeta = serde_json::from_str(&head)
        .map_err(|e| DeliveryError::Rejected(format!("corrupt unit: {e}")))?;
    let mut body = Vec::new();
    r.read_to_end(&mut body)?;
    let payload = match meta {
        UnitMeta::S3 { .. } => Payload::S3(body),
        UnitMeta::Cwl { .. } => {
            let mut ev: Vec<Event> = serde_json::from_slice(&body)
                .map_err(|e| DeliveryError::Rejected(format!("corrupt unit: {e}")))?;
            ev.sort();
            Payload::Cwl(ev)
        }
    };
    Ok((meta, payload))
}

/// Acknowledged event count of a CWL unit.
pub fn read_progress(unit_path: &Path) -> usize {
    fs::read_to_string(unit_path.with_extension("progress"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

pub fn write_progress(unit_path: &Path, done: usize) -> Result<(), DeliveryError> {
    write_atomic(
        &unit_path.with_extension("progress"),
        done.to_string().as_bytes(),
    )
}

fn read_meta(path: &Path) -> Result<UnitMeta, DeliveryError> {
    let mut r = BufReader::new(File::open(path)?);
    let mut head = String::new();
    r.read_line(&mut head)?;
    serde_json::from_str(&head).map_err(|e| DeliveryError::Rejected(format!("corrupt unit: {e}")))
}

/// An open segment left by a previous run; `None` when its meta line is incomplete (then it
/// holds no record: records are appended only after the meta line is synced).
fn recover_segment(path: &Path) -> Result<Option<Segment>, DeliveryError> {
    let mut file = OpenOptions::new().read(true).append(true).open(path)?;
    let mut data = Vec::new();
    file.read_to_end(&mut data)?;
    let Some(nl) = data.iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    let meta: SegmentMeta = serde_json::from_slice(&data[..nl])
        .map_err(|e| DeliveryError::Rejected(format!("corrupt segment: {e}")))?;
    // Cut a torn last line (crash in the middle of an append).
    let complete = data
        .iter()
        .rposition(|&b| b == b'\n')
        .map(|i| i + 1)
        .unwrap_or(0);
    if complete < data.len() {
        file.set_len(complete as u64)?;
        file.sync_all()?;
    }
    file.seek(SeekFrom::End(0))?;
    let records = data[nl + 1..complete]
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u64;
    let bytes = meta.header.len() as u64 + 1 + (complete - nl - 1) as u64;
    Ok(Some(Segment {
        path: path.to_path_buf(),
        meta,
        file,
        bytes,
        records,
        len: complete as u64,
    }))
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<(), DeliveryError> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(d) = path.parent() {
        sync_dir(d)?;
    }
    Ok(())
}

fn remove_if_exists(p: &Path) -> std::io::Result<()> {
    match fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
