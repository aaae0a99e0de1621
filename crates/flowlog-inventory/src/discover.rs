//! Discovery of host interfaces with iproute2's JSON output (`ip -j addr show`, in a named
//! namespace `ip -n NS -j addr show`). Loopback is left out; interfaces without an IPv4
//! address are listed (an inventory file may bind them) but get no default ENI.

use std::net::Ipv4Addr;
use std::process::Command;

use serde::Deserialize;

/// One interface as seen by `ip`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct HostInterface {
    pub netns: Option<String>,
    pub name: String,
    pub ifindex: u32,
    pub mac: String,
    /// IPv4 addresses with their prefix lengths, primary first.
    pub ipv4: Vec<(Ipv4Addr, u8)>,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("cannot run `ip` (is iproute2 installed?): {0}")]
    Spawn(std::io::Error),
    #[error("`ip {args}` failed: {stderr}")]
    Failed { args: String, stderr: String },
    #[error("cannot parse `ip -j` output: {0}")]
    Parse(#[from] serde_json::Error),
}

#[derive(Deserialize)]
struct IpLink {
    ifindex: u32,
    ifname: String,
    #[serde(default)]
    link_type: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    addr_info: Vec<IpAddrInfo>,
}

#[derive(Deserialize)]
struct IpAddrInfo {
    family: String,
    local: String,
    prefixlen: u8,
}

/// Interfaces of the agent's namespace (`None`) or of a named one.
pub fn interfaces(netns: Option<&str>) -> Result<Vec<HostInterface>, DiscoverError> {
    let mut args: Vec<&str> = Vec::new();
    if let Some(ns) = netns {
        args.extend(["-n", ns]);
    }
    args.extend(["-j", "addr", "show"]);
    let out = Command::new("ip")
        .args(&args)
        .output()
        .map_err(DiscoverError::Spawn)?;
    if !out.status.success() {
        return Err(DiscoverError::Failed {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    parse(&out.stdout, netns)
}

/// Parses `ip -j addr show` output.
pub fn parse(json: &[u8], netns: Option<&str>) -> Result<Vec<HostInterface>, DiscoverError> {
    let links: Vec<IpLink> = serde_json::from_slice(json)?;
    Ok(links
        .into_iter()
        .filter(|l| l.link_type != "loopback")
        .map(|l| HostInterface {
            netns: netns.map(str::to_string),
            ipv4: l
                .addr_info
                .iter()
                .filter(|a| a.family == "inet")
                .filter_map(|a| Some((a.local.parse().ok()?, a.prefixlen)))
                .collect(),
            name: l.ifname,
            ifindex: l.ifindex,
            mac: l.address,
        })
        .collect())
}

/// Names of the network namespaces made with `ip netns add` (the files in /run/netns).
pub fn namespaces() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_json_and_skips_loopback_and_unaddressed() {
        let json = br#"[{"ifindex":1,"ifname":"lo","link_type":"loopback","address":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},
            {"ifindex":2,"ifname":"ifb0","link_type":"ether","address":"32:67:29:a9:44:f1","addr_info":[]},
            {"ifindex":4,"ifname":"eth0","link_type":"ether","address":"02:fc:00:00:00:01","addr_info":[{"family":"inet","local":"192.0.2.2","prefixlen":24},{"family":"inet6","local":"fd00::2","prefixlen":64}]}]"#;
        let got = parse(json, Some("ns1")).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].name, "eth0");
        assert_eq!(got[1].netns.as_deref(), Some("ns1"));
        assert_eq!(got[1].ipv4, vec![("192.0.2.2".parse().unwrap(), 24)]);
        assert!(got[0].ipv4.is_empty());
        assert!(parse(b"not json", None).is_err());
    }
}
