//! Interface discovery through rtnetlink (`netlink-packet-route` + `netlink-sys`), not an `ip`
//! subprocess: links and IPv4 addresses of a namespace in two dumps, and a [`Watcher`] that
//! subscribes to link/address changes in every watched namespace (and notices namespace files
//! appearing under `/run/netns`) so the agent syncs at once instead of at the next tick.
//! Sockets are created inside the namespace by `flowlog_live`'s `in_netns` helper (the only
//! `setns` in flowlog); a netlink socket stays bound to the namespace it was made in.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowlog_inventory::discover::HostInterface;
use flowlog_live::LiveError;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkLayerType, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// rtnetlink multicast groups (linux/rtnetlink.h): links, IPv4 addresses.
const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;

fn err(op: &str, e: impl std::fmt::Display) -> LiveError {
    LiveError::Netlink(format!("{op}: {e}"))
}

/// A socket made inside `netns` (None: ours).
fn socket_in(netns: Option<&str>, groups: u32) -> Result<Socket, LiveError> {
    let path = netns.map(flowlog_live::netns_path);
    flowlog_live::sys::netns::in_netns(path.as_deref(), || {
        let mut s =
            Socket::new(NETLINK_ROUTE).map_err(|e| LiveError::from_os("netlink socket", e))?;
        s.bind(&SocketAddr::new(0, groups))
            .map_err(|e| LiveError::from_os("binding the netlink socket", e))?;
        Ok(s)
    })
}

fn dump(
    s: &Socket,
    msg: RouteNetlinkMessage,
    seq: u32,
) -> Result<Vec<RouteNetlinkMessage>, LiveError> {
    let mut packet = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(msg));
    packet.header.flags = NLM_F_DUMP | NLM_F_REQUEST;
    packet.header.sequence_number = seq;
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf[..]);
    s.send_to(&buf, &SocketAddr::new(0, 0), 0)
        .map_err(|e| LiveError::from_os("netlink send", e))?;
    let mut out = Vec::new();
    let mut rx = vec![0u8; 1 << 16];
    loop {
        let n = s
            .recv(&mut &mut rx[..], 0)
            .map_err(|e| LiveError::from_os("netlink recv", e))?;
        let mut off = 0;
        while off < n {
            let m: NetlinkMessage<RouteNetlinkMessage> =
                NetlinkMessage::deserialize(&rx[off..n]).map_err(|e| err("netlink parse", e))?;
            let len = m.header.length as usize;
            match m.payload {
                NetlinkPayload::Done(_) => return Ok(out),
                NetlinkPayload::Error(e) => return Err(err("netlink dump", format!("{e:?}"))),
                NetlinkPayload::InnerMessage(inner) if m.header.sequence_number == seq => {
                    out.push(inner)
                }
                _ => {}
            }
            if len == 0 {
                break;
            }
            off += len;
        }
    }
}

/// Interfaces of `netns` (None: the agent's own), loopback left out, like `ip -j addr`.
pub fn interfaces(netns: Option<&str>) -> Result<Vec<HostInterface>, LiveError> {
    let s = socket_in(netns, 0)?;
    let mut links: BTreeMap<u32, HostInterface> = BTreeMap::new();
    for m in dump(&s, RouteNetlinkMessage::GetLink(LinkMessage::default()), 1)? {
        let RouteNetlinkMessage::NewLink(l) = m else {
            continue;
        };
        if l.header.link_layer_type == LinkLayerType::Loopback {
            continue;
        }
        let mut name = None;
        let mut mac = String::new();
        for a in &l.attributes {
            match a {
                LinkAttribute::IfName(n) => name = Some(n.clone()),
                LinkAttribute::Address(b) => {
                    mac = b
                        .iter()
                        .map(|x| format!("{x:02x}"))
                        .collect::<Vec<_>>()
                        .join(":")
                }
                _ => {}
            }
        }
        if let Some(name) = name {
            links.insert(
                l.header.index,
                HostInterface {
                    netns: netns.map(str::to_string),
                    name,
                    ifindex: l.header.index,
                    mac,
                    ipv4: Vec::new(),
                },
            );
        }
    }
    let mut get = AddressMessage::default();
    get.header.family = AddressFamily::Inet;
    for m in dump(&s, RouteNetlinkMessage::GetAddress(get), 2)? {
        let RouteNetlinkMessage::NewAddress(a) = m else {
            continue;
        };
        let Some(link) = links.get_mut(&a.header.index) else {
            continue;
        };
        let local = a.attributes.iter().find_map(|x| match x {
            AddressAttribute::Local(std::net::IpAddr::V4(ip)) => Some(*ip),
            _ => None,
        });
        let addr = local.or_else(|| {
            a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Address(std::net::IpAddr::V4(ip)) => Some(*ip),
                _ => None,
            })
        });
        if let Some(ip) = addr {
            link.ipv4.push((ip, a.header.prefix_len));
        }
    }
    Ok(links.into_values().collect())
}

/// Wakes the agent when links or addresses change in a watched namespace, or a watched
/// namespace appears. One thread polls every subscription (non-blocking) each 50 ms, so idle
/// cost does not grow with a thread per namespace; a namespace that disappears is dropped
/// (its socket would otherwise keep the namespace alive).
pub struct Watcher {
    changed: Arc<AtomicBool>,
    wanted: Arc<Mutex<Vec<Option<String>>>>,
    stop: Arc<AtomicBool>,
}

impl Watcher {
    pub fn start() -> Watcher {
        let w = Watcher {
            changed: Arc::new(AtomicBool::new(false)),
            wanted: Arc::new(Mutex::new(vec![None])),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (changed, wanted, stop) = (w.changed.clone(), w.wanted.clone(), w.stop.clone());
        let _ = std::thread::Builder::new()
            .name("netlink-watch".into())
            .spawn(move || watch(changed, wanted, stop));
        w
    }

    /// The namespaces to watch (None = ours), replacing the previous list.
    pub fn watch(&self, namespaces: Vec<Option<String>>) {
        *self.wanted.lock().unwrap_or_else(|e| e.into_inner()) = namespaces;
    }

    /// Whether something changed since the last call.
    pub fn take_changed(&self) -> bool {
        self.changed.swap(false, Ordering::SeqCst)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn watch(changed: Arc<AtomicBool>, wanted: Arc<Mutex<Vec<Option<String>>>>, stop: Arc<AtomicBool>) {
    let mut subs: BTreeMap<Option<String>, Socket> = BTreeMap::new();
    let mut buf = vec![0u8; 1 << 16];
    while !stop.load(Ordering::SeqCst) {
        let want = wanted.lock().unwrap_or_else(|e| e.into_inner()).clone();
        subs.retain(|ns, _| {
            want.contains(ns)
                && ns
                    .as_deref()
                    .is_none_or(|n| flowlog_live::netns_path(n).exists())
        });
        for ns in want {
            if subs.contains_key(&ns) {
                continue;
            }
            if ns
                .as_deref()
                .is_some_and(|n| !flowlog_live::netns_path(n).exists())
            {
                continue;
            }
            if let Ok(s) = socket_in(ns.as_deref(), RTMGRP_LINK | RTMGRP_IPV4_IFADDR) {
                if s.set_non_blocking(true).is_ok() {
                    subs.insert(ns, s);
                    // A namespace (re)appeared: its interfaces are new to the agent.
                    changed.store(true, Ordering::SeqCst);
                }
            }
        }
        for s in subs.values() {
            while let Ok(n) = s.recv(&mut &mut buf[..], 0) {
                if n == 0 {
                    break;
                }
                changed.store(true, Ordering::SeqCst);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
