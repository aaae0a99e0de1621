//! Network interfaces: address allocation in the subnet, list, delete, status, hosts.

use super::*;

pub(super) fn create_network_interface(
    store: &SqliteStore,
    n: &NewNetworkInterface,
) -> Result<NetworkInterface> {
    store.write(|tx| {
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

pub(super) fn network_interfaces(
    store: &SqliteStore,
    account_id: &str,
) -> Result<Vec<NetworkInterface>> {
    store.read(|c| {
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

pub(super) fn delete_network_interface(
    store: &SqliteStore,
    account_id: &str,
    id: &str,
) -> Result<()> {
    store.write(|tx| {
        if !exists(tx, "enis", account_id, id)? {
            return Err(not_found(ResourceKind::NetworkInterface, id));
        }
        delete_flow_logs_of(tx, account_id, id)?;
        tx.execute("DELETE FROM tags WHERE resource_id = ?1", [id])?;
        tx.execute("DELETE FROM enis WHERE id = ?1", [id])?;
        bump(tx)
    })
}

pub(super) fn all_network_interfaces(store: &SqliteStore) -> Result<Vec<NetworkInterface>> {
    store.read(|c| {
        let mut st = c.prepare_cached(&format!("SELECT {ENI_COLUMNS} FROM enis ORDER BY seq"))?;
        let mut out: Vec<NetworkInterface> = st
            .query_map([], eni_row)?
            .collect::<std::result::Result<_, _>>()?;
        for e in &mut out {
            e.tags = tags_of(c, &e.id)?;
        }
        Ok(out)
    })
}

pub(super) fn set_network_interface_status(
    store: &SqliteStore,
    account_id: &str,
    id: &str,
    status: &str,
) -> Result<()> {
    store.write(|tx| {
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

pub(super) fn eni_hosts(
    store: &SqliteStore,
    account_id: &str,
    ids: &[String],
) -> Result<std::collections::HashMap<String, Option<String>>> {
    store.read(|c| {
        let mut st = c.prepare_cached("SELECT host FROM enis WHERE id = ?1 AND account = ?2")?;
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
