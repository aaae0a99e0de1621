//! The capture loop driven by byte buffers: ring blocks and NFLOG datagrams built as the kernel
//! lays them out, a fake clock, and the records that come out.

use std::time::Duration;

use flowlog_flow::WindowRecord;
use flowlog_live::nflog::build as nl;
use flowlog_live::tpacket::build::{block, PacketSpec};
use flowlog_live::tpacket::{self, VnetHdr};
use flowlog_live::{Capture, CaptureConfig, FakeSource};
use flowlog_model::LogStatus;

const IFINDEX: u32 = 4;
const T0: u64 = 1_700_000_040; // a multiple of 10 s: window [T0, T0+10)
const S: u64 = 1_000_000_000;

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    let total = 20 + l4.len();
    let mut p = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        proto,
        0,
        0,
    ];
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(l4);
    p
}

fn udp(sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    let len = 8 + payload;
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&(len as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.resize(len, 0xab);
    u
}

fn tcp(sport: u16, dport: u16, flags: u8, payload: usize) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0; 8]);
    t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.resize(20 + payload, 0xcd);
    t
}

fn eth(ip: Vec<u8>) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
    f.extend(ip);
    f
}

const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [10, 0, 0, 2];

fn pkt(t_ns: u64, pkttype: u8, ip: Vec<u8>, vnet: Option<VnetHdr>) -> PacketSpec {
    PacketSpec {
        sec: (t_ns / S) as u32,
        nsec: (t_ns % S) as u32,
        ifindex: IFINDEX as i32,
        pkttype,
        hatype: tpacket::ARPHRD_ETHER,
        protocol: 0x0800,
        frame: eth(ip),
        l2_len: 14,
        wire_len: None,
        vnet,
    }
}

fn capture(group: Option<u16>) -> Capture<FakeSource, FakeSource> {
    let mut cfg = CaptureConfig::new(IFINDEX, 10);
    cfg.nflog_group = group;
    Capture::new(FakeSource::new(), group.map(|_| FakeSource::new()), cfg)
}

fn lines(recs: &[WindowRecord]) -> Vec<String> {
    recs.iter()
        .map(|r| match r.traffic {
            Some(t) => format!(
                "{} {} {} {} {} {} {} {} {} {}",
                t.src,
                t.dst,
                t.src_port,
                t.dst_port,
                t.protocol,
                t.packets,
                t.bytes,
                r.start,
                r.end,
                t.action.as_str()
            ),
            None => format!("{} {} {}", r.start, r.end, r.status.as_str()),
        })
        .collect()
}

fn closed(c: &mut Capture<FakeSource, FakeSource>, now_ns: u64) -> Vec<WindowRecord> {
    let mut out = Vec::new();
    c.close_due(now_ns, &mut |r| out.push(r));
    out
}

/// Rebuilds a capture whose ring replays `blocks` (the sources are owned by the capture).
fn with_blocks(
    group: Option<u16>,
    blocks: Vec<Vec<u8>>,
    logs: Vec<Vec<u8>>,
) -> Capture<FakeSource, FakeSource> {
    let mut ring = FakeSource::new();
    for b in blocks {
        ring.push(b);
    }
    let nflog = group.map(|_| {
        let mut n = FakeSource::new();
        for d in &logs {
            n.push(d.clone());
        }
        n
    });
    let mut cfg = CaptureConfig::new(IFINDEX, 10);
    cfg.nflog_group = group;
    Capture::new(ring, nflog, cfg)
}

#[test]
fn counts_both_directions_and_closes_after_grace() {
    let b = block(
        &[
            pkt(
                T0 * S + 1,
                tpacket::PACKET_OUTGOING,
                ipv4(A, B, 17, &udp(5000, 53, 100)),
                None,
            ),
            pkt(
                T0 * S + 2 * S,
                tpacket::PACKET_OUTGOING,
                ipv4(A, B, 17, &udp(5000, 53, 300)),
                None,
            ),
            pkt(
                T0 * S + 3 * S,
                tpacket::PACKET_HOST,
                ipv4(B, A, 1, &[0, 0, 0, 0, 0, 1, 0, 1]),
                None,
            ),
            pkt(
                T0 * S + 4 * S,
                tpacket::PACKET_OTHERHOST,
                ipv4(B, [10, 0, 0, 9], 17, &udp(1, 2, 3)),
                None,
            ),
        ],
        true,
        4096,
    );
    let mut c = with_blocks(None, vec![b], vec![]);
    c.step(Duration::ZERO, (T0 + 5) * S).unwrap();
    // Window end T0+10 plus grace 400 ms: not yet at T0+10.3.
    assert!(closed(&mut c, (T0 + 10) * S + 300_000_000).is_empty());
    let recs = closed(&mut c, (T0 + 10) * S + 500_000_000);
    assert_eq!(
        lines(&recs),
        vec![
            format!("10.0.0.1 10.0.0.2 5000 53 17 2 456 {T0} {} ACCEPT", T0 + 2),
            format!("10.0.0.2 10.0.0.1 0 0 1 1 28 {} {} ACCEPT", T0 + 3, T0 + 3),
        ]
    );
    assert_eq!(recs[0].start, T0);
    assert_eq!(recs[0].end, T0 + 2);
    assert_eq!(c.stats().not_ours, 1);
    assert_eq!(c.stats().frames, 4);

    // The next window was idle: NODATA once it closes.
    c.step(Duration::ZERO, (T0 + 20) * S).unwrap();
    let recs = closed(&mut c, (T0 + 20) * S + 500_000_000);
    assert_eq!(
        lines(&recs),
        vec![format!("{} {} NODATA", T0 + 10, T0 + 20)]
    );
}

#[test]
fn gso_frames_count_as_wire_packets() {
    let v = VnetHdr {
        flags: 1,
        gso_type: 1,
        hdr_len: 54,
        gso_size: 1448,
        csum_start: 34,
        csum_offset: 16,
    };
    let frame = ipv4(A, B, 6, &tcp(40000, 80, 0x18, 4000));
    let b = block(
        &[pkt(T0 * S, tpacket::PACKET_OUTGOING, frame, Some(v))],
        true,
        16384,
    );
    let mut c = with_blocks(None, vec![b], vec![]);
    c.step(Duration::ZERO, (T0 + 1) * S).unwrap();
    let recs = closed(&mut c, (T0 + 11) * S);
    // ceil(4000 / 1448) = 3 segments, each with 40 bytes of IP+TCP header.
    assert_eq!(
        lines(&recs),
        vec![format!(
            "10.0.0.1 10.0.0.2 40000 80 6 3 4120 {T0} {T0} ACCEPT"
        )]
    );
    assert_eq!(c.stats().gso_frames, 1);
    assert_eq!(c.stats().packets, 3);
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn inbound_reject_moves_one_packet_from_accept_to_reject() {
    let syn = ipv4(B, A, 6, &tcp(41000, 9999, 0x02, 0));
    let ok = ipv4(B, A, 17, &udp(41000, 53, 10));
    let b = block(
        &[
            pkt(T0 * S + 100, tpacket::PACKET_HOST, syn.clone(), None),
            pkt(T0 * S + 200, tpacket::PACKET_HOST, syn.clone(), None),
            pkt(T0 * S + 300, tpacket::PACKET_HOST, ok, None),
        ],
        true,
        4096,
    );
    let logs = vec![
        nl::packet(7, 1, Some(IFINDEX), None, Some((T0, 0)), Some("rej"), &syn),
        // Another interface's reject and another group: ignored.
        nl::packet(7, 1, Some(IFINDEX + 1), None, Some((T0, 0)), None, &syn),
        nl::packet(8, 1, Some(IFINDEX), None, Some((T0, 0)), None, &syn),
    ];
    let mut c = with_blocks(Some(7), vec![b], logs);
    c.step(Duration::ZERO, T0 * S + 500).unwrap();
    let recs = closed(&mut c, (T0 + 11) * S);
    assert_eq!(
        sorted(lines(&recs)),
        sorted(vec![
            format!("10.0.0.2 10.0.0.1 41000 9999 6 1 40 {T0} {T0} ACCEPT"),
            format!("10.0.0.2 10.0.0.1 41000 53 17 1 38 {T0} {T0} ACCEPT"),
            format!("10.0.0.2 10.0.0.1 41000 9999 6 1 40 {T0} {T0} REJECT"),
        ])
    );
    let s = c.stats();
    assert_eq!(
        (s.rejects_moved, s.rejects_unmatched, s.nflog_ignored),
        (1, 0, 2)
    );
}

#[test]
fn a_reject_seen_before_its_ring_block_waits_for_the_ring() {
    let syn = ipv4(B, A, 6, &tcp(41000, 9999, 0x02, 0));
    let logs = vec![nl::packet(
        7,
        1,
        Some(IFINDEX),
        None,
        Some((T0, 5)),
        None,
        &syn,
    )];
    let mut c = with_blocks(Some(7), vec![], logs);
    // Step 1 at T0+10 ms: NFLOG has the packet, its ring block has not retired yet.
    c.step(Duration::ZERO, T0 * S + 10_000_000).unwrap();
    assert_eq!(
        c.stats().rejects_moved + c.stats().rejects_unmatched,
        0,
        "must wait"
    );
    // Step 2 at T0+20 ms: the block arrives. Its packet is older than the NFLOG receipt and the
    // ring is only known complete up to 20 ms - 50 ms timeout - margin: still waiting.
    let b = block(
        &[pkt(T0 * S + 1_000, tpacket::PACKET_HOST, syn.clone(), None)],
        true,
        4096,
    );
    c.sources_mut().0.push(b);
    c.step(Duration::ZERO, T0 * S + 20_000_000).unwrap();
    assert_eq!(
        c.stats().rejects_moved + c.stats().rejects_unmatched,
        0,
        "must still wait"
    );
    // Step 3 at T0+200 ms: the ring was idle for longer than a block timeout: move it.
    c.step(Duration::ZERO, T0 * S + 200_000_000).unwrap();
    assert_eq!(c.stats().rejects_moved, 1);
    let recs = closed(&mut c, (T0 + 11) * S);
    assert_eq!(
        lines(&recs),
        vec![format!(
            "10.0.0.2 10.0.0.1 41000 9999 6 1 40 {T0} {T0} REJECT"
        )]
    );
}

#[test]
fn pending_rejects_are_forced_when_their_window_closes() {
    let syn = ipv4(B, A, 6, &tcp(41000, 9999, 0x02, 0));
    let logs = vec![nl::packet(
        7,
        0,
        Some(IFINDEX),
        None,
        Some((T0 + 9, 0)),
        None,
        &syn,
    )];
    let mut c = with_blocks(Some(7), vec![], logs);
    // NFLOG read at T0+9.9 s; the ring never shows the packet (the kernel dropped it).
    c.step(Duration::ZERO, (T0 + 9) * S + 900_000_000).unwrap();
    assert_eq!(c.stats().rejects_unmatched, 0);
    let recs = closed(&mut c, (T0 + 10) * S + 500_000_000);
    assert_eq!(
        lines(&recs),
        vec![format!(
            "10.0.0.2 10.0.0.1 41000 9999 6 1 40 {} {} REJECT",
            T0 + 9,
            T0 + 9
        )]
    );
    assert_eq!(c.stats().rejects_unmatched, 1);
}

#[test]
fn outbound_rejects_are_counted_directly() {
    let out = ipv4(A, B, 17, &udp(6000, 9998, 72));
    let b = block(
        &[pkt(
            T0 * S,
            tpacket::PACKET_OUTGOING,
            ipv4(A, B, 17, &udp(6000, 53, 1)),
            None,
        )],
        true,
        4096,
    );
    let logs = vec![
        nl::packet(7, 3, None, Some(IFINDEX), Some((T0 + 1, 0)), None, &out),
        nl::packet(7, 4, None, Some(IFINDEX), Some((T0 + 1, 0)), None, &out),
        nl::packet(7, 3, None, Some(IFINDEX + 2), Some((T0 + 1, 0)), None, &out),
    ];
    let mut c = with_blocks(Some(7), vec![b], logs);
    c.step(Duration::ZERO, (T0 + 2) * S).unwrap();
    let recs = closed(&mut c, (T0 + 11) * S);
    assert_eq!(
        sorted(lines(&recs)),
        sorted(vec![
            format!("10.0.0.1 10.0.0.2 6000 53 17 1 29 {T0} {T0} ACCEPT"),
            format!(
                "10.0.0.1 10.0.0.2 6000 9998 17 2 200 {} {} REJECT",
                T0 + 1,
                T0 + 1
            ),
        ])
    );
    assert_eq!(c.stats().rejects_outbound, 2);
    assert_eq!(c.stats().nflog_ignored, 1);
}

#[test]
fn kernel_drops_make_the_window_skipdata() {
    let mut ring = FakeSource::new();
    ring.push(block(
        &[pkt(
            T0 * S,
            tpacket::PACKET_HOST,
            ipv4(B, A, 17, &udp(1, 2, 0)),
            None,
        )],
        true,
        4096,
    ));
    ring.add_drops(42);
    let mut c: Capture<FakeSource, FakeSource> =
        Capture::new(ring, None, CaptureConfig::new(IFINDEX, 10));
    c.step(Duration::ZERO, (T0 + 3) * S).unwrap();
    let recs = closed(&mut c, (T0 + 11) * S);
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1].status, LogStatus::SkipData);
    assert_eq!((recs[1].start, recs[1].end), (T0, T0 + 10));
    assert_eq!(c.stats().kernel_drops, 42);
}

#[test]
fn finish_flushes_the_current_window_with_nodata_when_idle() {
    let mut c = capture(None);
    let mut out = Vec::new();
    let n = c
        .finish(|| (T0 + 3) * S, Duration::ZERO, &mut |r| out.push(r))
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(lines(&out), vec![format!("{} {} NODATA", T0, T0 + 10)]);
}

#[test]
fn finish_flushes_traffic_of_the_current_window() {
    let b = block(
        &[pkt(
            (T0 + 1) * S,
            tpacket::PACKET_OUTGOING,
            ipv4(A, B, 17, &udp(7, 8, 2)),
            None,
        )],
        true,
        4096,
    );
    let mut c = with_blocks(None, vec![b], vec![]);
    c.step(Duration::ZERO, (T0 + 2) * S).unwrap();
    let mut out = Vec::new();
    c.finish(|| (T0 + 2) * S, Duration::ZERO, &mut |r| out.push(r))
        .unwrap();
    assert_eq!(
        lines(&out),
        vec![format!(
            "10.0.0.1 10.0.0.2 7 8 17 1 30 {} {} ACCEPT",
            T0 + 1,
            T0 + 1
        )]
    );
}

#[test]
fn one_nflog_socket_can_feed_several_interfaces() {
    let out = ipv4(A, B, 17, &udp(6000, 9998, 12));
    let datagram = nl::packet(7, 3, None, Some(IFINDEX), Some((T0 + 1, 0)), None, &out);
    let mut cfg_other = CaptureConfig::new(IFINDEX + 1, 10);
    cfg_other.nflog_group = Some(7);
    let mut ours = capture(Some(7));
    let mut other: Capture<FakeSource, FakeSource> =
        Capture::new(FakeSource::new(), None, cfg_other);
    for c in [&mut ours, &mut other] {
        c.step(Duration::ZERO, (T0 + 1) * S).unwrap();
        c.feed_nflog(&datagram, (T0 + 1) * S);
    }
    assert_eq!(
        lines(&closed(&mut ours, (T0 + 11) * S)),
        vec![format!(
            "10.0.0.1 10.0.0.2 6000 9998 17 1 40 {} {} REJECT",
            T0 + 1,
            T0 + 1
        )]
    );
    assert_eq!(other.stats().nflog_ignored, 1);
    assert_eq!(
        lines(&closed(&mut other, (T0 + 11) * S)),
        vec![format!("{} {} NODATA", T0, T0 + 10)]
    );
}
