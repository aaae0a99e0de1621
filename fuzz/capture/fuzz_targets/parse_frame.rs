//! The packet parser on arbitrary bytes: the first byte picks the link type, the rest is the
//! frame. Checks the parser's output invariants and the GSO helper on every parsed packet.
#![no_main]

use flowlog_capture::{gso_segments, parse, LinkType};
use libfuzzer_sys::fuzz_target;

const LINKS: [u32; 8] = [1, 113, 276, 101, 228, 229, 12, 147];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, frame)) = data.split_first() else { return };
    let link = LinkType::from_linktype(LINKS[sel as usize % LINKS.len()]);
    if let Ok(m) = parse(link, frame) {
        assert!(m.header_len <= m.ip_len);
        if m.protocol != 6 && m.protocol != 17 {
            assert_eq!((m.src_port, m.dst_port), (0, 0));
        }
        for g in [1u16, 536, 1448, u16::MAX] {
            let (n, bytes) = gso_segments(&m, g);
            assert!(n >= 1);
            assert!(bytes >= m.ip_len as u64);
        }
    }
});
