//! The SQLite schema. Tables are created if missing; `user_version` records the layout.

pub const VERSION: i64 = 2;

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
