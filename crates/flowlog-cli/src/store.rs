//! Opening the control plane's store from `--store URL` / `[store]`: `postgres://…` is
//! PostgreSQL, `sqlite://PATH` (or nothing: `<data-dir>/flowlog.db`) is SQLite. Shared by
//! `flowlog serve` and `flowlog migrate`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use flowlog_store::{PgOptions, PgStore, SqliteStore, Store};

use crate::config::StoreSection;

/// Where the store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Location {
    /// From a URL (`--store` over `[store] url`), else SQLite in the data dir.
    pub fn resolve(url: Option<&str>, data_dir: &Path) -> anyhow::Result<Location> {
        let Some(url) = url else {
            return Ok(Location::Sqlite(data_dir.join("flowlog.db")));
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Location::Postgres(url.to_string()));
        }
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                bail!("store URL {url} names no file: use sqlite:///absolute/path.db or sqlite://relative.db");
            }
            return Ok(Location::Sqlite(PathBuf::from(path)));
        }
        bail!(
            "store URL {} is not understood: use postgres://user@host/database or sqlite://PATH",
            flowlog_store::redact_url(url)
        )
    }

    pub fn describe(&self) -> String {
        match self {
            Location::Sqlite(p) => format!("SQLite {}", p.display()),
            Location::Postgres(u) => format!("PostgreSQL {}", flowlog_store::redact_url(u)),
        }
    }
}

/// The password for a PostgreSQL URL without one: `[store] password_file`, else `PGPASSWORD`.
fn pg_options(section: &StoreSection) -> anyhow::Result<PgOptions> {
    let password = match &section.password_file {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| {
                format!(
                    "cannot read the database password file {} ([store] password_file)",
                    p.display()
                )
            })?;
            Some(text.lines().next().unwrap_or("").to_string())
        }
        None => std::env::var("PGPASSWORD").ok(),
    };
    Ok(PgOptions {
        password,
        pool_size: section.pool_size,
    })
}

/// Opens (and migrates) the store.
pub fn open(loc: &Location, section: &StoreSection) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match loc {
        Location::Sqlite(p) => Arc::new(
            SqliteStore::open(p)
                .with_context(|| format!("cannot open the database {}", p.display()))?,
        ),
        Location::Postgres(url) => Arc::new(
            PgStore::connect(url, &pg_options(section)?)
                .with_context(|| format!("cannot open the store {}", loc.describe()))?,
        ),
    })
}

/// Applies the pending migrations only; returns `(version, description)` of each applied.
pub fn migrate(loc: &Location, section: &StoreSection) -> anyhow::Result<Vec<(i64, &'static str)>> {
    match loc {
        Location::Sqlite(p) => {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let (_, applied) = SqliteStore::open_reporting(p)
                .with_context(|| format!("cannot migrate the database {}", p.display()))?;
            Ok(applied)
        }
        Location::Postgres(url) => {
            let s = PgStore::open_unmigrated(url, &pg_options(section)?)
                .with_context(|| format!("cannot open the store {}", loc.describe()))?;
            s.migrate()
                .with_context(|| format!("cannot migrate the store {}", loc.describe()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_the_backend() {
        let d = Path::new("/var/lib/flowlog");
        assert_eq!(
            Location::resolve(None, d).unwrap(),
            Location::Sqlite(d.join("flowlog.db"))
        );
        assert_eq!(
            Location::resolve(Some("sqlite:///tmp/x.db"), d).unwrap(),
            Location::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(
            Location::resolve(Some("postgres://u@h/db"), d).unwrap(),
            Location::Postgres("postgres://u@h/db".into())
        );
        let e = Location::resolve(Some("mysql://u:pw@h/db"), d).unwrap_err();
        assert!(!e.to_string().contains("pw"), "{e}");
        assert!(Location::resolve(Some("sqlite://"), d).is_err());
    }
}
