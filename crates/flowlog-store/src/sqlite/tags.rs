//! Tags on VPCs, subnets, ENIs and flow logs (at most TAG_LIMIT per resource).

use super::*;

pub(super) fn create_tags(
    store: &SqliteStore,
    account_id: &str,
    ids: &[String],
    tags: &Tags,
) -> Result<()> {
    store.write(|tx| {
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

pub(super) fn delete_tags(
    store: &SqliteStore,
    account_id: &str,
    ids: &[String],
    tags: &[(String, Option<String>)],
) -> Result<()> {
    store.write(|tx| {
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
