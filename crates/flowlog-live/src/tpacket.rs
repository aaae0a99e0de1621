//! The TPACKET_V3 block walker: turns one ring block (bytes, as the kernel laid them out) into
//! [`RingPacket`]s. Pure and bounds-checked: a block with bad offsets yields the packets that
//! lie fully inside it and a count of what was malformed, never a panic.
//!
//! Layout (native endian, from `linux/if_packet.h`): the block starts with
//! `tpacket_block_desc` (`num_pkts` at 12, `offset_to_first_pkt` at 16, `blk_len` at 20);
//! each packet is a 48-byte `tpacket3_hdr` (`tp_next_offset`, `tp_sec`, `tp_nsec`,
//! `tp_snaplen`, `tp_len`, `tp_status`, `tp_mac`, `tp_net`, VLAN fields) followed at offset 48
//! by a `sockaddr_ll` (`sll_protocol` big endian at 2, `sll_ifindex` at 4, `sll_hatype` at 8,
//! `sll_pkttype` at 10). With `PACKET_VNET_HDR` the 10-byte `virtio_net_hdr` sits right before
//! `tp_mac`.

/// Size of `struct tpacket3_hdr`; the `sockaddr_ll` follows at this offset.
pub const TPACKET3_HDR_LEN: usize = 48;
/// Size of the legacy `struct virtio_net_hdr` written with `PACKET_VNET_HDR`.
pub const VNET_HDR_LEN: usize = 10;
const SOCKADDR_LL_LEN: usize = 20;
const BLOCK_DESC_LEN: usize = 48;

/// `sll_pkttype` values.
pub const PACKET_HOST: u8 = 0;
pub const PACKET_BROADCAST: u8 = 1;
pub const PACKET_MULTICAST: u8 = 2;
pub const PACKET_OTHERHOST: u8 = 3;
pub const PACKET_OUTGOING: u8 = 4;

/// `sll_hatype` values whose frames start with an Ethernet header.
pub const ARPHRD_ETHER: u16 = 1;
pub const ARPHRD_LOOPBACK: u16 = 772;

/// `virtio_net_hdr.gso_type` without the ECN bit.
pub const VIRTIO_NET_HDR_GSO_NONE: u8 = 0;
const VIRTIO_NET_HDR_GSO_ECN: u8 = 0x80;

/// The `virtio_net_hdr` the kernel writes in front of each frame with `PACKET_VNET_HDR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Parses the 10-byte header (little endian, as written on little-endian hosts).
    pub fn parse(b: &[u8]) -> Option<VnetHdr> {
        let b = b.get(..VNET_HDR_LEN)?;
        let le = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: le(2),
            gso_size: le(4),
            csum_start: le(6),
            csum_offset: le(8),
        })
    }

    /// The segment payload size when this frame is a GSO/GRO super-frame, else `None`.
    pub fn gso(&self) -> Option<u16> {
        let kind = self.gso_type & !VIRTIO_NET_HDR_GSO_ECN;
        (kind != VIRTIO_NET_HDR_GSO_NONE && self.gso_size > 0).then_some(self.gso_size)
    }
}

/// One packet of a ring block, borrowing its bytes from the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingPacket<'a> {
    /// Kernel receive/transmit timestamp.
    pub sec: u32,
    pub nsec: u32,
    pub ifindex: i32,
    /// `sll_pkttype`: HOST, BROADCAST, MULTICAST, OTHERHOST or OUTGOING.
    pub pkttype: u8,
    /// `sll_hatype` (ARPHRD_*).
    pub hatype: u16,
    /// `sll_protocol`: the EtherType of the network layer.
    pub protocol: u16,
    /// Length of the packet on the link (`tp_len`), including a GSO frame's full payload.
    pub wire_len: u32,
    /// Captured bytes from the link-layer header (`tp_snaplen` bytes at `tp_mac`).
    pub frame: &'a [u8],
    /// Offset of the network header inside `frame` (`tp_net - tp_mac`).
    pub net_offset: usize,
    /// The `virtio_net_hdr`, when the ring was opened with `PACKET_VNET_HDR`.
    pub vnet: Option<VnetHdr>,
}

/// What a walk over one block found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockSummary {
    /// Packets handed to the callback.
    pub packets: u32,
    /// Packet headers whose offsets or lengths pointed outside the block.
    pub malformed: u32,
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_ne_bytes([s[0], s[1]]))
}

/// Walks the packets of one retired block. `vnet` says whether each frame is preceded by a
/// `virtio_net_hdr`.
pub fn walk_block<'a>(
    block: &'a [u8],
    vnet: bool,
    mut on_packet: impl FnMut(RingPacket<'a>),
) -> BlockSummary {
    let mut summary = BlockSummary::default();
    let (Some(num), Some(first), Some(blk_len)) =
        (u32_at(block, 12), u32_at(block, 16), u32_at(block, 20))
    else {
        summary.malformed = 1;
        return summary;
    };
    // Only the bytes the kernel says it filled are trusted.
    let end = (blk_len as usize).min(block.len());
    let block = &block[..end];
    let mut off = first as usize;
    if num > 0 && off < BLOCK_DESC_LEN {
        summary.malformed = num;
        return summary;
    }
    for i in 0..num {
        match packet_at(block, off, vnet) {
            Some((pkt, next)) => {
                on_packet(pkt);
                summary.packets += 1;
                if i + 1 < num {
                    if next == 0 {
                        summary.malformed += num - i - 1;
                        break;
                    }
                    off = match off.checked_add(next as usize) {
                        Some(o) => o,
                        None => {
                            summary.malformed += num - i - 1;
                            break;
                        }
                    };
                }
            }
            None => {
                summary.malformed += num - i;
                break;
            }
        }
    }
    summary
}

/// Parses the packet whose `tpacket3_hdr` starts at `off`; returns it and `tp_next_offset`.
fn packet_at(block: &[u8], off: usize, vnet: bool) -> Option<(RingPacket<'_>, u32)> {
    let hdr = block.get(off..off.checked_add(TPACKET3_HDR_LEN + SOCKADDR_LL_LEN)?)?;
    let next = u32_at(hdr, 0)?;
    let sec = u32_at(hdr, 4)?;
    let nsec = u32_at(hdr, 8)?;
    let snaplen = u32_at(hdr, 12)? as usize;
    let wire_len = u32_at(hdr, 16)?;
    let mac = u16_at(hdr, 24)? as usize;
    let net = u16_at(hdr, 26)? as usize;
    let sll = &hdr[TPACKET3_HDR_LEN..];
    let protocol = u16::from_be_bytes([sll[2], sll[3]]);
    let ifindex = i32::from_ne_bytes([sll[4], sll[5], sll[6], sll[7]]);
    let hatype = u16::from_ne_bytes([sll[8], sll[9]]);
    let pkttype = sll[10];

    let frame_start = off.checked_add(mac)?;
    let frame = block.get(frame_start..frame_start.checked_add(snaplen)?)?;
    let vnet = if vnet {
        let start = frame_start.checked_sub(VNET_HDR_LEN)?;
        Some(VnetHdr::parse(block.get(start..frame_start)?)?)
    } else {
        None
    };
    let pkt = RingPacket {
        sec,
        nsec,
        ifindex,
        pkttype,
        hatype,
        protocol,
        wire_len,
        frame,
        net_offset: net.saturating_sub(mac),
        vnet,
    };
    Some((pkt, next))
}

/// Builds ring blocks byte for byte as the kernel lays them out; used by tests here and in
/// the capture loop.
pub mod build {
    use super::*;

    /// One packet to place in a block.
    #[derive(Debug, Clone)]
    pub struct PacketSpec {
        pub sec: u32,
        pub nsec: u32,
        pub ifindex: i32,
        pub pkttype: u8,
        pub hatype: u16,
        pub protocol: u16,
        pub frame: Vec<u8>,
        /// Bytes between `tp_mac` and `tp_net`.
        pub l2_len: u16,
        /// `tp_len`; defaults to the frame length when `None`.
        pub wire_len: Option<u32>,
        pub vnet: Option<VnetHdr>,
    }

    /// Lays `packets` out in a block of `block_size` bytes (zero padded).
    pub fn block(packets: &[PacketSpec], vnet: bool, block_size: usize) -> Vec<u8> {
        let mut b = vec![0u8; BLOCK_DESC_LEN];
        b[0..4].copy_from_slice(&3u32.to_ne_bytes());
        b[12..16].copy_from_slice(&(packets.len() as u32).to_ne_bytes());
        b[16..20].copy_from_slice(&(BLOCK_DESC_LEN as u32).to_ne_bytes());
        let mut starts = Vec::new();
        for p in packets {
            let start = b.len();
            starts.push(start);
            // Frame at a 16-aligned offset after header + sockaddr_ll (+ vnet header).
            let pre = TPACKET3_HDR_LEN + SOCKADDR_LL_LEN + if vnet { VNET_HDR_LEN } else { 0 };
            let mac = pre.div_ceil(16) * 16;
            let mut h = vec![0u8; mac];
            h[4..8].copy_from_slice(&p.sec.to_ne_bytes());
            h[8..12].copy_from_slice(&p.nsec.to_ne_bytes());
            h[12..16].copy_from_slice(&(p.frame.len() as u32).to_ne_bytes());
            let wire = p.wire_len.unwrap_or(p.frame.len() as u32);
            h[16..20].copy_from_slice(&wire.to_ne_bytes());
            h[20..24].copy_from_slice(&1u32.to_ne_bytes());
            h[24..26].copy_from_slice(&(mac as u16).to_ne_bytes());
            h[26..28].copy_from_slice(&(mac as u16 + p.l2_len).to_ne_bytes());
            let s = TPACKET3_HDR_LEN;
            h[s..s + 2].copy_from_slice(&17u16.to_ne_bytes());
            h[s + 2..s + 4].copy_from_slice(&p.protocol.to_be_bytes());
            h[s + 4..s + 8].copy_from_slice(&p.ifindex.to_ne_bytes());
            h[s + 8..s + 10].copy_from_slice(&p.hatype.to_ne_bytes());
            h[s + 10] = p.pkttype;
            h[s + 11] = 6;
            if vnet {
                let v = p.vnet.unwrap_or_default();
                let at = mac - VNET_HDR_LEN;
                h[at] = v.flags;
                h[at + 1] = v.gso_type;
                h[at + 2..at + 4].copy_from_slice(&v.hdr_len.to_le_bytes());
                h[at + 4..at + 6].copy_from_slice(&v.gso_size.to_le_bytes());
                h[at + 6..at + 8].copy_from_slice(&v.csum_start.to_le_bytes());
                h[at + 8..at + 10].copy_from_slice(&v.csum_offset.to_le_bytes());
            }
            b.extend_from_slice(&h);
            b.extend_from_slice(&p.frame);
            while !b.len().is_multiple_of(16) {
                b.push(0);
            }
        }
        for w in starts.windows(2) {
            let next = (w[1] - w[0]) as u32;
            b[w[0]..w[0] + 4].copy_from_slice(&next.to_ne_bytes());
        }
        let blk_len = b.len() as u32;
        b[20..24].copy_from_slice(&blk_len.to_ne_bytes());
        b[8..12].copy_from_slice(&1u32.to_ne_bytes());
        if b.len() < block_size {
            b.resize(block_size, 0);
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::build::{block, PacketSpec};
    use super::*;

    fn spec(frame: Vec<u8>, pkttype: u8, vnet: Option<VnetHdr>) -> PacketSpec {
        PacketSpec {
            sec: 1_700_000_000,
            nsec: 5,
            ifindex: 7,
            pkttype,
            hatype: ARPHRD_ETHER,
            protocol: 0x0800,
            frame,
            l2_len: 14,
            wire_len: None,
            vnet,
        }
    }

    #[test]
    fn walks_every_packet_with_metadata() {
        let specs = vec![
            spec(vec![1; 60], PACKET_HOST, None),
            spec(vec![2; 1514], PACKET_OUTGOING, None),
            spec(vec![3; 99], PACKET_BROADCAST, None),
        ];
        let b = block(&specs, false, 8192);
        let mut seen = Vec::new();
        let s = walk_block(&b, false, |p| seen.push(p));
        assert_eq!(
            s,
            BlockSummary {
                packets: 3,
                malformed: 0
            }
        );
        assert_eq!(seen.len(), 3);
        for (p, want) in seen.iter().zip(&specs) {
            assert_eq!(p.frame, &want.frame[..]);
            assert_eq!(p.pkttype, want.pkttype);
            assert_eq!(p.ifindex, 7);
            assert_eq!(p.protocol, 0x0800);
            assert_eq!(p.hatype, ARPHRD_ETHER);
            assert_eq!(p.net_offset, 14);
            assert_eq!(p.sec, 1_700_000_000);
            assert_eq!(p.nsec, 5);
            assert_eq!(p.wire_len as usize, want.frame.len());
            assert_eq!(p.vnet, None);
        }
    }

    #[test]
    fn reads_the_vnet_header_before_the_frame() {
        let v = VnetHdr {
            flags: 1,
            gso_type: 1,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        let mut s = spec(vec![9; 200], PACKET_OUTGOING, Some(v));
        s.wire_len = Some(65_000);
        let b = block(&[s, spec(vec![8; 70], PACKET_HOST, None)], true, 4096);
        let mut seen = Vec::new();
        walk_block(&b, true, |p| seen.push(p));
        assert_eq!(seen[0].vnet, Some(v));
        assert_eq!(seen[0].vnet.unwrap().gso(), Some(1448));
        assert_eq!(seen[0].wire_len, 65_000);
        assert_eq!(seen[0].frame, &[9u8; 200][..]);
        assert_eq!(seen[1].vnet.unwrap().gso(), None);
    }

    #[test]
    fn gso_type_none_or_zero_size_is_not_gso() {
        let none = VnetHdr {
            gso_type: 0,
            gso_size: 1448,
            ..Default::default()
        };
        let zero = VnetHdr {
            gso_type: 4,
            gso_size: 0,
            ..Default::default()
        };
        let ecn = VnetHdr {
            gso_type: 0x81,
            gso_size: 1000,
            ..Default::default()
        };
        assert_eq!(none.gso(), None);
        assert_eq!(zero.gso(), None);
        assert_eq!(ecn.gso(), Some(1000));
    }

    #[test]
    fn empty_block_has_no_packets() {
        let b = block(&[], false, 4096);
        let s = walk_block(&b, false, |_| panic!("no packet expected"));
        assert_eq!(s, BlockSummary::default());
    }

    #[test]
    fn offsets_outside_the_block_are_counted_not_followed() {
        let mut b = block(&[spec(vec![1; 60], PACKET_HOST, None)], false, 0);
        // Claim three packets: the 2nd has next_offset 0 after the first.
        b[12..16].copy_from_slice(&3u32.to_ne_bytes());
        let s = walk_block(&b, false, |_| {});
        assert_eq!(
            s,
            BlockSummary {
                packets: 1,
                malformed: 2
            }
        );

        // First packet offset beyond blk_len.
        let mut b = block(&[spec(vec![1; 60], PACKET_HOST, None)], false, 0);
        b[16..20].copy_from_slice(&10_000u32.to_ne_bytes());
        let s = walk_block(&b, false, |_| {});
        assert_eq!(
            s,
            BlockSummary {
                packets: 0,
                malformed: 1
            }
        );

        // Snaplen running past the filled length.
        let mut b = block(&[spec(vec![1; 60], PACKET_HOST, None)], false, 0);
        b[48 + 12..48 + 16].copy_from_slice(&5000u32.to_ne_bytes());
        let s = walk_block(&b, false, |_| {});
        assert_eq!(
            s,
            BlockSummary {
                packets: 0,
                malformed: 1
            }
        );

        // Too short to hold a descriptor.
        assert_eq!(walk_block(&[0u8; 10], false, |_| {}).malformed, 1);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: xorshift bytes, with plausible headers sprinkled in.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for round in 0..2000 {
            let len = (round * 7) % 600;
            let mut b: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            if b.len() >= 24 {
                b[12..16].copy_from_slice(&((x % 5) as u32).to_ne_bytes());
                b[16..20].copy_from_slice(&((48 + x % 64) as u32).to_ne_bytes());
            }
            let _ = walk_block(&b, round % 2 == 0, |p| {
                let _ = p.frame.len();
            });
        }
    }
}
