//! Which Linux interface is which ENI. Three sources, one result (an [`Inventory`] of VPCs,
//! subnets and ENIs, each ENI bound to a host interface):
//!
//! - [`discover`]: the host's own interfaces (`ip -j addr`), registered as ENIs of one default
//!   VPC with subnets derived from their addresses ([`derive`]), with IDs that are hashes of
//!   stable facts so they survive restarts;
//! - [`file`]: an inventory file naming VPCs, subnets and ENIs and the interface (network
//!   namespace + name) behind each;
//! - the tag [`BINDING_TAG`] on an ENI created through the API.
//!
//! [`desired`] turns ENIs and flow logs into the set of interfaces to capture. This crate does
//! no capture and no SQL; discovery runs `ip`, everything else is pure.

pub mod derive;
pub mod desired;
pub mod discover;
pub mod file;
pub mod ip_ranges;

use flowlog_model::{NetworkInterface, Subnet, Vpc};

/// Tag key that binds an ENI to a host interface: value `ifname` (root namespace) or
/// `netns/ifname`. Discovered and file-declared ENIs carry it too.
pub const BINDING_TAG: &str = "flowlog:interface";

/// A host interface: network namespace (None = the agent's own) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Binding {
    pub netns: Option<String>,
    pub ifname: String,
}

impl Binding {
    /// Parses `ifname` or `netns/ifname`.
    pub fn parse(s: &str) -> Option<Binding> {
        let valid = |p: &str| !p.is_empty() && p.len() <= 64 && !p.contains(['/', ' ', '\0']);
        match s.split_once('/') {
            Some((ns, ifn)) if valid(ns) && valid(ifn) && ifn.len() < 16 => Some(Binding {
                netns: Some(ns.to_string()),
                ifname: ifn.to_string(),
            }),
            None if valid(s) && s.len() < 16 => Some(Binding {
                netns: None,
                ifname: s.to_string(),
            }),
            _ => None,
        }
    }

    pub fn of(eni: &NetworkInterface) -> Option<Binding> {
        eni.tags
            .iter()
            .find(|(k, _)| k == BINDING_TAG)
            .and_then(|(_, v)| Binding::parse(v))
    }
}

impl std::fmt::Display for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.netns {
            Some(ns) => write!(f, "{ns}/{}", self.ifname),
            None => f.write_str(&self.ifname),
        }
    }
}

/// VPCs, subnets and ENIs to register in the control plane.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub vpcs: Vec<Vpc>,
    pub subnets: Vec<Subnet>,
    pub enis: Vec<NetworkInterface>,
}

/// A stable identifier: `<prefix>-` + 17 hex digits of SHA-256 over the parts.
pub fn stable_id(prefix: &str, parts: &[&str]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let hex = hex::encode(h.finalize());
    format!("{prefix}-{}", &hex[..17])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_parse_and_print() {
        assert_eq!(Binding::parse("eth0").unwrap().to_string(), "eth0");
        let b = Binding::parse("lab1/veth-a").unwrap();
        assert_eq!(b.netns.as_deref(), Some("lab1"));
        assert_eq!(b.to_string(), "lab1/veth-a");
        assert!(Binding::parse("a/b/c").is_none());
        assert!(Binding::parse("").is_none());
        assert!(Binding::parse("this-name-is-too-long").is_none());
    }

    #[test]
    fn stable_ids_are_valid_and_stable() {
        let a = stable_id("eni", &["123456789012", "", "eth0"]);
        assert_eq!(a, stable_id("eni", &["123456789012", "", "eth0"]));
        assert_ne!(a, stable_id("eni", &["123456789012", "", "eth1"]));
        assert!(flowlog_model::ids::is_valid(
            flowlog_model::IdKind::NetworkInterface,
            &a
        ));
    }
}
