//! Model test: random packet sequences through [`FlowTable`] and through a naive
//! `BTreeMap` aggregation give the same records (seeded, so failures reproduce).

use std::collections::BTreeMap;

use flowlog_capture::packet::Fragment;
use flowlog_capture::{Family, PacketMeta};
use flowlog_flow::{FlowConfig, FlowTable, WindowRecord};
use flowlog_model::{Action, LogStatus};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

type Key = (u64, u32, String, String, u16, u16, u8, Action);

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Agg {
    packets: u64,
    bytes: u64,
    first: u64,
    last: u64,
    flags: u8,
    seen: bool,
}

fn merge(a: &mut Agg, packets: u64, bytes: u64, first: u64, last: u64, flags: u8) {
    if !a.seen {
        a.first = first;
        a.last = last;
        a.seen = true;
    }
    a.packets += packets;
    a.bytes += bytes;
    a.first = a.first.min(first);
    a.last = a.last.max(last);
    a.flags |= flags;
}

fn random_packet(rng: &mut StdRng) -> PacketMeta {
    let v6 = rng.gen_bool(0.2);
    let mut m = PacketMeta {
        family: if v6 { Family::V6 } else { Family::V4 },
        src: [0; 16],
        dst: [0; 16],
        src_port: 0,
        dst_port: 0,
        protocol: [6, 17, 1, 47][rng.gen_range(0..4)],
        tcp_flags: rng.gen::<u8>() & 0x3f,
        ip_len: rng.gen_range(20..1500),
        header_len: 20,
        fragment: Fragment::None,
        frag_id: 0,
        direction: Default::default(),
    };
    let n = if v6 { 16 } else { 4 };
    m.src[0] = 10;
    m.dst[0] = 10;
    m.src[n - 1] = rng.gen_range(1..6);
    m.dst[n - 1] = rng.gen_range(1..6);
    if m.protocol == 6 || m.protocol == 17 {
        m.src_port = [53, 80, 40000, 40001][rng.gen_range(0..4)];
        m.dst_port = [53, 80, 40000, 40001][rng.gen_range(0..4)];
    }
    if m.protocol != 6 {
        m.tcp_flags = 0;
    }
    m
}

fn run(seed: u64, interval: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut table = FlowTable::new(FlowConfig {
        interval_s: interval,
        capacity: 1 << 20,
    });
    let mut model: BTreeMap<Key, Agg> = BTreeMap::new();
    let mut got: BTreeMap<Key, Agg> = BTreeMap::new();
    let mut records: Vec<WindowRecord> = Vec::new();
    let mut t_ns: u64 = 1_700_000_000 * 1_000_000_000 + rng.gen_range(0..1_000_000_000u64);
    let ops = rng.gen_range(1..3000);
    for _ in 0..ops {
        t_ns += rng.gen_range(0..3_000_000_000u64);
        // bounded reordering: up to one window back
        let jitter = rng.gen_range(0..interval * 1_000_000_000);
        let ts = if rng.gen_bool(0.1) {
            t_ns.saturating_sub(jitter)
        } else {
            t_ns
        };
        let m = random_packet(&mut rng);
        let eni = rng.gen_range(0..3u32);
        let s = ts / 1_000_000_000;
        let w = s - s % interval;
        let key = |a: Action| -> Key {
            (
                w,
                eni,
                m.src_addr().to_string(),
                m.dst_addr().to_string(),
                m.src_port,
                m.dst_port,
                m.protocol,
                a,
            )
        };
        match rng.gen_range(0..10) {
            0 => {
                // rejected inbound packet reported by NFLOG after being counted as ACCEPT
                table.add(eni, &m, ts, Action::Accept);
                table.reject(eni, &m, ts);
                // the ACCEPT entry keeps the time and flags of the moved packet
                merge(
                    model.entry(key(Action::Accept)).or_default(),
                    0,
                    0,
                    s,
                    s,
                    m.tcp_flags,
                );
                merge(
                    model.entry(key(Action::Reject)).or_default(),
                    1,
                    m.ip_len as u64,
                    s,
                    s,
                    m.tcp_flags,
                );
            }
            1 => {
                table.add(eni, &m, ts, Action::Reject);
                merge(
                    model.entry(key(Action::Reject)).or_default(),
                    1,
                    m.ip_len as u64,
                    s,
                    s,
                    m.tcp_flags,
                );
            }
            2 => {
                let (p, b) = (rng.gen_range(1..50u64), rng.gen_range(1..100_000u64));
                table.add_counts(eni, &m, ts, Action::Accept, p, b);
                merge(
                    model.entry(key(Action::Accept)).or_default(),
                    p,
                    b,
                    s,
                    s,
                    m.tcp_flags,
                );
            }
            _ => {
                table.add(eni, &m, ts, Action::Accept);
                merge(
                    model.entry(key(Action::Accept)).or_default(),
                    1,
                    m.ip_len as u64,
                    s,
                    s,
                    m.tcp_flags,
                );
            }
        }
        if rng.gen_bool(0.05) {
            // what `flowlog pcap` does: keep the current and the previous window open
            let cur = (t_ns / 1_000_000_000) - (t_ns / 1_000_000_000) % interval;
            table.close_until(cur.saturating_sub(interval), &[], &mut |r| records.push(r));
        }
    }
    table.close_all(&mut |r| records.push(r));
    assert!(table.is_empty());
    // an ACCEPT entry whose every packet was moved to REJECT prints no record
    model.retain(|_, a| a.packets > 0);
    let late = table.stats().late_packets;
    for r in &records {
        assert_eq!(r.status, LogStatus::Ok);
        let t = r.traffic.unwrap();
        assert!(t.packets > 0);
        let w = r.start - r.start % interval;
        assert_eq!(r.end - r.end % interval, w, "record crosses a window");
        let k: Key = (
            w,
            r.eni,
            t.src.to_string(),
            t.dst.to_string(),
            t.src_port,
            t.dst_port,
            t.protocol,
            t.action,
        );
        let slot = got.entry(k).or_default();
        if late == 0 {
            assert_eq!(
                slot.packets, 0,
                "duplicate record without late packets (seed {seed})"
            );
        }
        merge(slot, t.packets, t.bytes, r.start, r.end, t.tcp_flags);
    }
    assert_eq!(got.len(), model.len(), "seed {seed}");
    for (k, a) in &model {
        assert_eq!(got.get(k), Some(a), "seed {seed} key {k:?}");
    }
    let st = table.stats();
    assert_eq!(st.packets, model.values().map(|a| a.packets).sum::<u64>());
}

#[test]
fn flow_table_matches_naive_aggregation() {
    for seed in 0..200 {
        run(seed, [1, 10, 60, 600][seed as usize % 4]);
    }
}

#[test]
fn capacity_loses_only_counted_packets() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut table = FlowTable::new(FlowConfig {
        interval_s: 60,
        capacity: 20,
    });
    let mut sent = 0u64;
    let mut t = 1_700_000_000u64 * 1_000_000_000;
    for _ in 0..5000 {
        t += rng.gen_range(0..100_000_000u64);
        let m = random_packet(&mut rng);
        table.add(rng.gen_range(0..2), &m, t, Action::Accept);
        sent += 1;
        assert!(table.len() <= 20);
    }
    let mut recs = Vec::new();
    table.close_all(&mut |r| recs.push(r));
    let st = table.stats();
    let recorded: u64 = recs
        .iter()
        .filter_map(|r| r.traffic)
        .map(|t| t.packets)
        .sum();
    assert_eq!(recorded, st.packets);
    assert_eq!(st.packets + st.overflow_packets + st.excluded_packets, sent);
    assert!(st.overflow_packets > 0);
    assert!(recs.iter().any(|r| r.status == LogStatus::SkipData));
}

#[test]
fn batches_count_like_single_packets() {
    for seed in 0..20 {
        let mut rng = StdRng::seed_from_u64(1000 + seed);
        let cfg = FlowConfig {
            interval_s: 60,
            capacity: 200,
        };
        let (mut one, mut many) = (FlowTable::new(cfg), FlowTable::new(cfg));
        let mut t = 1_700_000_000u64 * 1_000_000_000;
        let mut pkts = Vec::new();
        for _ in 0..3000 {
            t += rng.gen_range(0..200_000_000u64);
            let mut m = random_packet(&mut rng);
            if rng.gen_bool(0.1) {
                // fragments of a few datagrams, first and later ones in any order
                m.frag_id = rng.gen_range(0..4);
                m.fragment = if rng.gen_bool(0.5) {
                    Fragment::First
                } else {
                    Fragment::Later
                };
                if m.fragment == Fragment::Later {
                    (m.src_port, m.dst_port) = (0, 0);
                }
            }
            if rng.gen_bool(0.01) {
                m.dst[..4].copy_from_slice(&[169, 254, 169, 254]);
                m.family = Family::V4;
            }
            pkts.push((t, m));
        }
        for (ts, m) in &pkts {
            one.add(1, m, *ts, Action::Accept);
        }
        let mut rest = &pkts[..];
        while !rest.is_empty() {
            let n = rng.gen_range(0..70).min(rest.len());
            many.add_batch(1, &rest[..n], Action::Accept);
            rest = &rest[n..];
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        one.close_all(&mut |r| a.push(r));
        many.close_all(&mut |r| b.push(r));
        assert_eq!(a, b, "seed {seed}");
        assert_eq!(one.stats(), many.stats());
        assert!(one.stats().overflow_packets > 0 && one.stats().excluded_packets > 0);
    }
}
