//! CreateFlowLogs (2018-08-07 revision): validation in the order of spec §3.1, DryRun,
//! ClientToken idempotency (§9), the optional S3 bucket check (rule 21), then the
//! per-resource outcomes of §3.5, decided inside one store transaction.

use flowlog_model::record::{Field, RecordFormat};
use flowlog_model::resources::{parse_firehose_arn, parse_s3_arn};
use flowlog_model::{
    Destination, DestinationOptions, FileFormat, LogDestinationType, ResourceType, TrafficType,
};
use flowlog_store::{NewFlowLogs, TokenCheck};

use super::Ctx;
use crate::error::ApiError;
use crate::xml::Xml;
use crate::BucketStatus;

const MAX_RESOURCE_IDS: usize = 1000;

const SCHEMA: &[&str] = &[
    "ClientToken",
    "DeliverLogsPermissionArn",
    "DeliverCrossAccountRole",
    "LogGroupName",
    "ResourceId.N",
    "ResourceType",
    "TrafficType",
    "LogDestinationType",
    "LogDestination",
    "LogFormat",
    "MaxAggregationInterval",
    "DestinationOptions.FileFormat",
    "DestinationOptions.HiveCompatiblePartitions",
    "DestinationOptions.PerHourPartition",
    "TagSpecification.N.ResourceType",
    "TagSpecification.N.Tag.N.Key",
    "TagSpecification.N.Tag.N.Value",
];

pub fn run(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    ctx.schema(SCHEMA)?;
    let req = parse(ctx)?;
    ctx.dry_run()?;
    let api = ctx.api;
    match api.store.check_client_token(
        ctx.account(),
        "CreateFlowLogs",
        &req.client_token,
        &req.fingerprint,
    )? {
        TokenCheck::Replay(outcome) => return Ok(render(ctx, &outcome)),
        TokenCheck::Mismatch => {
            return Err(flowlog_store::StoreError::IdempotentParameterMismatch.into())
        }
        TokenCheck::New => {}
    }
    let mut req = req;
    if let (Destination::S3 { bucket, prefix, .. }, Some(checker)) =
        (&req.destination, &api.buckets)
    {
        req.destination_error = match checker.check(bucket, prefix) {
            BucketStatus::Writable => None,
            BucketStatus::Missing => Some(("400".into(), format!("LogDestination: {bucket} does not exist"))),
            BucketStatus::AccessDenied => Some((
                "400".into(),
                format!("Access Denied for LogDestination: {bucket}. Please check LogDestination permission"),
            )),
            BucketStatus::Unavailable(why) => {
                return Err(ApiError::new(
                    503,
                    "ServiceUnavailable",
                    format!("Cannot check the S3 bucket {bucket} right now ({why}); retry the request."),
                ))
            }
        };
    }
    let outcome = api.store.create_flow_logs(&req)?;
    Ok(render(ctx, &outcome))
}

fn render(ctx: &Ctx<'_>, o: &flowlog_store::CreateOutcome) -> String {
    let mut x = Xml::response("CreateFlowLogs", ctx.request_id);
    x.leaf("clientToken", &o.client_token);
    x.string_list("flowLogIdSet", &o.flow_log_ids);
    x.list("unsuccessful", &o.unsuccessful, |x, u| {
        x.open("error")
            .leaf("code", &u.code)
            .leaf("message", &u.message)
            .close("error");
        x.leaf("resourceId", &u.resource_id);
    });
    x.finish("CreateFlowLogs")
}

fn parse(ctx: &Ctx<'_>) -> Result<NewFlowLogs, ApiError> {
    let p = ctx.params;
    // Rules 3-5: required members.
    let resource_type = p.required("ResourceType")?;
    let ids = p.list("ResourceId");
    if ids.is_empty() || ids.iter().all(|s| s.is_empty()) {
        return Err(ApiError::missing("resourceIdSet"));
    }
    let traffic_type = p.required("TrafficType")?;
    // Rule 6: enums, case-sensitive.
    let resource_type = ResourceType::parse(resource_type).ok_or_else(|| {
        ApiError::invalid_value(
            "ResourceType",
            resource_type,
            "Valid values are VPC, Subnet and NetworkInterface.",
        )
    })?;
    let traffic_type = TrafficType::parse(traffic_type).ok_or_else(|| {
        ApiError::invalid_value(
            "TrafficType",
            traffic_type,
            "Valid values are ACCEPT, REJECT and ALL.",
        )
    })?;
    let dest_type = match p.get("LogDestinationType") {
        None => LogDestinationType::CloudWatchLogs,
        Some(v) => LogDestinationType::parse(v).ok_or_else(|| {
            ApiError::invalid_value(
                "LogDestinationType",
                v,
                "Valid values are cloud-watch-logs, s3 and kinesis-data-firehose.",
            )
        })?,
    };
    // Rule 7.
    if ids.len() > MAX_RESOURCE_IDS {
        return Err(ApiError::bad_request(
            "InvalidParameterValue",
            format!(
                "The number of resource IDs ({}) exceeds the maximum of {MAX_RESOURCE_IDS}.",
                ids.len()
            ),
        ));
    }
    // Rule 8.
    for id in &ids {
        if !flowlog_model::ids::is_valid(resource_type.id_kind(), id) {
            return Err(ApiError::invalid_parameter(format!(
                "Invalid Resource id {id} for resource-type {resource_type}"
            )));
        }
    }
    let client_token = match p.get("ClientToken") {
        Some(t) if t.len() > 64 || !t.is_ascii() => {
            return Err(ApiError::invalid_value(
                "ClientToken",
                t,
                "Client tokens are at most 64 ASCII characters.",
            ))
        }
        Some(t) if !t.is_empty() => t.to_string(),
        _ => generated_token(),
    };
    let destination = destination(ctx, dest_type)?;
    let max_aggregation_interval = match p.int("MaxAggregationInterval")? {
        None => None,
        Some(v @ (60 | 600)) => Some(v as u32),
        Some(_) => {
            return Err(ApiError::invalid_parameter(
                "Invalid Flow Log Max Aggregation Interval",
            ))
        }
    };
    let log_format = p.get("LogFormat").map(check_log_format).transpose()?;
    let destination_options = destination_options(ctx, dest_type)?;
    let tags = super::tag_specifications(p, "vpc-flow-log")?;
    let fingerprint = p
        .iter()
        .filter(|(k, _)| {
            !matches!(*k, "ClientToken" | "DryRun" | "Action" | "Version")
                && !k.starts_with("X-Amz-")
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    Ok(NewFlowLogs {
        account_id: ctx.account().to_string(),
        resource_type,
        resource_ids: ids.into_iter().map(str::to_string).collect(),
        traffic_type,
        destination,
        log_format,
        max_aggregation_interval,
        destination_options,
        tags,
        client_token,
        fingerprint,
        limit_per_resource: ctx.api.config.max_flow_logs_per_resource,
        destination_error: None,
        creation_time_ms: crate::now_ms(),
    })
}

/// Rules 9-16 of spec §3.1, with rule 13 (both given) checked first as real AWS does, and
/// the Firehose rules of §12 (see [`firehose_destination`]).
fn destination(ctx: &Ctx<'_>, kind: LogDestinationType) -> Result<Destination, ApiError> {
    let p = ctx.params;
    let group = p.optional("LogGroupName");
    let dest = p.optional("LogDestination");
    let role = p.optional("DeliverLogsPermissionArn");
    let cross_role = p.optional("DeliverCrossAccountRole");
    if group.is_some() && dest.is_some() {
        return Err(ApiError::invalid_parameter(
            "Please only provide LogGroupName or only provide LogDestination.",
        ));
    }
    if group.is_none() && dest.is_none() {
        return Err(ApiError::invalid_parameter(
            "LogDestination can't be empty if LogGroupName is not provided.",
        ));
    }
    match kind {
        LogDestinationType::S3 => {
            if group.is_some() {
                return Err(ApiError::invalid_parameter(
                    "LogDestination type must be cloud-watch-logs if LogGroupName is provided.",
                ));
            }
            if role.is_some() {
                return Err(ApiError::invalid_parameter(
                    "DeliverLogsPermissionArn is not applicable for s3 delivery",
                ));
            }
            if cross_role.is_some() {
                return Err(ApiError::invalid_parameter(
                    "DeliverCrossAccountRole is not applicable for s3 delivery",
                ));
            }
            let arn = dest.unwrap_or_default();
            let (bucket, prefix) = parse_s3_arn(arn).ok_or_else(|| {
                ApiError::invalid_parameter(format!(
                    "LogDestination: {arn} is not a valid S3 bucket ARN. Expected arn:aws:s3:::bucket-name or arn:aws:s3:::bucket-name/subfolder/."
                ))
            })?;
            if prefix.split('/').next() == Some("AWSLogs") {
                return Err(ApiError::invalid_parameter(
                    "LogDestination: AWSLogs is a reserved folder name and cannot be used as the subfolder of the bucket.",
                ));
            }
            Ok(Destination::S3 {
                arn: arn.to_string(),
                bucket,
                prefix,
            })
        }
        LogDestinationType::CloudWatchLogs => {
            let role = role.ok_or_else(|| {
                ApiError::invalid_parameter("DeliverLogsPermissionArn can't be empty if LogDestinationType is cloud-watch-logs.")
            })?;
            check_role_arn("DeliverLogsPermissionArn", role)?;
            if cross_role.is_some() {
                return Err(ApiError::invalid_parameter(
                    "DeliverCrossAccountRole is not applicable for cloud-watch-logs delivery",
                ));
            }
            let (group, arn) = match (group, dest) {
                (Some(g), _) => (g.to_string(), None),
                (None, Some(arn)) => (log_group_from_arn(ctx, arn)?, Some(arn.to_string())),
                (None, None) => unreachable!("checked above"),
            };
            if !valid_group_name(&group) {
                return Err(ApiError::invalid_parameter(format!(
                    "LogGroupName: {group} is not a valid log group name (1 to 512 characters of letters, digits, '_', '-', '/', '.', '#')."
                )));
            }
            Ok(Destination::CloudWatchLogs {
                group,
                arn,
                role_arn: role.to_string(),
            })
        }
        LogDestinationType::KinesisDataFirehose => {
            if group.is_some() {
                return Err(ApiError::invalid_parameter(
                    "LogDestination type must be cloud-watch-logs if LogGroupName is provided.",
                ));
            }
            firehose_destination(ctx, dest.unwrap_or_default(), role, cross_role)
        }
    }
}

/// `kinesis-data-firehose` (spec §12): `LogDestination` is a delivery-stream ARN in the
/// caller's region. A stream in the caller's account needs no role (`DeliverLogsPermissionArn`
/// optional, `DeliverCrossAccountRole` refused); a stream in another account needs both.
fn firehose_destination(
    ctx: &Ctx<'_>,
    arn: &str,
    role: Option<&str>,
    cross_role: Option<&str>,
) -> Result<Destination, ApiError> {
    let stream = parse_firehose_arn(arn).ok_or_else(|| {
        ApiError::invalid_parameter(format!(
            "LogDestination: {arn} is not a valid Kinesis Data Firehose delivery stream ARN. Expected arn:aws:firehose:<region>:<account>:deliverystream/<name>."
        ))
    })?;
    if stream.region != ctx.api.config.region {
        return Err(ApiError::invalid_parameter(
            "LogDestination must be in the same region as the API caller.",
        ));
    }
    if let Some(role) = role {
        check_role_arn("DeliverLogsPermissionArn", role)?;
    }
    if let Some(cross) = cross_role {
        check_role_arn("DeliverCrossAccountRole", cross)?;
    }
    if stream.account == ctx.account() {
        if cross_role.is_some() {
            return Err(ApiError::invalid_parameter(
                "DeliverCrossAccountRole is only applicable when the delivery stream is in another account.",
            ));
        }
    } else {
        if role.is_none() {
            return Err(ApiError::invalid_parameter(
                "DeliverLogsPermissionArn can't be empty if LogDestinationType is kinesis-data-firehose and the delivery stream is in another account.",
            ));
        }
        if cross_role.is_none() {
            return Err(ApiError::invalid_parameter(
                "DeliverCrossAccountRole can't be empty if the delivery stream is in another account.",
            ));
        }
    }
    Ok(Destination::Firehose {
        arn: arn.to_string(),
        stream,
        role_arn: role.map(str::to_string),
        cross_account_role: cross_role.map(str::to_string),
    })
}

fn check_role_arn(member: &str, role: &str) -> Result<(), ApiError> {
    if valid_role_arn(role) {
        Ok(())
    } else {
        Err(ApiError::invalid_parameter(format!(
            "{member}: {role} is not a valid IAM role ARN (arn:aws:iam::<account>:role/<name>)."
        )))
    }
}

fn log_group_from_arn(ctx: &Ctx<'_>, arn: &str) -> Result<String, ApiError> {
    let bad = || {
        ApiError::invalid_parameter(format!(
            "LogDestination: {arn} is not a valid log group ARN (arn:aws:logs:<region>:<account>:log-group:<name>, without ':*')."
        ))
    };
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    if parts.len() != 7
        || parts[0] != "arn"
        || !parts[1].starts_with("aws")
        || parts[2] != "logs"
        || parts[5] != "log-group"
    {
        return Err(bad());
    }
    if parts[6].ends_with(":*") || parts[6].contains(':') || parts[6].is_empty() {
        return Err(bad());
    }
    if parts[3] != ctx.api.config.region {
        return Err(ApiError::invalid_parameter(
            "LogDestination must be in the same region as the API caller.",
        ));
    }
    Ok(parts[6].to_string())
}

fn valid_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5]
            .strip_prefix("role/")
            .is_some_and(|n| !n.is_empty())
}

fn valid_group_name(g: &str) -> bool {
    (1..=512).contains(&g.len())
        && g.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'/' | b'#'))
}

/// `LogFormat` (spec §4.1): `${field}` tokens separated by single spaces, every one a VPC
/// flow-log field; Transit Gateway fields are refused on VPC, subnet and ENI flow logs.
fn check_log_format(f: &str) -> Result<String, ApiError> {
    use flowlog_model::record::FormatError;
    match RecordFormat::parse_checked(f) {
        Ok(_) => Ok(f.to_string()),
        Err(FormatError::Syntax) => Err(ApiError::invalid_parameter(format!(
            "1 validation error detected: Value '{f}' at 'logFormat' has an invalid format: use ${{field}} tokens separated by single spaces, at least one."
        ))),
        Err(e @ FormatError::Unknown(_)) => {
            let supported: Vec<String> = Field::ALL
                .iter()
                .map(|k| format!("${{{}}}", k.name()))
                .collect();
            Err(ApiError::invalid_parameter(format!(
                "Invalid LogFormat: {e}. Supported fields: {}.",
                supported.join(" ")
            )))
        }
        Err(e @ FormatError::TransitGatewayOnly(_)) => {
            Err(ApiError::invalid_parameter(format!("Invalid LogFormat: {e}.")))
        }
    }
}

/// `DestinationOptions` (spec §5.5): S3 only; FileFormat `plain-text` | `parquet`; the two
/// partition flags booleans. None for CloudWatch Logs; for S3 the defaults fill what is absent.
fn destination_options(
    ctx: &Ctx<'_>,
    kind: LogDestinationType,
) -> Result<Option<DestinationOptions>, ApiError> {
    let p = ctx.params;
    let given = p.names().any(|n| n.starts_with("DestinationOptions."));
    if kind != LogDestinationType::S3 {
        if given {
            return Err(ApiError::invalid_parameter(
                "DestinationOptions can only be used with LogDestinationType s3.",
            ));
        }
        return Ok(None);
    }
    let file_format = match p.get("DestinationOptions.FileFormat") {
        None => FileFormat::PlainText,
        Some(v) => FileFormat::parse(v).ok_or_else(|| {
            ApiError::invalid_value(
                "DestinationOptions.FileFormat",
                v,
                "Valid values are plain-text and parquet.",
            )
        })?,
    };
    Ok(Some(DestinationOptions {
        file_format,
        hive_compatible_partitions: p
            .bool("DestinationOptions.HiveCompatiblePartitions")?
            .unwrap_or(false),
        per_hour_partition: p
            .bool("DestinationOptions.PerHourPartition")?
            .unwrap_or(false),
    }))
}

/// A token for callers that sent none (AWS returns one too).
fn generated_token() -> String {
    use base64::Engine;
    let bytes: [u8; 30] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(bytes)
        .replace(['-', '_'], "x")
}
