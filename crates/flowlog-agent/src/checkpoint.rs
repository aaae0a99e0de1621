//! Checkpoints of the open capture window, so a `kill -9` (or power loss) loses at most the
//! traffic of the last `checkpoint_secs`, not the whole window (up to 600 s).
//!
//! Every `checkpoint_secs` a worker writes the records its open windows would close with now
//! (`Capture::snapshot`) to `<data-dir>/checkpoint/<eni>.json` (tmp + fsync + rename). When a
//! window closes its records go to the spool and the checkpoint is rewritten without them; a
//! clean stop removes it. At start the agent submits what a crashed run left and removes the
//! files. A restarted capture counts the rest of the window afresh, so a flow active across a
//! crash gets two records in that window (their packets add up; none is counted twice).
//! What a crash can lose: the traffic since the last checkpoint. What it can repeat: a window
//! whose records were spooled in the instant before its checkpoint was rewritten.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use flowlog_model::record::{Action, FlowDirection, LogStatus, Traffic};
use flowlog_model::FlowRecord;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Saved {
    account_id: String,
    interface_id: String,
    records: Vec<SavedRecord>,
}

#[derive(Serialize, Deserialize)]
struct SavedRecord {
    start: u64,
    end: u64,
    /// `OK`, `NODATA`, `SKIPDATA`.
    status: String,
    #[serde(default)]
    traffic: Option<SavedTraffic>,
}

#[derive(Serialize, Deserialize)]
struct SavedTraffic {
    src: IpAddr,
    dst: IpAddr,
    src_port: u16,
    dst_port: u16,
    protocol: u8,
    packets: u64,
    bytes: u64,
    reject: bool,
    tcp_flags: u8,
    /// `ingress` / `egress`; absent when the capture did not know.
    #[serde(default)]
    direction: Option<String>,
}

/// Where `eni`'s checkpoint lives.
pub fn path(dir: &Path, eni: &str) -> PathBuf {
    let safe: String = eni
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("{safe}.json"))
}

/// Replaces the checkpoint at `path` with `records` (durable on return).
pub fn write(path: &Path, account: &str, eni: &str, records: &[FlowRecord]) -> std::io::Result<()> {
    use std::io::Write;
    let saved = Saved {
        account_id: account.to_string(),
        interface_id: eni.to_string(),
        records: records
            .iter()
            .map(|r| SavedRecord {
                start: r.start,
                end: r.end,
                status: r.status.as_str().to_string(),
                traffic: r.traffic.map(|t| SavedTraffic {
                    src: t.src,
                    dst: t.dst,
                    src_port: t.src_port,
                    dst_port: t.dst_port,
                    protocol: t.protocol,
                    packets: t.packets,
                    bytes: t.bytes,
                    reject: t.action == Action::Reject,
                    tcp_flags: t.tcp_flags,
                    direction: t.direction.map(|d| match d {
                        FlowDirection::Ingress => "ingress".to_string(),
                        FlowDirection::Egress => "egress".to_string(),
                    }),
                }),
            })
            .collect(),
    };
    let tmp = path.with_extension("tmp");
    let wrote = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(&saved).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(d) = path.parent() {
            std::fs::File::open(d)?.sync_all()?;
        }
        Ok(())
    })();
    if wrote.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    wrote
}

/// Removes `path` (a clean stop: everything is in the spool).
pub fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// Every checkpoint in `dir` left by a previous run: (file, records).
pub fn left_over(dir: &Path) -> Vec<(PathBuf, Vec<FlowRecord>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        match p.extension().and_then(|e| e.to_str()) {
            Some("tmp") => {
                let _ = std::fs::remove_file(&p);
            }
            Some("json") => match std::fs::read(&p)
                .ok()
                .and_then(|b| serde_json::from_slice::<Saved>(&b).ok())
            {
                Some(s) => out.push((p, records(s))),
                None => {
                    tracing::error!(path = %p.display(), "unreadable capture checkpoint removed (its records are lost)");
                    let _ = std::fs::remove_file(&p);
                }
            },
            _ => {}
        }
    }
    out
}

fn records(s: Saved) -> Vec<FlowRecord> {
    s.records
        .into_iter()
        .filter_map(|r| {
            let status = match r.status.as_str() {
                "OK" => LogStatus::Ok,
                "NODATA" => LogStatus::NoData,
                "SKIPDATA" => LogStatus::SkipData,
                _ => return None,
            };
            Some(FlowRecord {
                account_id: s.account_id.clone(),
                interface_id: s.interface_id.clone(),
                start: r.start,
                end: r.end,
                traffic: r.traffic.map(|t| Traffic {
                    src: t.src,
                    dst: t.dst,
                    src_port: t.src_port,
                    dst_port: t.dst_port,
                    protocol: t.protocol,
                    packets: t.packets,
                    bytes: t.bytes,
                    action: if t.reject {
                        Action::Reject
                    } else {
                        Action::Accept
                    },
                    tcp_flags: t.tcp_flags,
                    direction: match t.direction.as_deref() {
                        Some("ingress") => Some(FlowDirection::Ingress),
                        Some("egress") => Some(FlowDirection::Egress),
                        _ => None,
                    },
                }),
                status,
                context: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let r = FlowRecord {
            account_id: "123456789012".into(),
            interface_id: "eni-1".into(),
            start: 10,
            end: 20,
            traffic: Some(Traffic {
                src: "10.0.0.1".parse().unwrap(),
                dst: "::1".parse().unwrap(),
                src_port: 1,
                dst_port: 2,
                protocol: 17,
                packets: 3,
                bytes: 4,
                action: Action::Reject,
                tcp_flags: 0,
                direction: Some(FlowDirection::Egress),
            }),
            status: LogStatus::Ok,
            context: None,
        };
        let skip = FlowRecord {
            traffic: None,
            status: LogStatus::SkipData,
            ..r.clone()
        };
        let p = path(dir.path(), "eni-1");
        write(&p, "123456789012", "eni-1", &[r.clone(), skip.clone()]).unwrap();
        std::fs::write(dir.path().join("x.tmp"), b"torn").unwrap();
        let left = left_over(dir.path());
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].1, vec![r, skip]);
        assert!(!dir.path().join("x.tmp").exists());
        remove(&p);
        assert!(left_over(dir.path()).is_empty());
    }
}
