//! CreateNetworkInterface, DescribeNetworkInterfaces, DeleteNetworkInterface.

use std::net::Ipv4Addr;

use flowlog_model::{IdKind, NetworkInterface};
use flowlog_store::NewNetworkInterface;

use super::{filter_resources, new_id, require_known, tag_filter_values, Ctx};
use crate::error::ApiError;
use crate::query::filters;
use crate::xml::Xml;

pub fn create(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let mut schema = vec![
        "SubnetId",
        "Description",
        "PrivateIpAddress",
        "SecurityGroupId.N",
        "PrivateIpAddresses.N.PrivateIpAddress",
        "PrivateIpAddresses.N.Primary",
        "SecondaryPrivateIpAddressCount",
        "Ipv6AddressCount",
        "Ipv6Addresses.N.Ipv6Address",
        "ClientToken",
    ];
    schema.extend(super::TAG_SPEC_SCHEMA);
    ctx.schema(&schema)?;
    let subnet_id = ctx.params.required("SubnetId")?;
    let ip = match ctx.params.optional("PrivateIpAddress") {
        Some(s) => Some(s.parse::<Ipv4Addr>().map_err(|_| {
            ApiError::invalid_value("PrivateIpAddress", s, "This is not a valid IPv4 address.")
        })?),
        None => None,
    };
    let groups: Vec<String> = ctx
        .params
        .list("SecurityGroupId")
        .into_iter()
        .map(str::to_string)
        .collect();
    let tags = super::tag_specifications(ctx.params, "network-interface")?;
    ctx.dry_run()?;
    super::well_formed(IdKind::Subnet, subnet_id, "InvalidSubnetID.Malformed")?;
    let id = new_id(IdKind::NetworkInterface);
    let eni = ctx
        .api
        .store
        .create_network_interface(&NewNetworkInterface {
            mac_address: mac_for(&id),
            id,
            account_id: ctx.account().to_string(),
            subnet_id: subnet_id.to_string(),
            description: ctx
                .params
                .get("Description")
                .unwrap_or_default()
                .to_string(),
            private_ip_address: ip,
            security_group_ids: groups,
            tags,
        })?;
    let mut x = Xml::response("CreateNetworkInterface", ctx.request_id);
    x.open("networkInterface");
    write_eni(&mut x, &eni, &ctx.api.config.region);
    x.close("networkInterface");
    Ok(x.finish("CreateNetworkInterface"))
}

/// A locally administered unicast MAC derived from the ENI ID.
fn mac_for(id: &str) -> String {
    let hex = id.trim_start_matches("eni-");
    let b = |i: usize| hex.get(i * 2..i * 2 + 2).unwrap_or("00");
    format!("02:{}:{}:{}:{}:{}", b(0), b(1), b(2), b(3), b(4))
}

fn private_dns(ip: &str, region: &str) -> String {
    let dashed = ip.replace('.', "-");
    if region == "us-east-1" {
        format!("ip-{dashed}.ec2.internal")
    } else {
        format!("ip-{dashed}.{region}.compute.internal")
    }
}

fn write_eni(x: &mut Xml, e: &NetworkInterface, region: &str) {
    let dns = private_dns(&e.private_ip_address, region);
    x.leaf("networkInterfaceId", &e.id)
        .leaf("subnetId", &e.subnet_id)
        .leaf("vpcId", &e.vpc_id)
        .leaf("availabilityZone", &e.availability_zone)
        .leaf("description", &e.description)
        .leaf("ownerId", &e.account_id)
        .bool("requesterManaged", false)
        .leaf("status", &e.status)
        .leaf("macAddress", &e.mac_address)
        .leaf("privateIpAddress", &e.private_ip_address)
        .leaf("privateDnsName", &dns)
        .bool("sourceDestCheck", true)
        .leaf("interfaceType", "interface")
        .list("groupSet", &e.security_group_ids, |x, g| {
            x.leaf("groupId", g);
        })
        .open("privateIpAddressesSet")
        .open("item")
        .leaf("privateIpAddress", &e.private_ip_address)
        .leaf("privateDnsName", &dns)
        .bool("primary", true)
        .close("item")
        .close("privateIpAddressesSet")
        .empty("ipv6AddressesSet")
        .tags(&e.tags);
}

const FILTERS: &[&str] = &[
    "network-interface-id",
    "subnet-id",
    "vpc-id",
    "private-ip-address",
    "addresses.private-ip-address",
    "availability-zone",
    "status",
    "description",
    "mac-address",
    "owner-id",
    "group-id",
    "interface-type",
    "requester-managed",
    "source-dest-check",
];

pub fn describe(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    ctx.schema(&[
        "NetworkInterfaceId.N",
        "Filter.N.Name",
        "Filter.N.Value.N",
        "MaxResults",
        "NextToken",
    ])?;
    let ids = crate::query::id_list(ctx.params, "NetworkInterfaceId")?;
    let filters = filters(ctx.params)?;
    let all = ctx.api.store.network_interfaces(ctx.account())?;
    ctx.dry_run()?;
    let known: Vec<&str> = all.iter().map(|e| e.id.as_str()).collect();
    require_known(
        &ids,
        &known,
        "InvalidNetworkInterfaceID.NotFound",
        "networkInterface",
    )?;
    let all: Vec<NetworkInterface> = all
        .into_iter()
        .filter(|e| ids.is_empty() || ids.contains(&e.id.as_str()))
        .collect();
    let enis = filter_resources(all, &filters, FILTERS, |e, name| {
        if let Some(t) = tag_filter_values(&e.tags, name) {
            return t;
        }
        match name {
            "network-interface-id" => vec![e.id.clone()],
            "subnet-id" => vec![e.subnet_id.clone()],
            "vpc-id" => vec![e.vpc_id.clone()],
            "private-ip-address" | "addresses.private-ip-address" => {
                vec![e.private_ip_address.clone()]
            }
            "availability-zone" => vec![e.availability_zone.clone()],
            "status" => vec![e.status.clone()],
            "description" => vec![e.description.clone()],
            "mac-address" => vec![e.mac_address.clone()],
            "owner-id" => vec![e.account_id.clone()],
            "group-id" => e.security_group_ids.clone(),
            "interface-type" => vec!["interface".into()],
            "requester-managed" => vec!["false".into()],
            "source-dest-check" => vec!["true".into()],
            _ => vec![],
        }
    })?;
    let region = ctx.api.config.region.clone();
    let mut x = Xml::response("DescribeNetworkInterfaces", ctx.request_id);
    x.list("networkInterfaceSet", &enis, |x, e| {
        write_eni(x, e, &region)
    });
    Ok(x.finish("DescribeNetworkInterfaces"))
}

pub fn delete(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    ctx.schema(&["NetworkInterfaceId"])?;
    let id = ctx.params.required("NetworkInterfaceId")?;
    super::well_formed(
        IdKind::NetworkInterface,
        id,
        "InvalidNetworkInterfaceId.Malformed",
    )?;
    ctx.dry_run()?;
    ctx.api.store.delete_network_interface(ctx.account(), id)?;
    Ok(super::return_true(ctx, "DeleteNetworkInterface"))
}
