//! DeleteFlowLogs: known IDs are deleted; unknown ones come back as `unsuccessful` items
//! (spec §3.2). Records already delivered stay where they are.

use super::Ctx;
use crate::error::ApiError;
use crate::xml::Xml;

pub fn run(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    ctx.schema(&["FlowLogId.N"])?;
    let ids: Vec<String> = crate::query::id_list(ctx.params, "FlowLogId")?
        .into_iter()
        .map(str::to_string)
        .collect();
    if ids.is_empty() {
        return Err(ApiError::bad_request(
            "InvalidParameterValue",
            "1 validation error detected: Value null at 'flowLogId' has an invalid format",
        ));
    }
    ctx.dry_run()?;
    let missing = ctx.api.store.delete_flow_logs(ctx.account(), &ids)?;
    let mut x = Xml::response("DeleteFlowLogs", ctx.request_id);
    // Each item names its own ID only, as AWS does: the reply grows linearly with the
    // request, never as the square of it.
    x.list("unsuccessful", &missing, |x, id| {
        let message =
            format!("These flow log ids in the input list are not found: [TotalCount: 1] {id}");
        x.open("error")
            .leaf("code", "InvalidFlowLogId.NotFound")
            .leaf("message", &message)
            .close("error")
            .leaf("resourceId", id);
    });
    Ok(x.finish("DeleteFlowLogs"))
}
