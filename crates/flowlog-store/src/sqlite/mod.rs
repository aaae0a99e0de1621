//! The SQLite backend: one file in the data dir, WAL journal, one writer connection behind a
//! mutex (write transactions are `BEGIN IMMEDIATE`) and a few reader connections that run
//! concurrently with it. Committed transactions survive a `kill -9` of the process.
//!
//! This file has the connections, the shared row mappers and helpers, and the `Store` impl,
//! which hands each operation to the module of its resource.

mod enis;
mod flow_logs;
mod subnets;
mod sync;
mod tags;
mod vpcs;

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use flowlog_model::cidr::Cidr4;
use flowlog_model::{
    DeliverStatus, Destination, DestinationOptions, FlowLog, LogDestinationType, NetworkInterface,
    ResourceType, Subnet, Tags, TrafficType, Vpc,
};
use rusqlite::{
    params, params_from_iter, Connection, OptionalExtension, Transaction, TransactionBehavior,
};

use crate::{
    schema, CreateOutcome, FlowLogField, FlowLogPage, FlowLogQuery, NewFlowLogs,
    NewNetworkInterface, ResourceKind, Result, Store, StoreError, TokenCheck, Unsuccessful,
};

const READERS: usize = 4;

pub struct SqliteStore {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        Self::open_reporting(path).map(|(s, _)| s)
    }

    /// Opens and migrates; also returns the migrations applied now (`flowlog migrate`).
    pub fn open_reporting(path: &Path) -> Result<(SqliteStore, Vec<(i64, &'static str)>)> {
        let mut writer = open(path)?;
        let applied = schema::migrate(&mut writer)?;
        let readers = (0..READERS)
            .map(|_| open(path).map(Mutex::new))
            .collect::<Result<Vec<_>>>()?;
        Ok((
            SqliteStore {
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
            },
            applied,
        ))
    }

    fn write<R>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<R>) -> Result<R> {
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let r = f(&tx)?;
        tx.commit()?;
        Ok(r)
    }

    fn read<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        let conn = self.readers[i].lock().unwrap_or_else(|p| p.into_inner());
        f(&conn)
    }
}

fn not_found(kind: ResourceKind, id: &str) -> StoreError {
    StoreError::NotFound {
        kind,
        id: id.to_string(),
    }
}

fn tags_of(conn: &Connection, id: &str) -> Result<Tags> {
    let mut st =
        conn.prepare_cached("SELECT key, value FROM tags WHERE resource_id = ?1 ORDER BY key")?;
    let rows = st.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

fn insert_tags(tx: &Transaction<'_>, id: &str, tags: &Tags) -> Result<()> {
    let mut st = tx.prepare_cached(
        "INSERT OR REPLACE INTO tags(resource_id, key, value) VALUES (?1, ?2, ?3)",
    )?;
    for (k, v) in tags {
        st.execute(params![id, k, v])?;
    }
    if ResourceKind::of_id(id) == Some(ResourceKind::NetworkInterface) {
        sync_host(tx, id)?;
    }
    Ok(())
}

/// Copies an ENI's `flowlog:host` tag into `enis.host` (indexed, for host_view).
fn sync_host(tx: &Transaction<'_>, id: &str) -> Result<()> {
    tx.prepare_cached(
        "UPDATE enis SET host = (SELECT value FROM tags WHERE resource_id = ?1 AND key = ?2) WHERE id = ?1",
    )?
    .execute(params![id, crate::HOST_TAG])?;
    Ok(())
}

/// Bumps the change counter: the last statement of a write that changed an agent's
/// desired state (the writer mutex and the transaction make it atomic with the data).
fn bump(tx: &Transaction<'_>) -> Result<()> {
    tx.prepare_cached("UPDATE change_version SET v = v + 1")?
        .execute([])?;
    Ok(())
}

fn exists(conn: &Connection, table: &str, account: &str, id: &str) -> Result<bool> {
    let sql = format!("SELECT 1 FROM {table} WHERE id = ?1 AND account = ?2");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id, account], |_| Ok(()))
        .optional()?
        .is_some())
}

fn table_of(id: &str) -> Option<(&'static str, ResourceKind)> {
    let kind = ResourceKind::of_id(id)?;
    Some((crate::table_name(kind), kind))
}

fn delete_flow_logs_of(tx: &Transaction<'_>, account: &str, resource_id: &str) -> Result<()> {
    tx.execute(
        "DELETE FROM tags WHERE resource_id IN (SELECT id FROM flow_logs WHERE account = ?1 AND resource_id = ?2)",
        [account, resource_id],
    )?;
    tx.execute(
        "DELETE FROM flow_logs WHERE account = ?1 AND resource_id = ?2",
        [account, resource_id],
    )?;
    Ok(())
}

const FLOW_LOG_COLUMNS: &str = "seq, id, account, resource_id, resource_type, traffic_type, dest_type, \
    log_destination, log_group_name, role_arn, s3_bucket, s3_prefix, log_format, max_agg, created_ms, \
    deliver_status, deliver_error, dest_options, deliver_cross_account_role";

fn flow_log_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, FlowLog)> {
    let corrupt = |i: usize, what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            what.to_string().into(),
        )
    };
    let rt: String = r.get(4)?;
    let tt: String = r.get(5)?;
    let dt: String = r.get(6)?;
    let ds: String = r.get(15)?;
    let destination = match LogDestinationType::parse(&dt).ok_or_else(|| corrupt(6, "dest_type"))? {
        LogDestinationType::S3 => Destination::S3 {
            arn: r.get::<_, Option<String>>(7)?.unwrap_or_default(),
            bucket: r.get::<_, Option<String>>(10)?.unwrap_or_default(),
            prefix: r.get::<_, Option<String>>(11)?.unwrap_or_default(),
        },
        LogDestinationType::CloudWatchLogs => Destination::CloudWatchLogs {
            group: r.get::<_, Option<String>>(8)?.unwrap_or_default(),
            arn: r.get(7)?,
            role_arn: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
        },
        LogDestinationType::KinesisDataFirehose => {
            let arn: String = r.get::<_, Option<String>>(7)?.unwrap_or_default();
            Destination::Firehose {
                stream: flowlog_model::resources::parse_firehose_arn(&arn)
                    .ok_or_else(|| corrupt(7, "log_destination"))?,
                arn,
                role_arn: r.get(9)?,
                cross_account_role: r.get(18)?,
            }
        }
    };
    Ok((
        r.get(0)?,
        FlowLog {
            id: r.get(1)?,
            account_id: r.get(2)?,
            resource_id: r.get(3)?,
            resource_type: ResourceType::parse(&rt).ok_or_else(|| corrupt(4, "resource_type"))?,
            traffic_type: TrafficType::parse(&tt).ok_or_else(|| corrupt(5, "traffic_type"))?,
            destination,
            log_format: r.get(12)?,
            max_aggregation_interval: r.get(13)?,
            creation_time_ms: r.get(14)?,
            deliver_status: DeliverStatus::parse(&ds)
                .ok_or_else(|| corrupt(15, "deliver_status"))?,
            deliver_error: r.get(16)?,
            tags: Vec::new(),
            destination_options: r
                .get::<_, Option<String>>(17)?
                .as_deref()
                .map(|s| DestinationOptions::decode(s).ok_or_else(|| corrupt(17, "dest_options")))
                .transpose()?,
        },
    ))
}

/// Escapes GLOB metacharacters other than `*` and `?` (which keep their wildcard meaning).
fn glob_pattern(v: &str) -> String {
    v.replace('[', "[[]")
}

fn has_wildcard(v: &str) -> bool {
    v.contains('*') || v.contains('?')
}

/// `(col = ? OR col GLOB ?)` for a list of values, pushing the bound values.
fn any_of(col: &str, values: &[String], binds: &mut Vec<String>) -> String {
    let parts: Vec<String> = values
        .iter()
        .map(|v| {
            if has_wildcard(v) {
                binds.push(glob_pattern(v));
                format!("{col} GLOB ?")
            } else {
                binds.push(v.clone());
                format!("{col} = ?")
            }
        })
        .collect();
    if parts.is_empty() {
        "0".to_string()
    } else {
        format!("({})", parts.join(" OR "))
    }
}

// Issue 12 columns (schema::ADDED_COLUMNS), written next to the layout-1 INSERTs.

fn set_subnet_az_id(tx: &Transaction<'_>, id: &str, az_id: Option<&str>) -> Result<()> {
    tx.prepare_cached("UPDATE subnets SET az_id = ?2 WHERE id = ?1")?
        .execute(params![id, az_id])?;
    Ok(())
}

fn set_eni_instance_id(tx: &Transaction<'_>, id: &str, instance_id: Option<&str>) -> Result<()> {
    tx.prepare_cached("UPDATE enis SET instance_id = ?2 WHERE id = ?1")?
        .execute(params![id, instance_id])?;
    Ok(())
}

fn set_destination_options(
    tx: &Transaction<'_>,
    id: &str,
    options: Option<&DestinationOptions>,
) -> Result<()> {
    if let Some(o) = options {
        tx.prepare_cached("UPDATE flow_logs SET dest_options = ?2 WHERE id = ?1")?
            .execute(params![id, o.encode()])?;
    }
    Ok(())
}

const ENI_COLUMNS: &str =
    "id, account, subnet_id, vpc_id, az, description, private_ip, mac, groups, status, instance_id";

const VPC_COLUMNS: &str = "id, account, cidr, tenancy, is_default, assoc_id, dhcp_id";

fn vpc_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Vpc> {
    Ok(Vpc {
        id: r.get(0)?,
        account_id: r.get(1)?,
        cidr_block: r.get(2)?,
        instance_tenancy: r.get(3)?,
        is_default: r.get(4)?,
        cidr_association_id: r.get(5)?,
        dhcp_options_id: r.get(6)?,
        tags: Vec::new(),
    })
}

const SUBNET_COLUMNS: &str = "s.id, s.account, s.vpc_id, s.cidr, s.az, s.default_for_az, \
    (SELECT COUNT(*) FROM enis e WHERE e.subnet_id = s.id), s.az_id";

fn subnet_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Subnet> {
    let cidr: String = r.get(3)?;
    let used: i64 = r.get(6)?;
    let usable = Cidr4::parse(&cidr).map(|c| c.usable()).unwrap_or(0);
    Ok(Subnet {
        id: r.get(0)?,
        account_id: r.get(1)?,
        vpc_id: r.get(2)?,
        cidr_block: cidr,
        availability_zone: r.get(4)?,
        availability_zone_id: r.get(7)?,
        default_for_az: r.get(5)?,
        available_ip_address_count: usable.saturating_sub(used as u64),
        tags: Vec::new(),
    })
}

fn eni_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<NetworkInterface> {
    let groups: String = r.get(8)?;
    Ok(NetworkInterface {
        id: r.get(0)?,
        account_id: r.get(1)?,
        subnet_id: r.get(2)?,
        vpc_id: r.get(3)?,
        availability_zone: r.get(4)?,
        description: r.get(5)?,
        private_ip_address: r.get(6)?,
        mac_address: r.get(7)?,
        security_group_ids: serde_json::from_str(&groups).unwrap_or_default(),
        status: r.get(9)?,
        tags: Vec::new(),
        instance_id: r.get(10)?,
    })
}

impl Store for SqliteStore {
    fn create_vpc(&self, vpc: &Vpc) -> Result<()> {
        vpcs::create_vpc(self, vpc)
    }

    fn vpcs(&self, account_id: &str) -> Result<Vec<Vpc>> {
        vpcs::vpcs(self, account_id)
    }

    fn delete_vpc(&self, account_id: &str, id: &str) -> Result<()> {
        vpcs::delete_vpc(self, account_id, id)
    }

    fn create_subnet(&self, s: &Subnet) -> Result<()> {
        subnets::create_subnet(self, s)
    }

    fn subnets(&self, account_id: &str) -> Result<Vec<Subnet>> {
        subnets::subnets(self, account_id)
    }

    fn delete_subnet(&self, account_id: &str, id: &str) -> Result<()> {
        subnets::delete_subnet(self, account_id, id)
    }

    fn create_network_interface(&self, n: &NewNetworkInterface) -> Result<NetworkInterface> {
        enis::create_network_interface(self, n)
    }

    fn network_interfaces(&self, account_id: &str) -> Result<Vec<NetworkInterface>> {
        enis::network_interfaces(self, account_id)
    }

    fn delete_network_interface(&self, account_id: &str, id: &str) -> Result<()> {
        enis::delete_network_interface(self, account_id, id)
    }

    fn all_network_interfaces(&self) -> Result<Vec<NetworkInterface>> {
        enis::all_network_interfaces(self)
    }

    fn set_network_interface_status(&self, account_id: &str, id: &str, status: &str) -> Result<()> {
        enis::set_network_interface_status(self, account_id, id, status)
    }

    fn eni_hosts(
        &self,
        account_id: &str,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, Option<String>>> {
        enis::eni_hosts(self, account_id, ids)
    }

    fn create_tags(&self, account_id: &str, ids: &[String], tags: &Tags) -> Result<()> {
        tags::create_tags(self, account_id, ids, tags)
    }

    fn delete_tags(
        &self,
        account_id: &str,
        ids: &[String],
        tags: &[(String, Option<String>)],
    ) -> Result<()> {
        tags::delete_tags(self, account_id, ids, tags)
    }

    fn check_client_token(
        &self,
        account_id: &str,
        action: &str,
        token: &str,
        fingerprint: &str,
    ) -> Result<TokenCheck> {
        flow_logs::check_client_token(self, account_id, action, token, fingerprint)
    }

    fn create_flow_logs(&self, req: &NewFlowLogs) -> Result<CreateOutcome> {
        flow_logs::create_flow_logs(self, req)
    }

    fn delete_flow_logs(&self, account_id: &str, ids: &[String]) -> Result<Vec<String>> {
        flow_logs::delete_flow_logs(self, account_id, ids)
    }

    fn describe_flow_logs(&self, q: &FlowLogQuery) -> Result<FlowLogPage> {
        flow_logs::describe_flow_logs(self, q)
    }

    fn set_deliver_status(
        &self,
        account_id: &str,
        id: &str,
        status: DeliverStatus,
        error: Option<&str>,
    ) -> Result<()> {
        flow_logs::set_deliver_status(self, account_id, id, status, error)
    }

    fn all_flow_logs(&self) -> Result<Vec<FlowLog>> {
        flow_logs::all_flow_logs(self)
    }

    fn register(
        &self,
        account_id: &str,
        vpcs: &[Vpc],
        subnets: &[Subnet],
        enis: &[NetworkInterface],
    ) -> Result<()> {
        sync::register(self, account_id, vpcs, subnets, enis)
    }

    fn change_version(&self) -> Result<Option<i64>> {
        sync::change_version(self)
    }

    fn host_view(&self, account_id: &str, host: &str) -> Result<crate::HostView> {
        sync::host_view(self, account_id, host)
    }
}

fn token_check(
    c: &Connection,
    account: &str,
    action: &str,
    token: &str,
    fingerprint: &str,
) -> Result<TokenCheck> {
    let row: Option<(String, String)> = c
        .prepare_cached("SELECT fingerprint, response FROM client_tokens WHERE account = ?1 AND action = ?2 AND token = ?3")?
        .query_row([account, action, token], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(match row {
        None => TokenCheck::New,
        Some((fp, _)) if fp != fingerprint => TokenCheck::Mismatch,
        Some((_, resp)) => TokenCheck::Replay(
            serde_json::from_str(&resp).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        ),
    })
}

/// A fresh `fl-` + 17 hex ID that is not in use.
fn new_flow_log_id(tx: &Transaction<'_>, salt: usize) -> Result<String> {
    loop {
        let r: u128 = rand::random::<u128>() ^ (salt as u128);
        let id = flowlog_model::ResourceId::generate(flowlog_model::IdKind::FlowLog, r).to_string();
        if !exists_any(tx, &id)? {
            return Ok(id);
        }
    }
}

fn exists_any(c: &Connection, id: &str) -> Result<bool> {
    Ok(c.prepare_cached("SELECT 1 FROM flow_logs WHERE id = ?1")?
        .query_row([id], |_| Ok(()))
        .optional()?
        .is_some())
}
