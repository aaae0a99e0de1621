//! The actions of the API, one file each (resource actions are grouped per resource), all
//! dispatched from [`Action`]. Every action follows the same steps, in the spec's order:
//! parameter schema (`UnknownParameter`) → static validation → DryRun → semantic checks in
//! the store → XML.

mod create_flow_logs;
mod delete_flow_logs;
mod describe_flow_logs;
mod network_interface;
mod subnet;
mod tags;
mod vpc;

use crate::error::ApiError;
use crate::query::Params;
use crate::{Api, Caller};

/// What every action gets.
pub struct Ctx<'a> {
    pub api: &'a Api,
    pub caller: &'a Caller,
    pub params: &'a Params,
    pub request_id: &'a str,
}

impl Ctx<'_> {
    pub fn account(&self) -> &str {
        &self.caller.account_id
    }

    /// Checks the parameter names against the action's schema (plus `DryRun`).
    pub fn schema(&self, names: &[&str]) -> Result<(), ApiError> {
        let mut all = Vec::with_capacity(names.len() + 1);
        all.push("DryRun");
        all.extend_from_slice(names);
        crate::query::check_known(self.params, &all)
    }

    /// Reads `DryRun`; when true, answers `DryRunOperation` (authorization already passed).
    pub fn dry_run(&self) -> Result<(), ApiError> {
        if self.params.bool("DryRun")? == Some(true) {
            return Err(ApiError::dry_run());
        }
        Ok(())
    }

    /// Parses `DryRun` early so a bad value is a validation error, not a late surprise.
    pub fn check_dry_run_syntax(&self) -> Result<(), ApiError> {
        self.params.bool("DryRun").map(|_| ())
    }
}

macro_rules! actions {
    ($($name:ident => $module:ident :: $func:ident),+ $(,)?) => {
        /// Every action this server implements.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Action { $($name),+ }

        impl Action {
            pub fn from_name(name: &str) -> Option<Action> {
                match name { $(stringify!($name) => Some(Action::$name),)+ _ => None }
            }

            pub fn name(self) -> &'static str {
                match self { $(Action::$name => stringify!($name)),+ }
            }

            pub fn run(self, ctx: &Ctx<'_>) -> Result<String, ApiError> {
                ctx.check_dry_run_syntax()?;
                match self { $(Action::$name => $module::$func(ctx)),+ }
            }
        }
    };
}

actions! {
    CreateFlowLogs => create_flow_logs::run,
    DeleteFlowLogs => delete_flow_logs::run,
    DescribeFlowLogs => describe_flow_logs::run,
    CreateVpc => vpc::create,
    DescribeVpcs => vpc::describe,
    DeleteVpc => vpc::delete,
    CreateSubnet => subnet::create,
    DescribeSubnets => subnet::describe,
    DeleteSubnet => subnet::delete,
    CreateNetworkInterface => network_interface::create,
    DescribeNetworkInterfaces => network_interface::describe,
    DeleteNetworkInterface => network_interface::delete,
    CreateTags => tags::create,
    DeleteTags => tags::delete,
}

/// The body of actions that answer only `<return>true</return>`.
pub fn return_true(ctx: &Ctx<'_>, action: &str) -> String {
    let mut x = crate::xml::Xml::response(action, ctx.request_id);
    x.leaf("return", "true");
    x.finish(action)
}

/// A fresh identifier of `kind` (17 hex digits).
pub fn new_id(kind: flowlog_model::IdKind) -> String {
    flowlog_model::ResourceId::generate(kind, rand::random()).to_string()
}

/// Checks a single resource ID parameter's form: `<Code>.Malformed` when it is not one.
pub fn well_formed(kind: flowlog_model::IdKind, id: &str, code: &str) -> Result<(), ApiError> {
    if flowlog_model::ids::is_valid(kind, id) {
        Ok(())
    } else {
        Err(ApiError::bad_request(code, format!("Invalid id: \"{id}\"")))
    }
}

/// Tags given at creation: `TagSpecification.N.ResourceType` + `TagSpecification.N.Tag.M.*`,
/// keeping only the specifications for `resource_type`.
pub fn tag_specifications(
    params: &Params,
    resource_type: &str,
) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    for i in params.struct_indices("TagSpecification") {
        let base = format!("TagSpecification.{i}");
        let rt = params
            .get(&format!("{base}.ResourceType"))
            .unwrap_or_default();
        if rt.is_empty() {
            return Err(ApiError::invalid_parameter(
                "Tag specification resource type must have a value",
            ));
        }
        if rt != resource_type {
            return Err(ApiError::bad_request(
                "InvalidParameterValue",
                format!("'{rt}' is not a valid taggable resource type for this operation."),
            ));
        }
        let tags = tags::read_tags(params, &format!("{base}.Tag"), true)?;
        if tags.is_empty() {
            return Err(ApiError::bad_request(
                "InvalidParameterValue",
                "Tag specification must have at least one tag",
            ));
        }
        for (k, v) in tags {
            out.push((k, v.unwrap_or_default()));
        }
    }
    Ok(out)
}

pub const TAG_SPEC_SCHEMA: [&str; 3] = [
    "TagSpecification.N.ResourceType",
    "TagSpecification.N.Tag.N.Key",
    "TagSpecification.N.Tag.N.Value",
];

/// Describe-call filters on in-memory resources: each filter name maps to the values a
/// resource has for it; unknown names are `InvalidParameterValue`.
pub fn filter_resources<T>(
    items: Vec<T>,
    filters: &[crate::query::Filter],
    known: &[&str],
    values_of: impl Fn(&T, &str) -> Vec<String>,
) -> Result<Vec<T>, ApiError> {
    for f in filters {
        let tag = f.name.starts_with("tag:") && f.name.len() > 4;
        if !tag && !known.contains(&f.name.as_str()) && f.name != "tag-key" && f.name != "tag-value"
        {
            return Err(ApiError::invalid_filter(&f.name));
        }
    }
    Ok(items
        .into_iter()
        .filter(|it| {
            filters.iter().all(|f| {
                let have = values_of(it, &f.name);
                have.iter().any(|h| crate::wildcard::any(&f.values, h))
            })
        })
        .collect())
}

/// Values of the generic tag filters for a resource's tags.
pub fn tag_filter_values(tags: &[(String, String)], name: &str) -> Option<Vec<String>> {
    if let Some(key) = name.strip_prefix("tag:") {
        return Some(
            tags.iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .collect(),
        );
    }
    match name {
        "tag-key" => Some(tags.iter().map(|(k, _)| k.clone()).collect()),
        "tag-value" => Some(tags.iter().map(|(_, v)| v.clone()).collect()),
        _ => None,
    }
}

/// The IDs asked for by `<Name>.N` that do not exist, as the `*.NotFound` error of Describe.
pub fn require_known(
    asked: &[&str],
    known: &[&str],
    code: &str,
    what: &str,
) -> Result<(), ApiError> {
    let missing: Vec<&str> = asked
        .iter()
        .copied()
        .filter(|a| !known.contains(a))
        .collect();
    match missing.as_slice() {
        [] => Ok(()),
        [one] => Err(ApiError::bad_request(
            code,
            format!("The {what} ID '{one}' does not exist"),
        )),
        many => Err(ApiError::bad_request(
            code,
            format!("The {what} IDs '{}' do not exist", many.join(", ")),
        )),
    }
}
