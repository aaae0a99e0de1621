//! FlowTable behaviour on hand-written packet sequences.

use super::*;
use flowlog_capture::packet::Fragment;
use flowlog_capture::Family;

const S: u64 = 1_000_000_000;

fn pkt(src: u8, dst: u8, proto: u8, sp: u16, dp: u16, len: u32) -> PacketMeta {
    let mut m = PacketMeta {
        family: Family::V4,
        src: [0; 16],
        dst: [0; 16],
        src_port: sp,
        dst_port: dp,
        protocol: proto,
        tcp_flags: 0,
        ip_len: len,
        header_len: 40,
        fragment: Fragment::None,
        frag_id: 0,
        direction: Default::default(),
    };
    m.src[..4].copy_from_slice(&[10, 0, 0, src]);
    m.dst[..4].copy_from_slice(&[10, 0, 0, dst]);
    m
}

fn table(interval: u64, capacity: usize) -> FlowTable {
    FlowTable::new(FlowConfig {
        interval_s: interval,
        capacity,
    })
}

fn all(t: &mut FlowTable) -> Vec<WindowRecord> {
    let mut v = Vec::new();
    t.close_all(&mut |r| v.push(r));
    v
}

fn lines(recs: &[WindowRecord]) -> Vec<String> {
    let names = [
        ("111122223333".to_string(), "eni-a".to_string()),
        ("111122223333".to_string(), "eni-b".to_string()),
    ];
    let f = flowlog_model::record::RecordFormat::default();
    recs.iter()
        .map(|r| {
            let (a, e) = &names[r.eni as usize];
            f.line(&r.into_record(a, e))
        })
        .collect()
}

#[test]
fn windows_are_epoch_aligned_with_first_and_last_packet_times() {
    let mut t = table(60, 100);
    let a = pkt(1, 2, 6, 1000, 80, 100);
    t.add(0, &a, 1_700_000_041 * S + 5, Action::Accept); // window 1_700_000_040
    t.add(0, &a, 1_700_000_099 * S + 999_999_999, Action::Accept);
    t.add(0, &a, 1_700_000_100 * S, Action::Accept); // next window
    let recs = all(&mut t);
    assert_eq!(
        lines(&recs),
        vec![
            "2 111122223333 eni-a 10.0.0.1 10.0.0.2 1000 80 6 2 200 1700000041 1700000099 ACCEPT OK",
            "2 111122223333 eni-a 10.0.0.1 10.0.0.2 1000 80 6 1 100 1700000100 1700000100 ACCEPT OK",
        ]
    );
    assert_eq!(t.window_start(1_700_000_099), 1_700_000_040);
    assert!(t.is_empty());
}

#[test]
fn one_record_per_direction_eni_and_action() {
    let mut t = table(600, 100);
    let req = pkt(1, 2, 17, 5000, 53, 60);
    let resp = pkt(2, 1, 17, 53, 5000, 120);
    t.add(0, &req, 10 * S, Action::Accept);
    t.add(0, &resp, 11 * S, Action::Accept);
    t.add(1, &req, 12 * S, Action::Accept);
    t.add(0, &req, 13 * S, Action::Reject);
    let l = lines(&all(&mut t));
    assert_eq!(l.len(), 4);
    assert!(l.contains(
        &"2 111122223333 eni-a 10.0.0.1 10.0.0.2 5000 53 17 1 60 10 10 ACCEPT OK".to_string()
    ));
    assert!(l.contains(
        &"2 111122223333 eni-a 10.0.0.2 10.0.0.1 53 5000 17 1 120 11 11 ACCEPT OK".to_string()
    ));
    assert!(l.contains(
        &"2 111122223333 eni-b 10.0.0.1 10.0.0.2 5000 53 17 1 60 12 12 ACCEPT OK".to_string()
    ));
    assert!(l.contains(
        &"2 111122223333 eni-a 10.0.0.1 10.0.0.2 5000 53 17 1 60 13 13 REJECT OK".to_string()
    ));
}

#[test]
fn capacity_turns_new_flows_into_skipdata() {
    let mut t = table(60, 2);
    t.add(0, &pkt(1, 2, 6, 1, 1, 40), 60 * S, Action::Accept);
    t.add(1, &pkt(1, 2, 6, 2, 2, 40), 61 * S, Action::Accept);
    assert_eq!(
        t.add(0, &pkt(1, 2, 6, 3, 3, 40), 62 * S, Action::Accept),
        AddOutcome::Overflow
    );
    assert_eq!(
        t.add(0, &pkt(1, 2, 6, 4, 4, 40), 63 * S, Action::Accept),
        AddOutcome::Overflow
    );
    // known flows keep counting
    assert_eq!(
        t.add(0, &pkt(1, 2, 6, 1, 1, 40), 64 * S, Action::Accept),
        AddOutcome::Counted
    );
    assert_eq!(t.len(), 2);
    let l = lines(&all(&mut t));
    assert_eq!(l.len(), 3);
    assert_eq!(l[2], "2 111122223333 eni-a - - - - - - - 60 120 - SKIPDATA");
    let st = t.stats();
    assert_eq!((st.packets, st.overflow_packets), (3, 2));
    // closing the window frees its entries
    assert_eq!(
        t.add(0, &pkt(1, 2, 6, 9, 9, 40), 200 * S, Action::Accept),
        AddOutcome::Counted
    );
}

#[test]
fn reject_moves_a_packet_from_accept() {
    let mut t = table(60, 100);
    let a = pkt(1, 2, 6, 40000, 22, 60);
    for i in 0..3 {
        t.add(0, &a, (120 + i) * S, Action::Accept);
    }
    assert_eq!(t.reject(0, &a, 125 * S), RejectOutcome::Moved);
    let l = lines(&all(&mut t));
    assert_eq!(
        l,
        vec![
            "2 111122223333 eni-a 10.0.0.1 10.0.0.2 40000 22 6 2 120 120 122 ACCEPT OK",
            "2 111122223333 eni-a 10.0.0.1 10.0.0.2 40000 22 6 1 60 125 125 REJECT OK",
        ]
    );
    // every accepted packet rejected: no ACCEPT record at all
    let mut t = table(60, 100);
    t.add(0, &a, 120 * S, Action::Accept);
    assert_eq!(t.reject(0, &a, 120 * S), RejectOutcome::Moved);
    // outbound rejects seen only by NFLOG, and a reject without an accepted packet
    t.add(0, &pkt(2, 1, 6, 22, 40000, 40), 121 * S, Action::Reject);
    assert_eq!(
        t.reject(0, &pkt(3, 1, 17, 1, 2, 30), 122 * S),
        RejectOutcome::Unmatched
    );
    let l = lines(&all(&mut t));
    assert_eq!(
        l,
        vec![
            "2 111122223333 eni-a 10.0.0.1 10.0.0.2 40000 22 6 1 60 120 120 REJECT OK",
            "2 111122223333 eni-a 10.0.0.2 10.0.0.1 22 40000 6 1 40 121 121 REJECT OK",
            "2 111122223333 eni-a 10.0.0.3 10.0.0.1 1 2 17 1 30 122 122 REJECT OK",
        ]
    );
    let st = t.stats();
    assert_eq!((st.packets, st.bytes, st.reject_unmatched), (3, 130, 1));
}

#[test]
fn nodata_for_idle_enis_once_per_window() {
    let mut t = table(60, 100);
    t.add(0, &pkt(1, 2, 1, 0, 0, 84), 130 * S, Action::Accept);
    let mut v = Vec::new();
    // nothing has ended yet
    t.close_until(150, &[0, 1], &mut |r| v.push(r));
    assert_eq!(v.len(), 0);
    t.close_until(180, &[0, 1], &mut |r| v.push(r));
    assert_eq!(
        lines(&v),
        vec![
            "2 111122223333 eni-a 10.0.0.1 10.0.0.2 0 0 1 1 84 130 130 ACCEPT OK",
            "2 111122223333 eni-b - - - - - - - 120 180 - NODATA",
        ]
    );
    // the same window is not reported twice; a fully idle window reports every ENI
    v.clear();
    t.close_until(185, &[0, 1], &mut |r| v.push(r));
    assert!(v.is_empty());
    t.close_until(240, &[0, 1], &mut |r| v.push(r));
    assert_eq!(
        lines(&v),
        vec![
            "2 111122223333 eni-a - - - - - - - 180 240 - NODATA",
            "2 111122223333 eni-b - - - - - - - 180 240 - NODATA"
        ]
    );
    // a SKIPDATA window is not idle
    v.clear();
    t.note_lost(1, 250 * S, 7);
    t.close_until(300, &[0, 1], &mut |r| v.push(r));
    assert_eq!(
        lines(&v),
        vec![
            "2 111122223333 eni-b - - - - - - - 240 300 - SKIPDATA",
            "2 111122223333 eni-a - - - - - - - 240 300 - NODATA"
        ]
    );
    assert_eq!(t.stats().lost_packets, 7);
}

#[test]
fn excluded_traffic_makes_no_records() {
    let mut t = table(60, 100);
    let mut imds = pkt(1, 2, 6, 40000, 80, 60);
    imds.dst[..4].copy_from_slice(&[169, 254, 169, 254]);
    assert_eq!(
        t.add(0, &imds, 10 * S, Action::Accept),
        AddOutcome::Excluded
    );
    assert_eq!(
        t.add(0, &pkt(1, 2, 17, 68, 67, 300), 10 * S, Action::Accept),
        AddOutcome::Excluded
    );
    assert!(all(&mut t).is_empty());
    assert_eq!(t.stats().excluded_packets, 2);
}

#[test]
fn late_packets_reopen_their_window() {
    let mut t = table(60, 100);
    let a = pkt(1, 2, 6, 1, 2, 50);
    t.add(0, &a, 10 * S, Action::Accept);
    let mut v = Vec::new();
    t.close_until(60, &[], &mut |r| v.push(r));
    assert_eq!(v.len(), 1);
    t.add(0, &a, 20 * S, Action::Accept);
    assert_eq!(t.stats().late_packets, 1);
    t.close_until(60, &[], &mut |r| v.push(r));
    assert_eq!(v.len(), 2);
    assert_eq!((v[1].start, v[1].traffic.unwrap().packets), (20, 1));
}

#[test]
fn gso_counts_and_names() {
    let mut t = table(60, 100);
    let a = pkt(1, 2, 6, 1, 2, 64052);
    let (n, b) = flowlog_capture::gso_segments(
        &PacketMeta {
            header_len: 52,
            ..a
        },
        1448,
    );
    t.add_counts(0, &a, 61 * S, Action::Accept, n, b);
    let mut out = Vec::new();
    t.drain_all_records(&[("1".into(), "eni-x".into())], &mut out);
    let tr = out[0].traffic.unwrap();
    assert_eq!((tr.packets, tr.bytes), (45, 64000 + 45 * 52));
    assert_eq!(out[0].interface_id, "eni-x");
    // an unknown ENI index is named "unknown"
    t.add(7, &a, 61 * S, Action::Accept);
    let mut out = Vec::new();
    t.drain_records(1000, &[], &[], &mut out);
    assert_eq!(out[0].interface_id, "unknown");
}

#[test]
fn later_fragments_take_the_ports_of_their_first() {
    let mut t = table(60, 100);
    let mut first = pkt(1, 2, 17, 5000, 6000, 1500);
    first.fragment = Fragment::First;
    first.frag_id = 77;
    let mut later = pkt(1, 2, 17, 0, 0, 520);
    later.fragment = Fragment::Later;
    later.frag_id = 77;
    // a later fragment that arrives before its first keeps ports 0
    t.add(0, &later, 9 * S, Action::Accept);
    t.add(0, &first, 10 * S, Action::Accept);
    t.add(0, &later, 10 * S, Action::Accept);
    t.add_batch(0, &[(11 * S, later)], Action::Accept);
    // another datagram (other ID) whose first fragment was never seen
    let other = PacketMeta {
        frag_id: 78,
        ..later
    };
    t.add(0, &other, 12 * S, Action::Accept);
    let l = lines(&all(&mut t));
    assert_eq!(
        l,
        vec![
            "2 111122223333 eni-a 10.0.0.1 10.0.0.2 0 0 17 2 1040 9 12 ACCEPT OK",
            "2 111122223333 eni-a 10.0.0.1 10.0.0.2 5000 6000 17 3 2540 10 11 ACCEPT OK",
        ]
    );
    let st = t.stats();
    assert_eq!((st.fragments_resolved, st.fragments_unresolved), (2, 2));
    // DHCP split into fragments is still excluded
    let mut t = table(60, 100);
    let dhcp_first = PacketMeta {
        fragment: Fragment::First,
        frag_id: 5,
        ..pkt(1, 2, 17, 68, 67, 1500)
    };
    let dhcp_later = PacketMeta {
        fragment: Fragment::Later,
        frag_id: 5,
        ..pkt(1, 2, 17, 0, 0, 100)
    };
    t.add(0, &dhcp_first, S, Action::Accept);
    t.add_batch(0, &[(S, dhcp_later)], Action::Accept);
    assert_eq!(
        t.add(0, &dhcp_later, S, Action::Accept),
        AddOutcome::Excluded
    );
    assert!(all(&mut t).is_empty());
    assert_eq!(t.stats().excluded_packets, 3);
}

#[test]
fn shared_budget_turns_new_flows_into_skipdata_across_tables() {
    let budget = crate::FlowBudget::new(3);
    let (mut a, mut b) = (table(60, 100), table(60, 100));
    a.set_budget(budget.clone());
    b.set_budget(budget.clone());
    // two flows on a, one on b: the budget of three is spent
    assert_eq!(
        a.add(0, &pkt(1, 2, 6, 1, 1, 40), 60 * S, Action::Accept),
        AddOutcome::Counted
    );
    assert_eq!(
        a.add(0, &pkt(1, 2, 6, 2, 2, 40), 60 * S, Action::Accept),
        AddOutcome::Counted
    );
    assert_eq!(
        b.add(1, &pkt(1, 2, 6, 1, 1, 40), 61 * S, Action::Accept),
        AddOutcome::Counted
    );
    assert_eq!(budget.used(), 3);
    // both tables have room of their own, yet a new flow on either is refused
    assert_eq!(
        b.add(1, &pkt(1, 2, 17, 5, 5, 40), 62 * S, Action::Accept),
        AddOutcome::Overflow
    );
    assert_eq!(
        a.add(0, &pkt(1, 2, 17, 5, 5, 40), 62 * S, Action::Accept),
        AddOutcome::Overflow
    );
    // known flows keep counting
    assert_eq!(
        b.add(1, &pkt(1, 2, 6, 1, 1, 40), 63 * S, Action::Accept),
        AddOutcome::Counted
    );
    assert_eq!(budget.refused(), 2);
    let lb = lines(&all(&mut b));
    assert_eq!(
        lb,
        vec![
            "2 111122223333 eni-b 10.0.0.1 10.0.0.2 1 1 6 2 80 61 63 ACCEPT OK".to_string(),
            "2 111122223333 eni-b - - - - - - - 60 120 - SKIPDATA".to_string(),
        ]
    );
    // b's window closed: its unit is back and a may use it
    assert_eq!(budget.used(), 2);
    assert_eq!(
        a.add(0, &pkt(1, 2, 17, 6, 6, 40), 64 * S, Action::Accept),
        AddOutcome::Counted
    );
    assert_eq!(
        a.add(0, &pkt(1, 2, 17, 7, 7, 40), 64 * S, Action::Accept),
        AddOutcome::Overflow
    );
    let la = lines(&all(&mut a));
    assert_eq!(la.len(), 4);
    assert_eq!(
        la[3],
        "2 111122223333 eni-a - - - - - - - 60 120 - SKIPDATA"
    );
    assert_eq!(a.stats().overflow_packets, 2);
    assert_eq!(budget.used(), 0);
    // a dropped table gives its open entries back
    let mut c = table(60, 100);
    c.set_budget(budget.clone());
    c.add(0, &pkt(9, 9, 6, 1, 1, 40), 60 * S, Action::Accept);
    assert_eq!(budget.used(), 1);
    drop(c);
    assert_eq!(budget.used(), 0);
}

#[test]
fn a_million_flows_take_at_most_64_bytes_each() {
    let mut t = table(60, 2_000_000);
    let n = 1_000_000u32;
    let mut batch = Vec::with_capacity(1024);
    for i in 0..n {
        let mut m = pkt(0, 0, 6, (i >> 16) as u16, i as u16, 40);
        m.src[..4].copy_from_slice(&i.to_be_bytes());
        if i % 10 == 0 {
            // one flow in ten is IPv6, as in the benchmark traffic
            m.family = Family::V6;
            m.src[15] = 1;
        }
        batch.push((60 * S + i as u64, m));
        if batch.len() == 1024 {
            t.add_batch(0, &batch, Action::Accept);
            batch.clear();
        }
    }
    t.add_batch(0, &batch, Action::Accept);
    assert_eq!(t.len(), n as usize);
    let per_flow = t.memory_bytes() as f64 / n as f64;
    // IPv4 entries 40 bytes, IPv6 (one in ten) 64, index 8 bytes per bucket at 4/5 load at
    // most and 2/5 at least (here 2 Mi + 256 Ki buckets: 18 bytes per flow)
    assert!(per_flow <= 64.0, "{per_flow} bytes per flow");
    assert!(per_flow >= 42.4, "{per_flow} bytes per flow");
    let mut recs = 0;
    t.close_all(&mut |_| recs += 1);
    assert_eq!(recs, n);
    // the large maps gave their memory back: the pool keeps room for 4 Ki entries of each
    // family and their index (under 0.6 MiB), not the 60 MiB of the window
    assert!(t.memory_bytes() <= 600 << 10, "{}", t.memory_bytes());
}
