//! Traffic that AWS never writes to flow logs (spec §4 "Traffic that is never logged").
//!
//! Applied to both directions: packets to or from the instance metadata service
//! (169.254.169.254, fd00:ec2::254), the Amazon Time Sync Service (169.254.169.123,
//! fd00:ec2::123), and DHCP (UDP between ports 67 and 68) including DHCPv6 (UDP 546/547).
//! The Amazon DNS resolver and the VPC router depend on the VPC's addressing, which this layer
//! does not know; they are not excluded here.

use flowlog_capture::{Family, PacketMeta};

use crate::key::FlowKey;

const IMDS_V4: [u8; 4] = [169, 254, 169, 254];
const TIME_V4: [u8; 4] = [169, 254, 169, 123];
const IMDS_V6: [u8; 16] = [
    0xfd, 0, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54,
];
const TIME_V6: [u8; 16] = [
    0xfd, 0, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x23,
];

fn special(family: Family, a: &[u8; 16]) -> bool {
    match family {
        Family::V4 => {
            let v4 = [a[0], a[1], a[2], a[3]];
            v4 == IMDS_V4 || v4 == TIME_V4
        }
        Family::V6 => *a == IMDS_V6 || *a == TIME_V6,
    }
}

/// True when the packet belongs to traffic that produces no flow log record.
#[inline]
pub fn excluded(m: &PacketMeta) -> bool {
    excluded_parts(m.family, &m.src, &m.dst, m.protocol, m.src_port, m.dst_port)
}

/// [`excluded`] for a flow key.
#[inline]
pub fn excluded_key(k: &FlowKey) -> bool {
    excluded_parts(k.family, &k.src, &k.dst, k.protocol, k.src_port, k.dst_port)
}

#[inline(always)]
fn excluded_parts(
    family: Family,
    src: &[u8; 16],
    dst: &[u8; 16],
    proto: u8,
    sp: u16,
    dp: u16,
) -> bool {
    if proto == 17 {
        let dhcp4 = |p: u16| p == 67 || p == 68;
        let dhcp6 = |p: u16| p == 546 || p == 547;
        if (dhcp4(sp) && dhcp4(dp)) || (dhcp6(sp) && dhcp6(dp)) {
            return true;
        }
    }
    // cheap pre-check: both special addresses start with 169 / 0xfd
    (src[0] == 169 || src[0] == 0xfd || dst[0] == 169 || dst[0] == 0xfd)
        && (special(family, src) || special(family, dst))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowlog_capture::packet::Fragment;

    fn meta(src: [u8; 4], dst: [u8; 4], proto: u8, sp: u16, dp: u16) -> PacketMeta {
        let mut m = PacketMeta {
            family: Family::V4,
            src: [0; 16],
            dst: [0; 16],
            src_port: sp,
            dst_port: dp,
            protocol: proto,
            tcp_flags: 0,
            ip_len: 60,
            header_len: 40,
            fragment: Fragment::None,
            frag_id: 0,
            direction: Default::default(),
        };
        m.src[..4].copy_from_slice(&src);
        m.dst[..4].copy_from_slice(&dst);
        m
    }

    #[test]
    fn metadata_time_and_dhcp_are_excluded() {
        assert!(excluded(&meta([10, 0, 0, 5], IMDS_V4, 6, 40000, 80)));
        assert!(excluded(&meta(IMDS_V4, [10, 0, 0, 5], 6, 80, 40000)));
        assert!(excluded(&meta([10, 0, 0, 5], TIME_V4, 17, 123, 123)));
        assert!(excluded(&meta(
            [0, 0, 0, 0],
            [255, 255, 255, 255],
            17,
            68,
            67
        )));
        assert!(excluded(&meta([10, 0, 0, 1], [10, 0, 0, 5], 17, 67, 68)));
        assert!(!excluded(&meta([10, 0, 0, 1], [10, 0, 0, 5], 6, 67, 68)));
        assert!(!excluded(&meta([10, 0, 0, 1], [10, 0, 0, 5], 17, 67, 53)));
        assert!(!excluded(&meta(
            [169, 254, 1, 1],
            [10, 0, 0, 5],
            17,
            1000,
            53
        )));
        let mut v6 = meta([0; 4], [0; 4], 6, 1, 80);
        v6.family = Family::V6;
        v6.src = [0xfd, 0, 0, 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        v6.dst = IMDS_V6;
        assert!(excluded(&v6));
        v6.dst = [0xfd, 0, 0, 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        assert!(!excluded(&v6));
    }
}
