//! The seam between the kernel and everything else: a [`Source`] hands out chunks of bytes
//! the kernel produced (one TPACKET_V3 block of the AF_PACKET ring, or one NFLOG netlink
//! datagram) and counts what the kernel lost. The real sources live in [`crate::sys`], the only
//! `unsafe` module; [`FakeSource`] replays byte buffers so the parsers and the capture loop are
//! tested without root, sockets or a clock.

use std::collections::VecDeque;
use std::time::Duration;

use crate::error::Result;

/// A producer of kernel byte chunks.
///
/// A chunk stays valid until the next call to [`Source::next_chunk`]; the source gives the
/// memory back to the kernel then (for the ring: the block's status returns to the kernel).
pub trait Source {
    /// The next chunk, waiting at most `timeout`. `Ok(None)` means nothing arrived in time or a
    /// signal interrupted the wait (EINTR); callers check their stop flag and call again.
    fn next_chunk(&mut self, timeout: Duration) -> Result<Option<&[u8]>>;

    /// Packets (ring) or messages (netlink) the kernel dropped since the previous call.
    fn take_drops(&mut self) -> Result<u64>;

    /// For a packet ring: whether frames are preceded by a `virtio_net_hdr`. `None` when the
    /// source does not know (test doubles), leaving the capture's configuration in charge.
    fn vnet_header(&self) -> Option<bool> {
        None
    }
}

/// A test double: replays queued chunks, then reports timeouts.
#[derive(Debug, Default)]
pub struct FakeSource {
    queue: VecDeque<Vec<u8>>,
    current: Vec<u8>,
    drops: u64,
    /// How many times `next_chunk` was called and found nothing.
    pub timeouts: u64,
}

impl FakeSource {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues one chunk (a ring block or a netlink datagram).
    pub fn push(&mut self, chunk: Vec<u8>) {
        self.queue.push_back(chunk);
    }

    /// Adds kernel drops reported by the next `take_drops`.
    pub fn add_drops(&mut self, n: u64) {
        self.drops += n;
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

impl Source for FakeSource {
    fn next_chunk(&mut self, _timeout: Duration) -> Result<Option<&[u8]>> {
        match self.queue.pop_front() {
            Some(chunk) => {
                self.current = chunk;
                Ok(Some(&self.current))
            }
            None => {
                self.timeouts += 1;
                Ok(None)
            }
        }
    }

    fn take_drops(&mut self) -> Result<u64> {
        Ok(std::mem::take(&mut self.drops))
    }
}

impl<S: Source + ?Sized> Source for Box<S> {
    fn next_chunk(&mut self, timeout: Duration) -> Result<Option<&[u8]>> {
        (**self).next_chunk(timeout)
    }
    fn take_drops(&mut self) -> Result<u64> {
        (**self).take_drops()
    }
    fn vnet_header(&self) -> Option<bool> {
        (**self).vnet_header()
    }
}
