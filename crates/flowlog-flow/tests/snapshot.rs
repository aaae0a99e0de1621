//! `FlowTable::snapshot` (what capture checkpoints save): the records the open windows would
//! close with, OK and SKIPDATA alike, without changing the table.

use flowlog_capture::packet::Fragment;
use flowlog_capture::{Family, PacketMeta};
use flowlog_flow::{FlowConfig, FlowTable, WindowRecord};
use flowlog_model::{Action, LogStatus};

fn packet(i: u8, port: u16) -> PacketMeta {
    let mut m = PacketMeta {
        family: Family::V4,
        src: [0; 16],
        dst: [0; 16],
        src_port: 1000,
        dst_port: port,
        protocol: 17,
        tcp_flags: 0,
        ip_len: 100,
        header_len: 20,
        fragment: Fragment::None,
        frag_id: 0,
        direction: Default::default(),
    };
    m.src[..4].copy_from_slice(&[10, 0, 0, i]);
    m.dst[..4].copy_from_slice(&[10, 0, 1, 1]);
    m
}

fn sorted(mut v: Vec<WindowRecord>) -> Vec<WindowRecord> {
    v.sort_by_key(|r| (r.start, r.end, format!("{:?}", r.traffic), r.status as u8));
    v
}

#[test]
fn snapshot_is_what_closing_gives_and_changes_nothing() {
    // Capacity 3 across the open windows: the fourth and fifth flows are SKIPDATA.
    let mut t = FlowTable::new(FlowConfig {
        interval_s: 60,
        capacity: 3,
    });
    let s = 1_800_000_000u64 * 1_000_000_000;
    for (k, (i, port, at)) in [
        (1, 53, 1),
        (1, 53, 2),
        (2, 80, 3),
        (3, 443, 61),
        (4, 22, 62),
    ]
    .into_iter()
    .enumerate()
    {
        t.add(
            0,
            &packet(i, port),
            s + at * 1_000_000_000 + k as u64,
            Action::Accept,
        );
    }
    t.add(0, &packet(9, 9), s + 5_000_000_000, Action::Accept);
    let entries = t.len();
    let mut snap = Vec::new();
    t.snapshot(&mut |r| snap.push(r));
    let mut again = Vec::new();
    t.snapshot(&mut |r| again.push(r));
    assert_eq!(snap, again, "the table is unchanged");
    assert_eq!(t.len(), entries);
    let mut closed = Vec::new();
    t.close_all(&mut |r| closed.push(r));
    assert_eq!(sorted(snap.clone()), sorted(closed));
    assert!(snap.iter().any(|r| r.status == LogStatus::SkipData));
    let ok: u64 = snap
        .iter()
        .filter_map(|r| r.traffic.map(|x| x.packets))
        .sum();
    assert_eq!(ok, 4, "flows 10.0.0.1 (2 packets), .2 and .3");
}
