//! CreateSubnet, DescribeSubnets, DeleteSubnet.

use flowlog_model::cidr::Cidr4;
use flowlog_model::{IdKind, Subnet};

use super::{filter_resources, new_id, require_known, tag_filter_values, Ctx};
use crate::error::ApiError;
use crate::query::filters;
use crate::xml::Xml;

pub fn create(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let mut schema = vec![
        "VpcId",
        "CidrBlock",
        "AvailabilityZone",
        "AvailabilityZoneId",
        "Ipv6CidrBlock",
    ];
    schema.extend(super::TAG_SPEC_SCHEMA);
    ctx.schema(&schema)?;
    let vpc_id = ctx.params.required("VpcId")?;
    let cidr = ctx.params.required("CidrBlock")?;
    let block = Cidr4::parse(cidr).ok_or_else(|| {
        ApiError::invalid_value("cidrBlock", cidr, "This is not a valid CIDR block.")
    })?;
    if !(16..=28).contains(&block.prefix) {
        return Err(ApiError::bad_request(
            "InvalidSubnet.Range",
            format!("The CIDR '{cidr}' is invalid."),
        ));
    }
    let region = &ctx.api.config.region;
    let az = ctx
        .params
        .optional("AvailabilityZone")
        .map(str::to_string)
        .unwrap_or_else(|| format!("{region}a"));
    if !az.starts_with(region.as_str())
        || az.len() != region.len() + 1
        || !az.ends_with(|c: char| c.is_ascii_lowercase())
    {
        return Err(ApiError::invalid_value(
            "AvailabilityZone",
            &az,
            &format!("Expecting a zone of {region}, such as {region}a."),
        ));
    }
    // `AvailabilityZoneId` (`use1-az1`): kept as given, it is the records' `az-id`.
    let az_id = match ctx.params.optional("AvailabilityZoneId") {
        None => None,
        Some(id) if valid_az_id(id) => Some(id.to_string()),
        Some(id) => {
            return Err(ApiError::invalid_value(
                "AvailabilityZoneId",
                id,
                "Expecting a zone ID such as use1-az1.",
            ))
        }
    };
    let tags = super::tag_specifications(ctx.params, "subnet")?;
    ctx.dry_run()?;
    super::well_formed(IdKind::Vpc, vpc_id, "InvalidVpcID.Malformed")?;
    let mut subnet = Subnet {
        id: new_id(IdKind::Subnet),
        account_id: ctx.account().to_string(),
        vpc_id: vpc_id.to_string(),
        cidr_block: cidr.to_string(),
        availability_zone: az,
        availability_zone_id: az_id,
        available_ip_address_count: block.usable(),
        default_for_az: false,
        tags,
    };
    ctx.api.store.create_subnet(&subnet)?;
    subnet.available_ip_address_count = block.usable();
    let mut x = Xml::response("CreateSubnet", ctx.request_id);
    x.open("subnet");
    write_subnet(&mut x, &subnet, "pending");
    x.close("subnet");
    Ok(x.finish("CreateSubnet"))
}

/// `<2-8 lowercase letters or digits>-az<1-2 digits>`, e.g. `use1-az1`, `euw2-az3`.
fn valid_az_id(id: &str) -> bool {
    let Some((loc, n)) = id.split_once("-az") else {
        return false;
    };
    (2..=8).contains(&loc.len())
        && loc
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && (1..=2).contains(&n.len())
        && n.bytes().all(|b| b.is_ascii_digit())
}

fn write_subnet(x: &mut Xml, s: &Subnet, state: &str) {
    x.leaf("subnetId", &s.id)
        .leaf(
            "subnetArn",
            &format!(
                "arn:aws:ec2:{}:{}:subnet/{}",
                &s.availability_zone[..s.availability_zone.len() - 1],
                s.account_id,
                s.id
            ),
        )
        .leaf("ownerId", &s.account_id)
        .leaf("state", state)
        .leaf("vpcId", &s.vpc_id)
        .leaf("cidrBlock", &s.cidr_block)
        .empty("ipv6CidrBlockAssociationSet")
        .num("availableIpAddressCount", s.available_ip_address_count)
        .leaf("availabilityZone", &s.availability_zone)
        .leaf_opt("availabilityZoneId", s.availability_zone_id.as_deref())
        .bool("defaultForAz", s.default_for_az)
        .bool("mapPublicIpOnLaunch", false)
        .bool("assignIpv6AddressOnCreation", false);
    if !s.tags.is_empty() {
        x.tags(&s.tags);
    }
}

const FILTERS: &[&str] = &[
    "subnet-id",
    "vpc-id",
    "cidr",
    "cidr-block",
    "cidrBlock",
    "availability-zone",
    "availabilityZone",
    "state",
    "default-for-az",
    "defaultForAz",
    "owner-id",
    "available-ip-address-count",
];

pub fn describe(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    ctx.schema(&[
        "SubnetId.N",
        "Filter.N.Name",
        "Filter.N.Value.N",
        "MaxResults",
        "NextToken",
    ])?;
    let ids = crate::query::id_list(ctx.params, "SubnetId")?;
    let filters = filters(ctx.params)?;
    let all = ctx.api.store.subnets(ctx.account())?;
    ctx.dry_run()?;
    let known: Vec<&str> = all.iter().map(|s| s.id.as_str()).collect();
    require_known(&ids, &known, "InvalidSubnetID.NotFound", "subnet")?;
    let all: Vec<Subnet> = all
        .into_iter()
        .filter(|s| ids.is_empty() || ids.contains(&s.id.as_str()))
        .collect();
    let subnets = filter_resources(all, &filters, FILTERS, |s, name| {
        if let Some(t) = tag_filter_values(&s.tags, name) {
            return t;
        }
        let one = match name {
            "subnet-id" => s.id.clone(),
            "vpc-id" => s.vpc_id.clone(),
            "cidr" | "cidr-block" | "cidrBlock" => s.cidr_block.clone(),
            "availability-zone" | "availabilityZone" => s.availability_zone.clone(),
            "state" => "available".into(),
            "default-for-az" | "defaultForAz" => s.default_for_az.to_string(),
            "owner-id" => s.account_id.clone(),
            "available-ip-address-count" => s.available_ip_address_count.to_string(),
            _ => return vec![],
        };
        vec![one]
    })?;
    let mut x = Xml::response("DescribeSubnets", ctx.request_id);
    x.list("subnetSet", &subnets, |x, s| {
        write_subnet(x, s, "available")
    });
    Ok(x.finish("DescribeSubnets"))
}

pub fn delete(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    ctx.schema(&["SubnetId"])?;
    let id = ctx.params.required("SubnetId")?;
    super::well_formed(IdKind::Subnet, id, "InvalidSubnetID.Malformed")?;
    ctx.dry_run()?;
    ctx.api.store.delete_subnet(ctx.account(), id)?;
    Ok(super::return_true(ctx, "DeleteSubnet"))
}
