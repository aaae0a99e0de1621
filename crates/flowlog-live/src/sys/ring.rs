//! An AF_PACKET socket with a TPACKET_V3 receive ring, bound to one interface by ifindex, with
//! `PACKET_VNET_HDR` on so GSO/GRO frames arrive with their `virtio_net_hdr`.
//!
//! The ring is `block_count` blocks of `block_size` bytes mapped from the kernel. A block
//! belongs to user space while the `TP_STATUS_USER` bit of its `block_status` word is set; we
//! lend it out as one chunk and hand it back (status = `TP_STATUS_KERNEL`) on the next call,
//! walking the blocks in ring order and wrapping at the end. Blocks retire after
//! `retire_timeout_ms` even when not full, so an idle interface still wakes the caller.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::{check, duration_to_ms, poll_readable, setsockopt_int};
use crate::error::{LiveError, Result};
use crate::source::Source;

const TPACKET_V3: libc::c_int = 2;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
/// Offset of `hdr.bh1.block_status` in `struct tpacket_block_desc`.
const BLOCK_STATUS_OFFSET: usize = 8;

/// Sizes of the receive ring.
#[derive(Debug, Clone, Copy)]
pub struct RingConfig {
    /// Bytes per block; a multiple of the page size. Large enough for a 64 KiB GSO frame.
    pub block_size: u32,
    pub block_count: u32,
    /// Milliseconds after which the kernel hands over a block that is not full.
    pub retire_timeout_ms: u32,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            block_size: 1 << 20,
            block_count: 16,
            retire_timeout_ms: 50,
        }
    }
}

#[repr(C)]
struct TpacketReq3 {
    tp_block_size: u32,
    tp_block_nr: u32,
    tp_frame_size: u32,
    tp_frame_nr: u32,
    tp_retire_blk_tov: u32,
    tp_sizeof_priv: u32,
    tp_feature_req_word: u32,
}

#[repr(C)]
#[derive(Default)]
struct TpacketStatsV3 {
    tp_packets: u32,
    tp_drops: u32,
    tp_freeze_q_cnt: u32,
}

/// A bound AF_PACKET socket and its mapped TPACKET_V3 ring.
pub struct PacketRing {
    fd: OwnedFd,
    map: *mut u8,
    block_size: usize,
    block_count: usize,
    /// Next block to look at.
    next: usize,
    /// Block lent out by the last `next_chunk`, returned to the kernel on the next call.
    lent: Option<usize>,
    /// Whether frames carry a `virtio_net_hdr`.
    vnet: bool,
}

// SAFETY: the mapping is owned by this value alone; nothing else aliases `map` in user space.
unsafe impl Send for PacketRing {}

impl std::fmt::Debug for PacketRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketRing")
            .field("fd", &self.fd.as_raw_fd())
            .field("block_size", &self.block_size)
            .field("block_count", &self.block_count)
            .finish()
    }
}

/// The ifindex of `name` in the calling thread's network namespace.
pub fn ifindex(name: &str) -> Result<u32> {
    let no_such = || LiveError::NoSuchInterface {
        name: name.to_string(),
    };
    let c = CString::new(name).map_err(|_| no_such())?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(no_such());
    }
    Ok(idx)
}

impl PacketRing {
    /// Opens a ring on interface `ifindex` of the calling thread's network namespace.
    pub fn open(ifindex: u32, cfg: RingConfig) -> Result<PacketRing> {
        let os = |(op, e): (&'static str, io::Error)| LiveError::from_os(op, e);
        // Protocol 0: receive nothing until bind() names the interface and ETH_P_ALL.
        // SAFETY: plain socket(2) call.
        let raw = check("opening an AF_PACKET socket", unsafe {
            libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0)
        })
        .map_err(os)?;
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sopt = |op: &'static str, name, value| {
            setsockopt_int(fd.as_raw_fd(), libc::SOL_PACKET, name, value)
                .map_err(|e| LiveError::from_os(op, e))
        };
        // Without the virtio header (very old kernels) GSO frames would count as one packet;
        // capture still works, and `has_vnet` tells the caller.
        let vnet =
            setsockopt_int(fd.as_raw_fd(), libc::SOL_PACKET, libc::PACKET_VNET_HDR, 1).is_ok();
        sopt("selecting TPACKET_V3", libc::PACKET_VERSION, TPACKET_V3)?;

        let frame_size = 2048u32;
        let req = TpacketReq3 {
            tp_block_size: cfg.block_size,
            tp_block_nr: cfg.block_count,
            tp_frame_size: frame_size,
            tp_frame_nr: cfg.block_size / frame_size * cfg.block_count,
            tp_retire_blk_tov: cfg.retire_timeout_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        // SAFETY: `req` is a valid tpacket_req3 and its size is passed.
        check("setting up the PACKET_RX_RING", unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_RX_RING,
                (&req as *const TpacketReq3).cast(),
                std::mem::size_of::<TpacketReq3>() as libc::socklen_t,
            )
        })
        .map_err(os)?;

        let len = cfg.block_size as usize * cfg.block_count as usize;
        // SAFETY: maps the ring the kernel just allocated for this socket; checked below.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(LiveError::from_os(
                "mapping the ring",
                io::Error::last_os_error(),
            ));
        }
        let ring = PacketRing {
            fd,
            map: map.cast(),
            block_size: cfg.block_size as usize,
            block_count: cfg.block_count as usize,
            next: 0,
            lent: None,
            vnet,
        };

        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a valid sockaddr_ll and its size is passed.
        check("binding the AF_PACKET socket", unsafe {
            libc::bind(
                ring.fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })
        .map_err(os)?;
        Ok(ring)
    }

    /// Whether `PACKET_VNET_HDR` is on: each frame is preceded by a `virtio_net_hdr`.
    pub fn has_vnet(&self) -> bool {
        self.vnet
    }

    fn status(&self, block: usize) -> &AtomicU32 {
        // SAFETY: `block < block_count`, so the word lies inside the mapping; it is 4-aligned
        // (blocks are page aligned) and shared with the kernel, hence accessed atomically.
        unsafe {
            &*(self
                .map
                .add(block * self.block_size + BLOCK_STATUS_OFFSET)
                .cast::<AtomicU32>())
        }
    }

    fn give_back(&mut self) {
        if let Some(block) = self.lent.take() {
            self.status(block)
                .store(TP_STATUS_KERNEL, Ordering::Release);
        }
    }

    fn user_owned(&self, block: usize) -> bool {
        self.status(block).load(Ordering::Acquire) & TP_STATUS_USER != 0
    }
}

impl Source for PacketRing {
    fn next_chunk(&mut self, timeout: Duration) -> Result<Option<&[u8]>> {
        self.give_back();
        let block = self.next;
        if !self.user_owned(block) {
            let ready = poll_readable(self.fd.as_raw_fd(), duration_to_ms(timeout))
                .map_err(|e| LiveError::from_os("polling the ring", e))?;
            if !ready || !self.user_owned(block) {
                return Ok(None);
            }
        }
        self.lent = Some(block);
        self.next = (block + 1) % self.block_count;
        // SAFETY: the block is inside the mapping and owned by user space until `give_back`
        // (the kernel does not write a block whose status has TP_STATUS_USER); the slice's
        // lifetime is tied to `&mut self`, so it ends before the block is handed back.
        let bytes = unsafe {
            std::slice::from_raw_parts(self.map.add(block * self.block_size), self.block_size)
        };
        Ok(Some(bytes))
    }

    fn take_drops(&mut self) -> Result<u64> {
        let mut stats = TpacketStatsV3::default();
        let mut len = std::mem::size_of::<TpacketStatsV3>() as libc::socklen_t;
        // SAFETY: `stats` is large enough for tpacket_stats_v3 and `len` says so. Reading the
        // statistics resets the kernel's counters, so each call returns drops since the last.
        check("reading PACKET_STATISTICS", unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut stats as *mut TpacketStatsV3).cast(),
                &mut len,
            )
        })
        .map_err(|(op, e)| LiveError::from_os(op, e))?;
        let _ = (stats.tp_packets, stats.tp_freeze_q_cnt);
        Ok(u64::from(stats.tp_drops))
    }

    fn vnet_header(&self) -> Option<bool> {
        Some(self.vnet)
    }
}

impl Drop for PacketRing {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `open`; no slice outlives `&mut self`.
        unsafe {
            libc::munmap(self.map.cast(), self.block_size * self.block_count);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The ring's block hand-over on an anonymous mapping standing in for the kernel's: blocks
    //! are taken in order, handed back on the next call, and the walk wraps at the end.

    use super::*;

    const BLOCK: usize = 4096;
    const COUNT: usize = 3;

    fn fake_ring() -> PacketRing {
        // SAFETY: an anonymous private mapping of COUNT blocks; PacketRing unmaps it on drop.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                BLOCK * COUNT,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED);
        // An eventfd that is never readable: poll just times out.
        // SAFETY: plain eventfd(2); the descriptor is owned by the OwnedFd.
        let fd = unsafe { OwnedFd::from_raw_fd(libc::eventfd(0, libc::EFD_CLOEXEC)) };
        PacketRing {
            fd,
            map: map.cast(),
            block_size: BLOCK,
            block_count: COUNT,
            next: 0,
            lent: None,
            vnet: true,
        }
    }

    /// Plays the kernel: fills block `i` with a marker and gives it to user space.
    fn kernel_retires(ring: &PacketRing, i: usize, marker: u8) {
        // SAFETY: block `i` is inside the mapping and not lent out (checked by the caller).
        unsafe { *ring.map.add(i * BLOCK + 100) = marker };
        ring.status(i).store(TP_STATUS_USER, Ordering::Release);
    }

    fn status(ring: &PacketRing, i: usize) -> u32 {
        ring.status(i).load(Ordering::Acquire)
    }

    #[test]
    fn blocks_are_taken_in_order_returned_on_the_next_call_and_wrap() {
        let mut ring = fake_ring();
        let none = Duration::from_millis(1);
        assert!(
            ring.next_chunk(none).unwrap().is_none(),
            "nothing retired yet"
        );

        kernel_retires(&ring, 0, 10);
        kernel_retires(&ring, 1, 11);
        let b = ring.next_chunk(none).unwrap().expect("block 0");
        assert_eq!((b.len(), b[100]), (BLOCK, 10));
        assert_eq!(status(&ring, 0), TP_STATUS_USER, "still lent out");
        let b = ring.next_chunk(none).unwrap().expect("block 1");
        assert_eq!(b[100], 11);
        assert_eq!(status(&ring, 0), TP_STATUS_KERNEL, "block 0 handed back");
        assert!(
            ring.next_chunk(none).unwrap().is_none(),
            "block 2 not retired"
        );
        assert_eq!(status(&ring, 1), TP_STATUS_KERNEL, "block 1 handed back");

        // The kernel writes 2, then wraps to 0; so does the reader.
        kernel_retires(&ring, 2, 12);
        kernel_retires(&ring, 0, 13);
        assert_eq!(ring.next_chunk(none).unwrap().unwrap()[100], 12);
        assert_eq!(ring.next_chunk(none).unwrap().unwrap()[100], 13);
        assert!(ring.next_chunk(none).unwrap().is_none());
        assert!((0..COUNT).all(|i| status(&ring, i) == TP_STATUS_KERNEL));
        assert_eq!(ring.vnet_header(), Some(true));
    }
}
