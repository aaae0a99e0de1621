//! The embedded CloudWatch Logs stand-in: groups, streams and events in SQLite at
//! `<data-dir>/cwl/events.db`, written by delivery when no endpoint is configured and read by
//! `flowlog logs`. Each event is keyed by (spool unit, index) so a unit re-delivered after a
//! crash does not duplicate events.

use crate::router::{Event, StreamKey};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};

pub struct LocalLogs {
    conn: Connection,
}

/// One stored event as `flowlog logs` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub id: i64,
    pub group: String,
    pub stream: String,
    pub timestamp: i64,
    pub ingestion_time: i64,
    pub message: String,
}

/// Selection for [`LocalLogs::events`].
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub group: Option<String>,
    pub stream: Option<String>,
    /// Inclusive lower bound of the event timestamp (ms).
    pub start_ms: Option<i64>,
    /// Exclusive upper bound of the event timestamp (ms).
    pub end_ms: Option<i64>,
    /// Substring every returned message contains (terms separated by spaces must all match).
    pub filter: Option<String>,
    /// Only events stored after this id (for `tail --follow`).
    pub after_id: Option<i64>,
    pub limit: Option<usize>,
}

pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("cwl").join("events.db")
}

impl LocalLogs {
    pub fn open(data_dir: &Path) -> Result<LocalLogs, rusqlite::Error> {
        let path = db_path(data_dir);
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS streams (
                 log_group TEXT NOT NULL, log_stream TEXT NOT NULL, creation_time INTEGER NOT NULL,
                 PRIMARY KEY (log_group, log_stream));
             CREATE TABLE IF NOT EXISTS events (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 log_group TEXT NOT NULL, log_stream TEXT NOT NULL,
                 timestamp INTEGER NOT NULL, ingestion_time INTEGER NOT NULL, message TEXT NOT NULL,
                 unit TEXT NOT NULL, idx INTEGER NOT NULL, UNIQUE (unit, idx));
             CREATE INDEX IF NOT EXISTS events_by_stream ON events (log_group, log_stream, timestamp);",
        )?;
        Ok(LocalLogs { conn })
    }

    /// Opens an existing store read-only-ish (for `flowlog logs`); `None` if there is none.
    pub fn open_existing(data_dir: &Path) -> Result<Option<LocalLogs>, rusqlite::Error> {
        if !db_path(data_dir).exists() {
            return Ok(None);
        }
        Self::open(data_dir).map(Some)
    }

    /// Stores events of one spool unit; idempotent per (unit, index).
    pub fn put(
        &mut self,
        unit: &str,
        key: &StreamKey,
        events: &[(usize, &Event)],
        now_ms: i64,
    ) -> Result<(), rusqlite::Error> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT OR IGNORE INTO streams (log_group, log_stream, creation_time) VALUES (?1, ?2, ?3)",
            params![key.group, key.stream, now_ms],
        )?;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO events (log_group, log_stream, timestamp, ingestion_time, message, unit, idx)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for (idx, e) in events {
                st.execute(params![
                    key.group,
                    key.stream,
                    e.timestamp,
                    now_ms,
                    e.message,
                    unit,
                    *idx as i64
                ])?;
            }
        }
        tx.commit()
    }

    pub fn groups(&self) -> Result<Vec<String>, rusqlite::Error> {
        let mut st = self
            .conn
            .prepare("SELECT DISTINCT log_group FROM streams ORDER BY log_group")?;
        let rows = st.query_map([], |r| r.get(0))?;
        rows.collect()
    }

    /// (stream, creation time, event count) of a group.
    pub fn streams(&self, group: &str) -> Result<Vec<(String, i64, i64)>, rusqlite::Error> {
        let mut st = self.conn.prepare(
            "SELECT s.log_stream, s.creation_time,
                    (SELECT COUNT(*) FROM events e WHERE e.log_group = s.log_group AND e.log_stream = s.log_stream)
             FROM streams s WHERE s.log_group = ?1 ORDER BY s.log_stream",
        )?;
        let rows = st.query_map([group], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect()
    }

    pub fn max_id(&self) -> Result<i64, rusqlite::Error> {
        Ok(self
            .conn
            .query_row("SELECT MAX(id) FROM events", [], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .optional()?
            .flatten()
            .unwrap_or(0))
    }

    /// Events matching `q`, ordered by timestamp then id.
    pub fn events(&self, q: &Query) -> Result<Vec<StoredEvent>, rusqlite::Error> {
        let mut sql = String::from(
            "SELECT id, log_group, log_stream, timestamp, ingestion_time, message FROM events WHERE 1=1",
        );
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut push = |sql: &mut String, clause: &str, v: rusqlite::types::Value| {
            args.push(v);
            sql.push_str(&format!(" AND {clause} ?{}", args.len()));
        };
        if let Some(g) = &q.group {
            push(&mut sql, "log_group =", g.clone().into());
        }
        if let Some(s) = &q.stream {
            push(&mut sql, "log_stream =", s.clone().into());
        }
        if let Some(t) = q.start_ms {
            push(&mut sql, "timestamp >=", t.into());
        }
        if let Some(t) = q.end_ms {
            push(&mut sql, "timestamp <", t.into());
        }
        if let Some(id) = q.after_id {
            push(&mut sql, "id >", id.into());
        }
        for term in q.filter.iter().flat_map(|f| f.split_whitespace()) {
            args.push(term.to_string().into());
            sql.push_str(&format!(" AND instr(message, ?{}) > 0", args.len()));
        }
        sql.push_str(if q.after_id.is_some() {
            " ORDER BY id"
        } else {
            " ORDER BY timestamp, id"
        });
        if let Some(l) = q.limit {
            sql.push_str(&format!(" LIMIT {l}"));
        }
        let mut st = self.conn.prepare(&sql)?;
        let rows = st.query_map(rusqlite::params_from_iter(args), |r| {
            Ok(StoredEvent {
                id: r.get(0)?,
                group: r.get(1)?,
                stream: r.get(2)?,
                timestamp: r.get(3)?,
                ingestion_time: r.get(4)?,
                message: r.get(5)?,
            })
        })?;
        rows.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_is_idempotent_per_unit_and_queries_filter() {
        let d = tempfile::tempdir().unwrap();
        let mut l = LocalLogs::open(d.path()).unwrap();
        let key = StreamKey {
            account_id: "1".into(),
            region: "r".into(),
            group: "g".into(),
            stream: "eni-1-all".into(),
        };
        let e1 = Event {
            timestamp: 1000,
            message: "2 1 eni-1 a ACCEPT OK".into(),
        };
        let e2 = Event {
            timestamp: 2000,
            message: "2 1 eni-1 b REJECT OK".into(),
        };
        l.put("u1", &key, &[(0, &e1), (1, &e2)], 5).unwrap();
        l.put("u1", &key, &[(0, &e1), (1, &e2)], 6).unwrap();
        assert_eq!(l.events(&Query::default()).unwrap().len(), 2);
        assert_eq!(l.groups().unwrap(), vec!["g"]);
        assert_eq!(
            l.streams("g").unwrap(),
            vec![("eni-1-all".to_string(), 5, 2)]
        );
        let q = Query {
            filter: Some("REJECT".into()),
            ..Query::default()
        };
        assert_eq!(l.events(&q).unwrap()[0].timestamp, 2000);
        let q = Query {
            start_ms: Some(1500),
            ..Query::default()
        };
        assert_eq!(l.events(&q).unwrap().len(), 1);
        let q = Query {
            end_ms: Some(1500),
            group: Some("g".into()),
            stream: Some("eni-1-all".into()),
            ..Query::default()
        };
        assert_eq!(l.events(&q).unwrap().len(), 1);
        let q = Query {
            group: Some("h".into()),
            ..Query::default()
        };
        assert!(l.events(&q).unwrap().is_empty());
    }
}

/// Parses a time for `flowlog logs`: Unix seconds (`1700000000`), RFC 3339
/// (`2024-01-02T03:04:05Z`), or an age relative to `now_ms` (`90s`, `15m`, `2h`, `7d`).
/// Returns Unix milliseconds.
pub fn parse_time(s: &str, now_ms: i64) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<i64>() {
        return Ok(secs.saturating_mul(1000));
    }
    if let Some(unit) = s.chars().last().filter(|c| "smhd".contains(*c)) {
        if let Ok(n) = s[..s.len() - 1].parse::<i64>() {
            let mult = match unit {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                _ => 86_400,
            };
            return Ok(now_ms - n.saturating_mul(mult * 1000));
        }
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| {
            format!("invalid time {s:?}: use Unix seconds, RFC 3339, or an age like 15m, 2h, 7d")
        })
}

/// RFC 3339 UTC with milliseconds.
pub use flowlog_model::timefmt::iso8601_ms as format_ms;

#[cfg(test)]
mod time_tests {
    use super::*;

    #[test]
    fn times_parse() {
        assert_eq!(parse_time("1700000000", 0).unwrap(), 1_700_000_000_000);
        assert_eq!(parse_time("15m", 1_000_000).unwrap(), 100_000);
        assert_eq!(
            parse_time("2024-01-02T03:04:05Z", 0).unwrap(),
            1_704_164_645_000
        );
        assert!(parse_time("yesterday", 0).is_err());
        assert_eq!(format_ms(1_704_164_645_123), "2024-01-02T03:04:05.123Z");
    }
}
