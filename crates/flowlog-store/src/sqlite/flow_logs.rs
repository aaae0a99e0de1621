//! Flow logs: ClientToken idempotency, per-resource checks, Describe filters and paging,
//! delivery status.

use super::*;

pub(super) fn check_client_token(
    store: &SqliteStore,
    account_id: &str,
    action: &str,
    token: &str,
    fingerprint: &str,
) -> Result<TokenCheck> {
    store.read(|c| token_check(c, account_id, action, token, fingerprint))
}

pub(super) fn create_flow_logs(store: &SqliteStore, req: &NewFlowLogs) -> Result<CreateOutcome> {
    store.write(|tx| {
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
                 log_group_name, role_arn, s3_bucket, s3_prefix, dup_key, log_format, max_agg, created_ms, deliver_status, \
                 deliver_cross_account_role) \
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,'{}',?16)",
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
                req.destination.cross_account_role(),
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

pub(super) fn delete_flow_logs(
    store: &SqliteStore,
    account_id: &str,
    ids: &[String],
) -> Result<Vec<String>> {
    store.write(|tx| {
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

pub(super) fn describe_flow_logs(store: &SqliteStore, q: &FlowLogQuery) -> Result<FlowLogPage> {
    let mut sql = format!("SELECT {FLOW_LOG_COLUMNS} FROM flow_logs WHERE account = ? AND seq > ?");
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
    store.read(|c| {
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

pub(super) fn set_deliver_status(
    store: &SqliteStore,
    account_id: &str,
    id: &str,
    status: DeliverStatus,
    error: Option<&str>,
) -> Result<()> {
    store.write(|tx| {
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

pub(super) fn all_flow_logs(store: &SqliteStore) -> Result<Vec<FlowLog>> {
    store.read(|c| {
        let mut st = c.prepare_cached(&format!(
            "SELECT {FLOW_LOG_COLUMNS} FROM flow_logs ORDER BY seq"
        ))?;
        let rows = st.query_map([], flow_log_row)?;
        Ok(rows
            .map(|r| r.map(|(_, f)| f))
            .collect::<std::result::Result<_, _>>()?)
    })
}
