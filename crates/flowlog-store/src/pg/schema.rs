//! Numbered migrations of the PostgreSQL schema. Each is applied once, in order, inside the
//! migrating transaction, and recorded in `schema_migrations`. Never edit a released
//! migration: add the next number.

/// `(version, what it does, SQL)`.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "tables of VPCs, subnets, ENIs, tags, flow logs, client tokens; change counter; host index",
        r#"
CREATE TABLE vpcs (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    account TEXT NOT NULL,
    cidr TEXT NOT NULL,
    tenancy TEXT NOT NULL,
    is_default BOOLEAN NOT NULL,
    assoc_id TEXT NOT NULL,
    dhcp_id TEXT NOT NULL
);
CREATE INDEX vpcs_account ON vpcs(account, seq);
CREATE TABLE subnets (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    account TEXT NOT NULL,
    vpc_id TEXT NOT NULL,
    cidr TEXT NOT NULL,
    az TEXT NOT NULL,
    default_for_az BOOLEAN NOT NULL,
    az_id TEXT
);
CREATE INDEX subnets_vpc ON subnets(vpc_id);
CREATE INDEX subnets_account ON subnets(account, seq);
CREATE TABLE enis (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    account TEXT NOT NULL,
    subnet_id TEXT NOT NULL,
    vpc_id TEXT NOT NULL,
    az TEXT NOT NULL,
    description TEXT NOT NULL,
    private_ip TEXT NOT NULL,
    mac TEXT NOT NULL,
    groups TEXT NOT NULL,
    status TEXT NOT NULL,
    instance_id TEXT,
    -- The value of the ENI's `flowlog:host` tag (kept with the tags), for host_view.
    host TEXT
);
CREATE INDEX enis_subnet ON enis(subnet_id);
CREATE INDEX enis_account ON enis(account, seq);
CREATE INDEX enis_host ON enis(account, host);
CREATE TABLE tags (
    resource_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (resource_id, key)
);
CREATE INDEX tags_key ON tags(key, value);
CREATE TABLE flow_logs (
    seq BIGSERIAL PRIMARY KEY,
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
    created_ms BIGINT NOT NULL,
    deliver_status TEXT NOT NULL,
    deliver_error TEXT,
    dest_options TEXT
);
CREATE INDEX flow_logs_account ON flow_logs(account, seq);
CREATE INDEX flow_logs_resource ON flow_logs(account, resource_id);
CREATE INDEX flow_logs_group ON flow_logs(account, log_group_name);
-- No two flow logs with one configuration: the last line behind the duplicate check.
CREATE UNIQUE INDEX flow_logs_dup ON flow_logs(account, resource_id, traffic_type, dup_key);
CREATE TABLE client_tokens (
    account TEXT NOT NULL,
    action TEXT NOT NULL,
    token TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    response TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (account, action, token)
);
-- Bumped inside every write transaction that changes an agent's desired state; a reader
-- sees a new number only together with the data (it is a row, not a sequence).
CREATE TABLE change_version (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    v BIGINT NOT NULL
);
INSERT INTO change_version(one, v) VALUES (TRUE, 1);
"#,
    ),
    (
        2,
        "flow_logs.deliver_cross_account_role (Firehose)",
        "ALTER TABLE flow_logs ADD COLUMN deliver_cross_account_role TEXT;",
    ),
];

/// The newest schema version this binary knows.
pub fn latest() -> i64 {
    MIGRATIONS.last().map(|m| m.0).unwrap_or(0)
}
