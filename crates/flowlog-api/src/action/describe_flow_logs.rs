//! DescribeFlowLogs: FlowLogIds and filters select (AND; values OR; `*`/`?` wildcards), then
//! the store pages by creation order (spec §3.3 rule 12). NextToken carries the position of
//! the last item returned, so pages stay stable while flow logs are added or deleted.

use flowlog_model::FlowLog;
use flowlog_store::{FlowLogField, FlowLogQuery};

use super::Ctx;
use crate::error::ApiError;
use crate::query::filters;
use crate::xml::Xml;

const TOKEN_PREFIX: &str = "fl1.";

pub fn run(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    ctx.schema(&[
        "Filter.N.Name",
        "Filter.N.Value.N",
        "FlowLogId.N",
        "MaxResults",
        "NextToken",
    ])?;
    let p = ctx.params;
    let ids: Vec<String> = crate::query::id_list(p, "FlowLogId")?
        .into_iter()
        .map(str::to_string)
        .collect();
    let max = p.int("MaxResults")?;
    if max.is_some() && !ids.is_empty() {
        return Err(ApiError::bad_request(
            "InvalidParameterCombination",
            "The parameter FlowLogIds cannot be used with the parameter MaxResults",
        ));
    }
    if let Some(m) = max {
        if m < 5 {
            return Err(ApiError::bad_request(
                "InvalidParameterValue",
                format!("Value ( {m} ) for parameter maxResults is invalid. Expecting a value greater than 5."),
            ));
        }
    }
    let mut conditions = Vec::new();
    for f in filters(p)? {
        let field = match f.name.as_str() {
            "flow-log-id" => FlowLogField::FlowLogId,
            "resource-id" => FlowLogField::ResourceId,
            "traffic-type" => FlowLogField::TrafficType,
            "log-destination-type" => FlowLogField::LogDestinationType,
            "log-group-name" => FlowLogField::LogGroupName,
            "deliver-log-status" => FlowLogField::DeliverLogsStatus,
            "tag-key" => FlowLogField::TagKey,
            "tag-value" => FlowLogField::TagValue,
            n if n.starts_with("tag:") && n.len() > 4 => FlowLogField::Tag(n[4..].to_string()),
            other => return Err(ApiError::invalid_filter(other)),
        };
        conditions.push((field, f.values));
    }
    let after_seq = match p.optional("NextToken") {
        None => 0,
        Some(t) => decode_token(t).ok_or_else(|| {
            ApiError::bad_request("InvalidNextToken", format!("The token '{t}' is invalid."))
        })?,
    };
    ctx.dry_run()?;
    let limit = max.map(|m| m.min(1000) as usize);
    let page = ctx.api.store.describe_flow_logs(&FlowLogQuery {
        account_id: ctx.account().to_string(),
        ids,
        conditions,
        after_seq,
        limit,
    })?;
    let mut x = Xml::response("DescribeFlowLogs", ctx.request_id);
    x.list("flowLogSet", &page.flow_logs, write_flow_log);
    if let Some(seq) = page.next_seq {
        x.leaf("nextToken", &encode_token(seq));
    }
    Ok(x.finish("DescribeFlowLogs"))
}

fn write_flow_log(x: &mut Xml, f: &FlowLog) {
    x.leaf("creationTime", &crate::iso8601_ms(f.creation_time_ms));
    if f.deliver_status == flowlog_model::DeliverStatus::Failed {
        x.leaf_opt("deliverLogsErrorMessage", f.deliver_error.as_deref());
    }
    x.leaf_opt("deliverLogsPermissionArn", f.destination.role_arn())
        .leaf("deliverLogsStatus", f.deliver_status.as_str())
        .leaf("flowLogId", &f.id)
        .leaf("flowLogStatus", "ACTIVE")
        .leaf_opt("logGroupName", f.destination.log_group_name())
        .leaf("resourceId", &f.resource_id)
        .leaf("trafficType", f.traffic_type.as_str())
        .leaf("logDestinationType", f.destination.kind().as_str())
        .leaf_opt("logDestination", f.destination.log_destination())
        .leaf_opt("logFormat", f.log_format.as_deref());
    if let Some(m) = f.max_aggregation_interval {
        x.num("maxAggregationInterval", m);
    }
    x.leaf_opt(
        "deliverCrossAccountRole",
        f.destination.cross_account_role(),
    );
    if let flowlog_model::Destination::S3 { .. } = f.destination {
        // S3 flow logs made before DestinationOptions existed report the defaults, as AWS does.
        let o = f.destination_options.unwrap_or_default();
        x.open("destinationOptions")
            .leaf("fileFormat", o.file_format.as_str())
            .leaf(
                "hiveCompatiblePartitions",
                bool_text(o.hive_compatible_partitions),
            )
            .leaf("perHourPartition", bool_text(o.per_hour_partition))
            .close("destinationOptions");
    }
    if !f.tags.is_empty() {
        x.tags(&f.tags);
    }
}

fn bool_text(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

fn encode_token(seq: i64) -> String {
    format!("{TOKEN_PREFIX}{seq:x}.{:08x}", check(seq))
}

fn decode_token(t: &str) -> Option<i64> {
    let rest = t.strip_prefix(TOKEN_PREFIX)?;
    let (seq, sum) = rest.split_once('.')?;
    let seq = i64::from_str_radix(seq, 16).ok().filter(|s| *s >= 0)?;
    (u32::from_str_radix(sum, 16).ok()? == check(seq)).then_some(seq)
}

/// A checksum so that a mistyped or made-up token is refused instead of silently paging.
fn check(seq: i64) -> u32 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(format!("flowlog-next-token:{seq}").as_bytes());
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        assert_eq!(decode_token(&encode_token(12345)), Some(12345));
        assert_eq!(decode_token("garbage"), None);
        assert_eq!(decode_token("fl1.10.00000000"), None);
    }
}
