//! Live capture on Linux: AF_PACKET TPACKET_V3 rings and the NFLOG verdict listener.
//!
//! Layers, outside in: [`sys`] is the only `unsafe` code in flowlog (sockets, the mapped ring,
//! `setns`, the signal flag); it produces byte chunks through the [`source::Source`] trait.
//! [`tpacket`] walks a ring block into packets and [`nflog`] parses netlink datagrams into
//! logged packets, both pure. [`capture`] is the loop that feeds both into a `FlowTable` and
//! closes windows; it is generic over `Source` and handed the time, so tests drive it with
//! [`source::FakeSource`] and a fake clock. [`open`] creates the sockets inside a network
//! namespace. This crate knows nothing about ENI inventory, delivery or HTTP.

pub mod capture;
pub mod error;
pub mod nflog;
pub mod open;
pub mod source;
pub mod sys;
pub mod tpacket;

pub use capture::{Capture, CaptureConfig, LiveStats};
pub use error::{LiveError, Result};
pub use nflog::NflogConfig;
pub use open::{missing_capabilities, netns_path, open, open_nflog, Opened};
pub use source::{FakeSource, Source};
pub use sys::ring::RingConfig;
