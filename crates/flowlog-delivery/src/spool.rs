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
                    Ok(seg) => recovered.push(seg),
                    Err(e) => {
                        tracing::warn!(%e, path = %path.display(), "unreadable open segment moved aside");
                        let _ = fs::rename(&path, path.with_extension("bad"));
                    }
                }
            }
        }
        for seg in recovered {
            spool.seal(seg)?;
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

    pub fn open_segments(&self) -> usize {
        self.open.len()
    }

    /// Appends one flow log's S3 lines to the open segment of each line's window (by record
    /// `end`), closing a segment early at `max_object_bytes`. Durable on return.
    pub fn append_s3(&mut self, s3: &S3Lines) -> Result<(), DeliveryError> {
        let t = &s3.target;
        let crate::target::Destination::S3 { bucket, prefix } = &t.destination else {
            return Ok(());
        };
        let window = self.limits.window_secs.max(1);
        let mut by_window: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
        for (end, line) in &s3.lines {
            by_window.entry(end - end % window).or_default().push(line);
        }
        let mut touched: Vec<(String, u64)> = Vec::new();
        for (window_start, lines) in by_window {
            let key = (t.flow_log_id.clone(), window_start);
            // Lines are collected and written in one call per segment, not one per record.
            let mut buf: Vec<u8> = Vec::with_capacity(lines.len() * 128);
            for line in lines {
                let add = line.len() as u64 + 1;
                let full = self
                    .open
                    .get(&key)
                    .is_some_and(|s| s.records > 0 && s.bytes + add > self.limits.max_object_bytes);
                if full {
                    let mut seg = self.open.remove(&key).expect("checked above");
                    seg.file.write_all(&buf)?;
                    buf.clear();
                    seg.file.sync_data()?;
                    self.seal(seg)?;
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
                    let seg = self.create_segment(meta)?;
                    self.open.insert(key.clone(), seg);
                }
                let seg = self.open.get_mut(&key).expect("inserted above");
                buf.extend_from_slice(line.as_bytes());
                buf.push(b'\n');
                seg.bytes += add;
                seg.records += 1;
            }
            if let Some(seg) = self.open.get_mut(&key) {
                seg.file.write_all(&buf)?;
            }
            touched.push(key);
        }
        for key in touched {
            if let Some(seg) = self.open.get(&key) {
                seg.file.sync_data()?;
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
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        let head =
            serde_json::to_string(&meta).map_err(|e| DeliveryError::Config(e.to_string()))?;
        file.write_all(head.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        sync_dir(&self.dir.join("open"))?;
        // Size counts toward the object cap as the header line does in the object.
        let bytes = meta.header.len() as u64 + 1;
        Ok(Segment {
            path,
            meta,
            file,
            bytes,
            records: 0,
        })
    }

    /// Turns a segment into a ready unit: header + lines gzip-compressed under the segment's
    /// deterministic key, then removes the segment.
    fn seal(&mut self, seg: Segment) -> Result<(), DeliveryError> {
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
            std::io::copy(&mut reader, &mut gz)?;
            gz.finish()?;
            Ok(())
        })?;
        drop(seg.file);
        fs::remove_file(&seg.path)?;
        sync_dir(&self.dir.join("open"))?;
        self.ready
            .insert(name.clone(), UnitInfo { name, meta, bytes });
        Ok(())
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
        {
            let mut f = std::io::BufWriter::new(File::create(&tmp)?);
            let head =
                serde_json::to_string(meta).map_err(|e| DeliveryError::Config(e.to_string()))?;
            f.write_all(head.as_bytes())?;
            f.write_all(b"\n")?;
            body(&mut f)?;
            let f = f.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &path)?;
        sync_dir(&dir)?;
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
        for k in &due {
            let seg = self.open.remove(k).expect("key listed above");
            self.seal(seg)?;
        }
        Ok(due.len())
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

fn recover_segment(path: &Path) -> Result<Segment, DeliveryError> {
    let mut file = OpenOptions::new().read(true).append(true).open(path)?;
    let mut data = Vec::new();
    file.read_to_end(&mut data)?;
    let nl = data
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| DeliveryError::Rejected("segment without meta".into()))?;
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
    Ok(Segment {
        path: path.to_path_buf(),
        meta,
        file,
        bytes,
        records,
    })
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
