//! Subnets: range inside the VPC, no overlap, list with free address counts, delete.

use super::*;

pub(super) fn create_subnet(store: &SqliteStore, s: &Subnet) -> Result<()> {
    store.write(|tx| {
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

pub(super) fn subnets(store: &SqliteStore, account_id: &str) -> Result<Vec<Subnet>> {
    store.read(|c| {
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

pub(super) fn delete_subnet(store: &SqliteStore, account_id: &str, id: &str) -> Result<()> {
    store.write(|tx| {
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
