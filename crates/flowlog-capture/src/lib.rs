//! Pure packet parsing and capture-file reading for flowlog's data plane.
//!
//! [`packet`] turns one link-layer frame into a [`PacketMeta`] (addresses, ports, protocol,
//! IP length, TCP flags) or a [`SkipReason`]; it does no IO, never allocates and never panics,
//! whatever the bytes. [`pcap`] reads classic pcap and pcapng streams into borrowed frames
//! with nanosecond timestamps. This crate knows nothing about flows, windows, sockets or ENIs.

pub mod packet;
pub mod pcap;

pub use packet::{
    gso_segments, parse, Direction, Family, LinkType, PacketMeta, SkipCounts, SkipReason,
};
pub use pcap::{CaptureError, CaptureFormat, CaptureReader, Frame};
