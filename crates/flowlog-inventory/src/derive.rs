//! The default layout for discovered interfaces: one default VPC per account whose CIDR is
//! the smallest block covering every interface's network, one subnet per distinct network,
//! and one ENI per interface. IDs are hashes of the account and stable facts (network,
//! namespace and interface name), so a restart finds the same IDs.

use std::net::Ipv4Addr;

use flowlog_model::cidr::Cidr4;
use flowlog_model::{NetworkInterface, Subnet, Vpc};

use crate::discover::HostInterface;
use crate::{stable_id, Binding, Inventory, BINDING_TAG};

/// Builds the default inventory of `account` in `region` for discovered interfaces.
pub fn default_inventory(account: &str, region: &str, interfaces: &[HostInterface]) -> Inventory {
    default_inventory_for_host(account, region, "", interfaces)
}

/// Like [`default_inventory`]; the host name enters the ENI IDs so that two hosts with an
/// `eth0` each get two ENIs.
pub fn default_inventory_for_host(
    account: &str,
    region: &str,
    host: &str,
    interfaces: &[HostInterface],
) -> Inventory {
    let mut inv = Inventory::default();
    let interfaces: Vec<&HostInterface> =
        interfaces.iter().filter(|i| !i.ipv4.is_empty()).collect();
    if interfaces.is_empty() {
        return inv;
    }
    let nets: Vec<Cidr4> = interfaces
        .iter()
        .map(|i| network(i.ipv4[0].0, i.ipv4[0].1))
        .collect();
    let vpc_cidr = covering(&nets);
    let vpc_id = stable_id("vpc", &[account, "default"]);
    inv.vpcs.push(Vpc {
        id: vpc_id.clone(),
        account_id: account.to_string(),
        cidr_block: vpc_cidr.to_string(),
        instance_tenancy: "default".into(),
        is_default: true,
        cidr_association_id: format!("vpc-cidr-assoc-{}", &vpc_id[4..]),
        dhcp_options_id: "dopt-00000000000000000".into(),
        tags: vec![("Name".into(), "flowlog-default".into())],
    });
    let az = format!("{region}a");
    for (iface, net) in interfaces.iter().copied().zip(&nets) {
        let cidr = net.to_string();
        let subnet_id = stable_id("subnet", &[account, &vpc_id, &cidr]);
        if !inv.subnets.iter().any(|s| s.id == subnet_id) {
            inv.subnets.push(Subnet {
                id: subnet_id.clone(),
                account_id: account.to_string(),
                vpc_id: vpc_id.clone(),
                cidr_block: cidr.clone(),
                availability_zone: az.clone(),
                availability_zone_id: None,
                available_ip_address_count: net.usable(),
                default_for_az: false,
                tags: vec![],
            });
        }
        let binding = Binding {
            netns: iface.netns.clone(),
            ifname: iface.name.clone(),
        };
        let ns = iface.netns.clone().unwrap_or_default();
        inv.enis.push(NetworkInterface {
            id: if host.is_empty() {
                stable_id("eni", &[account, &ns, &iface.name])
            } else {
                stable_id("eni", &[account, host, &ns, &iface.name])
            },
            account_id: account.to_string(),
            subnet_id,
            vpc_id: vpc_id.clone(),
            availability_zone: az.clone(),
            description: format!("host interface {binding}"),
            private_ip_address: iface.ipv4[0].0.to_string(),
            mac_address: iface.mac.clone(),
            security_group_ids: vec![],
            status: "in-use".into(),
            tags: vec![(BINDING_TAG.into(), binding.to_string())],
            instance_id: None,
        });
    }
    inv
}

fn network(addr: Ipv4Addr, prefix: u8) -> Cidr4 {
    let prefix = prefix.min(32);
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    Cidr4 {
        addr: u32::from(addr) & mask,
        prefix,
    }
}

/// The smallest CIDR block that contains every block of `nets`.
fn covering(nets: &[Cidr4]) -> Cidr4 {
    let mut prefix = nets.iter().map(|n| n.prefix).min().unwrap_or(0);
    let first = nets.first().map(|n| n.addr).unwrap_or(0);
    while prefix > 0 {
        let cand = network(Ipv4Addr::from(first), prefix);
        if nets.iter().all(|n| cand.contains(*n)) {
            return cand;
        }
        prefix -= 1;
    }
    Cidr4 { addr: 0, prefix: 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(ns: Option<&str>, name: &str, ip: &str, prefix: u8) -> HostInterface {
        HostInterface {
            netns: ns.map(str::to_string),
            name: name.into(),
            ifindex: 2,
            mac: "02:00:00:00:00:01".into(),
            ipv4: vec![(ip.parse().unwrap(), prefix)],
        }
    }

    #[test]
    fn default_layout_is_stable_and_consistent() {
        let ifs = [
            iface(None, "eth0", "10.1.2.3", 24),
            iface(Some("lab"), "veth0", "10.1.9.1", 24),
            iface(None, "eth1", "10.1.2.9", 24),
        ];
        let a = default_inventory("123456789012", "us-east-1", &ifs);
        let b = default_inventory("123456789012", "us-east-1", &ifs);
        assert_eq!(a, b);
        assert_eq!(a.vpcs.len(), 1);
        assert_eq!(a.vpcs[0].cidr_block, "10.1.0.0/20");
        assert_eq!(a.subnets.len(), 2);
        assert_eq!(a.enis.len(), 3);
        assert_eq!(a.enis[0].subnet_id, a.enis[2].subnet_id);
        assert_eq!(Binding::of(&a.enis[1]).unwrap().to_string(), "lab/veth0");
        let vpc = Cidr4::parse(&a.vpcs[0].cidr_block).unwrap();
        assert!(a
            .subnets
            .iter()
            .all(|s| vpc.contains(Cidr4::parse(&s.cidr_block).unwrap())));
    }
}
