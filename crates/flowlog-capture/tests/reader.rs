//! pcap and pcapng reader tests on files built in memory: both byte orders, micro/nano
//! seconds, several interfaces with their own link types and resolutions, SPB/OPB blocks,
//! truncation, hostile lengths, and the threaded reader against the plain one.

use std::io::Cursor;

use flowlog_capture::{CaptureError, CaptureFormat, CaptureReader, LinkType};

fn w32(out: &mut Vec<u8>, v: u32, be: bool) {
    out.extend_from_slice(&if be { v.to_be_bytes() } else { v.to_le_bytes() });
}

fn w16(out: &mut Vec<u8>, v: u16, be: bool) {
    out.extend_from_slice(&if be { v.to_be_bytes() } else { v.to_le_bytes() });
}

fn pcap(be: bool, nanos: bool, link: u32, pkts: &[(u32, u32, Vec<u8>)]) -> Vec<u8> {
    let mut f = Vec::new();
    w32(&mut f, if nanos { 0xa1b23c4d } else { 0xa1b2c3d4 }, be);
    w16(&mut f, 2, be);
    w16(&mut f, 4, be);
    w32(&mut f, 0, be);
    w32(&mut f, 0, be);
    w32(&mut f, 262144, be);
    w32(&mut f, link, be);
    for (sec, frac, data) in pkts {
        w32(&mut f, *sec, be);
        w32(&mut f, *frac, be);
        w32(&mut f, data.len() as u32, be);
        w32(&mut f, data.len() as u32 + 4, be);
        f.extend_from_slice(data);
    }
    f
}

fn block(out: &mut Vec<u8>, btype: u32, body: &[u8], be: bool) {
    let padded = body.len().div_ceil(4) * 4;
    let total = (12 + padded) as u32;
    w32(out, btype, be);
    w32(out, total, be);
    out.extend_from_slice(body);
    out.resize(out.len() + padded - body.len(), 0);
    w32(out, total, be);
}

fn shb(out: &mut Vec<u8>, be: bool) {
    let mut b = Vec::new();
    w32(&mut b, 0x1a2b3c4d, be);
    w16(&mut b, 1, be);
    w16(&mut b, 0, be);
    b.extend_from_slice(&[0xff; 8]); // section length unknown
    block(out, 0x0a0d0d0a, &b, be);
}

fn idb(out: &mut Vec<u8>, be: bool, link: u16, tsresol: Option<u8>, tsoffset: Option<i64>) {
    let mut b = Vec::new();
    w16(&mut b, link, be);
    w16(&mut b, 0, be);
    w32(&mut b, 0, be);
    // an option we do not know first (if_name), padded
    w16(&mut b, 2, be);
    w16(&mut b, 3, be);
    b.extend_from_slice(b"eth\0");
    if let Some(r) = tsresol {
        w16(&mut b, 9, be);
        w16(&mut b, 1, be);
        b.extend_from_slice(&[r, 0, 0, 0]);
    }
    if let Some(o) = tsoffset {
        w16(&mut b, 14, be);
        w16(&mut b, 8, be);
        b.extend_from_slice(&if be { o.to_be_bytes() } else { o.to_le_bytes() });
    }
    w16(&mut b, 0, be);
    w16(&mut b, 0, be);
    block(out, 1, &b, be);
}

fn epb(out: &mut Vec<u8>, be: bool, iface: u32, ts: u64, data: &[u8]) {
    let mut b = Vec::new();
    w32(&mut b, iface, be);
    w32(&mut b, (ts >> 32) as u32, be);
    w32(&mut b, ts as u32, be);
    w32(&mut b, data.len() as u32, be);
    w32(&mut b, data.len() as u32, be);
    b.extend_from_slice(data);
    block(out, 6, &b, be);
}

type Got = Vec<(u64, LinkType, Vec<u8>, u32)>;

fn frames<R: std::io::Read>(r: &mut CaptureReader<R>) -> Result<Got, CaptureError> {
    let mut v = Vec::new();
    while let Some(f) = r.next_frame()? {
        v.push((f.ts_ns, f.link, f.data.to_vec(), f.interface));
    }
    Ok(v)
}

fn pkts() -> Vec<(u32, u32, Vec<u8>)> {
    vec![
        (1_700_000_000, 5, vec![1, 2, 3]),
        (1_700_000_001, 999_999, vec![4; 100]),
        (1_700_000_002, 0, Vec::new()),
    ]
}

#[test]
fn classic_pcap_all_variants() {
    for be in [false, true] {
        for nanos in [false, true] {
            let file = pcap(be, nanos, 113, &pkts());
            let mut r = CaptureReader::new(Cursor::new(file)).unwrap();
            assert_eq!(r.format(), CaptureFormat::Pcap);
            let got = frames(&mut r).unwrap();
            assert_eq!(got.len(), 3);
            let mult = if nanos { 1 } else { 1000 };
            assert_eq!(got[0].0, 1_700_000_000 * 1_000_000_000 + 5 * mult);
            assert_eq!(got[1].0, 1_700_000_001 * 1_000_000_000 + 999_999 * mult);
            assert_eq!(got[0].1, LinkType::LinuxSll);
            assert_eq!(got[1].2, vec![4; 100]);
            assert!(got[2].2.is_empty());
        }
    }
}

#[test]
fn pcapng_interfaces_resolutions_and_byte_orders() {
    for be in [false, true] {
        let mut f = Vec::new();
        shb(&mut f, be);
        idb(&mut f, be, 1, None, None); // Ethernet, microseconds
        idb(&mut f, be, 101, Some(9), Some(10)); // raw IP, nanoseconds, +10 s
        idb(&mut f, be, 276, Some(0x80 | 20), None); // SLL2, 2^-20 s
                                                     // a block type we skip (name resolution)
        block(&mut f, 4, &[0, 0, 0, 0], be);
        epb(&mut f, be, 0, 1_700_000_000_123_456, &[0xaa; 14]);
        epb(&mut f, be, 1, 1_700_000_000_000_000_001, &[0x45; 21]);
        epb(
            &mut f,
            be,
            2,
            (1_700_000_000u64 << 20) | (1 << 19),
            &[0; 20],
        );
        // simple packet block: interface 0, time of the previous packet
        let mut spb = Vec::new();
        w32(&mut spb, 5, be);
        spb.extend_from_slice(&[7; 5]);
        block(&mut f, 3, &spb, be);
        // obsolete packet block on interface 1
        let mut opb = Vec::new();
        w16(&mut opb, 1, be);
        w16(&mut opb, 0, be);
        w32(&mut opb, 0, be);
        w32(&mut opb, 42, be);
        w32(&mut opb, 3, be);
        w32(&mut opb, 3, be);
        opb.extend_from_slice(&[9, 9, 9]);
        block(&mut f, 2, &opb, be);
        // a second section in the other byte order restarts interface numbering
        shb(&mut f, !be);
        idb(&mut f, !be, 229, Some(3), None);
        epb(&mut f, !be, 0, 5_000, &[0x60; 40]);

        let mut r = CaptureReader::new(Cursor::new(f.clone())).unwrap();
        assert_eq!(r.format(), CaptureFormat::PcapNg);
        let got = frames(&mut r).unwrap();
        assert_eq!(got.len(), 6, "be={be}");
        assert_eq!(
            (got[0].0, got[0].1, got[0].3),
            (1_700_000_000_123_456_000, LinkType::Ethernet, 0)
        );
        assert_eq!(
            (got[1].0, got[1].1, got[1].3),
            (1_700_000_010_000_000_001, LinkType::RawIp, 1)
        );
        assert_eq!(got[1].2.len(), 21);
        assert_eq!(
            (got[2].0, got[2].1),
            (1_700_000_000_500_000_000, LinkType::LinuxSll2)
        );
        assert_eq!(
            (got[3].0, got[3].1, got[3].2.clone()),
            (got[2].0, LinkType::Ethernet, vec![7; 5])
        );
        assert_eq!(
            (got[4].0, got[4].1, got[4].2.clone()),
            (42 + 10_000_000_000, LinkType::RawIp, vec![9; 3])
        );
        assert_eq!((got[5].0, got[5].1), (5_000_000_000, LinkType::Ipv6));

        // the threaded reader with tiny chunks gives the same frames
        let mut t = CaptureReader::with_reader_thread(Cursor::new(f), 4096).unwrap();
        assert_eq!(frames(&mut t).unwrap(), got);
    }
}

#[test]
fn threaded_reader_matches_plain_reader_across_chunk_borders() {
    // frames of many sizes, including ones larger than the chunk and the headroom
    let mut ps = Vec::new();
    for i in 0..400u32 {
        let len = match i % 7 {
            0 => 0,
            1 => 60,
            2 => 1514,
            3 => 9000,
            4 => 65_000,
            5 => 300_000,
            _ => (i * 37) as usize % 5000,
        };
        ps.push((1_700_000_000 + i, i, vec![(i % 251) as u8; len]));
    }
    let file = pcap(false, false, 1, &ps);
    let plain =
        frames(&mut CaptureReader::with_buffer_size(Cursor::new(file.clone()), 64).unwrap())
            .unwrap();
    assert_eq!(plain.len(), 400);
    for chunk in [4096, 65_536, 1 << 20] {
        let mut t = CaptureReader::with_reader_thread(Cursor::new(file.clone()), chunk).unwrap();
        let got = frames(&mut t).unwrap();
        assert!(got == plain, "chunk {chunk}");
        assert_eq!(t.position(), file.len() as u64);
    }
}

#[test]
fn errors_are_reported() {
    assert!(matches!(
        CaptureReader::new(Cursor::new(Vec::new())),
        Err(CaptureError::Empty)
    ));
    assert!(matches!(
        CaptureReader::new(Cursor::new(b"hello world, not a pcap".to_vec())),
        Err(CaptureError::NotACapture(_))
    ));
    // file header cut short
    let file = pcap(false, false, 1, &pkts());
    assert!(matches!(
        CaptureReader::new(Cursor::new(file[..10].to_vec())),
        Err(CaptureError::Truncated { .. })
    ));
    // last record cut short: the complete ones come first, then Truncated
    for cut in [3, 16 + 50] {
        let short = file[..file.len() - 16 - cut].to_vec();
        let mut r = CaptureReader::new(Cursor::new(short)).unwrap();
        assert_eq!(r.next_frame().unwrap().unwrap().data, &[1, 2, 3]);
        let e = loop {
            match r.next_frame() {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("truncation not reported"),
                Err(e) => break e,
            }
        };
        assert!(matches!(e, CaptureError::Truncated { .. }), "{e}");
        assert!(e.to_string().contains("truncated"));
    }
    // hostile record length
    let mut bad = pcap(false, false, 1, &pkts());
    bad[24 + 8..24 + 12].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    let mut r = CaptureReader::new(Cursor::new(bad)).unwrap();
    assert!(matches!(
        r.next_frame(),
        Err(CaptureError::Malformed { .. })
    ));
    // pcapng: packet on an undeclared interface, bad block length
    let mut f = Vec::new();
    shb(&mut f, false);
    epb(&mut f, false, 3, 0, &[1]);
    let mut r = CaptureReader::new(Cursor::new(f)).unwrap();
    assert!(matches!(
        r.next_frame(),
        Err(CaptureError::Malformed { .. })
    ));
    let mut f = Vec::new();
    shb(&mut f, false);
    f.extend_from_slice(&[6, 0, 0, 0, 13, 0, 0, 0, 0, 0, 0, 0]);
    let mut r = CaptureReader::new(Cursor::new(f)).unwrap();
    assert!(matches!(
        r.next_frame(),
        Err(CaptureError::Malformed { .. })
    ));
}
