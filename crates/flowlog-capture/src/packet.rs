//! Link-layer frame → [`PacketMeta`]: the pure, allocation-free packet parser.
//!
//! Understands Ethernet (with any stack of up to four 802.1Q / 802.1ad / QinQ tags), Linux
//! cooked capture v1 (SLL, linktype 113) and v2 (SLL2, 276), and raw IP (101, 228, 229); IPv4
//! with options and fragments, IPv6 with hop-by-hop, routing, fragment, destination-options,
//! mobility, HIP, shim6 and AH extension headers; TCP and UDP ports, TCP flags. ICMP, ICMPv6 and
//! every other protocol get ports 0.
//!
//! Decisions:
//! - `ip_len` is the IP packet length from the header (IPv4 total length, IPv6 40 + payload
//!   length), not the frame or captured length; a zero length field (TSO / BIG TCP super-frames)
//!   falls back to the captured IP length.
//! - Fragments: every fragment is a packet of the flow. The first fragment carries the ports;
//!   later fragments (offset ≠ 0) carry none: the parser reports ports 0 and the fragment
//!   identification (`frag_id`), so that a stateful caller (`flowlog-flow`) can give them the
//!   ports of their first fragment. The parser itself keeps no state.
//! - Frames that are not IP (ARP, LLDP, ...) are [`SkipReason::NotIp`]; truncated or malformed
//!   headers get their own reasons. Counting is the caller's job ([`SkipCounts`]).
//!
//! Every read goes through bounds-checked slices, so no input can make it panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The link layer of a capture (pcap `LINKTYPE_*` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// LINKTYPE_ETHERNET (1).
    Ethernet,
    /// LINKTYPE_LINUX_SLL (113).
    LinuxSll,
    /// LINKTYPE_LINUX_SLL2 (276).
    LinuxSll2,
    /// LINKTYPE_RAW (101; also 12 and 14 as written by some BSDs): IPv4 or IPv6 by version.
    RawIp,
    /// LINKTYPE_IPV4 (228).
    Ipv4,
    /// LINKTYPE_IPV6 (229).
    Ipv6,
    /// Any other link type: every frame is skipped with [`SkipReason::UnsupportedLink`].
    Other(u32),
}

impl LinkType {
    /// Maps a pcap/pcapng link type number.
    pub fn from_linktype(v: u32) -> LinkType {
        match v {
            1 => LinkType::Ethernet,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            101 | 12 | 14 => LinkType::RawIp,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            other => LinkType::Other(other),
        }
    }

    /// The pcap link type number.
    pub fn linktype(self) -> u32 {
        match self {
            LinkType::Ethernet => 1,
            LinkType::LinuxSll => 113,
            LinkType::LinuxSll2 => 276,
            LinkType::RawIp => 101,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::Other(v) => v,
        }
    }
}

/// IP version of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

/// Where a packet sits in IP fragmentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fragment {
    /// Not fragmented.
    None,
    /// First fragment (offset 0, more fragments follow): carries the transport header.
    First,
    /// A later fragment (offset ≠ 0): no transport header, ports 0.
    Later,
}

/// Which way a packet crossed the interface it was captured on. `parse` cannot know it (a
/// frame does not say); the capture that read the frame sets it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    #[default]
    Unknown,
    Ingress,
    Egress,
}

/// What the flow table needs from one IP packet. Fixed size, `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PacketMeta {
    pub family: Family,
    /// Source address; IPv4 uses the first 4 bytes, the rest are zero.
    pub src: [u8; 16],
    /// Destination address, same layout as `src`.
    pub dst: [u8; 16],
    pub src_port: u16,
    pub dst_port: u16,
    /// Upper-layer protocol (after IPv6 extension headers).
    pub protocol: u8,
    /// TCP header byte 13 (CWR ECE URG ACK PSH RST SYN FIN); 0 for other protocols.
    pub tcp_flags: u8,
    /// IP packet length in bytes (the `bytes` of a flow record).
    pub ip_len: u32,
    /// Bytes from the start of the IP header to the transport payload (IP header, extension
    /// headers and the TCP/UDP header), for GSO expansion. Never more than `ip_len`.
    pub header_len: u32,
    pub fragment: Fragment,
    /// Fragment identification (IPv4 ID, IPv6 fragment header ID) of fragments; 0 otherwise.
    pub frag_id: u32,
    /// Set by the caller (capture direction); [`Direction::Unknown`] from `parse`.
    pub direction: Direction,
}

impl PacketMeta {
    pub fn src_addr(&self) -> IpAddr {
        addr(self.family, &self.src)
    }

    pub fn dst_addr(&self) -> IpAddr {
        addr(self.family, &self.dst)
    }
}

/// Converts the fixed-size address representation of [`PacketMeta`] to an [`IpAddr`].
pub fn addr(family: Family, a: &[u8; 16]) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(*a)),
    }
}

/// Why a frame produced no packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// A frame that is not IPv4/IPv6 (ARP, LLDP, 802.3 length frames, ...).
    NotIp,
    /// The capture's link type is not one we parse.
    UnsupportedLink,
    /// Shorter than its link-layer header, or too many VLAN tags.
    TruncatedLink,
    /// Shorter than the IP header (or an IPv6 extension header).
    TruncatedIp,
    /// IP version nibble does not match the link layer's announcement.
    BadIpVersion,
    /// IPv4 header length below 20 or total length below the header length.
    BadIpHeader,
    /// Too many IPv6 extension headers.
    TooManyExtHeaders,
    /// TCP/UDP header cut short in a packet that should carry it.
    TruncatedTransport,
    /// TCP data offset below 5 words.
    BadTransportHeader,
}

impl SkipReason {
    pub const ALL: [SkipReason; 9] = [
        SkipReason::NotIp,
        SkipReason::UnsupportedLink,
        SkipReason::TruncatedLink,
        SkipReason::TruncatedIp,
        SkipReason::BadIpVersion,
        SkipReason::BadIpHeader,
        SkipReason::TooManyExtHeaders,
        SkipReason::TruncatedTransport,
        SkipReason::BadTransportHeader,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NotIp => "not IP",
            SkipReason::UnsupportedLink => "unsupported link type",
            SkipReason::TruncatedLink => "truncated link header",
            SkipReason::TruncatedIp => "truncated IP header",
            SkipReason::BadIpVersion => "bad IP version",
            SkipReason::BadIpHeader => "bad IPv4 header",
            SkipReason::TooManyExtHeaders => "too many IPv6 extension headers",
            SkipReason::TruncatedTransport => "truncated TCP/UDP header",
            SkipReason::BadTransportHeader => "bad TCP header",
        }
    }

    /// True for reasons that mean broken input rather than traffic we do not log.
    pub fn is_malformed(self) -> bool {
        !matches!(self, SkipReason::NotIp | SkipReason::UnsupportedLink)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counters of skipped frames, one per [`SkipReason`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SkipCounts {
    counts: [u64; 9],
}

impl SkipCounts {
    pub fn add(&mut self, r: SkipReason) {
        self.counts[r.index()] += 1;
    }

    pub fn get(&self, r: SkipReason) -> u64 {
        self.counts[r.index()]
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn malformed(&self) -> u64 {
        SkipReason::ALL
            .iter()
            .filter(|r| r.is_malformed())
            .map(|r| self.get(*r))
            .sum()
    }

    /// Non-zero counters, in [`SkipReason::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (SkipReason, u64)> + '_ {
        SkipReason::ALL
            .iter()
            .map(|r| (*r, self.get(*r)))
            .filter(|(_, n)| *n > 0)
    }

    pub fn merge(&mut self, other: &SkipCounts) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
    }
}

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const MAX_VLAN_TAGS: usize = 4;
const MAX_EXT_HEADERS: usize = 16;

#[inline(always)]
fn be16(b: &[u8], off: usize) -> Option<u16> {
    b.get(off..off + 2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
}

/// Parses one frame of the given link type.
#[inline]
pub fn parse(link: LinkType, frame: &[u8]) -> Result<PacketMeta, SkipReason> {
    match link {
        LinkType::Ethernet => {
            let mut et = be16(frame, 12).ok_or(SkipReason::TruncatedLink)?;
            let mut off = 14;
            let mut tags = 0;
            while matches!(et, 0x8100 | 0x88a8 | 0x9100) {
                if tags == MAX_VLAN_TAGS {
                    return Err(SkipReason::TruncatedLink);
                }
                et = be16(frame, off + 2).ok_or(SkipReason::TruncatedLink)?;
                off += 4;
                tags += 1;
            }
            by_ethertype(et, &frame[off..])
        }
        LinkType::LinuxSll => {
            let et = be16(frame, 14).ok_or(SkipReason::TruncatedLink)?;
            by_ethertype(et, &frame[16..])
        }
        LinkType::LinuxSll2 => {
            if frame.len() < 20 {
                return Err(SkipReason::TruncatedLink);
            }
            let et = be16(frame, 0).ok_or(SkipReason::TruncatedLink)?;
            by_ethertype(et, &frame[20..])
        }
        LinkType::RawIp => match frame.first() {
            None => Err(SkipReason::TruncatedIp),
            Some(b) if b >> 4 == 4 => ipv4(frame),
            Some(b) if b >> 4 == 6 => ipv6(frame),
            Some(_) => Err(SkipReason::BadIpVersion),
        },
        LinkType::Ipv4 => ipv4(frame),
        LinkType::Ipv6 => ipv6(frame),
        LinkType::Other(_) => Err(SkipReason::UnsupportedLink),
    }
}

#[inline]
fn by_ethertype(et: u16, l3: &[u8]) -> Result<PacketMeta, SkipReason> {
    match et {
        ETH_IPV4 => ipv4(l3),
        ETH_IPV6 => ipv6(l3),
        _ => Err(SkipReason::NotIp),
    }
}

/// Parses an IPv4 packet starting at `b[0]`.
#[inline]
pub fn ipv4(b: &[u8]) -> Result<PacketMeta, SkipReason> {
    if b.len() < 20 {
        return Err(SkipReason::TruncatedIp);
    }
    if b[0] >> 4 != 4 {
        return Err(SkipReason::BadIpVersion);
    }
    let ihl = ((b[0] & 0x0f) as usize) * 4;
    if ihl < 20 {
        return Err(SkipReason::BadIpHeader);
    }
    if b.len() < ihl {
        return Err(SkipReason::TruncatedIp);
    }
    let total = u16::from_be_bytes([b[2], b[3]]) as usize;
    let ip_len = if total == 0 {
        b.len()
    } else if total < ihl {
        return Err(SkipReason::BadIpHeader);
    } else {
        total
    };
    let frag = u16::from_be_bytes([b[6], b[7]]);
    let offset = frag & 0x1fff;
    let more = frag & 0x2000 != 0;
    let mut m = PacketMeta {
        family: Family::V4,
        src: [0; 16],
        dst: [0; 16],
        src_port: 0,
        dst_port: 0,
        protocol: b[9],
        tcp_flags: 0,
        ip_len: ip_len as u32,
        header_len: ihl as u32,
        fragment: if offset != 0 {
            Fragment::Later
        } else if more {
            Fragment::First
        } else {
            Fragment::None
        },
        frag_id: 0,
        direction: Default::default(),
    };
    if offset != 0 || more {
        m.frag_id = u16::from_be_bytes([b[4], b[5]]) as u32;
    }
    m.src[..4].copy_from_slice(&b[12..16]);
    m.dst[..4].copy_from_slice(&b[16..20]);
    if offset != 0 {
        return Ok(m);
    }
    let end = ip_len.min(b.len());
    transport(&mut m, &b[ihl..end])?;
    Ok(m)
}

/// Parses an IPv6 packet starting at `b[0]`.
#[inline]
pub fn ipv6(b: &[u8]) -> Result<PacketMeta, SkipReason> {
    if b.len() < 40 {
        return Err(SkipReason::TruncatedIp);
    }
    if b[0] >> 4 != 6 {
        return Err(SkipReason::BadIpVersion);
    }
    let payload = u16::from_be_bytes([b[4], b[5]]) as usize;
    let ip_len = if payload == 0 { b.len() } else { 40 + payload };
    let end = ip_len.min(b.len());
    let mut m = PacketMeta {
        family: Family::V6,
        src: [0; 16],
        dst: [0; 16],
        src_port: 0,
        dst_port: 0,
        protocol: b[6],
        tcp_flags: 0,
        ip_len: ip_len as u32,
        header_len: 40,
        fragment: Fragment::None,
        frag_id: 0,
        direction: Default::default(),
    };
    m.src.copy_from_slice(&b[8..24]);
    m.dst.copy_from_slice(&b[24..40]);
    let mut nh = b[6];
    let mut off = 40usize;
    let mut n = 0;
    loop {
        let len = match nh {
            // hop-by-hop, routing, destination options, mobility, HIP, shim6
            0 | 43 | 60 | 135 | 139 | 140 => {
                let h = b.get(off..off + 2).filter(|_| off + 2 <= end);
                let h = h.ok_or(SkipReason::TruncatedIp)?;
                nh = h[0];
                (h[1] as usize + 1) * 8
            }
            // fragment header
            44 => {
                let h = b.get(off..off + 8).filter(|_| off + 8 <= end);
                let h = h.ok_or(SkipReason::TruncatedIp)?;
                nh = h[0];
                let fo = u16::from_be_bytes([h[2], h[3]]);
                if fo != 0 {
                    m.frag_id = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
                }
                if fo >> 3 != 0 {
                    m.fragment = Fragment::Later;
                    m.protocol = nh;
                    m.header_len = (off + 8).min(ip_len) as u32;
                    return Ok(m);
                }
                if fo & 1 != 0 {
                    m.fragment = Fragment::First;
                }
                8
            }
            // authentication header: length in 4-octet units, minus 2
            51 => {
                let h = b.get(off..off + 2).filter(|_| off + 2 <= end);
                let h = h.ok_or(SkipReason::TruncatedIp)?;
                nh = h[0];
                (h[1] as usize + 2) * 4
            }
            _ => break,
        };
        off += len;
        n += 1;
        if n > MAX_EXT_HEADERS {
            return Err(SkipReason::TooManyExtHeaders);
        }
    }
    if off > end {
        return Err(SkipReason::TruncatedIp);
    }
    m.protocol = nh;
    m.header_len = off as u32;
    transport(&mut m, &b[off..end])?;
    Ok(m)
}

/// Fills ports, flags and the transport header length for TCP and UDP.
#[inline(always)]
fn transport(m: &mut PacketMeta, l4: &[u8]) -> Result<(), SkipReason> {
    match m.protocol {
        6 => {
            if l4.len() < 20 {
                return Err(SkipReason::TruncatedTransport);
            }
            let doff = ((l4[12] >> 4) as u32) * 4;
            if doff < 20 {
                return Err(SkipReason::BadTransportHeader);
            }
            m.src_port = u16::from_be_bytes([l4[0], l4[1]]);
            m.dst_port = u16::from_be_bytes([l4[2], l4[3]]);
            m.tcp_flags = l4[13];
            m.header_len = (m.header_len + doff).min(m.ip_len);
        }
        17 => {
            if l4.len() < 8 {
                return Err(SkipReason::TruncatedTransport);
            }
            m.src_port = u16::from_be_bytes([l4[0], l4[1]]);
            m.dst_port = u16::from_be_bytes([l4[2], l4[3]]);
            m.header_len = (m.header_len + 8).min(m.ip_len);
        }
        _ => {}
    }
    Ok(())
}

/// Expands a GSO super-frame into what went on the wire.
///
/// `gso_size` is the segment payload size from the virtio-net header (0 = not GSO). Returns
/// `(packets, bytes)`: `ceil(payload / gso_size)` segments, each carrying the same
/// `header_len` bytes of IP+transport headers in front of its share of the payload.
pub fn gso_segments(meta: &PacketMeta, gso_size: u16) -> (u64, u64) {
    let ip_len = meta.ip_len as u64;
    let hdr = (meta.header_len as u64).min(ip_len);
    let payload = ip_len - hdr;
    let g = gso_size as u64;
    if g == 0 || payload <= g {
        return (1, ip_len);
    }
    let n = payload.div_ceil(g);
    (n, payload + n * hdr)
}

#[cfg(test)]
mod tests;
