//! The SQLite schema and its numbered migrations. `schema_migrations` records what was
//! applied (a database from before it existed is placed by its `user_version`: 1 = layout 1,
//! 2 = with the issue-12 columns). Pending migrations run at open, in one transaction; a
//! database newer than this binary is refused.

use rusqlite::Connection;

use crate::{Result, StoreError};

/// `(version, what it does)`; the steps are in [`apply`].
pub const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "layout 1: VPCs, subnets, ENIs, tags, flow logs, client tokens",
    ),
    (2, "issue 12 columns: dest_options, az_id, instance_id"),
    (
        3,
        "change counter; enis.host with its index for host_view; account indexes",
    ),
    (4, "flow_logs.deliver_cross_account_role (Firehose)"),
];

pub fn latest() -> i64 {
    MIGRATIONS.last().map(|m| m.0).unwrap_or(0)
}

const MIGRATION_3: &str = r#"
CREATE TABLE IF NOT EXISTS change_version (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    v INTEGER NOT NULL
);
INSERT OR IGNORE INTO change_version(one, v) VALUES (1, 1);
ALTER TABLE enis ADD COLUMN host TEXT;
UPDATE enis SET host = (SELECT value FROM tags WHERE resource_id = enis.id AND key = 'flowlog:host');
CREATE INDEX IF NOT EXISTS enis_host ON enis(account, host);
CREATE INDEX IF NOT EXISTS enis_account ON enis(account, seq);
CREATE INDEX IF NOT EXISTS vpcs_account ON vpcs(account, seq);
CREATE INDEX IF NOT EXISTS subnets_account ON subnets(account, seq);
"#;

fn step(c: &Connection, version: i64) -> Result<()> {
    match version {
        1 => c.execute_batch(SCHEMA)?,
        2 => add_columns(c)?,
        3 => c.execute_batch(MIGRATION_3)?,
        4 => {
            c.execute_batch("ALTER TABLE flow_logs ADD COLUMN deliver_cross_account_role TEXT;")?
        }
        v => return Err(StoreError::Corrupt(format!("no migration step {v}"))),
    }
    Ok(())
}

/// The applied version: from `schema_migrations`, else `user_version` (older flowlogs).
pub fn current(c: &Connection) -> Result<i64> {
    let tracked: bool = c.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
        [],
        |r| r.get(0),
    )?;
    if tracked {
        Ok(c.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )?)
    } else {
        Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?)
    }
}

/// Applies what the database lacks, in one `BEGIN IMMEDIATE` transaction; returns it.
pub fn migrate(c: &mut Connection) -> Result<Vec<(i64, &'static str)>> {
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let have = current(&tx)?;
    let known = latest();
    if have > known {
        return Err(StoreError::SchemaTooNew { found: have, known });
    }
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,          description TEXT NOT NULL, applied_ms INTEGER NOT NULL)",
    )?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let mut applied = Vec::new();
    for (v, what) in MIGRATIONS {
        if *v > have {
            step(&tx, *v)?;
            applied.push((*v, *what));
        }
        // Versions an older flowlog applied are recorded too (applied_ms 0: before tracking).
        tx.execute(
            "INSERT OR IGNORE INTO schema_migrations(version, description, applied_ms) VALUES (?1, ?2, ?3)",
            rusqlite::params![v, what, if *v > have { now } else { 0 }],
        )?;
    }
    tx.pragma_update(None, "user_version", known)?;
    tx.commit()?;
    Ok(applied)
}

/// Columns added after layout 1 (issue 12): `(table, column, type)`. A database made by an
/// older flowlog gets them with `ALTER TABLE ... ADD COLUMN` on open; new databases too, right
/// after `SCHEMA` creates the layout-1 tables, so both go through one path.
pub const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    // `DestinationOptions` as `<format>,<hive>,<hour>`; NULL for CloudWatch Logs.
    ("flow_logs", "dest_options", "TEXT"),
    // `AvailabilityZoneId` of a subnet (records' `az-id`).
    ("subnets", "az_id", "TEXT"),
    // The instance an ENI is attached to (records' `instance-id`).
    ("enis", "instance_id", "TEXT"),
];

/// Adds the missing [`ADDED_COLUMNS`].
pub fn add_columns(c: &rusqlite::Connection) -> rusqlite::Result<()> {
    for (table, column, ty) in ADDED_COLUMNS {
        let mut st = c.prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))?;
        let names: Vec<String> = st
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        if !names.iter().any(|n| n == column) {
            c.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {ty}"))?;
        }
    }
    Ok(())
}

pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS vpcs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    account TEXT NOT NULL,
    cidr TEXT NOT NULL,
    tenancy TEXT NOT NULL,
    is_default INTEGER NOT NULL,
    assoc_id TEXT NOT NULL,
    dhcp_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS subnets (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    account TEXT NOT NULL,
    vpc_id TEXT NOT NULL,
    cidr TEXT NOT NULL,
    az TEXT NOT NULL,
    default_for_az INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS subnets_vpc ON subnets(vpc_id);
CREATE TABLE IF NOT EXISTS enis (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    account TEXT NOT NULL,
    subnet_id TEXT NOT NULL,
    vpc_id TEXT NOT NULL,
    az TEXT NOT NULL,
    description TEXT NOT NULL,
    private_ip TEXT NOT NULL,
    mac TEXT NOT NULL,
    groups TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS enis_subnet ON enis(subnet_id);
CREATE TABLE IF NOT EXISTS tags (
    resource_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (resource_id, key)
);
CREATE INDEX IF NOT EXISTS tags_key ON tags(key, value);
CREATE TABLE IF NOT EXISTS flow_logs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    account TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    traffic_type TEXT NOT NULL,
    dest_type TEXT NOT NULL,
    log_destination TEXT,
    log_group_name TEXT,
    role_arn TEXT,
    s3_bucket TEXT,
    s3_prefix TEXT,
    dup_key TEXT NOT NULL,
    log_format TEXT,
    max_agg INTEGER,
    created_ms INTEGER NOT NULL,
    deliver_status TEXT NOT NULL,
    deliver_error TEXT
);
CREATE INDEX IF NOT EXISTS flow_logs_account ON flow_logs(account, seq);
CREATE INDEX IF NOT EXISTS flow_logs_resource ON flow_logs(account, resource_id);
CREATE INDEX IF NOT EXISTS flow_logs_group ON flow_logs(account, log_group_name);
CREATE TABLE IF NOT EXISTS client_tokens (
    account TEXT NOT NULL,
    action TEXT NOT NULL,
    token TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    response TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (account, action, token)
);
"#;
