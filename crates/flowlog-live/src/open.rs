//! Opening one interface's capture: resolve the interface, create the AF_PACKET ring and,
//! when asked, bind an NFLOG group — all inside the requested network namespace, since
//! sockets and interface names belong to the namespace they were created in.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{LiveError, Result};
use crate::nflog::{self, Message, NflogConfig};
use crate::source::Source;
use crate::sys::netlink::NetlinkSocket;
use crate::sys::netns::in_netns;
use crate::sys::ring::{self, PacketRing, RingConfig};

/// The sockets of one capture.
#[derive(Debug)]
pub struct Opened {
    pub ring: PacketRing,
    pub nflog: Option<NetlinkSocket>,
    pub ifindex: u32,
}

/// `NAME` → `/run/netns/NAME` (where `ip netns add` puts it); anything with a `/` is a path.
pub fn netns_path(name: &str) -> PathBuf {
    if name.contains('/') {
        PathBuf::from(name)
    } else {
        Path::new("/run/netns").join(name)
    }
}

/// Opens the ring on `iface` (and the NFLOG listener) in `netns`, or in ours when `None`.
pub fn open(
    iface: &str,
    netns: Option<&Path>,
    ring_cfg: RingConfig,
    nflog: Option<NflogConfig>,
) -> Result<Opened> {
    in_netns(netns, || {
        let ifindex = ring::ifindex(iface)?;
        let ring = PacketRing::open(ifindex, ring_cfg)?;
        let nflog = match nflog {
            Some(cfg) => {
                let mut sock = NetlinkSocket::open()?;
                bind_group(&mut sock, &cfg)?;
                Some(sock)
            }
            None => None,
        };
        Ok(Opened {
            ring,
            nflog,
            ifindex,
        })
    })
}

/// Opens an NFLOG listener alone in `netns`, for a process that captures several interfaces
/// of one namespace and hands its datagrams to each capture ([`crate::Capture::feed_nflog`]).
pub fn open_nflog(netns: Option<&Path>, cfg: NflogConfig) -> Result<NetlinkSocket> {
    in_netns(netns, || {
        let mut sock = NetlinkSocket::open()?;
        bind_group(&mut sock, &cfg)?;
        Ok(sock)
    })
}

/// Sends the NFLOG bind request and waits for the kernel's answer.
fn bind_group(sock: &mut NetlinkSocket, cfg: &NflogConfig) -> Result<()> {
    const SEQ: u32 = 1;
    sock.send(&nflog::bind_request(cfg, SEQ))?;
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(LiveError::Netlink(format!(
                "no answer binding NFLOG group {}",
                cfg.group
            )));
        }
        let Some(datagram) = sock.next_chunk(left)? else {
            continue;
        };
        for msg in nflog::messages(datagram) {
            if let Message::Ack { seq: SEQ, errno } = msg {
                return match errno {
                    0 => Ok(()),
                    libc::EBUSY => Err(LiveError::NflogGroupBusy { group: cfg.group }),
                    libc::EPERM | libc::EACCES => Err(LiveError::PermissionDenied {
                        op: "binding the NFLOG group",
                    }),
                    e => Err(LiveError::Netlink(format!(
                        "binding NFLOG group {}: {}",
                        cfg.group,
                        std::io::Error::from_raw_os_error(e)
                    ))),
                };
            }
        }
    }
}

/// Capabilities live capture needs that this process lacks in its effective set, read from
/// `/proc/self/status` (`CapEff`). Empty when capture can work (root has them all).
/// `CAP_NET_RAW` opens the ring, `CAP_NET_ADMIN` binds NFLOG, `CAP_SYS_ADMIN` enters another
/// namespace. Reading the set beats trying a socket: no side effect, and it names what is missing.
pub fn missing_capabilities(need_nflog: bool, need_netns: bool) -> Vec<&'static str> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    missing_in_status(&status, need_nflog, need_netns)
}

fn missing_in_status(status: &str, need_nflog: bool, need_netns: bool) -> Vec<&'static str> {
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let mut wanted = vec![(13, "CAP_NET_RAW")];
    if need_nflog {
        wanted.push((12, "CAP_NET_ADMIN"));
    }
    if need_netns {
        wanted.push((21, "CAP_SYS_ADMIN"));
    }
    wanted
        .into_iter()
        .filter(|(bit, _)| eff & (1u64 << bit) == 0)
        .map(|(_, name)| name)
        .collect()
}

#[cfg(test)]
mod cap_tests {
    use super::missing_in_status;

    #[test]
    fn reads_the_effective_set() {
        let root = "Name:\tx\nCapEff:\t000001ffffffffff\n";
        assert!(missing_in_status(root, true, true).is_empty());
        let none = "CapEff:\t0000000000000000\n";
        assert_eq!(
            missing_in_status(none, true, true),
            ["CAP_NET_RAW", "CAP_NET_ADMIN", "CAP_SYS_ADMIN"]
        );
        // CAP_NET_RAW only (setcap cap_net_raw+ep).
        let raw = "CapEff:\t0000000000002000\n";
        assert_eq!(missing_in_status(raw, true, false), ["CAP_NET_ADMIN"]);
        assert!(missing_in_status(raw, false, false).is_empty());
    }
}
