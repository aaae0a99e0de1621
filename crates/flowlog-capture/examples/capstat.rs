//! Prints what the parser makes of a capture file: link types, skip reasons, protocols,
//! largest IP packet, IPv6 packets with extension headers, TCP resets. A debugging aid.

use std::collections::BTreeMap;

use flowlog_capture::{parse, CaptureReader, Family, SkipCounts};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: capstat FILE")?;
    let mut r = CaptureReader::new(std::fs::File::open(&path)?)?;
    let mut skips = SkipCounts::default();
    let mut links = BTreeMap::new();
    let mut protos = BTreeMap::new();
    let (mut frames, mut max_ip, mut v6_ext, mut rst, mut big) = (0u64, 0u32, 0u64, 0u64, 0u64);
    while let Some(f) = r.next_frame()? {
        frames += 1;
        *links.entry(f.link.linktype()).or_insert(0u64) += 1;
        match parse(f.link, f.data) {
            Ok(m) => {
                *protos
                    .entry((m.family == Family::V6, m.protocol))
                    .or_insert(0u64) += 1;
                max_ip = max_ip.max(m.ip_len);
                if m.ip_len > 1500 {
                    big += 1;
                }
                let base = match m.protocol {
                    6 => 60,
                    17 => 48,
                    _ => 40,
                };
                if m.family == Family::V6 && m.header_len > base && m.protocol != 6 {
                    v6_ext += 1;
                }
                if m.protocol == 6 && m.tcp_flags & 4 != 0 {
                    rst += 1;
                }
            }
            Err(e) => skips.add(e),
        }
    }
    println!("{path}: {frames} frames, links {links:?}");
    println!("  protocols (v6, proto): {protos:?}");
    println!("  max ip_len {max_ip}, >1500: {big}, v6 with ext headers: {v6_ext}, tcp rst: {rst}");
    println!("  skipped: {:?}", skips.iter().collect::<Vec<_>>());
    Ok(())
}
