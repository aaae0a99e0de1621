//! CreateVpc, DescribeVpcs, DeleteVpc.

use flowlog_model::cidr::Cidr4;
use flowlog_model::{IdKind, Vpc};

use super::{filter_resources, new_id, require_known, tag_filter_values, Ctx};
use crate::error::ApiError;
use crate::query::filters;
use crate::xml::Xml;

pub fn create(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let mut schema = vec![
        "CidrBlock",
        "AmazonProvidedIpv6CidrBlock",
        "InstanceTenancy",
    ];
    schema.extend(super::TAG_SPEC_SCHEMA);
    ctx.schema(&schema)?;
    let cidr = ctx.params.required("CidrBlock")?;
    let block = Cidr4::parse(cidr).ok_or_else(|| {
        ApiError::invalid_value("cidrBlock", cidr, "This is not a valid CIDR block.")
    })?;
    if !(16..=28).contains(&block.prefix) {
        return Err(ApiError::bad_request(
            "InvalidVpcRange",
            format!("The CIDR '{cidr}' is invalid."),
        ));
    }
    let tenancy = ctx.params.optional("InstanceTenancy").unwrap_or("default");
    if !["default", "dedicated", "host"].contains(&tenancy) {
        return Err(ApiError::invalid_value(
            "InstanceTenancy",
            tenancy,
            "Expecting default, dedicated or host.",
        ));
    }
    ctx.params.bool("AmazonProvidedIpv6CidrBlock")?;
    let tags = super::tag_specifications(ctx.params, "vpc")?;
    ctx.dry_run()?;
    let vpc = Vpc {
        id: new_id(IdKind::Vpc),
        account_id: ctx.account().to_string(),
        cidr_block: cidr.to_string(),
        instance_tenancy: tenancy.to_string(),
        is_default: false,
        cidr_association_id: format!("vpc-cidr-assoc-{}", &new_id(IdKind::Vpc)[4..]),
        dhcp_options_id: "dopt-00000000000000000".to_string(),
        tags,
    };
    ctx.api.store.create_vpc(&vpc)?;
    let mut x = Xml::response("CreateVpc", ctx.request_id);
    x.open("vpc");
    write_vpc(&mut x, &vpc, "pending");
    x.close("vpc");
    Ok(x.finish("CreateVpc"))
}

fn write_vpc(x: &mut Xml, v: &Vpc, state: &str) {
    x.leaf("vpcId", &v.id)
        .leaf("ownerId", &v.account_id)
        .leaf("state", state)
        .leaf("cidrBlock", &v.cidr_block)
        .open("cidrBlockAssociationSet")
        .open("item")
        .leaf("cidrBlock", &v.cidr_block)
        .leaf("associationId", &v.cidr_association_id)
        .open("cidrBlockState")
        .leaf("state", "associated")
        .close("cidrBlockState")
        .close("item")
        .close("cidrBlockAssociationSet")
        .empty("ipv6CidrBlockAssociationSet")
        .leaf("dhcpOptionsId", &v.dhcp_options_id)
        .leaf("instanceTenancy", &v.instance_tenancy)
        .bool("isDefault", v.is_default);
    if !v.tags.is_empty() {
        x.tags(&v.tags);
    }
}

const FILTERS: &[&str] = &[
    "vpc-id",
    "cidr",
    "cidr-block-association.cidr-block",
    "cidr-block-association.association-id",
    "cidr-block-association.state",
    "state",
    "is-default",
    "owner-id",
    "dhcp-options-id",
];

pub fn describe(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    ctx.schema(&[
        "VpcId.N",
        "Filter.N.Name",
        "Filter.N.Value.N",
        "MaxResults",
        "NextToken",
    ])?;
    let ids = crate::query::id_list(ctx.params, "VpcId")?;
    let filters = filters(ctx.params)?;
    let all = ctx.api.store.vpcs(ctx.account())?;
    let known: Vec<&str> = all.iter().map(|v| v.id.as_str()).collect();
    ctx.dry_run()?;
    require_known(&ids, &known, "InvalidVpcID.NotFound", "vpc")?;
    let all: Vec<Vpc> = all
        .into_iter()
        .filter(|v| ids.is_empty() || ids.contains(&v.id.as_str()))
        .collect();
    let vpcs = filter_resources(all, &filters, FILTERS, |v, name| {
        if let Some(t) = tag_filter_values(&v.tags, name) {
            return t;
        }
        let one = match name {
            "vpc-id" => v.id.clone(),
            "cidr" | "cidr-block-association.cidr-block" => v.cidr_block.clone(),
            "cidr-block-association.association-id" => v.cidr_association_id.clone(),
            "cidr-block-association.state" => "associated".into(),
            "state" => "available".into(),
            "is-default" => v.is_default.to_string(),
            "owner-id" => v.account_id.clone(),
            "dhcp-options-id" => v.dhcp_options_id.clone(),
            _ => return vec![],
        };
        vec![one]
    })?;
    let mut x = Xml::response("DescribeVpcs", ctx.request_id);
    x.list("vpcSet", &vpcs, |x, v| write_vpc(x, v, "available"));
    Ok(x.finish("DescribeVpcs"))
}

pub fn delete(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    ctx.schema(&["VpcId"])?;
    let id = ctx.params.required("VpcId")?;
    super::well_formed(IdKind::Vpc, id, "InvalidVpcID.Malformed")?;
    ctx.dry_run()?;
    ctx.api.store.delete_vpc(ctx.account(), id)?;
    Ok(super::return_true(ctx, "DeleteVpc"))
}
