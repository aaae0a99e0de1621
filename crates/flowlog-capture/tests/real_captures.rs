//! The parser and readers on real captures from `../shared/data` (made by
//! `../shared/bench/capture/real_capture.sh`: three namespace hosts on a bridge). Skipped with a
//! message when the files are absent.

use std::path::PathBuf;

use flowlog_capture::packet::Fragment;
use flowlog_capture::{parse, CaptureReader, Family, LinkType, PacketMeta, SkipReason};

fn data(name: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(name);
    if p.exists() {
        Some(p)
    } else if std::env::var("CI").as_deref() == Ok("true") {
        // CI always has ../shared/data beside the checkout: a skip there would hide a gap.
        panic!("{} not found, but CI must run this test", p.display());
    } else {
        eprintln!(
            "SKIPPED: {} not found (real captures live in ../shared/data)",
            p.display()
        );
        None
    }
}

struct Parsed {
    packets: Vec<(u64, PacketMeta)>,
    not_ip: u64,
    malformed: u64,
}

fn read(path: &PathBuf) -> Parsed {
    let mut r = CaptureReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = Parsed {
        packets: Vec::new(),
        not_ip: 0,
        malformed: 0,
    };
    while let Some(f) = r.next_frame().unwrap() {
        assert_eq!(f.link, LinkType::Ethernet);
        match parse(f.link, f.data) {
            Ok(m) => {
                // whole frames were captured: the IP length is the frame minus its Ethernet
                // header, except for minimum-size frames that carry padding
                assert_eq!(f.data.len() as u32, f.orig_len);
                let l3 = f.data.len() as u32 - 14;
                assert!(
                    m.ip_len == l3 || (f.data.len() <= 60 && m.ip_len < l3),
                    "{m:?} frame {}",
                    f.data.len()
                );
                assert!(m.header_len <= m.ip_len);
                out.packets.push((f.ts_ns, m));
            }
            Err(SkipReason::NotIp) => {
                // ARP
                assert_eq!(&f.data[12..14], &[0x08, 0x06]);
                out.not_ip += 1;
            }
            Err(_) => out.malformed += 1,
        }
    }
    out
}

#[test]
fn h1_pcap_and_pcapng_agree() {
    let (Some(a), Some(b)) = (data("real-h1.pcap"), data("real-h1.pcapng")) else {
        return;
    };
    let a = read(&a);
    let b = read(&b);
    assert_eq!(a.packets.len(), 1697);
    assert!(a.packets == b.packets, "pcap and pcapng parse differently");
    assert_eq!((a.not_ip, b.not_ip, a.malformed, b.malformed), (5, 5, 0, 0));
}

#[test]
fn gso_frames_ipv6_hop_by_hop_icmpv6_arp() {
    for name in ["real-h1.pcap", "real-h2.pcap", "real-h3.pcap"] {
        let Some(p) = data(name) else { return };
        let r = read(&p);
        assert_eq!(r.malformed, 0, "{name}");
        assert!(r.not_ip > 0, "{name}: ARP frames expected");
        let pk = &r.packets;
        // GSO super-frames: one captured frame far above the MTU
        let big: Vec<_> = pk.iter().filter(|(_, m)| m.ip_len > 1500).collect();
        assert!(!big.is_empty(), "{name}: GSO frames expected");
        assert!(big
            .iter()
            .all(|(_, m)| m.protocol == 6 && m.ip_len <= 65535));
        assert!(big.iter().any(|(_, m)| m.ip_len > 60_000));
        // ICMPv6 (neighbour discovery, MLD) with ports 0; MLD reports carry hop-by-hop options
        let icmp6: Vec<_> = pk.iter().filter(|(_, m)| m.protocol == 58).collect();
        assert!(!icmp6.is_empty());
        assert!(icmp6
            .iter()
            .all(|(_, m)| m.family == Family::V6 && m.src_port == 0 && m.dst_port == 0));
        assert!(
            icmp6.iter().any(|(_, m)| m.header_len == 48),
            "{name}: hop-by-hop header expected"
        );
        assert!(pk.iter().all(|(_, m)| m.fragment == Fragment::None));
        // TCP and UDP always carry ports
        assert!(pk
            .iter()
            .filter(|(_, m)| m.protocol == 6 || m.protocol == 17)
            .all(|(_, m)| m.dst_port != 0));
        // timestamps are plausible (2024 or later) and sorted within a little reordering
        assert!(pk.iter().all(|(t, _)| *t > 1_700_000_000_000_000_000));
    }
}

#[test]
fn h3_reset_and_dropped_udp() {
    let Some(p) = data("real-h3.pcap") else {
        return;
    };
    let r = read(&p);
    // the connection refused with a TCP reset
    let rst: Vec<_> = r
        .packets
        .iter()
        .filter(|(_, m)| m.protocol == 6 && m.tcp_flags & 0x04 != 0)
        .collect();
    assert_eq!(rst.len(), 1);
    // UDP over IPv6 to the dropped port shows up (the capture sees packets before the firewall)
    assert!(r
        .packets
        .iter()
        .any(|(_, m)| m.family == Family::V6 && m.protocol == 17));
}
