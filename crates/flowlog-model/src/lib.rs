//! Domain types shared by every part of flowlog: resource identifiers, the flow-log
//! configuration enums as they appear on the wire, and the flow record with its text formats.
//! This crate does no IO and knows nothing about HTTP, SQL or packets.

pub mod cidr;
pub mod ids;
pub mod record;
pub mod resources;
pub mod timefmt;
pub mod types;

pub use ids::{IdKind, ResourceId};
pub use record::{Action, FlowRecord, LogStatus};
pub use resources::{
    Destination, DestinationOptions, FileFormat, FirehoseStream, FlowLog, NetworkInterface, Subnet,
    Tags, Vpc,
};
pub use types::{DeliverStatus, LogDestinationType, ResourceType, TrafficType};
