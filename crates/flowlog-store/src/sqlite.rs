//! The SQLite backend: one file in the data dir, WAL journal, one writer connection behind a
//! mutex (write transactions are `BEGIN IMMEDIATE`) and a few reader connections that run
//! concurrently with it. Committed transactions survive a `kill -9` of the process.

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
    deliver_status, deliver_error, dest_options";

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
        self.write(|tx| {
            tx.execute(
                "INSERT INTO vpcs(id, account, cidr, tenancy, is_default, assoc_id, dhcp_id) VALUES (?1,?2,?3,?4,?5,?6,?7)",
                params![vpc.id, vpc.account_id, vpc.cidr_block, vpc.instance_tenancy, vpc.is_default, vpc.cidr_association_id, vpc.dhcp_options_id],
            )?;
            insert_tags(tx, &vpc.id, &vpc.tags)?;
            bump(tx)
        })
    }

    fn vpcs(&self, account_id: &str) -> Result<Vec<Vpc>> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {VPC_COLUMNS} FROM vpcs WHERE account = ?1 ORDER BY seq"
            ))?;
            let rows = st.query_map([account_id], vpc_row)?;
            let mut out: Vec<Vpc> = rows.collect::<std::result::Result<_, _>>()?;
            for v in &mut out {
                v.tags = tags_of(c, &v.id)?;
            }
            Ok(out)
        })
    }

    fn delete_vpc(&self, account_id: &str, id: &str) -> Result<()> {
        self.write(|tx| {
            if !exists(tx, "vpcs", account_id, id)? {
                return Err(not_found(ResourceKind::Vpc, id));
            }
            let subnets: i64 = tx.query_row(
                "SELECT COUNT(*) FROM subnets WHERE vpc_id = ?1",
                [id],
                |r| r.get(0),
            )?;
            if subnets > 0 {
                return Err(StoreError::DependencyViolation {
                    kind: ResourceKind::Vpc,
                    id: id.to_string(),
                });
            }
            delete_flow_logs_of(tx, account_id, id)?;
            tx.execute("DELETE FROM tags WHERE resource_id = ?1", [id])?;
            tx.execute("DELETE FROM vpcs WHERE id = ?1", [id])?;
            bump(tx)
        })
    }

    fn create_subnet(&self, s: &Subnet) -> Result<()> {
        self.write(|tx| {
            let vpc_cidr: Option<String> = tx
                .query_row("SELECT cidr FROM vpcs WHERE id = ?1 AND account = ?2", [&s.vpc_id, &s.account_id], |r| r.get(0))
                .optional()?;
            let vpc_cidr = vpc_cidr.ok_or_else(|| not_found(ResourceKind::Vpc, &s.vpc_id))?;
            let vpc = Cidr4::parse(&vpc_cidr).ok_or_else(|| StoreError::Corrupt(vpc_cidr.clone()))?;
            let new = Cidr4::parse(&s.cidr_block).ok_or_else(|| StoreError::Corrupt(s.cidr_block.clone()))?;
            if !vpc.contains(new) {
                return Err(StoreError::SubnetRange { cidr: s.cidr_block.clone() });
            }
            let mut st = tx.prepare_cached("SELECT cidr FROM subnets WHERE vpc_id = ?1")?;
            let others: Vec<String> = st.query_map([&s.vpc_id], |r| r.get(0))?.collect::<std::result::Result<_, _>>()?;
            if others.iter().filter_map(|c| Cidr4::parse(c)).any(|c| c.overlaps(new)) {
                return Err(StoreError::SubnetConflict { cidr: s.cidr_block.clone() });
            }
            tx.execute(
                "INSERT INTO subnets(id, account, vpc_id, cidr, az, default_for_az) VALUES (?1,?2,?3,?4,?5,?6)",
                params![s.id, s.account_id, s.vpc_id, s.cidr_block, s.availability_zone, s.default_for_az],
            )?;
            set_subnet_az_id(tx, &s.id, s.availability_zone_id.as_deref())?;
            insert_tags(tx, &s.id, &s.tags)?;
            bump(tx)
        })
    }

    fn subnets(&self, account_id: &str) -> Result<Vec<Subnet>> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {SUBNET_COLUMNS} FROM subnets s WHERE s.account = ?1 ORDER BY s.seq"
            ))?;
            let rows = st.query_map([account_id], subnet_row)?;
            let mut out: Vec<Subnet> = rows.collect::<std::result::Result<_, _>>()?;
            for s in &mut out {
                s.tags = tags_of(c, &s.id)?;
            }
            Ok(out)
        })
    }

    fn delete_subnet(&self, account_id: &str, id: &str) -> Result<()> {
        self.write(|tx| {
            if !exists(tx, "subnets", account_id, id)? {
                return Err(not_found(ResourceKind::Subnet, id));
            }
            let enis: i64 = tx.query_row(
                "SELECT COUNT(*) FROM enis WHERE subnet_id = ?1",
                [id],
                |r| r.get(0),
            )?;
            if enis > 0 {
                return Err(StoreError::DependencyViolation {
                    kind: ResourceKind::Subnet,
                    id: id.to_string(),
                });
            }
            delete_flow_logs_of(tx, account_id, id)?;
            tx.execute("DELETE FROM tags WHERE resource_id = ?1", [id])?;
            tx.execute("DELETE FROM subnets WHERE id = ?1", [id])?;
            bump(tx)
        })
    }

    fn create_network_interface(&self, n: &NewNetworkInterface) -> Result<NetworkInterface> {
        self.write(|tx| {
            let row: Option<(String, String, String)> = tx
                .query_row(
                    "SELECT vpc_id, cidr, az FROM subnets WHERE id = ?1 AND account = ?2",
                    [&n.subnet_id, &n.account_id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let (vpc_id, cidr, az) = row.ok_or_else(|| not_found(ResourceKind::Subnet, &n.subnet_id))?;
            let cidr = Cidr4::parse(&cidr).ok_or_else(|| StoreError::Corrupt(cidr.clone()))?;
            let mut st = tx.prepare_cached("SELECT private_ip FROM enis WHERE subnet_id = ?1")?;
            let used: std::collections::HashSet<u32> = st
                .query_map([&n.subnet_id], |r| r.get::<_, String>(0))?
                .filter_map(|r| r.ok()?.parse::<Ipv4Addr>().ok().map(u32::from))
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
                    Ipv4Addr::from(free.ok_or_else(|| {
                        StoreError::SubnetFull { subnet_id: n.subnet_id.clone() }
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
            tx.execute(
                "INSERT INTO enis(id, account, subnet_id, vpc_id, az, description, private_ip, mac, groups, status) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
                params![
                    eni.id, eni.account_id, eni.subnet_id, eni.vpc_id, eni.availability_zone, eni.description,
                    eni.private_ip_address, eni.mac_address,
                    serde_json::to_string(&eni.security_group_ids).unwrap_or_else(|_| "[]".into()), eni.status
                ],
            )?;
            insert_tags(tx, &eni.id, &eni.tags)?;
            bump(tx)?;
            Ok(eni)
        })
    }

    fn network_interfaces(&self, account_id: &str) -> Result<Vec<NetworkInterface>> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {ENI_COLUMNS} FROM enis WHERE account = ?1 ORDER BY seq"
            ))?;
            let mut out: Vec<NetworkInterface> = st
                .query_map([account_id], eni_row)?
                .collect::<std::result::Result<_, _>>()?;
            for e in &mut out {
                e.tags = tags_of(c, &e.id)?;
            }
            Ok(out)
        })
    }

    fn delete_network_interface(&self, account_id: &str, id: &str) -> Result<()> {
        self.write(|tx| {
            if !exists(tx, "enis", account_id, id)? {
                return Err(not_found(ResourceKind::NetworkInterface, id));
            }
            delete_flow_logs_of(tx, account_id, id)?;
            tx.execute("DELETE FROM tags WHERE resource_id = ?1", [id])?;
            tx.execute("DELETE FROM enis WHERE id = ?1", [id])?;
            bump(tx)
        })
    }

    fn create_tags(&self, account_id: &str, ids: &[String], tags: &Tags) -> Result<()> {
        self.write(|tx| {
            for id in ids {
                let known = match table_of(id) {
                    Some((table, _)) => exists(tx, table, account_id, id)?,
                    None => false,
                };
                if !known {
                    return Err(match table_of(id) {
                        Some((_, kind)) => not_found(kind, id),
                        None => StoreError::InvalidId { id: id.clone() },
                    });
                }
                insert_tags(tx, id, tags)?;
                let count: i64 = tx.query_row(
                    "SELECT COUNT(*) FROM tags WHERE resource_id = ?1",
                    [id],
                    |r| r.get(0),
                )?;
                if count > crate::TAG_LIMIT as i64 {
                    return Err(StoreError::TagLimitExceeded {
                        id: id.clone(),
                        limit: crate::TAG_LIMIT,
                    });
                }
            }
            bump(tx)
        })
    }

    fn delete_tags(
        &self,
        account_id: &str,
        ids: &[String],
        tags: &[(String, Option<String>)],
    ) -> Result<()> {
        self.write(|tx| {
            for id in ids {
                let known = table_of(id)
                    .map(|(t, _)| exists(tx, t, account_id, id))
                    .transpose()?
                    .unwrap_or(false);
                if !known {
                    return Err(match table_of(id) {
                        Some((_, kind)) if kind != ResourceKind::FlowLog => not_found(kind, id),
                        _ => StoreError::InvalidId { id: id.clone() },
                    });
                }
                if tags.is_empty() {
                    tx.execute("DELETE FROM tags WHERE resource_id = ?1", [id])?;
                }
                for (k, v) in tags {
                    match v {
                        Some(v) => tx.execute(
                            "DELETE FROM tags WHERE resource_id = ?1 AND key = ?2 AND value = ?3",
                            [id, k, v],
                        )?,
                        None => tx.execute(
                            "DELETE FROM tags WHERE resource_id = ?1 AND key = ?2",
                            [id, k],
                        )?,
                    };
                }
                if ResourceKind::of_id(id) == Some(ResourceKind::NetworkInterface) {
                    sync_host(tx, id)?;
                }
            }
            bump(tx)
        })
    }

    fn check_client_token(
        &self,
        account_id: &str,
        action: &str,
        token: &str,
        fingerprint: &str,
    ) -> Result<TokenCheck> {
        self.read(|c| token_check(c, account_id, action, token, fingerprint))
    }

    fn create_flow_logs(&self, req: &NewFlowLogs) -> Result<CreateOutcome> {
        self.write(|tx| {
            match token_check(tx, &req.account_id, "CreateFlowLogs", &req.client_token, &req.fingerprint)? {
                TokenCheck::Replay(o) => return Ok(o),
                TokenCheck::Mismatch => return Err(StoreError::IdempotentParameterMismatch),
                TokenCheck::New => {}
            }
            let kind = crate::kind_of(req.resource_type);
            let table = crate::table_name(kind);
            let dup_key = req.destination.duplicate_key();
            let mut outcome = CreateOutcome {
                client_token: req.client_token.clone(),
                flow_log_ids: Vec::new(),
                unsuccessful: Vec::new(),
            };
            for (i, rid) in req.resource_ids.iter().enumerate() {
                if !exists(tx, table, &req.account_id, rid)? {
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
                let dup: Option<i64> = tx
                    .prepare_cached("SELECT 1 FROM flow_logs WHERE account = ?1 AND resource_id = ?2 AND traffic_type = ?3 AND dup_key = ?4")?
                    .query_row(params![req.account_id, rid, req.traffic_type.as_str(), dup_key], |r| r.get(0))
                    .optional()?;
                if dup.is_some() {
                    outcome.unsuccessful.push(Unsuccessful::already_exists(rid));
                    continue;
                }
                if let Some(limit) = req.limit_per_resource {
                    let n: i64 = tx
                        .prepare_cached("SELECT COUNT(*) FROM flow_logs WHERE account = ?1 AND resource_id = ?2")?
                        .query_row([&req.account_id, rid], |r| r.get(0))?;
                    if n >= i64::from(limit) {
                        outcome.unsuccessful.push(Unsuccessful::limit_exceeded(rid));
                        continue;
                    }
                }
                let id = new_flow_log_id(tx, i)?;
                let (bucket, prefix) = match &req.destination {
                    Destination::S3 { bucket, prefix, .. } => (Some(bucket.as_str()), Some(prefix.as_str())),
                    _ => (None, None),
                };
                tx.prepare_cached(&format!(
                    "INSERT INTO flow_logs(id, account, resource_id, resource_type, traffic_type, dest_type, log_destination, \
                     log_group_name, role_arn, s3_bucket, s3_prefix, dup_key, log_format, max_agg, created_ms, deliver_status) \
                     VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,'{}')",
                    DeliverStatus::Success.as_str()
                ))?
                .execute(params![
                    id,
                    req.account_id,
                    rid,
                    req.resource_type.as_str(),
                    req.traffic_type.as_str(),
                    req.destination.kind().as_str(),
                    req.destination.log_destination(),
                    req.destination.log_group_name(),
                    req.destination.role_arn(),
                    bucket,
                    prefix,
                    dup_key,
                    req.log_format,
                    req.max_aggregation_interval,
                    req.creation_time_ms,
                ])?;
                set_destination_options(tx, &id, req.destination_options.as_ref())?;
                insert_tags(tx, &id, &req.tags)?;
                outcome.flow_log_ids.push(id);
            }
            let response = serde_json::to_string(&outcome).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            tx.execute(
                "INSERT INTO client_tokens(account, action, token, fingerprint, response, created_ms) VALUES (?1,'CreateFlowLogs',?2,?3,?4,?5)",
                params![req.account_id, req.client_token, req.fingerprint, response, req.creation_time_ms],
            )?;
            if !outcome.flow_log_ids.is_empty() {
                bump(tx)?;
            }
            Ok(outcome)
        })
    }

    fn delete_flow_logs(&self, account_id: &str, ids: &[String]) -> Result<Vec<String>> {
        self.write(|tx| {
            let mut missing = Vec::new();
            for id in ids {
                let n = tx
                    .prepare_cached("DELETE FROM flow_logs WHERE account = ?1 AND id = ?2")?
                    .execute([account_id, id])?;
                if n == 0 {
                    if !missing.contains(id) {
                        missing.push(id.clone());
                    }
                } else {
                    tx.execute("DELETE FROM tags WHERE resource_id = ?1", [id])?;
                }
            }
            if missing.len() < ids.len() {
                bump(tx)?;
            }
            Ok(missing)
        })
    }

    fn describe_flow_logs(&self, q: &FlowLogQuery) -> Result<FlowLogPage> {
        let mut sql =
            format!("SELECT {FLOW_LOG_COLUMNS} FROM flow_logs WHERE account = ? AND seq > ?");
        let mut binds: Vec<String> = vec![q.account_id.clone(), q.after_seq.to_string()];
        if !q.ids.is_empty() {
            sql.push_str(" AND id IN (");
            sql.push_str(&vec!["?"; q.ids.len()].join(","));
            sql.push(')');
            binds.extend(q.ids.iter().cloned());
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
                    format!(
                        "id IN (SELECT resource_id FROM tags WHERE key = ? AND {})",
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
        self.read(|c| {
            let mut st = c.prepare_cached(&sql)?;
            // The seq bind is an integer; SQLite compares the text form numerically after
            // affinity conversion only for columns, so bind it as a number explicitly.
            let mut values: Vec<rusqlite::types::Value> = binds
                .into_iter()
                .map(rusqlite::types::Value::Text)
                .collect();
            values[1] = rusqlite::types::Value::Integer(q.after_seq);
            let rows = st.query_map(params_from_iter(values), flow_log_row)?;
            let mut page: Vec<(i64, FlowLog)> = rows.collect::<std::result::Result<_, _>>()?;
            let mut next_seq = None;
            if let Some(limit) = q.limit {
                if page.len() > limit {
                    page.truncate(limit);
                    next_seq = page.last().map(|(s, _)| *s);
                }
            }
            let mut flow_logs = Vec::with_capacity(page.len());
            for (_, mut fl) in page {
                fl.tags = tags_of(c, &fl.id)?;
                flow_logs.push(fl);
            }
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
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE flow_logs SET deliver_status = ?2, deliver_error = ?3 WHERE id = ?1 AND account = ?4 \
                 AND (deliver_status IS NOT ?2 OR deliver_error IS NOT ?3)",
                params![id, status.as_str(), error, account_id],
            )?;
            if n > 0 {
                bump(tx)?;
            }
            Ok(())
        })
    }

    fn all_flow_logs(&self) -> Result<Vec<FlowLog>> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {FLOW_LOG_COLUMNS} FROM flow_logs ORDER BY seq"
            ))?;
            let rows = st.query_map([], flow_log_row)?;
            Ok(rows
                .map(|r| r.map(|(_, f)| f))
                .collect::<std::result::Result<_, _>>()?)
        })
    }

    fn all_network_interfaces(&self) -> Result<Vec<NetworkInterface>> {
        self.read(|c| {
            let mut st =
                c.prepare_cached(&format!("SELECT {ENI_COLUMNS} FROM enis ORDER BY seq"))?;
            let mut out: Vec<NetworkInterface> = st
                .query_map([], eni_row)?
                .collect::<std::result::Result<_, _>>()?;
            for e in &mut out {
                e.tags = tags_of(c, &e.id)?;
            }
            Ok(out)
        })
    }

    fn register(
        &self,
        account_id: &str,
        vpcs: &[Vpc],
        subnets: &[Subnet],
        enis: &[NetworkInterface],
    ) -> Result<()> {
        self.write(|tx| {
            // Ownership first, all of it, so a refused inventory writes nothing.
            let mut named: Vec<(&'static str, &str, &str)> = Vec::new();
            for v in vpcs {
                named.push(("vpcs", &v.id, &v.account_id));
            }
            for s in subnets {
                named.push(("subnets", &s.id, &s.account_id));
                named.push(("vpcs", &s.vpc_id, &s.account_id));
            }
            for e in enis {
                named.push(("enis", &e.id, &e.account_id));
                named.push(("subnets", &e.subnet_id, &e.account_id));
                named.push(("vpcs", &e.vpc_id, &e.account_id));
            }
            for (table, id, account) in named {
                let kind = match table {
                    "vpcs" => "VPC",
                    "subnets" => "subnet",
                    _ => "network interface",
                };
                if account != account_id {
                    return Err(StoreError::ForeignResource {
                        kind,
                        id: id.to_string(),
                    });
                }
                let owner: Option<String> = tx
                    .prepare_cached(&format!("SELECT account FROM {table} WHERE id = ?1"))?
                    .query_row([id], |r| r.get(0))
                    .optional()?;
                if owner.is_some_and(|o| o != account_id) {
                    return Err(StoreError::ForeignResource {
                        kind,
                        id: id.to_string(),
                    });
                }
            }
            for v in vpcs {
                tx.execute(
                    "INSERT INTO vpcs(id, account, cidr, tenancy, is_default, assoc_id, dhcp_id) VALUES (?1,?2,?3,?4,?5,?6,?7) \
                     ON CONFLICT(id) DO UPDATE SET cidr = excluded.cidr",
                    params![v.id, v.account_id, v.cidr_block, v.instance_tenancy, v.is_default, v.cidr_association_id, v.dhcp_options_id],
                )?;
                insert_tags(tx, &v.id, &v.tags)?;
            }
            for s in subnets {
                tx.execute(
                    "INSERT INTO subnets(id, account, vpc_id, cidr, az, default_for_az) VALUES (?1,?2,?3,?4,?5,?6) \
                     ON CONFLICT(id) DO UPDATE SET cidr = excluded.cidr, vpc_id = excluded.vpc_id",
                    params![s.id, s.account_id, s.vpc_id, s.cidr_block, s.availability_zone, s.default_for_az],
                )?;
                set_subnet_az_id(tx, &s.id, s.availability_zone_id.as_deref())?;
                insert_tags(tx, &s.id, &s.tags)?;
            }
            for e in enis {
                tx.execute(
                    "INSERT INTO enis(id, account, subnet_id, vpc_id, az, description, private_ip, mac, groups, status) \
                     VALUES (?1,?2,?3,?4,?5,?6,?7,?8,'[]',?9) \
                     ON CONFLICT(id) DO UPDATE SET subnet_id = excluded.subnet_id, vpc_id = excluded.vpc_id, \
                     private_ip = excluded.private_ip, mac = excluded.mac, status = excluded.status",
                    params![e.id, e.account_id, e.subnet_id, e.vpc_id, e.availability_zone, e.description, e.private_ip_address, e.mac_address, e.status],
                )?;
                set_eni_instance_id(tx, &e.id, e.instance_id.as_deref())?;
                insert_tags(tx, &e.id, &e.tags)?;
            }
            if !(vpcs.is_empty() && subnets.is_empty() && enis.is_empty()) {
                bump(tx)?;
            }
            Ok(())
        })
    }

    fn set_network_interface_status(&self, account_id: &str, id: &str, status: &str) -> Result<()> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE enis SET status = ?2 WHERE id = ?1 AND status != ?2 AND account = ?3",
                [id, status, account_id],
            )?;
            if n > 0 {
                bump(tx)?;
            }
            Ok(())
        })
    }

    fn change_version(&self) -> Result<Option<i64>> {
        self.read(|c| {
            Ok(Some(
                c.prepare_cached("SELECT v FROM change_version")?
                    .query_row([], |r| r.get(0))?,
            ))
        })
    }

    fn host_view(&self, account_id: &str, host: &str) -> Result<crate::HostView> {
        self.read(|c| {
            // Index `enis_host (account, host)` serves both arms.
            let mut st = c.prepare_cached(&format!(
                "SELECT {ENI_COLUMNS} FROM enis WHERE account = ?1 AND host = ?2 \
                 UNION ALL SELECT {ENI_COLUMNS} FROM enis WHERE account = ?1 AND host IS NULL"
            ))?;
            let mut enis: Vec<NetworkInterface> = st
                .query_map([account_id, host], eni_row)?
                .collect::<std::result::Result<_, _>>()?;
            enis.sort_by(|a, b| a.id.cmp(&b.id));
            for e in &mut enis {
                e.tags = tags_of(c, &e.id)?;
            }
            let mut subnet_ids: Vec<String> = enis.iter().map(|e| e.subnet_id.clone()).collect();
            subnet_ids.sort();
            subnet_ids.dedup();
            let mut vpc_ids: Vec<String> = enis.iter().map(|e| e.vpc_id.clone()).collect();
            vpc_ids.sort();
            vpc_ids.dedup();
            let mut subnets = Vec::new();
            for id in &subnet_ids {
                let mut st = c.prepare_cached(&format!(
                    "SELECT {SUBNET_COLUMNS} FROM subnets s WHERE s.id = ?1 AND s.account = ?2"
                ))?;
                if let Some(mut sn) = st.query_row([id, account_id], subnet_row).optional()? {
                    sn.tags = tags_of(c, &sn.id)?;
                    subnets.push(sn);
                }
            }
            let mut vpcs = Vec::new();
            for id in &vpc_ids {
                let mut st = c.prepare_cached(&format!(
                    "SELECT {VPC_COLUMNS} FROM vpcs WHERE id = ?1 AND account = ?2"
                ))?;
                if let Some(mut v) = st.query_row([id, account_id], vpc_row).optional()? {
                    v.tags = tags_of(c, &v.id)?;
                    vpcs.push(v);
                }
            }
            let mut flow_logs: Vec<(i64, FlowLog)> = Vec::new();
            let resources = enis.iter().map(|e| &e.id).chain(&subnet_ids).chain(&vpc_ids);
            for rid in resources {
                let mut st = c.prepare_cached(&format!(
                    "SELECT {FLOW_LOG_COLUMNS} FROM flow_logs WHERE account = ?1 AND resource_id = ?2"
                ))?;
                for r in st.query_map([account_id, rid.as_str()], flow_log_row)? {
                    flow_logs.push(r?);
                }
            }
            flow_logs.sort_by_key(|(seq, _)| *seq);
            Ok(crate::HostView {
                enis,
                vpcs,
                subnets,
                flow_logs: flow_logs.into_iter().map(|(_, f)| f).collect(),
            })
        })
    }

    fn eni_hosts(
        &self,
        account_id: &str,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, Option<String>>> {
        self.read(|c| {
            let mut st =
                c.prepare_cached("SELECT host FROM enis WHERE id = ?1 AND account = ?2")?;
            let mut out = std::collections::HashMap::new();
            for id in ids {
                if let Some(h) = st
                    .query_row([id.as_str(), account_id], |r| r.get::<_, Option<String>>(0))
                    .optional()?
                {
                    out.insert(id.clone(), h);
                }
            }
            Ok(out)
        })
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
