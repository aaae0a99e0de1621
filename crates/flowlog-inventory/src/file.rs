//! The inventory file: VPCs, subnets and ENIs named by the operator, each ENI with the host
//! interface behind it. Unknown keys are refused. Example:
//!
//! ```toml
//! [[vpc]]
//! name = "lab"                  # IDs derive from names when `id` is absent
//! cidr_block = "10.10.0.0/16"
//!
//! [[subnet]]
//! name = "lab-a"
//! vpc = "lab"                   # a VPC's name or id
//! cidr_block = "10.10.1.0/24"
//! availability_zone = "eu-west-1a"   # optional; default <region>a
//! availability_zone_id = "euw1-az1"  # optional; the records' az-id (else `-`)
//!
//! [[network_interface]]
//! subnet = "lab-a"
//! interface = "veth-a"          # host interface name
//! netns = "lab1"                # optional network namespace (ip netns add ...)
//! private_ip = "10.10.1.10"     # optional; else the next free address of the subnet
//! instance_id = "i-0123456789abcdef0"  # optional; the records' instance-id (else `-`)
//! ```

use std::net::Ipv4Addr;

use flowlog_model::cidr::Cidr4;
use flowlog_model::{NetworkInterface, Subnet, Vpc};
use serde::Deserialize;

use crate::{stable_id, Binding, Inventory, BINDING_TAG};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRoot {
    #[serde(default)]
    vpc: Vec<VpcEntry>,
    #[serde(default)]
    subnet: Vec<SubnetEntry>,
    #[serde(default)]
    network_interface: Vec<EniEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VpcEntry {
    name: Option<String>,
    id: Option<String>,
    cidr_block: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubnetEntry {
    name: Option<String>,
    id: Option<String>,
    vpc: String,
    cidr_block: String,
    availability_zone: Option<String>,
    availability_zone_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EniEntry {
    id: Option<String>,
    subnet: String,
    interface: String,
    netns: Option<String>,
    private_ip: Option<Ipv4Addr>,
    description: Option<String>,
    instance_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read inventory file: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid inventory file: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("invalid inventory file: {0}")]
    Invalid(String),
}

fn bad(msg: String) -> FileError {
    FileError::Invalid(msg)
}

/// Reads and checks an inventory file.
pub fn load(path: &std::path::Path, account: &str, region: &str) -> Result<Inventory, FileError> {
    parse(&std::fs::read_to_string(path)?, account, region)
}

/// Most entries of each kind one inventory file may list.
pub const MAX_VPCS: usize = 1_000;
pub const MAX_SUBNETS: usize = 10_000;
pub const MAX_ENIS: usize = 10_000;

pub fn parse(text: &str, account: &str, region: &str) -> Result<Inventory, FileError> {
    let root: FileRoot = toml::from_str(text)?;
    // An inventory comes from an agent over the network: its size bounds the work of one sync.
    for (what, n, max) in [
        ("vpc", root.vpc.len(), MAX_VPCS),
        ("subnet", root.subnet.len(), MAX_SUBNETS),
        ("network_interface", root.network_interface.len(), MAX_ENIS),
    ] {
        if n > max {
            return Err(bad(format!(
                "the inventory lists {n} [[{what}]] entries; at most {max} are accepted"
            )));
        }
    }
    let mut inv = Inventory::default();
    // Addresses in use per subnet and the next address to try, so allocation stays linear.
    let mut used: std::collections::HashMap<String, (std::collections::HashSet<u32>, u32)> =
        std::collections::HashMap::new();
    let mut eni_ids: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut names: Vec<(String, String)> = Vec::new();
    let resolve = |names: &[(String, String)], r: &str| -> Option<String> {
        names
            .iter()
            .find(|(n, id)| n == r || id == r)
            .map(|(_, id)| id.clone())
    };
    for v in &root.vpc {
        let cidr = Cidr4::parse(&v.cidr_block).ok_or_else(|| {
            bad(format!(
                "VPC cidr_block {:?} is not a CIDR block",
                v.cidr_block
            ))
        })?;
        let id = entry_id("vpc", flowlog_model::IdKind::Vpc, &v.id, &v.name, account)?;
        names.push((v.name.clone().unwrap_or_else(|| id.clone()), id.clone()));
        inv.vpcs.push(Vpc {
            id: id.clone(),
            account_id: account.into(),
            cidr_block: cidr.to_string(),
            instance_tenancy: "default".into(),
            is_default: false,
            cidr_association_id: format!("vpc-cidr-assoc-{}", &id[4..]),
            dhcp_options_id: "dopt-00000000000000000".into(),
            tags: v
                .name
                .iter()
                .map(|n| ("Name".to_string(), n.clone()))
                .collect(),
        });
    }
    let mut subnet_names: Vec<(String, String)> = Vec::new();
    for s in &root.subnet {
        let vpc_id = resolve(&names, &s.vpc)
            .ok_or_else(|| bad(format!("subnet names unknown VPC {:?}", s.vpc)))?;
        let vpc = inv
            .vpcs
            .iter()
            .find(|v| v.id == vpc_id)
            .expect("resolved above");
        let cidr = Cidr4::parse(&s.cidr_block).ok_or_else(|| {
            bad(format!(
                "subnet cidr_block {:?} is not a CIDR block",
                s.cidr_block
            ))
        })?;
        if !Cidr4::parse(&vpc.cidr_block).is_some_and(|v| v.contains(cidr)) {
            return Err(bad(format!(
                "subnet {} is outside VPC {}",
                s.cidr_block, vpc.cidr_block
            )));
        }
        if inv.subnets.iter().any(|o| {
            o.vpc_id == vpc_id && Cidr4::parse(&o.cidr_block).is_some_and(|c| c.overlaps(cidr))
        }) {
            return Err(bad(format!(
                "subnet {} overlaps another subnet of the VPC",
                s.cidr_block
            )));
        }
        let id = entry_id(
            "subnet",
            flowlog_model::IdKind::Subnet,
            &s.id,
            &s.name,
            account,
        )?;
        subnet_names.push((s.name.clone().unwrap_or_else(|| id.clone()), id.clone()));
        inv.subnets.push(Subnet {
            id,
            account_id: account.into(),
            vpc_id,
            cidr_block: cidr.to_string(),
            availability_zone: s
                .availability_zone
                .clone()
                .unwrap_or_else(|| format!("{region}a")),
            availability_zone_id: s.availability_zone_id.clone(),
            available_ip_address_count: cidr.usable(),
            default_for_az: false,
            tags: s
                .name
                .iter()
                .map(|n| ("Name".to_string(), n.clone()))
                .collect(),
        });
    }
    for e in &root.network_interface {
        let subnet_id = resolve(&subnet_names, &e.subnet).ok_or_else(|| {
            bad(format!(
                "network_interface names unknown subnet {:?}",
                e.subnet
            ))
        })?;
        let subnet = inv
            .subnets
            .iter()
            .find(|s| s.id == subnet_id)
            .expect("resolved above")
            .clone();
        let binding_text = match &e.netns {
            Some(ns) => format!("{ns}/{}", e.interface),
            None => e.interface.clone(),
        };
        let binding = Binding::parse(&binding_text).ok_or_else(|| {
            bad(format!(
                "{binding_text:?} is not a valid interface (netns/name)"
            ))
        })?;
        let ns = binding.netns.clone().unwrap_or_default();
        let id = match &e.id {
            Some(id)
                if flowlog_model::ids::is_valid(flowlog_model::IdKind::NetworkInterface, id) =>
            {
                id.clone()
            }
            Some(id) => {
                return Err(bad(format!(
                    "{id:?} is not an ENI id (eni- and 8 or 17 hex digits)"
                )))
            }
            None => stable_id("eni", &[account, &ns, &binding.ifname]),
        };
        let cidr = Cidr4::parse(&subnet.cidr_block).expect("checked above");
        // AWS reserves the first four addresses of a subnet and the last one.
        let first = cidr.addr.saturating_add(4);
        let (taken, next) = used
            .entry(subnet.id.clone())
            .or_insert_with(|| (std::collections::HashSet::new(), first));
        let ip = match e.private_ip {
            Some(ip) if cidr.contains_addr(u32::from(ip)) => ip,
            Some(ip) => {
                return Err(bad(format!(
                    "private_ip {ip} is outside subnet {}",
                    subnet.cidr_block
                )))
            }
            None => {
                let mut a = (*next).max(first);
                while a < cidr.last() && taken.contains(&a) {
                    a += 1;
                }
                if a >= cidr.last() || !cidr.contains_addr(a) {
                    return Err(bad(format!(
                        "subnet {} has no free address",
                        subnet.cidr_block
                    )));
                }
                *next = a + 1;
                Ipv4Addr::from(a)
            }
        };
        taken.insert(u32::from(ip));
        if let Some(i) = &e.instance_id {
            let hex = i.strip_prefix("i-").unwrap_or("");
            let ok = (hex.len() == 8 || hex.len() == 17)
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !ok {
                return Err(bad(format!(
                    "instance_id {i:?} of interface {binding} is not an instance id (i- and 8 or 17 hex digits)"
                )));
            }
        }
        if !eni_ids.insert(id.clone()) {
            return Err(bad(format!("interface {binding} is listed twice")));
        }
        inv.enis.push(NetworkInterface {
            id,
            account_id: account.into(),
            subnet_id: subnet.id.clone(),
            vpc_id: subnet.vpc_id.clone(),
            availability_zone: subnet.availability_zone.clone(),
            description: e
                .description
                .clone()
                .unwrap_or_else(|| format!("host interface {binding}")),
            private_ip_address: ip.to_string(),
            mac_address: String::new(),
            security_group_ids: vec![],
            status: "in-use".into(),
            tags: vec![(BINDING_TAG.into(), binding.to_string())],
            instance_id: e.instance_id.clone(),
        });
    }
    Ok(inv)
}

fn entry_id(
    prefix: &str,
    kind: flowlog_model::IdKind,
    id: &Option<String>,
    name: &Option<String>,
    account: &str,
) -> Result<String, FileError> {
    match (id, name) {
        (Some(id), _) if flowlog_model::ids::is_valid(kind, id) => Ok(id.clone()),
        (Some(id), _) => Err(bad(format!("{id:?} is not a valid {prefix} id"))),
        (None, Some(n)) => Ok(stable_id(prefix, &[account, "file", n])),
        (None, None) => Err(bad(format!("every {prefix} needs a name or an id"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hostile inventories (they arrive over agent sync): no panic, bounded work.
    #[test]
    fn hostile_inventories_are_refused_or_cheap() {
        let edge = "[[vpc]]\nname = \"big\"\ncidr_block = \"0.0.0.0/0\"\n\
                    [[subnet]]\nname = \"top\"\nvpc = \"big\"\ncidr_block = \"255.255.255.252/30\"\n\
                    [[network_interface]]\nsubnet = \"top\"\ninterface = \"eth9\"\n";
        let e = parse(edge, "123456789012", "us-east-1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no free address"), "{e}");
        let mut many = String::from(
            "[[vpc]]\nname = \"v\"\ncidr_block = \"10.0.0.0/8\"\n\
             [[subnet]]\nname = \"s\"\nvpc = \"v\"\ncidr_block = \"10.0.0.0/8\"\n",
        );
        for i in 0..MAX_ENIS {
            many.push_str(&format!(
                "[[network_interface]]\nsubnet = \"s\"\ninterface = \"e{i}\"\n"
            ));
        }
        let t = std::time::Instant::now();
        let inv = parse(&many, "123456789012", "us-east-1").unwrap();
        assert_eq!(inv.enis.len(), MAX_ENIS);
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            t.elapsed()
        );
        let mut ips: Vec<&str> = inv
            .enis
            .iter()
            .map(|e| e.private_ip_address.as_str())
            .collect();
        ips.sort_unstable();
        ips.dedup();
        assert_eq!(ips.len(), MAX_ENIS, "every ENI gets its own address");
        many.push_str("[[network_interface]]\nsubnet = \"s\"\ninterface = \"one-too-many\"\n");
        let e = parse(&many, "123456789012", "us-east-1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("at most 10000"), "{e}");
    }

    const EXAMPLE: &str = r#"
[[vpc]]
name = "lab"
cidr_block = "10.10.0.0/16"
[[subnet]]
name = "lab-a"
vpc = "lab"
cidr_block = "10.10.1.0/24"
[[network_interface]]
subnet = "lab-a"
interface = "veth-a"
netns = "lab1"
[[network_interface]]
id = "eni-0a1b2c3d4e5f60718"
subnet = "lab-a"
interface = "veth-b"
private_ip = "10.10.1.20"
"#;

    #[test]
    fn example_parses_with_stable_ids() {
        let a = parse(EXAMPLE, "123456789012", "us-east-1").unwrap();
        assert_eq!(a, parse(EXAMPLE, "123456789012", "us-east-1").unwrap());
        assert_eq!(a.enis.len(), 2);
        assert_eq!(a.enis[0].private_ip_address, "10.10.1.4");
        assert_eq!(a.enis[1].id, "eni-0a1b2c3d4e5f60718");
        assert_eq!(Binding::of(&a.enis[0]).unwrap().to_string(), "lab1/veth-a");
        assert_eq!(a.enis[0].vpc_id, a.vpcs[0].id);
    }

    #[test]
    fn mistakes_are_reported() {
        assert!(parse("[[vpc]]\ncidr_block = \"10.0.0.0/16\"\n", "1", "r").is_err());
        assert!(parse("bogus = 1", "1", "r").is_err());
        let outside = "[[vpc]]\nname='v'\ncidr_block='10.0.0.0/16'\n[[subnet]]\nname='s'\nvpc='v'\ncidr_block='10.1.0.0/24'\n";
        assert!(parse(outside, "1", "r")
            .unwrap_err()
            .to_string()
            .contains("outside"));
    }
}
