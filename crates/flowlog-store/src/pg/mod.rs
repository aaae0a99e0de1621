//! The PostgreSQL backend: any number of `flowlog serve` replicas share one database.
//!
//! Concurrency rules (what makes replicas interchangeable):
//! - Every write runs in one READ COMMITTED transaction that first takes
//!   `pg_advisory_xact_lock(hash(account))`: writes of one account are serialized across all
//!   processes, exactly as SQLite's single writer serialized them, so every check-then-write
//!   (ClientToken, duplicates, per-resource limit, subnet overlap, ENI address) sees every
//!   committed write before it. READ COMMITTED takes a fresh snapshot per statement, and every
//!   statement runs after the lock is held.
//! - Unique constraints (IDs, tags, ClientTokens, flow log configuration) are the last line.
//! - Serialization failures and deadlocks (40001, 40P01) are retried here, a few times, and
//!   never reach the API as 500s.
//! - `change_version` (one row) is bumped as the last statement of a write that changed an
//!   agent's desired state; its row lock orders those commits, and a reader sees the new
//!   number only with the data.
//! - Flow log `seq` comes from a sequence while the account lock is held, so within an
//!   account it grows in commit order: a NextToken (a seq) from one replica pages correctly
//!   on another.
//! - Connection failures are [`StoreError::Unavailable`] (503); the pool drops closed
//!   connections and opens new ones when the database is back.

mod schema;
#[cfg(test)]
pub(crate) mod testing;
mod tls;

use std::future::Future;
use std::net::Ipv4Addr;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Transaction};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use flowlog_model::cidr::Cidr4;
use flowlog_model::{
    DeliverStatus, Destination, DestinationOptions, FlowLog, LogDestinationType, NetworkInterface,
    ResourceType, Subnet, Tags, TrafficType, Vpc,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::{
    CreateOutcome, FlowLogField, FlowLogPage, FlowLogQuery, HostView, NewFlowLogs,
    NewNetworkInterface, ResourceKind, Result, Store, StoreError, TokenCheck, Unsuccessful,
    HOST_TAG,
};

#[cfg(test)]
pub(crate) use schema::latest as latest_version;

/// Settings of a PostgreSQL store beyond its URL.
#[derive(Debug, Clone, Default)]
pub struct PgOptions {
    /// Password when the URL has none (from `[store] password_file` or `PGPASSWORD`).
    pub password: Option<String>,
    /// Connections per process.
    pub pool_size: Option<usize>,
}

pub struct PgStore {
    // The `Store` trait is synchronous, and every caller runs on a blocking thread (API
    // handlers in `spawn_blocking`, the in-process agent and delivery on their own threads),
    // so the store owns a small tokio runtime that drives the connections, and each call
    // `block_on`s its query there. `run` also copes with a call from a runtime worker.
    rt: Option<tokio::runtime::Runtime>,
    pool: Pool,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Dropping a runtime inside another runtime's context panics; this never blocks.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

const RETRIES: usize = 8;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Maps a driver error: lost or refused connections are `Unavailable`, conflicts `Busy`.
fn pg_err(e: tokio_postgres::Error) -> StoreError {
    if let Some(code) = e.code() {
        let c = code.code();
        if *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::LOCK_NOT_AVAILABLE
        {
            return StoreError::Busy;
        }
        // 08: connection exception; 57P01-57P03: shutdown / cannot connect now; 53: out of
        // resources (too many connections).
        if c.starts_with("08") || c.starts_with("57P") || c.starts_with("53") {
            return StoreError::Unavailable(e.to_string());
        }
        return StoreError::Postgres(e.to_string());
    }
    if e.is_closed() || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>()) {
        return StoreError::Unavailable(e.to_string());
    }
    // Errors without a SQLSTATE are the connection's (I/O, TLS, protocol, timeout).
    StoreError::Unavailable(e.to_string())
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg_err(e),
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// Splits what tokio-postgres does not parse (`sslmode` beyond disable/prefer/require,
/// `sslrootcert`) off a URL.
struct ParsedUrl {
    rest: String,
    sslmode: Option<String>,
    sslrootcert: Option<String>,
}

fn split_url(url: &str) -> ParsedUrl {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut kept = Vec::new();
    let mut sslmode = None;
    let mut sslrootcert = None;
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = percent_encoding::percent_decode_str(v)
            .decode_utf8_lossy()
            .into_owned();
        match k {
            "sslmode" => sslmode = Some(decoded),
            "sslrootcert" => sslrootcert = Some(decoded),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    ParsedUrl {
        rest,
        sslmode,
        sslrootcert,
    }
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/db[?sslmode=..]`), applies
    /// the pending migrations and returns the store.
    pub fn connect(url: &str, opts: &PgOptions) -> Result<PgStore> {
        let store = PgStore::open_unmigrated(url, opts)?;
        store.migrate()?;
        Ok(store)
    }

    /// Connects without migrating (`flowlog migrate` reports what it applies).
    pub fn open_unmigrated(url: &str, opts: &PgOptions) -> Result<PgStore> {
        let parsed = split_url(url);
        let mut cfg: tokio_postgres::Config = parsed.rest.parse().map_err(|e| {
            StoreError::Config(format!(
                "store URL {} is not a PostgreSQL URL ({e}); expected postgres://user@host[:port]/database",
                redact(url)
            ))
        })?;
        if cfg.get_password().is_none() {
            if let Some(p) = &opts.password {
                cfg.password(p.as_str());
            }
        }
        cfg.connect_timeout(CONNECT_TIMEOUT);
        cfg.application_name("flowlog");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("flowlog-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Config(format!("cannot start the database runtime: {e}")))?;
        let mgr_cfg = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let mode = parsed.sslmode.as_deref().unwrap_or("prefer");
        let mgr = match mode {
            "disable" | "prefer" | "allow" => {
                // `prefer` without a TLS connector connects in clear, as libpq does when the
                // server has no TLS; ask for `require` to insist on TLS.
                cfg.ssl_mode(tokio_postgres::config::SslMode::Disable);
                Manager::from_config(cfg, tokio_postgres::NoTls, mgr_cfg)
            }
            "require" | "verify-ca" | "verify-full" => {
                cfg.ssl_mode(tokio_postgres::config::SslMode::Require);
                let tls = tls::connector(parsed.sslrootcert.as_deref())?;
                Manager::from_config(cfg, tls, mgr_cfg)
            }
            other => {
                return Err(StoreError::Config(format!(
                    "store URL {}: sslmode={other} is not supported; use disable, prefer, require or verify-full",
                    redact(url)
                )))
            }
        };
        let pool = {
            let _g = rt.enter();
            Pool::builder(mgr)
                .max_size(opts.pool_size.unwrap_or(8))
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(Duration::from_secs(10)))
                .create_timeout(Some(CONNECT_TIMEOUT))
                .recycle_timeout(Some(CONNECT_TIMEOUT))
                .build()
                .map_err(|e| StoreError::Config(format!("cannot build the connection pool: {e}")))?
        };
        Ok(PgStore { rt: Some(rt), pool })
    }

    fn run<F: Future>(&self, f: F) -> F::Output {
        let rt = self.rt.as_ref().expect("the runtime lives until drop");
        match tokio::runtime::Handle::try_current() {
            // On a worker of a multi-thread runtime: tell it this thread blocks.
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| rt.block_on(f))
            }
            _ => rt.block_on(f),
        }
    }

    /// The schema version of the database (0 when empty).
    pub fn schema_version(&self) -> Result<i64> {
        self.run(async {
            let c = self.pool.get().await.map_err(pool_err)?;
            current_version(&c).await
        })
    }

    /// Applies the migrations the database lacks, in one transaction (under an advisory lock,
    /// so replicas starting together migrate once). Returns what was applied.
    pub fn migrate(&self) -> Result<Vec<(i64, &'static str)>> {
        self.run(async {
            let mut c = self.pool.get().await.map_err(pool_err)?;
            let tx = c.transaction().await.map_err(pg_err)?;
            exec(&tx, "SELECT pg_advisory_xact_lock(7418041)", &[]).await?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, \
                 description TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            )
            .await
            .map_err(pg_err)?;
            let have = current_version(&tx).await?;
            let known = schema::latest();
            if have > known {
                return Err(StoreError::SchemaTooNew { found: have, known });
            }
            let mut applied = Vec::new();
            for (v, what, sql) in schema::MIGRATIONS {
                if *v <= have {
                    continue;
                }
                tx.batch_execute(sql).await.map_err(pg_err)?;
                exec(
                    &tx,
                    "INSERT INTO schema_migrations(version, description) VALUES ($1, $2)",
                    &[v, what],
                )
                .await?;
                applied.push((*v, *what));
            }
            tx.commit().await.map_err(pg_err)?;
            Ok(applied)
        })
    }
}

async fn current_version(c: &impl GenericClient) -> Result<i64> {
    let exists: bool = one(
        c,
        "SELECT to_regclass('schema_migrations') IS NOT NULL",
        &[],
    )
    .await?
    .get(0);
    if !exists {
        return Ok(0);
    }
    let v: Option<i64> = one(c, "SELECT max(version) FROM schema_migrations", &[])
        .await?
        .get(0);
    Ok(v.unwrap_or(0))
}

/// Runs `$body` (an expression using the transaction `$tx`, of type `Result<T>`) in a write
/// transaction of `$account`, retrying conflicts.
macro_rules! write_tx {
    ($self:ident, $account:expr, |$tx:ident| $body:expr) => {
        $self.run(async {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let r: Result<_> = async {
                    let mut client = $self.pool.get().await.map_err(pool_err)?;
                    let $tx = client.transaction().await.map_err(pg_err)?;
                    exec(
                        &$tx,
                        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                        &[&$account],
                    )
                    .await?;
                    let v: Result<_> = $body;
                    let v = v?;
                    $tx.commit().await.map_err(pg_err)?;
                    Ok(v)
                }
                .await;
                match r {
                    Err(StoreError::Busy) if attempt < RETRIES => {
                        tokio::time::sleep(Duration::from_millis(5 * attempt as u64)).await;
                    }
                    other => break other,
                }
            }
        })
    };
}

/// Runs a read (`$body` using the pooled client `$c`).
macro_rules! read {
    ($self:ident, |$c:ident| $body:expr) => {
        $self.run(async {
            let $c = $self.pool.get().await.map_err(pool_err)?;
            let $c: &deadpool_postgres::Client = &$c;
            $body
        })
    };
}

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

// Statements with a fixed text go through the connection's statement cache (one round trip
// per call instead of prepare + execute); Describe's generated SQL does not, so the cache
// stays bounded.
async fn query_rows(c: &impl GenericClient, sql: &str, p: Params<'_>) -> Result<Vec<Row>> {
    let st = c.prepare_cached(sql).await.map_err(pg_err)?;
    c.query(&st, p).await.map_err(pg_err)
}

async fn opt(c: &impl GenericClient, sql: &str, p: Params<'_>) -> Result<Option<Row>> {
    let st = c.prepare_cached(sql).await.map_err(pg_err)?;
    c.query_opt(&st, p).await.map_err(pg_err)
}

async fn one(c: &impl GenericClient, sql: &str, p: Params<'_>) -> Result<Row> {
    let st = c.prepare_cached(sql).await.map_err(pg_err)?;
    c.query_one(&st, p).await.map_err(pg_err)
}

async fn exec(c: &impl GenericClient, sql: &str, p: Params<'_>) -> Result<u64> {
    let st = c.prepare_cached(sql).await.map_err(pg_err)?;
    c.execute(&st, p).await.map_err(pg_err)
}

async fn bump(tx: &Transaction<'_>) -> Result<()> {
    exec(tx, "UPDATE change_version SET v = v + 1", &[]).await?;
    Ok(())
}

async fn tags_of_many(
    c: &impl GenericClient,
    ids: &[String],
) -> Result<std::collections::HashMap<String, Tags>> {
    let mut out: std::collections::HashMap<String, Tags> = std::collections::HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let rows = query_rows(c, "SELECT resource_id, key, value FROM tags WHERE resource_id = ANY($1) ORDER BY resource_id, key",
            &[&ids]).await?;
    for r in rows {
        out.entry(r.get(0)).or_default().push((r.get(1), r.get(2)));
    }
    Ok(out)
}

async fn insert_tags(tx: &Transaction<'_>, id: &str, tags: &Tags) -> Result<()> {
    for (k, v) in tags {
        exec(
            tx,
            "INSERT INTO tags(resource_id, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (resource_id, key) DO UPDATE SET value = excluded.value",
            &[&id, k, v],
        )
        .await?;
    }
    if ResourceKind::of_id(id) == Some(ResourceKind::NetworkInterface) {
        sync_host(tx, id).await?;
    }
    Ok(())
}

/// Copies an ENI's `flowlog:host` tag into `enis.host` (indexed, for host_view).
async fn sync_host(tx: &Transaction<'_>, id: &str) -> Result<()> {
    exec(tx, "UPDATE enis SET host = (SELECT value FROM tags WHERE resource_id = $1 AND key = $2) WHERE id = $1",
        &[&id, &HOST_TAG]).await?;
    Ok(())
}

async fn exists(
    c: &impl GenericClient,
    kind: ResourceKind,
    account: &str,
    id: &str,
) -> Result<bool> {
    let sql = format!(
        "SELECT 1 FROM {} WHERE id = $1 AND account = $2",
        crate::table_name(kind)
    );
    Ok(opt(c, &sql, &[&id, &account]).await?.is_some())
}

/// Deletes a VPC or subnet `id` of `account`: `NotFound` when it is not there,
/// `DependencyViolation` while rows of `children` (`"<table> WHERE <column> = $1"`) refer to
/// it; else its flow logs, tags and row go, and the change counter moves.
async fn delete_parent(
    tx: &Transaction<'_>,
    kind: ResourceKind,
    account: &str,
    id: &str,
    table: &str,
    children: &str,
) -> Result<()> {
    if !exists(tx, kind, account, id).await? {
        return Err(StoreError::NotFound {
            kind,
            id: id.to_string(),
        });
    }
    let n: i64 = one(tx, &format!("SELECT COUNT(*) FROM {children}"), &[&id])
        .await?
        .get(0);
    if n > 0 {
        return Err(StoreError::DependencyViolation {
            kind,
            id: id.to_string(),
        });
    }
    delete_flow_logs_of(tx, account, id).await?;
    exec(tx, "DELETE FROM tags WHERE resource_id = $1", &[&id]).await?;
    exec(tx, &format!("DELETE FROM {table} WHERE id = $1"), &[&id]).await?;
    bump(tx).await
}

async fn delete_flow_logs_of(tx: &Transaction<'_>, account: &str, resource_id: &str) -> Result<()> {
    exec(tx, "DELETE FROM tags WHERE resource_id IN (SELECT id FROM flow_logs WHERE account = $1 AND resource_id = $2)",
        &[&account, &resource_id]).await?;
    exec(
        tx,
        "DELETE FROM flow_logs WHERE account = $1 AND resource_id = $2",
        &[&account, &resource_id],
    )
    .await?;
    Ok(())
}

const FLOW_LOG_COLUMNS: &str = "seq, id, account, resource_id, resource_type, traffic_type, dest_type, \
    log_destination, log_group_name, role_arn, s3_bucket, s3_prefix, log_format, max_agg, created_ms, \
    deliver_status, deliver_error, dest_options, deliver_cross_account_role";

fn flow_log_row(r: &Row) -> Result<(i64, FlowLog)> {
    let corrupt = |what: &str, v: &str| StoreError::Corrupt(format!("flow_logs.{what} = {v:?}"));
    let rt: String = r.get(4);
    let tt: String = r.get(5);
    let dt: String = r.get(6);
    let ds: String = r.get(15);
    let destination =
        match LogDestinationType::parse(&dt).ok_or_else(|| corrupt("dest_type", &dt))? {
            LogDestinationType::S3 => Destination::S3 {
                arn: r.get::<_, Option<String>>(7).unwrap_or_default(),
                bucket: r.get::<_, Option<String>>(10).unwrap_or_default(),
                prefix: r.get::<_, Option<String>>(11).unwrap_or_default(),
            },
            LogDestinationType::CloudWatchLogs => Destination::CloudWatchLogs {
                group: r.get::<_, Option<String>>(8).unwrap_or_default(),
                arn: r.get(7),
                role_arn: r.get::<_, Option<String>>(9).unwrap_or_default(),
            },
            LogDestinationType::KinesisDataFirehose => {
                let arn: String = r.get::<_, Option<String>>(7).unwrap_or_default();
                Destination::Firehose {
                    stream: flowlog_model::resources::parse_firehose_arn(&arn)
                        .ok_or_else(|| corrupt("log_destination", &arn))?,
                    arn,
                    role_arn: r.get(9),
                    cross_account_role: r.get(18),
                }
            }
        };
    let dest_options = r
        .get::<_, Option<String>>(17)
        .map(|s| DestinationOptions::decode(&s).ok_or_else(|| corrupt("dest_options", &s)))
        .transpose()?;
    Ok((
        r.get(0),
        FlowLog {
            id: r.get(1),
            account_id: r.get(2),
            resource_id: r.get(3),
            resource_type: ResourceType::parse(&rt).ok_or_else(|| corrupt("resource_type", &rt))?,
            traffic_type: TrafficType::parse(&tt).ok_or_else(|| corrupt("traffic_type", &tt))?,
            destination,
            log_format: r.get(12),
            max_aggregation_interval: r.get::<_, Option<i32>>(13).map(|v| v as u32),
            creation_time_ms: r.get(14),
            deliver_status: DeliverStatus::parse(&ds)
                .ok_or_else(|| corrupt("deliver_status", &ds))?,
            deliver_error: r.get(16),
            tags: Vec::new(),
            destination_options: dest_options,
        },
    ))
}

const ENI_COLUMNS: &str =
    "id, account, subnet_id, vpc_id, az, description, private_ip, mac, groups, status, instance_id";

fn eni_row(r: &Row) -> NetworkInterface {
    let groups: String = r.get(8);
    NetworkInterface {
        id: r.get(0),
        account_id: r.get(1),
        subnet_id: r.get(2),
        vpc_id: r.get(3),
        availability_zone: r.get(4),
        description: r.get(5),
        private_ip_address: r.get(6),
        mac_address: r.get(7),
        security_group_ids: serde_json::from_str(&groups).unwrap_or_default(),
        status: r.get(9),
        tags: Vec::new(),
        instance_id: r.get(10),
    }
}

const VPC_COLUMNS: &str = "id, account, cidr, tenancy, is_default, assoc_id, dhcp_id";

fn vpc_row(r: &Row) -> Vpc {
    Vpc {
        id: r.get(0),
        account_id: r.get(1),
        cidr_block: r.get(2),
        instance_tenancy: r.get(3),
        is_default: r.get(4),
        cidr_association_id: r.get(5),
        dhcp_options_id: r.get(6),
        tags: Vec::new(),
    }
}

const SUBNET_COLUMNS: &str = "s.id, s.account, s.vpc_id, s.cidr, s.az, s.default_for_az, \
    (SELECT COUNT(*) FROM enis e WHERE e.subnet_id = s.id), s.az_id";

fn subnet_row(r: &Row) -> Subnet {
    let cidr: String = r.get(3);
    let used: i64 = r.get(6);
    let usable = Cidr4::parse(&cidr).map(|c| c.usable()).unwrap_or(0);
    Subnet {
        id: r.get(0),
        account_id: r.get(1),
        vpc_id: r.get(2),
        cidr_block: cidr,
        availability_zone: r.get(4),
        availability_zone_id: r.get(7),
        default_for_az: r.get(5),
        available_ip_address_count: usable.saturating_sub(used as u64),
        tags: Vec::new(),
    }
}

/// Fills `tags` of each item from one batched query.
async fn with_tags<T>(
    c: &impl GenericClient,
    mut items: Vec<T>,
    id: impl Fn(&T) -> &str,
    set: impl Fn(&mut T, Tags),
) -> Result<Vec<T>> {
    let ids: Vec<String> = items.iter().map(|i| id(i).to_string()).collect();
    let mut tags = tags_of_many(c, &ids).await?;
    for i in &mut items {
        let t = tags.remove(id(i)).unwrap_or_default();
        set(i, t);
    }
    Ok(items)
}

/// A LIKE pattern for an EC2 filter value with `*` and `?` wildcards.
fn like_pattern(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for ch in v.chars() {
        match ch {
            '*' => out.push('%'),
            '?' => out.push('_'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            c => out.push(c),
        }
    }
    out
}

fn any_of(col: &str, values: &[String], binds: &mut Vec<String>) -> String {
    let parts: Vec<String> = values
        .iter()
        .map(|v| {
            if v.contains('*') || v.contains('?') {
                binds.push(like_pattern(v));
                format!("{col} LIKE ${}", binds.len() + 2)
            } else {
                binds.push(v.clone());
                format!("{col} = ${}", binds.len() + 2)
            }
        })
        .collect();
    if parts.is_empty() {
        "FALSE".to_string()
    } else {
        format!("({})", parts.join(" OR "))
    }
}

impl Store for PgStore {
    fn create_vpc(&self, vpc: &Vpc) -> Result<()> {
        write_tx!(self, vpc.account_id, |tx| {
            async {
            exec(&tx, "INSERT INTO vpcs(id, account, cidr, tenancy, is_default, assoc_id, dhcp_id) VALUES ($1,$2,$3,$4,$5,$6,$7)",
                &[&vpc.id, &vpc.account_id, &vpc.cidr_block, &vpc.instance_tenancy, &vpc.is_default, &vpc.cidr_association_id, &vpc.dhcp_options_id]).await?;
            insert_tags(&tx, &vpc.id, &vpc.tags).await?;
            bump(&tx).await
        }
        .await
        })
    }

    fn vpcs(&self, account_id: &str) -> Result<Vec<Vpc>> {
        read!(self, |c| {
            let rows = query_rows(
                c,
                &format!("SELECT {VPC_COLUMNS} FROM vpcs WHERE account = $1 ORDER BY seq"),
                &[&account_id],
            )
            .await?;
            let items = rows.iter().map(vpc_row).collect();
            with_tags(c, items, |v: &Vpc| &v.id, |v, t| v.tags = t).await
        })
    }

    fn delete_vpc(&self, account_id: &str, id: &str) -> Result<()> {
        write_tx!(self, account_id, |tx| async {
            delete_parent(
                &tx,
                ResourceKind::Vpc,
                account_id,
                id,
                "vpcs",
                "subnets WHERE vpc_id = $1",
            )
            .await
        }
        .await)
    }

    fn create_subnet(&self, s: &Subnet) -> Result<()> {
        write_tx!(self, s.account_id, |tx| {
            async {
            let vpc_cidr: String = opt(&tx, "SELECT cidr FROM vpcs WHERE id = $1 AND account = $2",
                    &[&s.vpc_id, &s.account_id]).await?
                .ok_or_else(|| StoreError::NotFound {
                    kind: ResourceKind::Vpc,
                    id: s.vpc_id.clone(),
                })?
                .get(0);
            let vpc = Cidr4::parse(&vpc_cidr).ok_or_else(|| StoreError::Corrupt(vpc_cidr.clone()))?;
            let new = Cidr4::parse(&s.cidr_block).ok_or_else(|| StoreError::Corrupt(s.cidr_block.clone()))?;
            if !vpc.contains(new) {
                return Err(StoreError::SubnetRange { cidr: s.cidr_block.clone() });
            }
            let others = query_rows(&tx, "SELECT cidr FROM subnets WHERE vpc_id = $1", &[&s.vpc_id]).await?;
            if others
                .iter()
                .filter_map(|r| Cidr4::parse(r.get::<_, &str>(0)))
                .any(|c| c.overlaps(new))
            {
                return Err(StoreError::SubnetConflict { cidr: s.cidr_block.clone() });
            }
            exec(&tx, "INSERT INTO subnets(id, account, vpc_id, cidr, az, default_for_az, az_id) VALUES ($1,$2,$3,$4,$5,$6,$7)",
                &[&s.id, &s.account_id, &s.vpc_id, &s.cidr_block, &s.availability_zone, &s.default_for_az, &s.availability_zone_id]).await?;
            insert_tags(&tx, &s.id, &s.tags).await?;
            bump(&tx).await
        }
        .await
        })
    }

    fn subnets(&self, account_id: &str) -> Result<Vec<Subnet>> {
        read!(self, |c| {
            let rows = query_rows(
                c,
                &format!(
                    "SELECT {SUBNET_COLUMNS} FROM subnets s WHERE s.account = $1 ORDER BY s.seq"
                ),
                &[&account_id],
            )
            .await?;
            let items = rows.iter().map(subnet_row).collect();
            with_tags(c, items, |s: &Subnet| &s.id, |s, t| s.tags = t).await
        })
    }

    fn delete_subnet(&self, account_id: &str, id: &str) -> Result<()> {
        write_tx!(self, account_id, |tx| async {
            delete_parent(
                &tx,
                ResourceKind::Subnet,
                account_id,
                id,
                "subnets",
                "enis WHERE subnet_id = $1",
            )
            .await
        }
        .await)
    }

    fn create_network_interface(&self, n: &NewNetworkInterface) -> Result<NetworkInterface> {
        write_tx!(self, n.account_id, |tx| {
            async {
            let row = opt(&tx, "SELECT vpc_id, cidr, az FROM subnets WHERE id = $1 AND account = $2",
                    &[&n.subnet_id, &n.account_id]).await?
                .ok_or_else(|| StoreError::NotFound {
                    kind: ResourceKind::Subnet,
                    id: n.subnet_id.clone(),
                })?;
            let (vpc_id, cidr, az): (String, String, String) = (row.get(0), row.get(1), row.get(2));
            let cidr = Cidr4::parse(&cidr).ok_or_else(|| StoreError::Corrupt(cidr.clone()))?;
            let used: std::collections::HashSet<u32> = query_rows(&tx, "SELECT private_ip FROM enis WHERE subnet_id = $1", &[&n.subnet_id]).await?
                .iter()
                .filter_map(|r| r.get::<_, &str>(0).parse::<Ipv4Addr>().ok().map(u32::from))
                .collect();
            let ip = match n.private_ip_address {
                Some(ip) => {
                    let a = u32::from(ip);
                    if !cidr.contains_addr(a) || cidr.is_reserved(a) {
                        return Err(StoreError::AddressOutOfRange { addr: ip });
                    }
                    if used.contains(&a) {
                        return Err(StoreError::AddressInUse { addr: ip });
                    }
                    ip
                }
                None => {
                    let free = (cidr.addr + 4..cidr.last()).find(|a| !used.contains(a));
                    Ipv4Addr::from(free.ok_or_else(|| StoreError::SubnetFull {
                        subnet_id: n.subnet_id.clone(),
                    })?)
                }
            };
            let eni = NetworkInterface {
                id: n.id.clone(),
                account_id: n.account_id.clone(),
                subnet_id: n.subnet_id.clone(),
                vpc_id,
                availability_zone: az,
                description: n.description.clone(),
                private_ip_address: ip.to_string(),
                mac_address: n.mac_address.clone(),
                security_group_ids: n.security_group_ids.clone(),
                status: "available".to_string(),
                tags: n.tags.clone(),
                instance_id: None,
            };
            let groups = serde_json::to_string(&eni.security_group_ids).unwrap_or_else(|_| "[]".into());
            exec(&tx, "INSERT INTO enis(id, account, subnet_id, vpc_id, az, description, private_ip, mac, groups, status) \
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
                &[&eni.id, &eni.account_id, &eni.subnet_id, &eni.vpc_id, &eni.availability_zone, &eni.description,
                  &eni.private_ip_address, &eni.mac_address, &groups, &eni.status]).await?;
            insert_tags(&tx, &eni.id, &eni.tags).await?;
            bump(&tx).await?;
            Ok(eni)
        }
        .await
        })
    }

    fn network_interfaces(&self, account_id: &str) -> Result<Vec<NetworkInterface>> {
        read!(self, |c| {
            let rows = query_rows(
                c,
                &format!("SELECT {ENI_COLUMNS} FROM enis WHERE account = $1 ORDER BY seq"),
                &[&account_id],
            )
            .await?;
            let items = rows.iter().map(eni_row).collect();
            with_tags(c, items, |e: &NetworkInterface| &e.id, |e, t| e.tags = t).await
        })
    }

    fn delete_network_interface(&self, account_id: &str, id: &str) -> Result<()> {
        write_tx!(self, account_id, |tx| async {
            if !exists(&tx, ResourceKind::NetworkInterface, account_id, id).await? {
                return Err(StoreError::NotFound {
                    kind: ResourceKind::NetworkInterface,
                    id: id.to_string(),
                });
            }
            delete_flow_logs_of(&tx, account_id, id).await?;
            exec(&tx, "DELETE FROM tags WHERE resource_id = $1", &[&id]).await?;
            exec(&tx, "DELETE FROM enis WHERE id = $1", &[&id]).await?;
            bump(&tx).await
        }
        .await)
    }

    fn create_tags(&self, account_id: &str, ids: &[String], tags: &Tags) -> Result<()> {
        write_tx!(self, account_id, |tx| async {
            for id in ids {
                let kind = ResourceKind::of_id(id);
                let known = match kind {
                    Some(k) => exists(&tx, k, account_id, id).await?,
                    None => false,
                };
                if !known {
                    return Err(match kind {
                        Some(kind) => StoreError::NotFound {
                            kind,
                            id: id.clone(),
                        },
                        None => StoreError::InvalidId { id: id.clone() },
                    });
                }
                insert_tags(&tx, id, tags).await?;
                let count: i64 = one(
                    &tx,
                    "SELECT COUNT(*) FROM tags WHERE resource_id = $1",
                    &[id],
                )
                .await?
                .get(0);
                if count > crate::TAG_LIMIT as i64 {
                    return Err(StoreError::TagLimitExceeded {
                        id: id.clone(),
                        limit: crate::TAG_LIMIT,
                    });
                }
            }
            bump(&tx).await
        }
        .await)
    }

    fn delete_tags(
        &self,
        account_id: &str,
        ids: &[String],
        tags: &[(String, Option<String>)],
    ) -> Result<()> {
        write_tx!(self, account_id, |tx| {
            async {
            for id in ids {
                let kind = ResourceKind::of_id(id);
                let known = match kind {
                    Some(k) => exists(&tx, k, account_id, id).await?,
                    None => false,
                };
                if !known {
                    return Err(match kind {
                        Some(kind) if kind != ResourceKind::FlowLog => {
                            StoreError::NotFound { kind, id: id.clone() }
                        }
                        _ => StoreError::InvalidId { id: id.clone() },
                    });
                }
                if tags.is_empty() {
                    exec(&tx, "DELETE FROM tags WHERE resource_id = $1", &[id]).await?;
                }
                for (k, v) in tags {
                    match v {
                        Some(v) => {
                            exec(
                                &tx,
                                "DELETE FROM tags WHERE resource_id = $1 AND key = $2 AND value = $3",
                                &[id, k, v],
                            )
                            .await?
                        }
                        None => {
                            exec(
                                &tx,
                                "DELETE FROM tags WHERE resource_id = $1 AND key = $2",
                                &[id, k],
                            )
                            .await?
                        }
                    };
                }
                if kind == Some(ResourceKind::NetworkInterface) {
                    sync_host(&tx, id).await?;
                }
            }
            bump(&tx).await
        }
        .await
        })
    }

    fn check_client_token(
        &self,
        account_id: &str,
        action: &str,
        token: &str,
        fingerprint: &str,
    ) -> Result<TokenCheck> {
        read!(self, |c| token_check(
            c,
            account_id,
            action,
            token,
            fingerprint
        )
        .await)
    }

    fn create_flow_logs(&self, req: &NewFlowLogs) -> Result<CreateOutcome> {
        write_tx!(self, req.account_id, |tx| {
            async {
            match token_check(&tx, &req.account_id, "CreateFlowLogs", &req.client_token, &req.fingerprint).await? {
                TokenCheck::Replay(o) => return Ok(o),
                TokenCheck::Mismatch => return Err(StoreError::IdempotentParameterMismatch),
                TokenCheck::New => {}
            }
            let kind = crate::kind_of(req.resource_type);
            let dup_key = req.destination.duplicate_key();
            let mut outcome = CreateOutcome {
                client_token: req.client_token.clone(),
                flow_log_ids: Vec::new(),
                unsuccessful: Vec::new(),
            };
            for rid in &req.resource_ids {
                if !exists(&tx, kind, &req.account_id, rid).await? {
                    outcome.unsuccessful.push(Unsuccessful::not_found(kind, rid));
                    continue;
                }
                if let Some((code, message)) = &req.destination_error {
                    outcome.unsuccessful.push(Unsuccessful {
                        resource_id: rid.clone(),
                        code: code.clone(),
                        message: message.clone(),
                    });
                    continue;
                }
                let dup = opt(&tx, "SELECT 1 FROM flow_logs WHERE account = $1 AND resource_id = $2 AND traffic_type = $3 AND dup_key = $4",
                        &[&req.account_id, rid, &req.traffic_type.as_str(), &dup_key]).await?;
                if dup.is_some() {
                    outcome.unsuccessful.push(Unsuccessful::already_exists(rid));
                    continue;
                }
                if let Some(limit) = req.limit_per_resource {
                    let n: i64 = one(&tx, "SELECT COUNT(*) FROM flow_logs WHERE account = $1 AND resource_id = $2",
                            &[&req.account_id, rid]).await?
                        .get(0);
                    if n >= i64::from(limit) {
                        outcome.unsuccessful.push(Unsuccessful::limit_exceeded(rid));
                        continue;
                    }
                }
                let id = new_flow_log_id(&tx).await?;
                let (bucket, prefix) = match &req.destination {
                    Destination::S3 { bucket, prefix, .. } => (Some(bucket.as_str()), Some(prefix.as_str())),
                    _ => (None, None),
                };
                let max_agg = req.max_aggregation_interval.map(|v| v as i32);
                let dest_options = req.destination_options.as_ref().map(|o| o.encode());
                exec(&tx, "INSERT INTO flow_logs(id, account, resource_id, resource_type, traffic_type, dest_type, log_destination, \
                     log_group_name, role_arn, s3_bucket, s3_prefix, dup_key, log_format, max_agg, created_ms, deliver_status, dest_options, \
                     deliver_cross_account_role) \
                     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18)",
                    &[
                        &id,
                        &req.account_id,
                        rid,
                        &req.resource_type.as_str(),
                        &req.traffic_type.as_str(),
                        &req.destination.kind().as_str(),
                        &req.destination.log_destination(),
                        &req.destination.log_group_name(),
                        &req.destination.role_arn(),
                        &bucket,
                        &prefix,
                        &dup_key,
                        &req.log_format,
                        &max_agg,
                        &req.creation_time_ms,
                        &DeliverStatus::Success.as_str(),
                        &dest_options,
                        &req.destination.cross_account_role(),
                    ]).await?;
                insert_tags(&tx, &id, &req.tags).await?;
                outcome.flow_log_ids.push(id);
            }
            let response = serde_json::to_string(&outcome).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            exec(&tx, "INSERT INTO client_tokens(account, action, token, fingerprint, response, created_ms) VALUES ($1,'CreateFlowLogs',$2,$3,$4,$5)",
                &[&req.account_id, &req.client_token, &req.fingerprint, &response, &req.creation_time_ms]).await?;
            if !outcome.flow_log_ids.is_empty() {
                bump(&tx).await?;
            }
            Ok(outcome)
        }
        .await
        })
    }

    fn delete_flow_logs(&self, account_id: &str, ids: &[String]) -> Result<Vec<String>> {
        write_tx!(self, account_id, |tx| async {
            let mut missing = Vec::new();
            let mut deleted = false;
            for id in ids {
                let n = exec(
                    &tx,
                    "DELETE FROM flow_logs WHERE account = $1 AND id = $2",
                    &[&account_id, id],
                )
                .await?;
                if n == 0 {
                    if !missing.contains(id) {
                        missing.push(id.clone());
                    }
                } else {
                    deleted = true;
                    exec(&tx, "DELETE FROM tags WHERE resource_id = $1", &[id]).await?;
                }
            }
            if deleted {
                bump(&tx).await?;
            }
            Ok(missing)
        }
        .await)
    }

    fn describe_flow_logs(&self, q: &FlowLogQuery) -> Result<FlowLogPage> {
        // $1 = account, $2 = after_seq; the text binds follow from $3.
        let mut sql =
            format!("SELECT {FLOW_LOG_COLUMNS} FROM flow_logs WHERE account = $1 AND seq > $2");
        let mut binds: Vec<String> = Vec::new();
        if !q.ids.is_empty() {
            let mut ph = Vec::new();
            for id in &q.ids {
                binds.push(id.clone());
                ph.push(format!("${}", binds.len() + 2));
            }
            sql.push_str(&format!(" AND id IN ({})", ph.join(",")));
        }
        for (field, values) in &q.conditions {
            let cond = match field {
                FlowLogField::FlowLogId => any_of("id", values, &mut binds),
                FlowLogField::ResourceId => any_of("resource_id", values, &mut binds),
                FlowLogField::TrafficType => any_of("traffic_type", values, &mut binds),
                FlowLogField::LogDestinationType => any_of("dest_type", values, &mut binds),
                FlowLogField::LogGroupName => any_of("log_group_name", values, &mut binds),
                FlowLogField::DeliverLogsStatus => any_of("deliver_status", values, &mut binds),
                FlowLogField::TagKey => format!(
                    "id IN (SELECT resource_id FROM tags WHERE {})",
                    any_of("key", values, &mut binds)
                ),
                FlowLogField::TagValue => format!(
                    "id IN (SELECT resource_id FROM tags WHERE {})",
                    any_of("value", values, &mut binds)
                ),
                FlowLogField::Tag(key) => {
                    binds.push(key.clone());
                    let key_ph = format!("${}", binds.len() + 2);
                    format!(
                        "id IN (SELECT resource_id FROM tags WHERE key = {key_ph} AND {})",
                        any_of("value", values, &mut binds)
                    )
                }
            };
            sql.push_str(" AND ");
            sql.push_str(&cond);
        }
        sql.push_str(" ORDER BY seq");
        if let Some(limit) = q.limit {
            sql.push_str(&format!(" LIMIT {}", limit + 1));
        }
        read!(self, |c| {
            let mut params: Vec<&(dyn ToSql + Sync)> = vec![&q.account_id, &q.after_seq];
            params.extend(binds.iter().map(|b| b as &(dyn ToSql + Sync)));
            let rows = c.query(&sql, &params).await.map_err(pg_err)?;
            let mut page = rows.iter().map(flow_log_row).collect::<Result<Vec<_>>>()?;
            let mut next_seq = None;
            if let Some(limit) = q.limit {
                if page.len() > limit {
                    page.truncate(limit);
                    next_seq = page.last().map(|(s, _)| *s);
                }
            }
            let items: Vec<FlowLog> = page.into_iter().map(|(_, f)| f).collect();
            let flow_logs = with_tags(c, items, |f: &FlowLog| &f.id, |f, t| f.tags = t).await?;
            Ok(FlowLogPage {
                flow_logs,
                next_seq,
            })
        })
    }

    fn set_deliver_status(
        &self,
        account_id: &str,
        id: &str,
        status: DeliverStatus,
        error: Option<&str>,
    ) -> Result<()> {
        write_tx!(self, account_id, |tx| {
            async {
            let n = exec(&tx, "UPDATE flow_logs SET deliver_status = $2, deliver_error = $3 WHERE id = $1 AND account = $4 \
                     AND (deliver_status IS DISTINCT FROM $2 OR deliver_error IS DISTINCT FROM $3)",
                    &[&id, &status.as_str(), &error, &account_id]).await?;
            if n > 0 {
                bump(&tx).await?;
            }
            Ok(())
        }
        .await
        })
    }

    fn all_flow_logs(&self) -> Result<Vec<FlowLog>> {
        read!(self, |c| {
            let rows = query_rows(
                c,
                &format!("SELECT {FLOW_LOG_COLUMNS} FROM flow_logs ORDER BY seq"),
                &[],
            )
            .await?;
            rows.iter()
                .map(|r| flow_log_row(r).map(|(_, f)| f))
                .collect::<Result<Vec<_>>>()
        })
    }

    fn all_network_interfaces(&self) -> Result<Vec<NetworkInterface>> {
        read!(self, |c| {
            let rows = query_rows(
                c,
                &format!("SELECT {ENI_COLUMNS} FROM enis ORDER BY seq"),
                &[],
            )
            .await?;
            let items = rows.iter().map(eni_row).collect();
            with_tags(c, items, |e: &NetworkInterface| &e.id, |e, t| e.tags = t).await
        })
    }

    fn register(
        &self,
        account_id: &str,
        vpcs: &[Vpc],
        subnets: &[Subnet],
        enis: &[NetworkInterface],
    ) -> Result<()> {
        write_tx!(self, account_id, |tx| {
            async {
            let mut named: Vec<(ResourceKind, &str, &str)> = Vec::new();
            for v in vpcs {
                named.push((ResourceKind::Vpc, &v.id, &v.account_id));
            }
            for s in subnets {
                named.push((ResourceKind::Subnet, &s.id, &s.account_id));
                named.push((ResourceKind::Vpc, &s.vpc_id, &s.account_id));
            }
            for e in enis {
                named.push((ResourceKind::NetworkInterface, &e.id, &e.account_id));
                named.push((ResourceKind::Subnet, &e.subnet_id, &e.account_id));
                named.push((ResourceKind::Vpc, &e.vpc_id, &e.account_id));
            }
            for (kind, id, account) in named {
                let foreign = || StoreError::ForeignResource {
                    kind: kind.as_str(),
                    id: id.to_string(),
                };
                if account != account_id {
                    return Err(foreign());
                }
                let owner = opt(&tx, &format!("SELECT account FROM {} WHERE id = $1", crate::table_name(kind)),
                        &[&id]).await?;
                if owner.is_some_and(|r| r.get::<_, &str>(0) != account_id) {
                    return Err(foreign());
                }
            }
            // `WHERE account = excluded.account`: a row another account inserted meanwhile
            // (in its own locked transaction) is not taken over; 0 rows → foreign.
            for v in vpcs {
                let n = exec(&tx, "INSERT INTO vpcs(id, account, cidr, tenancy, is_default, assoc_id, dhcp_id) VALUES ($1,$2,$3,$4,$5,$6,$7) \
                         ON CONFLICT(id) DO UPDATE SET cidr = excluded.cidr WHERE vpcs.account = excluded.account",
                        &[&v.id, &v.account_id, &v.cidr_block, &v.instance_tenancy, &v.is_default, &v.cidr_association_id, &v.dhcp_options_id]).await?;
                if n == 0 {
                    return Err(StoreError::ForeignResource { kind: "VPC", id: v.id.clone() });
                }
                insert_tags(&tx, &v.id, &v.tags).await?;
            }
            for s in subnets {
                let n = exec(&tx, "INSERT INTO subnets(id, account, vpc_id, cidr, az, default_for_az, az_id) VALUES ($1,$2,$3,$4,$5,$6,$7) \
                         ON CONFLICT(id) DO UPDATE SET cidr = excluded.cidr, vpc_id = excluded.vpc_id, az_id = excluded.az_id \
                         WHERE subnets.account = excluded.account",
                        &[&s.id, &s.account_id, &s.vpc_id, &s.cidr_block, &s.availability_zone, &s.default_for_az, &s.availability_zone_id]).await?;
                if n == 0 {
                    return Err(StoreError::ForeignResource { kind: "subnet", id: s.id.clone() });
                }
                insert_tags(&tx, &s.id, &s.tags).await?;
            }
            for e in enis {
                let n = exec(&tx, "INSERT INTO enis(id, account, subnet_id, vpc_id, az, description, private_ip, mac, groups, status, instance_id) \
                         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,'[]',$9,$10) \
                         ON CONFLICT(id) DO UPDATE SET subnet_id = excluded.subnet_id, vpc_id = excluded.vpc_id, \
                         private_ip = excluded.private_ip, mac = excluded.mac, status = excluded.status, instance_id = excluded.instance_id \
                         WHERE enis.account = excluded.account",
                        &[&e.id, &e.account_id, &e.subnet_id, &e.vpc_id, &e.availability_zone, &e.description, &e.private_ip_address, &e.mac_address, &e.status, &e.instance_id]).await?;
                if n == 0 {
                    return Err(StoreError::ForeignResource { kind: "network interface", id: e.id.clone() });
                }
                insert_tags(&tx, &e.id, &e.tags).await?;
            }
            if !(vpcs.is_empty() && subnets.is_empty() && enis.is_empty()) {
                bump(&tx).await?;
            }
            Ok(())
        }
        .await
        })
    }

    fn set_network_interface_status(&self, account_id: &str, id: &str, status: &str) -> Result<()> {
        write_tx!(self, account_id, |tx| async {
            let n = exec(
                &tx,
                "UPDATE enis SET status = $2 WHERE id = $1 AND status != $2 AND account = $3",
                &[&id, &status, &account_id],
            )
            .await?;
            if n > 0 {
                bump(&tx).await?;
            }
            Ok(())
        }
        .await)
    }

    fn change_version(&self) -> Result<Option<i64>> {
        read!(self, |c| {
            let v: i64 = one(c, "SELECT v FROM change_version", &[]).await?.get(0);
            Ok(Some(v))
        })
    }

    fn host_view(&self, account_id: &str, host: &str) -> Result<HostView> {
        read!(self, |c| {
            // Index `enis_host (account, host)`: both arms are index lookups.
            let rows = query_rows(c, &format!(
                        "SELECT {ENI_COLUMNS} FROM enis WHERE account = $1 AND host = $2 \
                         UNION ALL SELECT {ENI_COLUMNS} FROM enis WHERE account = $1 AND host IS NULL"
                    ),
                    &[&account_id, &host]).await?;
            let mut enis: Vec<NetworkInterface> = rows.iter().map(eni_row).collect();
            enis.sort_by(|a, b| a.id.cmp(&b.id));
            let enis = with_tags(c, enis, |e: &NetworkInterface| &e.id, |e, t| e.tags = t).await?;
            let mut subnet_ids: Vec<String> = enis.iter().map(|e| e.subnet_id.clone()).collect();
            subnet_ids.sort();
            subnet_ids.dedup();
            let mut vpc_ids: Vec<String> = enis.iter().map(|e| e.vpc_id.clone()).collect();
            vpc_ids.sort();
            vpc_ids.dedup();
            let subnets: Vec<Subnet> = query_rows(c, &format!("SELECT {SUBNET_COLUMNS} FROM subnets s WHERE s.id = ANY($1) AND s.account = $2 ORDER BY s.seq"),
                    &[&subnet_ids, &account_id]).await?
                .iter()
                .map(subnet_row)
                .collect();
            let subnets = with_tags(c, subnets, |s: &Subnet| &s.id, |s, t| s.tags = t).await?;
            let vpcs: Vec<Vpc> = query_rows(c, &format!("SELECT {VPC_COLUMNS} FROM vpcs WHERE id = ANY($1) AND account = $2 ORDER BY seq"),
                    &[&vpc_ids, &account_id]).await?
                .iter()
                .map(vpc_row)
                .collect();
            let vpcs = with_tags(c, vpcs, |v: &Vpc| &v.id, |v, t| v.tags = t).await?;
            let mut resources: Vec<String> = enis.iter().map(|e| e.id.clone()).collect();
            resources.extend(subnet_ids);
            resources.extend(vpc_ids);
            let rows = query_rows(c, &format!("SELECT {FLOW_LOG_COLUMNS} FROM flow_logs WHERE account = $1 AND resource_id = ANY($2) ORDER BY seq"),
                    &[&account_id, &resources]).await?;
            let flow_logs: Vec<FlowLog> = rows
                .iter()
                .map(|r| flow_log_row(r).map(|(_, f)| f))
                .collect::<Result<_>>()?;
            Ok(HostView {
                enis,
                vpcs,
                subnets,
                flow_logs,
            })
        })
    }

    fn eni_hosts(
        &self,
        account_id: &str,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, Option<String>>> {
        read!(self, |c| {
            let rows = query_rows(
                c,
                "SELECT id, host FROM enis WHERE id = ANY($1) AND account = $2",
                &[&ids, &account_id],
            )
            .await?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }
}

async fn token_check(
    c: &impl GenericClient,
    account: &str,
    action: &str,
    token: &str,
    fingerprint: &str,
) -> Result<TokenCheck> {
    let row = opt(c, "SELECT fingerprint, response FROM client_tokens WHERE account = $1 AND action = $2 AND token = $3",
            &[&account, &action, &token]).await?;
    Ok(match row {
        None => TokenCheck::New,
        Some(r) if r.get::<_, &str>(0) != fingerprint => TokenCheck::Mismatch,
        Some(r) => TokenCheck::Replay(
            serde_json::from_str(r.get::<_, &str>(1))
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        ),
    })
}

/// A fresh `fl-` ID not in use (the unique constraint on `id` is the last line).
async fn new_flow_log_id(tx: &Transaction<'_>) -> Result<String> {
    loop {
        let r: u128 = rand::random::<u128>();
        let id = flowlog_model::ResourceId::generate(flowlog_model::IdKind::FlowLog, r).to_string();
        let taken = opt(tx, "SELECT 1 FROM flow_logs WHERE id = $1", &[&id])
            .await?
            .is_some();
        if !taken {
            return Ok(id);
        }
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn url_options_are_split_and_passwords_redacted() {
        let p = split_url("postgres://u:secret@h:5433/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x");
        assert_eq!(p.rest, "postgres://u:secret@h:5433/db?application_name=x");
        assert_eq!(p.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(p.sslrootcert.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn like_patterns_escape_and_translate() {
        assert_eq!(like_pattern("a*b?c%d_e\\"), "a%b_c\\%d\\_e\\\\");
    }
}
