//! Aggregation of parsed packets into VPC flow log records.
//!
//! [`FlowTable`] counts packets per [`FlowKey`] (ENI index, 5-tuple, action) inside windows
//! aligned to multiples of the interval since the Unix epoch, bounded by a configured number of
//! entries (new flows beyond it become a SKIPDATA record of their ENI), and emits
//! [`flowlog_model::FlowRecord`]s when the caller closes windows. The caller passes every packet's
//! timestamp and decides when windows close: the table reads no clock, does no IO, and knows
//! nothing about sockets, files, ENI discovery or delivery. [`exclude`] holds the traffic AWS
//! never logs (spec §4).

pub mod budget;
pub mod exclude;
pub mod frag;
pub mod key;
mod map;
pub mod table;

pub use budget::FlowBudget;
pub use exclude::excluded;
pub use key::FlowKey;
pub use table::{AddOutcome, FlowConfig, FlowStats, FlowTable, RejectOutcome, WindowRecord};
