//! Enumerations of the flow-log API, spelled exactly as on the wire (case-sensitive).

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            /// Exact, case-sensitive match of the wire spelling.
            pub fn parse(s: &str) -> Option<$name> {
                match s { $($wire => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// `FlowLogsResourceType` as of the 2018-08-07 model.
    ResourceType { Vpc => "VPC", Subnet => "Subnet", NetworkInterface => "NetworkInterface" }
);

wire_enum!(
    /// Which records a flow log keeps.
    TrafficType { Accept => "ACCEPT", Reject => "REJECT", All => "ALL" }
);

wire_enum!(
    /// Where a flow log publishes.
    LogDestinationType {
        CloudWatchLogs => "cloud-watch-logs",
        S3 => "s3",
        KinesisDataFirehose => "kinesis-data-firehose",
    }
);

wire_enum!(
    /// `DeliverLogsStatus` of a flow log.
    DeliverStatus { Success => "SUCCESS", Failed => "FAILED" }
);

impl ResourceType {
    pub fn id_kind(self) -> crate::IdKind {
        match self {
            ResourceType::Vpc => crate::IdKind::Vpc,
            ResourceType::Subnet => crate::IdKind::Subnet,
            ResourceType::NetworkInterface => crate::IdKind::NetworkInterface,
        }
    }
}

impl TrafficType {
    /// Whether a record with `action` is kept by a flow log of this traffic type.
    /// Records without an action (NODATA, SKIPDATA) are always kept.
    pub fn keeps(self, action: Option<crate::Action>) -> bool {
        match (self, action) {
            (TrafficType::All, _) | (_, None) => true,
            (TrafficType::Accept, Some(a)) => a == crate::Action::Accept,
            (TrafficType::Reject, Some(a)) => a == crate::Action::Reject,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_are_case_sensitive() {
        assert_eq!(TrafficType::parse("ALL"), Some(TrafficType::All));
        assert_eq!(TrafficType::parse("Accept"), None);
        assert_eq!(LogDestinationType::parse("S3"), None);
        assert_eq!(ResourceType::parse("Instance"), None);
        assert_eq!(
            ResourceType::parse("NetworkInterface").unwrap().as_str(),
            "NetworkInterface"
        );
    }
}
