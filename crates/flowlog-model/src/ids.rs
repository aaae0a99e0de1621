//! EC2-style identifiers: `<prefix>-<8 or 17 lowercase hex>` (spec §8). New IDs are always
//! generated with 17 hex digits; both lengths are accepted on input.

use std::fmt;

/// The kinds of resource that carry an EC2-style identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    Vpc,
    Subnet,
    NetworkInterface,
    FlowLog,
}

impl IdKind {
    pub const ALL: [IdKind; 4] = [
        IdKind::Vpc,
        IdKind::Subnet,
        IdKind::NetworkInterface,
        IdKind::FlowLog,
    ];

    pub fn prefix(self) -> &'static str {
        match self {
            IdKind::Vpc => "vpc",
            IdKind::Subnet => "subnet",
            IdKind::NetworkInterface => "eni",
            IdKind::FlowLog => "fl",
        }
    }

    /// The kind whose prefix `id` carries, if it is a well-formed identifier.
    pub fn of(id: &str) -> Option<IdKind> {
        IdKind::ALL.into_iter().find(|k| is_valid(*k, id))
    }
}

/// True when `id` is `<prefix of kind>-` followed by exactly 8 or 17 lowercase hex digits.
pub fn is_valid(kind: IdKind, id: &str) -> bool {
    let Some(rest) = id
        .strip_prefix(kind.prefix())
        .and_then(|r| r.strip_prefix('-'))
    else {
        return false;
    };
    (rest.len() == 8 || rest.len() == 17)
        && rest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A validated identifier of a known kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceId(String);

impl ResourceId {
    /// Builds an identifier from 17 hex digits taken from `random`.
    pub fn generate(kind: IdKind, random: u128) -> ResourceId {
        let hex = format!("{:032x}", random);
        ResourceId(format!("{}-{}", kind.prefix(), &hex[..17]))
    }

    pub fn parse(kind: IdKind, s: &str) -> Option<ResourceId> {
        is_valid(kind, s).then(|| ResourceId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_both_lengths_and_rejects_others() {
        assert!(is_valid(IdKind::Vpc, "vpc-1a2b3c4d"));
        assert!(is_valid(IdKind::FlowLog, "fl-12345678901234567"));
        assert!(!is_valid(IdKind::Vpc, "vpc-1A2B3C4D"));
        assert!(!is_valid(IdKind::Vpc, "vpc-123"));
        assert!(!is_valid(IdKind::Subnet, "vpc-1a2b3c4d"));
        assert!(!is_valid(IdKind::FlowLog, "fl-1a2b3c4d5"));
        assert_eq!(
            IdKind::of("eni-0a1b2c3d4e5f60718"),
            Some(IdKind::NetworkInterface)
        );
        assert_eq!(IdKind::of("i-0a1b2c3d"), None);
    }

    #[test]
    fn generated_ids_have_17_hex_digits() {
        let id = ResourceId::generate(IdKind::FlowLog, u128::MAX - 5);
        assert!(is_valid(IdKind::FlowLog, id.as_str()), "{id}");
        assert_eq!(id.as_str().len(), 3 + 17);
    }
}
