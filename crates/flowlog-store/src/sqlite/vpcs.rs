//! VPCs: create, list, delete (refused while subnets exist; removes their flow logs).

use super::*;

pub(super) fn create_vpc(store: &SqliteStore, vpc: &Vpc) -> Result<()> {
    store.write(|tx| {
        tx.execute(
            "INSERT INTO vpcs(id, account, cidr, tenancy, is_default, assoc_id, dhcp_id) VALUES (?1,?2,?3,?4,?5,?6,?7)",
            params![vpc.id, vpc.account_id, vpc.cidr_block, vpc.instance_tenancy, vpc.is_default, vpc.cidr_association_id, vpc.dhcp_options_id],
        )?;
        insert_tags(tx, &vpc.id, &vpc.tags)?;
        bump(tx)
    })
}

pub(super) fn vpcs(store: &SqliteStore, account_id: &str) -> Result<Vec<Vpc>> {
    store.read(|c| {
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

pub(super) fn delete_vpc(store: &SqliteStore, account_id: &str, id: &str) -> Result<()> {
    store.write(|tx| {
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
