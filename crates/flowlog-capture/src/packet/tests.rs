//! Parser tests on crafted frames: every link type, header variant and malformation.

use super::*;

pub(crate) fn tcp(sp: u16, dp: u16, flags: u8, opt_words: usize, payload: usize) -> Vec<u8> {
    let mut h = vec![0u8; 20 + opt_words * 4];
    h[0..2].copy_from_slice(&sp.to_be_bytes());
    h[2..4].copy_from_slice(&dp.to_be_bytes());
    h[12] = ((5 + opt_words) as u8) << 4;
    h[13] = flags;
    h.resize(h.len() + payload, 0xab);
    h
}

pub(crate) fn udp(sp: u16, dp: u16, payload: usize) -> Vec<u8> {
    let mut h = vec![0u8; 8];
    h[0..2].copy_from_slice(&sp.to_be_bytes());
    h[2..4].copy_from_slice(&dp.to_be_bytes());
    h[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    h.resize(8 + payload, 0xcd);
    h
}

pub(crate) fn v4(
    proto: u8,
    src: [u8; 4],
    dst: [u8; 4],
    opt_words: usize,
    frag: u16,
    l4: &[u8],
) -> Vec<u8> {
    let ihl = 20 + opt_words * 4;
    let mut h = vec![0u8; ihl];
    h[0] = 0x40 | (ihl / 4) as u8;
    h[2..4].copy_from_slice(&((ihl + l4.len()) as u16).to_be_bytes());
    h[6..8].copy_from_slice(&frag.to_be_bytes());
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&src);
    h[16..20].copy_from_slice(&dst);
    for b in h.iter_mut().skip(20) {
        *b = 1; // NOP options
    }
    h.extend_from_slice(l4);
    h
}

const A6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const B6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// IPv6 with `ext` = list of (header type, bytes) extension headers; next-header fields are
/// chained automatically, ending with `proto`.
pub(crate) fn v6(proto: u8, ext: &[(u8, Vec<u8>)], l4: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, (_, bytes)) in ext.iter().enumerate() {
        let mut b = bytes.clone();
        b[0] = ext.get(i + 1).map(|e| e.0).unwrap_or(proto);
        body.extend_from_slice(&b);
    }
    body.extend_from_slice(l4);
    let mut h = vec![0u8; 40];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&(body.len() as u16).to_be_bytes());
    h[6] = ext.first().map(|e| e.0).unwrap_or(proto);
    h[7] = 64;
    h[8..24].copy_from_slice(&A6);
    h[24..40].copy_from_slice(&B6);
    h.extend_from_slice(&body);
    h
}

/// An options-style extension header of `units` × 8 bytes (hop-by-hop, routing, dest opts).
fn opts_hdr(units: usize) -> Vec<u8> {
    let mut b = vec![0u8; units * 8];
    b[1] = (units - 1) as u8;
    b
}

fn frag_hdr(offset_units: u16, more: bool) -> Vec<u8> {
    let mut b = vec![0u8; 8];
    let v = (offset_units << 3) | more as u16;
    b[2..4].copy_from_slice(&v.to_be_bytes());
    b[4..8].copy_from_slice(&0x0102_0304u32.to_be_bytes());
    b
}

fn ah_hdr(words: usize) -> Vec<u8> {
    let mut b = vec![0u8; words * 4];
    b[1] = (words - 2) as u8;
    b
}

pub(crate) fn eth(ethertype: u16, tags: &[u16], l3: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    for tpid in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&[0x00, 0x64]);
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(l3);
    f
}

fn sll(ethertype: u16, l3: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 16];
    f[1] = 4; // outgoing
    f[3] = 1; // ARPHRD_ETHER
    f[5] = 6;
    f[14..16].copy_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(l3);
    f
}

fn sll2(ethertype: u16, l3: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 20];
    f[0..2].copy_from_slice(&ethertype.to_be_bytes());
    f[4..8].copy_from_slice(&3u32.to_be_bytes());
    f[9] = 1;
    f[11] = 6;
    f.extend_from_slice(l3);
    f
}

const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [10, 0, 0, 2];

fn ok(link: LinkType, f: &[u8]) -> PacketMeta {
    match parse(link, f) {
        Ok(m) => m,
        Err(e) => panic!("expected a packet, got {e:?}"),
    }
}

#[test]
fn ethernet_ipv4_tcp() {
    let ip = v4(6, A, B, 0, 0, &tcp(40000, 443, 0x12, 3, 100));
    let m = ok(LinkType::Ethernet, &eth(0x0800, &[], &ip));
    assert_eq!(m.family, Family::V4);
    assert_eq!(m.src_addr().to_string(), "10.0.0.1");
    assert_eq!(m.dst_addr().to_string(), "10.0.0.2");
    assert_eq!((m.src_port, m.dst_port, m.protocol), (40000, 443, 6));
    assert_eq!(m.tcp_flags, 0x12);
    assert_eq!(m.ip_len, 20 + 32 + 100);
    assert_eq!(m.header_len, 20 + 32);
    assert_eq!(m.fragment, Fragment::None);
}

#[test]
fn ethernet_padding_is_not_counted() {
    let ip = v4(17, A, B, 0, 0, &udp(5000, 53, 2));
    assert_eq!(ip.len(), 30);
    let mut f = eth(0x0800, &[], &ip);
    f.resize(60, 0); // minimum Ethernet frame
    let m = ok(LinkType::Ethernet, &f);
    assert_eq!(m.ip_len, 30);
    assert_eq!((m.src_port, m.dst_port), (5000, 53));
}

#[test]
fn vlan_and_qinq() {
    let ip = v4(17, A, B, 0, 0, &udp(1, 2, 10));
    for tags in [
        &[0x8100u16][..],
        &[0x88a8, 0x8100],
        &[0x9100, 0x8100],
        &[0x8100; 4],
    ] {
        let m = ok(LinkType::Ethernet, &eth(0x0800, tags, &ip));
        assert_eq!(
            (m.src_port, m.dst_port, m.ip_len),
            (1, 2, 38),
            "tags {tags:x?}"
        );
    }
    let v6p = v6(17, &[], &udp(7, 8, 0));
    let m = ok(LinkType::Ethernet, &eth(0x86dd, &[0x88a8, 0x8100], &v6p));
    assert_eq!((m.family, m.src_port, m.dst_port), (Family::V6, 7, 8));
    assert_eq!(
        parse(LinkType::Ethernet, &eth(0x0800, &[0x8100; 5], &ip)),
        Err(SkipReason::TruncatedLink)
    );
    // tag header cut short
    assert_eq!(
        parse(LinkType::Ethernet, &eth(0x8100, &[], &[0x00])),
        Err(SkipReason::TruncatedLink)
    );
}

#[test]
fn linux_cooked_v1_and_v2() {
    let ip = v4(6, A, B, 0, 0, &tcp(1, 2, 0x10, 0, 0));
    let m = ok(LinkType::LinuxSll, &sll(0x0800, &ip));
    assert_eq!((m.src_port, m.dst_port, m.ip_len), (1, 2, 40));
    let ip6 = v6(6, &[], &tcp(3, 4, 0x02, 0, 0));
    let m = ok(LinkType::LinuxSll2, &sll2(0x86dd, &ip6));
    assert_eq!(
        (m.family, m.src_port, m.dst_port, m.ip_len),
        (Family::V6, 3, 4, 60)
    );
    assert_eq!(
        parse(LinkType::LinuxSll, &sll(0x0806, &[0; 28])),
        Err(SkipReason::NotIp)
    );
    assert_eq!(
        parse(LinkType::LinuxSll, &[0; 15]),
        Err(SkipReason::TruncatedLink)
    );
    assert_eq!(
        parse(LinkType::LinuxSll2, &[0; 19]),
        Err(SkipReason::TruncatedLink)
    );
}

#[test]
fn raw_ip_link_types() {
    let ip4 = v4(17, A, B, 0, 0, &udp(1, 2, 0));
    let ip6 = v6(17, &[], &udp(1, 2, 0));
    for lt in [101, 12, 14] {
        let link = LinkType::from_linktype(lt);
        assert_eq!(link, LinkType::RawIp);
        assert_eq!(ok(link, &ip4).family, Family::V4);
        assert_eq!(ok(link, &ip6).family, Family::V6);
    }
    assert_eq!(ok(LinkType::from_linktype(228), &ip4).family, Family::V4);
    assert_eq!(ok(LinkType::from_linktype(229), &ip6).family, Family::V6);
    assert_eq!(parse(LinkType::Ipv4, &ip6), Err(SkipReason::BadIpVersion));
    assert_eq!(parse(LinkType::Ipv6, &ip4), Err(SkipReason::TruncatedIp)); // 28 bytes < 40
    assert_eq!(
        parse(LinkType::RawIp, &[0x50; 40]),
        Err(SkipReason::BadIpVersion)
    );
    assert_eq!(parse(LinkType::RawIp, &[]), Err(SkipReason::TruncatedIp));
    assert_eq!(
        parse(LinkType::from_linktype(147), &ip4),
        Err(SkipReason::UnsupportedLink)
    );
    assert_eq!(LinkType::from_linktype(147).linktype(), 147);
}

#[test]
fn ipv4_options() {
    for words in [1, 4, 10] {
        let ip = v4(6, A, B, words, 0, &tcp(1234, 80, 0x18, 0, 10));
        let m = ok(LinkType::Ipv4, &ip);
        assert_eq!((m.src_port, m.dst_port, m.tcp_flags), (1234, 80, 0x18));
        assert_eq!(m.header_len as usize, 20 + words * 4 + 20);
        assert_eq!(m.ip_len as usize, ip.len());
    }
}

#[test]
fn ipv4_fragments() {
    // first fragment: MF set, offset 0, carries the UDP header
    let first = v4(17, A, B, 0, 0x2000, &udp(9000, 9001, 1472)[..1480]);
    let m = ok(LinkType::Ipv4, &first);
    assert_eq!(
        (m.src_port, m.dst_port, m.fragment),
        (9000, 9001, Fragment::First)
    );
    assert_eq!(m.ip_len, 1500);
    // a later fragment: offset 185 (1480 bytes), no transport header, ports 0
    let later = v4(17, A, B, 0, 185, &[0xee; 100]);
    assert_eq!(ok(LinkType::Ipv4, &first).frag_id, 0);
    let mut later = later;
    later[4..6].copy_from_slice(&0xbeefu16.to_be_bytes());
    let m = ok(LinkType::Ipv4, &later);
    assert_eq!(m.frag_id, 0xbeef);
    assert_eq!(
        (m.src_port, m.dst_port, m.protocol, m.fragment),
        (0, 0, 17, Fragment::Later)
    );
    assert_eq!(m.ip_len, 120);
    // a later fragment with too little data for a port number is still a packet
    let tiny = v4(6, A, B, 0, 0x2000 | 3, &[1]);
    assert_eq!(ok(LinkType::Ipv4, &tiny).fragment, Fragment::Later);
    // a first fragment too short for the TCP header is malformed
    let bad = v4(6, A, B, 0, 0x2000, &[0; 8]);
    assert_eq!(
        parse(LinkType::Ipv4, &bad),
        Err(SkipReason::TruncatedTransport)
    );
}

#[test]
fn icmp_and_other_protocols_have_no_ports() {
    let m = ok(
        LinkType::Ipv4,
        &v4(1, A, B, 0, 0, &[8, 0, 0, 0, 0, 1, 0, 1]),
    );
    assert_eq!(
        (m.protocol, m.src_port, m.dst_port, m.ip_len),
        (1, 0, 0, 28)
    );
    let m = ok(LinkType::Ipv6, &v6(58, &[], &[128, 0, 0, 0, 0, 1, 0, 1]));
    assert_eq!(
        (m.protocol, m.src_port, m.dst_port, m.ip_len),
        (58, 0, 0, 48)
    );
    let m = ok(LinkType::Ipv4, &v4(47, A, B, 0, 0, &[0; 4]));
    assert_eq!((m.protocol, m.src_port, m.dst_port), (47, 0, 0));
    let m = ok(LinkType::Ipv6, &v6(59, &[], &[]));
    assert_eq!((m.protocol, m.ip_len), (59, 40));
    // ESP hides whatever follows
    let m = ok(LinkType::Ipv6, &v6(50, &[], &[0; 16]));
    assert_eq!((m.protocol, m.src_port), (50, 0));
}

#[test]
fn ipv6_extension_headers() {
    let l4 = tcp(5555, 22, 0x02, 0, 0);
    let ext = vec![
        (0u8, opts_hdr(1)),
        (60, opts_hdr(2)),
        (43, opts_hdr(3)),
        (51, ah_hdr(6)),
        (60, opts_hdr(1)),
    ];
    let p = v6(6, &ext, &l4);
    let m = ok(LinkType::Ipv6, &p);
    assert_eq!(
        (m.protocol, m.src_port, m.dst_port, m.tcp_flags),
        (6, 5555, 22, 0x02)
    );
    assert_eq!(m.ip_len as usize, p.len());
    assert_eq!(m.header_len as usize, p.len());
    assert_eq!(m.dst_addr().to_string(), "2001:db8::2");
    // hop-by-hop then UDP (as in MLD / router alert traffic)
    let m = ok(
        LinkType::Ipv6,
        &v6(17, &[(0, opts_hdr(1))], &udp(546, 547, 20)),
    );
    assert_eq!((m.src_port, m.dst_port), (546, 547));
}

#[test]
fn ipv6_fragments() {
    let first = v6(17, &[(44, frag_hdr(0, true))], &udp(4000, 4001, 100));
    let m = ok(LinkType::Ipv6, &first);
    assert_eq!(
        (m.protocol, m.src_port, m.dst_port, m.fragment),
        (17, 4000, 4001, Fragment::First)
    );
    let later = v6(17, &[(44, frag_hdr(14, false))], &[0; 50]);
    let m = ok(LinkType::Ipv6, &later);
    assert_eq!(
        (m.protocol, m.src_port, m.dst_port, m.fragment),
        (17, 0, 0, Fragment::Later)
    );
    assert_eq!(m.ip_len, 40 + 8 + 50);
    // atomic fragment (offset 0, no more fragments) is a whole packet
    let atomic = v6(6, &[(44, frag_hdr(0, false))], &tcp(1, 2, 0x11, 0, 0));
    let m = ok(LinkType::Ipv6, &atomic);
    assert_eq!((m.src_port, m.dst_port, m.fragment), (1, 2, Fragment::None));
}

#[test]
fn non_ip_frames_are_skipped() {
    assert_eq!(
        parse(LinkType::Ethernet, &eth(0x0806, &[], &[0; 28])),
        Err(SkipReason::NotIp)
    );
    assert_eq!(
        parse(LinkType::Ethernet, &eth(0x88cc, &[], &[0; 40])),
        Err(SkipReason::NotIp)
    );
    assert_eq!(
        parse(LinkType::Ethernet, &eth(0x0026, &[], &[0x42; 38])),
        Err(SkipReason::NotIp)
    );
    assert_eq!(
        parse(LinkType::Ethernet, &eth(0x0806, &[0x8100], &[0; 28])),
        Err(SkipReason::NotIp)
    );
    assert!(!SkipReason::NotIp.is_malformed());
}

#[test]
fn malformed_headers() {
    assert_eq!(
        parse(LinkType::Ethernet, &[0; 13]),
        Err(SkipReason::TruncatedLink)
    );
    assert_eq!(
        parse(LinkType::Ethernet, &eth(0x0800, &[], &[0x45; 19])),
        Err(SkipReason::TruncatedIp)
    );
    let mut ip = v4(17, A, B, 0, 0, &udp(1, 2, 0));
    ip[0] = 0x44; // IHL 4 words
    assert_eq!(parse(LinkType::Ipv4, &ip), Err(SkipReason::BadIpHeader));
    let mut ip = v4(17, A, B, 0, 0, &udp(1, 2, 0));
    ip[0] = 0x4f; // IHL 60 bytes, only 28 present
    assert_eq!(parse(LinkType::Ipv4, &ip), Err(SkipReason::TruncatedIp));
    let mut ip = v4(17, A, B, 0, 0, &udp(1, 2, 0));
    ip[2..4].copy_from_slice(&10u16.to_be_bytes()); // total length < header
    assert_eq!(parse(LinkType::Ipv4, &ip), Err(SkipReason::BadIpHeader));
    let ip = v4(17, A, B, 0, 0, &[0; 7]);
    assert_eq!(
        parse(LinkType::Ipv4, &ip),
        Err(SkipReason::TruncatedTransport)
    );
    let mut t = tcp(1, 2, 0, 0, 0);
    t[12] = 0x40; // data offset 4 words
    assert_eq!(
        parse(LinkType::Ipv4, &v4(6, A, B, 0, 0, &t)),
        Err(SkipReason::BadTransportHeader)
    );
    // total length claims a TCP header the capture does not hold (snap length)
    let ip = v4(6, A, B, 0, 0, &tcp(1, 2, 0, 0, 0));
    assert_eq!(
        parse(LinkType::Ipv4, &ip[..30]),
        Err(SkipReason::TruncatedTransport)
    );
    // IPv6 extension header running past the packet
    let mut p = v6(6, &[(0, opts_hdr(1))], &[]);
    p[41] = 200;
    assert_eq!(parse(LinkType::Ipv6, &p), Err(SkipReason::TruncatedIp));
    // an endless chain of empty destination options
    let chain: Vec<(u8, Vec<u8>)> = (0..40).map(|_| (60u8, opts_hdr(1))).collect();
    assert_eq!(
        parse(LinkType::Ipv6, &v6(6, &chain, &tcp(1, 2, 0, 0, 0))),
        Err(SkipReason::TooManyExtHeaders)
    );
    let mut p = v6(17, &[], &udp(1, 2, 0));
    p[0] = 0x40;
    assert_eq!(parse(LinkType::Ipv6, &p), Err(SkipReason::BadIpVersion));
}

#[test]
fn zero_length_field_uses_captured_length() {
    // TSO / BIG TCP super-frames carry 0 in the length field
    let mut ip = v4(6, A, B, 0, 0, &tcp(1, 2, 0x10, 0, 30000));
    ip[2] = 0;
    ip[3] = 0;
    assert_eq!(ok(LinkType::Ipv4, &ip).ip_len as usize, ip.len());
    let mut p = v6(6, &[], &tcp(1, 2, 0x10, 0, 70000));
    p[4] = 0;
    p[5] = 0;
    assert_eq!(ok(LinkType::Ipv6, &p).ip_len as usize, p.len());
}

#[test]
fn gso_expansion() {
    // 20 IP + 32 TCP header, 64000 payload bytes in 1448-byte segments
    let ip = v4(6, A, B, 0, 0, &tcp(1, 2, 0x18, 3, 64000));
    let m = ok(LinkType::Ipv4, &ip);
    assert_eq!(m.header_len, 52);
    let (n, bytes) = gso_segments(&m, 1448);
    assert_eq!(n, 45); // 44 full segments + one of 288 bytes
    assert_eq!(bytes, 64000 + 45 * 52);
    assert_eq!(gso_segments(&m, 0), (1, m.ip_len as u64));
    assert_eq!(gso_segments(&m, 64000), (1, m.ip_len as u64));
    assert_eq!(gso_segments(&m, 32000), (2, 64000 + 2 * 52));
    // UDP GSO over IPv6
    let p = v6(17, &[], &udp(1, 2, 3000));
    let m = ok(LinkType::Ipv6, &p);
    assert_eq!(gso_segments(&m, 1000), (3, 3000 + 3 * 48));
}

#[test]
fn skip_counts() {
    let mut c = SkipCounts::default();
    c.add(SkipReason::NotIp);
    c.add(SkipReason::NotIp);
    c.add(SkipReason::TruncatedIp);
    assert_eq!(c.total(), 3);
    assert_eq!(c.malformed(), 1);
    assert_eq!(
        c.iter().collect::<Vec<_>>(),
        vec![(SkipReason::NotIp, 2), (SkipReason::TruncatedIp, 1)]
    );
}

/// Every prefix of every valid frame, and bytes flipped everywhere, parse without panicking.
#[test]
fn no_panic_on_truncation_or_corruption() {
    let ext = vec![(0u8, opts_hdr(1)), (44, frag_hdr(0, true)), (51, ah_hdr(4))];
    let frames: Vec<(LinkType, Vec<u8>)> = vec![
        (
            LinkType::Ethernet,
            eth(0x0800, &[0x8100], &v4(6, A, B, 2, 0, &tcp(1, 2, 2, 2, 4))),
        ),
        (
            LinkType::Ethernet,
            eth(0x86dd, &[], &v6(17, &ext, &udp(1, 2, 4))),
        ),
        (
            LinkType::LinuxSll,
            sll(0x0800, &v4(17, A, B, 0, 0x2000, &udp(1, 2, 4))),
        ),
        (
            LinkType::LinuxSll2,
            sll2(0x86dd, &v6(6, &[(60, opts_hdr(2))], &tcp(1, 2, 2, 0, 0))),
        ),
        (
            LinkType::RawIp,
            v6(58, &[(44, frag_hdr(3, false))], &[1, 2, 3]),
        ),
    ];
    let mut seed = 0x1234_5678_9abc_def0u64;
    for (link, f) in &frames {
        for n in 0..=f.len() {
            let _ = parse(*link, &f[..n]);
        }
        for i in 0..f.len() {
            for v in [0u8, 0xff, 0x0f, 0x40, 0x60, 0x81] {
                let mut g = f.clone();
                g[i] = v;
                let _ = parse(*link, &g);
            }
        }
        for _ in 0..2000 {
            let mut g = f.clone();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let i = (seed as usize) % g.len();
            g[i] = (seed >> 32) as u8;
            let _ = parse(*link, &g[..(seed >> 40) as usize % (g.len() + 1)]);
        }
    }
}
