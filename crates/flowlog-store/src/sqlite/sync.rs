//! What agent sync needs: inventory registration, the change counter, one host's view.

use super::*;

pub(super) fn register(
    store: &SqliteStore,
    account_id: &str,
    vpcs: &[Vpc],
    subnets: &[Subnet],
    enis: &[NetworkInterface],
) -> Result<()> {
    store.write(|tx| {
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

pub(super) fn change_version(store: &SqliteStore) -> Result<Option<i64>> {
    store.read(|c| {
        Ok(Some(
            c.prepare_cached("SELECT v FROM change_version")?
                .query_row([], |r| r.get(0))?,
        ))
    })
}

pub(super) fn host_view(
    store: &SqliteStore,
    account_id: &str,
    host: &str,
) -> Result<crate::HostView> {
    store.read(|c| {
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
        let resources = enis
            .iter()
            .map(|e| &e.id)
            .chain(&subnet_ids)
            .chain(&vpc_ids);
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
