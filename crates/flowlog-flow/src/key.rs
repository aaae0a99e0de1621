//! [`FlowKey`]: the fixed-size identity of one record within a window.
//!
//! (ENI index, address family, source and destination address, ports, protocol, action,
//! capture direction). Each
//! direction of a conversation is its own key, as AWS writes one record per direction. The hash
//! feeds five machine words to the hasher instead of byte slices.

use std::hash::{Hash, Hasher};

use flowlog_capture::{Direction, Family, PacketMeta};
use flowlog_model::Action;

/// Identity of one flow record inside one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlowKey {
    pub eni: u32,
    pub family: Family,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub src_port: u16,
    pub dst_port: u16,
    pub protocol: u8,
    pub action: Action,
    /// Capture direction: ingress and egress packets of one 5-tuple stay separate records.
    pub direction: Direction,
}

impl FlowKey {
    #[inline]
    pub fn new(eni: u32, m: &PacketMeta, action: Action) -> FlowKey {
        FlowKey {
            eni,
            family: m.family,
            src: m.src,
            dst: m.dst,
            src_port: m.src_port,
            dst_port: m.dst_port,
            protocol: m.protocol,
            action,
            direction: m.direction,
        }
    }

    /// The same key with another action.
    #[inline]
    pub fn with_action(mut self, action: Action) -> FlowKey {
        self.action = action;
        self
    }
}

#[inline(always)]
fn words(a: &[u8; 16]) -> (u64, u64) {
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    lo.copy_from_slice(&a[..8]);
    hi.copy_from_slice(&a[8..]);
    (u64::from_ne_bytes(lo), u64::from_ne_bytes(hi))
}

impl Hash for FlowKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (s0, s1) = words(&self.src);
        let (d0, d1) = words(&self.dst);
        let rest = (self.eni as u64) << 32
            ^ (self.src_port as u64) << 16
            ^ self.dst_port as u64
            ^ (self.protocol as u64) << 48
            ^ ((self.family == Family::V6) as u64) << 56
            ^ ((self.action == Action::Reject) as u64) << 57
            ^ (self.direction as u64) << 58;
        state.write_u64(s0);
        state.write_u64(s1);
        state.write_u64(d0);
        state.write_u64(d1);
        state.write_u64(rest);
    }
}
