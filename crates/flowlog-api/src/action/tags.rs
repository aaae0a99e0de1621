//! CreateTags and DeleteTags on VPCs, subnets, network interfaces and flow logs.

use super::Ctx;
use crate::error::ApiError;
use crate::query::Params;

/// Reads `<prefix>.N.Key` / `<prefix>.N.Value`. A key is 1..128 characters and may not start
/// with `aws:`; a value is at most 256. With `value_required` a missing value is empty.
pub fn read_tags(
    params: &Params,
    prefix: &str,
    value_required: bool,
) -> Result<Vec<(String, Option<String>)>, ApiError> {
    let mut out = Vec::new();
    for i in params.struct_indices(prefix) {
        let key = params
            .get(&format!("{prefix}.{i}.Key"))
            .ok_or_else(|| ApiError::missing(&format!("{prefix}.{i}.Key")))?;
        if key.is_empty() || key.chars().count() > 128 {
            return Err(ApiError::invalid_value(
                "Tag.Key",
                key,
                "Tag keys must be 1 to 128 characters.",
            ));
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(ApiError::bad_request(
                "InvalidParameterValue",
                "Tag keys starting with 'aws:' are reserved for internal use",
            ));
        }
        let value = params
            .get(&format!("{prefix}.{i}.Value"))
            .map(str::to_string);
        if let Some(v) = &value {
            if v.chars().count() > 256 {
                return Err(ApiError::invalid_value(
                    "Tag.Value",
                    v,
                    "Tag values may be at most 256 characters.",
                ));
            }
        }
        let value = if value_required {
            Some(value.unwrap_or_default())
        } else {
            value
        };
        out.push((key.to_string(), value));
    }
    Ok(out)
}

fn resource_ids(ctx: &Ctx<'_>) -> Result<Vec<String>, ApiError> {
    let ids: Vec<String> = crate::query::id_list(ctx.params, "ResourceId")?
        .into_iter()
        .map(str::to_string)
        .collect();
    if ids.is_empty() {
        return Err(ApiError::missing("ResourceId"));
    }
    Ok(ids)
}

pub fn create(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    ctx.schema(&["ResourceId.N", "Tag.N.Key", "Tag.N.Value"])?;
    let ids = resource_ids(ctx)?;
    let tags: Vec<(String, String)> = read_tags(ctx.params, "Tag", true)?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect();
    if tags.is_empty() {
        return Err(ApiError::missing("Tag"));
    }
    ctx.dry_run()?;
    ctx.api.store.create_tags(ctx.account(), &ids, &tags)?;
    Ok(super::return_true(ctx, "CreateTags"))
}

pub fn delete(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    ctx.schema(&["ResourceId.N", "Tag.N.Key", "Tag.N.Value"])?;
    let ids = resource_ids(ctx)?;
    let tags = read_tags(ctx.params, "Tag", false)?;
    ctx.dry_run()?;
    ctx.api.store.delete_tags(ctx.account(), &ids, &tags)?;
    Ok(super::return_true(ctx, "DeleteTags"))
}
