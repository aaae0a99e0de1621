//! [`FragmentPorts`]: ports for IP fragments that do not carry a transport header.
//!
//! AWS keys records by 5-tuple, so every fragment of a datagram belongs to the flow of its
//! ports. A first fragment records its ports under (family, addresses, protocol, fragment ID)
//! in a fixed direct-mapped table (no allocation after creation, newer entries overwrite older
//! ones); a later fragment that finds its entry takes those ports. A later fragment whose first
//! fragment was not seen (lost, reordered, or overwritten) keeps ports 0.

use flowlog_capture::packet::Fragment;
use flowlog_capture::{Family, PacketMeta};

const SLOTS: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    family: Family,
    protocol: u8,
    id: u32,
    src: [u8; 16],
    dst: [u8; 16],
    src_port: u16,
    dst_port: u16,
}

/// The direct-mapped first-fragment table.
#[derive(Debug)]
pub struct FragmentPorts {
    slots: Box<[Option<Entry>]>,
    /// Later fragments that got their ports from a first fragment.
    pub resolved: u64,
    /// Later fragments left with ports 0.
    pub unresolved: u64,
}

impl Default for FragmentPorts {
    fn default() -> Self {
        FragmentPorts {
            slots: vec![None; SLOTS].into_boxed_slice(),
            resolved: 0,
            unresolved: 0,
        }
    }
}

fn slot(m: &PacketMeta) -> usize {
    let mut h = m.frag_id as u64 ^ (m.protocol as u64) << 32;
    for (a, b) in m.src.chunks(4).zip(m.dst.chunks(4)) {
        h = h.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ u32::from_ne_bytes([a[0], a[1], a[2], a[3]]) as u64
            ^ (u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as u64) << 29;
    }
    (h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 54) as usize % SLOTS
}

impl FragmentPorts {
    /// Remembers a first fragment's ports, or gives a later fragment the ports of its first.
    /// Packets that are not fragments are left alone.
    #[inline]
    pub fn resolve(&mut self, m: &mut PacketMeta) {
        match m.fragment {
            Fragment::None => {}
            Fragment::First => {
                self.slots[slot(m)] = Some(Entry {
                    family: m.family,
                    protocol: m.protocol,
                    id: m.frag_id,
                    src: m.src,
                    dst: m.dst,
                    src_port: m.src_port,
                    dst_port: m.dst_port,
                });
            }
            Fragment::Later => match self.slots[slot(m)] {
                Some(e)
                    if e.family == m.family
                        && e.protocol == m.protocol
                        && e.id == m.frag_id
                        && e.src == m.src
                        && e.dst == m.dst =>
                {
                    m.src_port = e.src_port;
                    m.dst_port = e.dst_port;
                    self.resolved += 1;
                }
                _ => self.unresolved += 1,
            },
        }
    }
}
