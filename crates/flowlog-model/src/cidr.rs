//! IPv4 CIDR blocks: parsing (network address required), containment and overlap, and the
//! host addresses a subnet can hand out (AWS reserves the first four and the last).

use std::net::Ipv4Addr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr4 {
    pub addr: u32,
    pub prefix: u8,
}

impl Cidr4 {
    /// Parses `a.b.c.d/n`; host bits must be zero.
    pub fn parse(s: &str) -> Option<Cidr4> {
        let (a, p) = s.split_once('/')?;
        let addr: Ipv4Addr = a.parse().ok()?;
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let prefix: u8 = p.parse().ok()?;
        if prefix > 32 {
            return None;
        }
        let c = Cidr4 {
            addr: u32::from(addr),
            prefix,
        };
        (c.addr & !c.mask() == 0).then_some(c)
    }

    pub fn mask(self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }

    pub fn size(self) -> u64 {
        1u64 << (32 - self.prefix)
    }

    pub fn last(self) -> u32 {
        self.addr | !self.mask()
    }

    pub fn contains_addr(self, a: u32) -> bool {
        a & self.mask() == self.addr
    }

    pub fn contains(self, other: Cidr4) -> bool {
        other.prefix >= self.prefix && self.contains_addr(other.addr)
    }

    pub fn overlaps(self, other: Cidr4) -> bool {
        self.contains(other) || other.contains(self)
    }

    /// Whether `a` is an address AWS reserves in a subnet (network, +1, +2, +3, broadcast).
    pub fn is_reserved(self, a: u32) -> bool {
        a < self.addr + 4 || a == self.last()
    }

    /// Host addresses available to ENIs.
    pub fn usable(self) -> u64 {
        self.size().saturating_sub(5)
    }
}

impl std::fmt::Display for Cidr4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.addr), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_relations() {
        let vpc = Cidr4::parse("10.0.0.0/16").unwrap();
        let a = Cidr4::parse("10.0.1.0/24").unwrap();
        let b = Cidr4::parse("10.0.1.128/25").unwrap();
        assert!(vpc.contains(a) && a.overlaps(b) && !b.contains(a));
        assert!(!vpc.contains(Cidr4::parse("10.1.0.0/24").unwrap()));
        assert!(Cidr4::parse("10.0.0.1/16").is_none());
        assert!(Cidr4::parse("10.0.0.0/33").is_none());
        assert!(Cidr4::parse("10.0.0.0").is_none());
        assert_eq!(a.usable(), 251);
        assert!(a.is_reserved(a.addr + 3) && !a.is_reserved(a.addr + 4) && a.is_reserved(a.last()));
    }
}
