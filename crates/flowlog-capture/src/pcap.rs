//! Streaming readers for classic pcap and pcapng capture files.
//!
//! [`CaptureReader`] wraps any [`Read`], detects the format from the first four bytes and hands
//! out [`Frame`]s that borrow its internal buffer (one large buffer, refilled with big reads; no
//! allocation per packet). Timestamps are converted to nanoseconds since the Unix epoch.
//!
//! - pcap: both byte orders, microsecond (`a1b2c3d4`) and nanosecond (`a1b23c4d`) magic.
//! - pcapng: several sections (either byte order each), several interfaces per section with their
//!   own link type, `if_tsresol` (powers of 10 or 2) and `if_tsoffset`; Enhanced, Simple and
//!   obsolete Packet blocks; every other block is skipped. A Simple Packet Block has no timestamp:
//!   it gets the time of the previous packet.
//!
//! A file that ends inside a record yields [`CaptureError::Truncated`] after the complete records;
//! the caller decides whether that is fatal. Records larger than [`MAX_RECORD`] are rejected as
//! malformed so hostile lengths cannot make the reader allocate without bound.

use std::io::{self, Read};
use std::sync::mpsc;

use crate::packet::LinkType;

/// Largest record (pcap packet record or pcapng block) accepted, in bytes.
pub const MAX_RECORD: usize = 16 << 20;

const DEFAULT_BUFFER: usize = 1 << 20;

/// Which container a reader found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureFormat {
    Pcap,
    PcapNg,
}

/// Why a capture file cannot be read (further).
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("read error: {0}")]
    Io(#[from] io::Error),
    #[error("not a pcap or pcapng file (magic {0:08x})")]
    NotACapture(u32),
    #[error("file is empty or shorter than a capture file header")]
    Empty,
    #[error("file truncated at byte {offset}: incomplete {what}")]
    Truncated { offset: u64, what: &'static str },
    #[error("malformed capture at byte {offset}: {what}")]
    Malformed { offset: u64, what: &'static str },
}

/// One captured frame, borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Nanoseconds since the Unix epoch (saturating at 0 for times before it).
    pub ts_ns: u64,
    pub link: LinkType,
    /// Captured bytes (may be shorter than `orig_len`).
    pub data: &'a [u8],
    /// Length of the frame on the wire.
    pub orig_len: u32,
    /// pcapng interface index within its section (0 for pcap).
    pub interface: u32,
}

#[derive(Debug, Clone, Copy)]
struct Iface {
    link: LinkType,
    /// Timestamp units per second.
    units: u64,
    offset_s: i64,
}

#[derive(Debug)]
enum Kind {
    Pcap {
        swap: bool,
        nanos: bool,
        link: LinkType,
    },
    Ng {
        swap: bool,
        ifaces: Vec<Iface>,
    },
}

/// A streaming pcap/pcapng reader.
#[derive(Debug)]
pub struct CaptureReader<R> {
    src: Input<R>,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
    /// File offset of `buf[0]` (wrapping: may be "negative" after a chunk swap).
    base: u64,
    kind: Kind,
    last_ts: u64,
}

#[inline(always)]
fn u32_at(b: &[u8], off: usize, swap: bool) -> u32 {
    let v = u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]]);
    if swap {
        v.swap_bytes()
    } else {
        v
    }
}

#[inline(always)]
fn u16_at(b: &[u8], off: usize, swap: bool) -> u16 {
    let v = u16::from_le_bytes([b[off], b[off + 1]]);
    if swap {
        v.swap_bytes()
    } else {
        v
    }
}

#[inline(always)]
fn to_ns(ts: u64, units: u64, offset_s: i64) -> u64 {
    let ns: u64 = match units {
        1_000_000 => ts.saturating_mul(1_000),
        1_000_000_000 => ts,
        u => ((ts as u128 * 1_000_000_000u128) / u as u128).min(u64::MAX as u128) as u64,
    };
    if offset_s >= 0 {
        ns.saturating_add((offset_s as u64).saturating_mul(1_000_000_000))
    } else {
        ns.saturating_sub(offset_s.unsigned_abs().saturating_mul(1_000_000_000))
    }
}

/// Bytes kept free in front of every chunk for the tail of the previous one.
const HEADROOM: usize = 128 << 10;

#[derive(Debug)]
enum Input<R> {
    Plain(R),
    Threaded(Chunks),
}

/// A reader thread filling chunks (`HEADROOM` free bytes, then data) and the channels to it.
#[derive(Debug)]
struct Chunks {
    full: mpsc::Receiver<io::Result<(Vec<u8>, usize)>>,
    free: mpsc::SyncSender<Vec<u8>>,
}

impl Chunks {
    fn spawn<R: Read + Send + 'static>(mut src: R, chunk: usize) -> Chunks {
        const DEPTH: usize = 3;
        let (full_tx, full) = mpsc::sync_channel(DEPTH);
        let (free, free_rx) = mpsc::sync_channel::<Vec<u8>>(DEPTH + 2);
        std::thread::spawn(move || {
            let mut made = 0;
            loop {
                let mut buf = match free_rx.try_recv() {
                    Ok(b) => b,
                    Err(_) if made < DEPTH + 2 => {
                        made += 1;
                        vec![0u8; HEADROOM + chunk]
                    }
                    Err(_) => match free_rx.recv() {
                        Ok(b) => b,
                        Err(_) => return,
                    },
                };
                let mut n = 0;
                let data = &mut buf[HEADROOM..];
                let res = loop {
                    if n == data.len() {
                        break Ok(());
                    }
                    match src.read(&mut data[n..]) {
                        Ok(0) => break Ok(()),
                        Ok(k) => n += k,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                let done = n < data.len();
                let msg = match res {
                    Ok(()) if n == 0 => return,
                    Ok(()) => Ok((buf, n)),
                    Err(e) => Err(e),
                };
                let failed = msg.is_err();
                if full_tx.send(msg).is_err() || done || failed {
                    return;
                }
            }
        });
        Chunks { full, free }
    }

    /// The next chunk and its data length, `None` at end of input.
    fn next(&mut self) -> io::Result<Option<(Vec<u8>, usize)>> {
        match self.full.recv() {
            Ok(Ok(c)) => Ok(Some(c)),
            Ok(Err(e)) => Err(e),
            Err(_) => Ok(None),
        }
    }

    fn give_back(&mut self, buf: Vec<u8>) {
        if buf.len() > HEADROOM {
            let _ = self.free.try_send(buf);
        }
    }
}

const PCAP_MICRO: u32 = 0xa1b2_c3d4;
const PCAP_NANO: u32 = 0xa1b2_3c4d;
const NG_SHB: u32 = 0x0a0d_0d0a;
const NG_BOM: u32 = 0x1a2b_3c4d;

impl<R: Read> CaptureReader<R> {
    /// Reads the file header and detects the format.
    pub fn new(src: R) -> Result<Self, CaptureError> {
        Self::with_buffer_size(src, DEFAULT_BUFFER)
    }

    /// Like [`CaptureReader::new`] with an explicit initial buffer size (grown when a record
    /// needs more, up to [`MAX_RECORD`]).
    pub fn with_buffer_size(src: R, size: usize) -> Result<Self, CaptureError> {
        Self::start(Input::Plain(src), vec![0; size.clamp(64, MAX_RECORD)])
    }

    /// Reads `src` on a separate thread in chunks of `chunk` bytes, so that the kernel's copy
    /// into user memory overlaps with parsing. Chunks are handed over without copying (only
    /// a record split between two chunks is moved).
    pub fn with_reader_thread(src: R, chunk: usize) -> Result<Self, CaptureError>
    where
        R: Send + 'static,
    {
        let chunks = Chunks::spawn(src, chunk.clamp(4096, MAX_RECORD));
        Self::start(Input::Threaded(chunks), Vec::new())
    }

    fn start(src: Input<R>, buf: Vec<u8>) -> Result<Self, CaptureError> {
        let mut r = CaptureReader {
            src,
            buf,
            pos: 0,
            end: 0,
            eof: false,
            base: 0,
            kind: Kind::Pcap {
                swap: false,
                nanos: false,
                link: LinkType::Ethernet,
            },
            last_ts: 0,
        };
        if !r.fill(4)? {
            return Err(CaptureError::Empty);
        }
        let b = &r.buf[r.pos..];
        let magic = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if magic == NG_SHB {
            // The section header is parsed as the first block by `next_frame`.
            r.kind = Kind::Ng {
                swap: false,
                ifaces: Vec::new(),
            };
            return Ok(r);
        }
        let (swap, nanos) = match magic {
            PCAP_MICRO => (false, false),
            PCAP_NANO => (false, true),
            m if m.swap_bytes() == PCAP_MICRO => (true, false),
            m if m.swap_bytes() == PCAP_NANO => (true, true),
            m => return Err(CaptureError::NotACapture(m.swap_bytes())),
        };
        if !r.fill(24)? {
            return Err(CaptureError::Truncated {
                offset: 0,
                what: "pcap file header",
            });
        }
        let link = u32_at(&r.buf, r.pos + 20, swap) & 0xffff;
        r.kind = Kind::Pcap {
            swap,
            nanos,
            link: LinkType::from_linktype(link),
        };
        r.pos += 24;
        Ok(r)
    }

    pub fn format(&self) -> CaptureFormat {
        match self.kind {
            Kind::Pcap { .. } => CaptureFormat::Pcap,
            Kind::Ng { .. } => CaptureFormat::PcapNg,
        }
    }

    /// Bytes of the file consumed so far (for progress reports).
    pub fn position(&self) -> u64 {
        self.base.wrapping_add(self.pos as u64)
    }

    /// Ensures `need` bytes are buffered at `pos`. Returns false at end of input before that.
    #[inline]
    fn fill(&mut self, need: usize) -> io::Result<bool> {
        if self.end - self.pos >= need {
            return Ok(true);
        }
        if matches!(self.src, Input::Threaded(_)) {
            self.fill_chunks(need)
        } else {
            self.fill_plain(need)
        }
    }

    fn fill_plain(&mut self, need: usize) -> io::Result<bool> {
        let Input::Plain(src) = &mut self.src else {
            return Ok(false);
        };
        while self.end - self.pos < need {
            if self.eof {
                return Ok(false);
            }
            if self.buf.len() - self.pos < need || self.end == self.buf.len() {
                if self.pos > 0 {
                    self.buf.copy_within(self.pos..self.end, 0);
                    self.base = self.base.wrapping_add(self.pos as u64);
                    self.end -= self.pos;
                    self.pos = 0;
                }
                if self.end == self.buf.len() {
                    let grown = (self.buf.len() * 2).min(MAX_RECORD.max(need));
                    self.buf.resize(grown, 0);
                }
            }
            match src.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    fn fill_chunks(&mut self, need: usize) -> io::Result<bool> {
        let Input::Threaded(chunks) = &mut self.src else {
            return Ok(false);
        };
        while self.end - self.pos < need {
            if self.eof {
                return Ok(false);
            }
            let Some((mut next, n)) = chunks.next()? else {
                self.eof = true;
                return Ok(false);
            };
            let tail = self.end - self.pos;
            if tail <= HEADROOM {
                // move the unread tail in front of the new chunk's data and swap buffers
                let new_pos = HEADROOM - tail;
                next[new_pos..HEADROOM].copy_from_slice(&self.buf[self.pos..self.end]);
                self.base = self
                    .base
                    .wrapping_add(self.pos as u64)
                    .wrapping_sub(new_pos as u64);
                let old = std::mem::replace(&mut self.buf, next);
                chunks.give_back(old);
                self.pos = new_pos;
                self.end = HEADROOM + n;
            } else {
                // a record larger than the headroom: append to the current buffer
                if self.pos > 0 {
                    self.buf.copy_within(self.pos..self.end, 0);
                    self.base = self.base.wrapping_add(self.pos as u64);
                    self.end -= self.pos;
                    self.pos = 0;
                }
                self.buf.truncate(self.end);
                self.buf.extend_from_slice(&next[HEADROOM..HEADROOM + n]);
                self.end += n;
                chunks.give_back(next);
            }
        }
        Ok(true)
    }

    fn truncated(&self, what: &'static str) -> CaptureError {
        CaptureError::Truncated {
            offset: self.position(),
            what,
        }
    }

    fn malformed(&self, what: &'static str) -> CaptureError {
        CaptureError::Malformed {
            offset: self.position(),
            what,
        }
    }

    /// The next frame, `Ok(None)` at a clean end of file.
    #[inline]
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        match self.kind {
            Kind::Pcap { swap, nanos, link } => self.next_pcap(swap, nanos, link),
            Kind::Ng { .. } => self.next_ng(),
        }
    }

    #[inline]
    fn next_pcap(
        &mut self,
        swap: bool,
        nanos: bool,
        link: LinkType,
    ) -> Result<Option<Frame<'_>>, CaptureError> {
        if !self.fill(16)? {
            if self.end == self.pos {
                return Ok(None);
            }
            return Err(self.truncated("packet record header"));
        }
        let p = self.pos;
        let b = &self.buf;
        let sec = u32_at(b, p, swap) as u64;
        let frac = u32_at(b, p + 4, swap) as u64;
        let caplen = u32_at(b, p + 8, swap) as usize;
        let orig_len = u32_at(b, p + 12, swap);
        if caplen > MAX_RECORD - 16 {
            return Err(self.malformed("packet record longer than 16 MiB"));
        }
        if !self.fill(16 + caplen)? {
            return Err(self.truncated("packet record"));
        }
        let ts_ns = if nanos {
            sec * 1_000_000_000 + frac
        } else {
            sec * 1_000_000_000 + frac * 1_000
        };
        let start = self.pos + 16;
        self.pos = start + caplen;
        Ok(Some(Frame {
            ts_ns,
            link,
            data: &self.buf[start..start + caplen],
            orig_len,
            interface: 0,
        }))
    }

    fn next_ng(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        loop {
            if !self.fill(12)? {
                if self.end == self.pos {
                    return Ok(None);
                }
                return Err(self.truncated("pcapng block header"));
            }
            let p = self.pos;
            let btype_le = u32_at(&self.buf, p, false);
            if btype_le == NG_SHB {
                let bom = u32_at(&self.buf, p + 8, false);
                let swap = if bom == NG_BOM {
                    false
                } else if bom.swap_bytes() == NG_BOM {
                    true
                } else {
                    return Err(self.malformed("bad pcapng byte-order magic"));
                };
                self.kind = Kind::Ng {
                    swap,
                    ifaces: Vec::new(),
                };
            }
            let swap = match self.kind {
                Kind::Ng { swap, .. } => swap,
                Kind::Pcap { .. } => false,
            };
            let btype = u32_at(&self.buf, p, swap);
            let total = u32_at(&self.buf, p + 4, swap) as usize;
            if total < 12 || total & 3 != 0 {
                return Err(self.malformed("bad pcapng block length"));
            }
            if total > MAX_RECORD {
                return Err(self.malformed("pcapng block longer than 16 MiB"));
            }
            if !self.fill(total)? {
                return Err(self.truncated("pcapng block"));
            }
            let p = self.pos;
            let body_end = p + total - 4;
            match btype {
                // interface description block
                1 => {
                    if total < 20 {
                        return Err(self.malformed("short interface description block"));
                    }
                    let link = u16_at(&self.buf, p + 8, swap) as u32;
                    let mut iface = Iface {
                        link: LinkType::from_linktype(link),
                        units: 1_000_000,
                        offset_s: 0,
                    };
                    let mut o = p + 16;
                    while o + 4 <= body_end {
                        let code = u16_at(&self.buf, o, swap);
                        let len = u16_at(&self.buf, o + 2, swap) as usize;
                        let v = o + 4;
                        if v + len > body_end || code == 0 {
                            break;
                        }
                        if code == 9 && len >= 1 {
                            let r = self.buf[v];
                            let exp = (r & 0x7f) as u32;
                            iface.units = if r & 0x80 != 0 {
                                if exp > 63 {
                                    return Err(self.malformed("if_tsresol out of range"));
                                }
                                1u64 << exp
                            } else {
                                if exp > 19 {
                                    return Err(self.malformed("if_tsresol out of range"));
                                }
                                10u64.pow(exp)
                            };
                        } else if code == 14 && len >= 8 {
                            let lo = u32_at(&self.buf, v, swap) as u64;
                            let hi = u32_at(&self.buf, v + 4, swap) as u64;
                            iface.offset_s = if swap {
                                ((lo << 32) | hi) as i64
                            } else {
                                ((hi << 32) | lo) as i64
                            };
                        }
                        o = v + len.div_ceil(4) * 4;
                    }
                    if let Kind::Ng { ifaces, .. } = &mut self.kind {
                        if ifaces.len() >= 65536 {
                            return Err(self.malformed("too many interfaces"));
                        }
                        ifaces.push(iface);
                    }
                    self.pos += total;
                }
                // enhanced packet block (6) and obsolete packet block (2)
                2 | 6 => {
                    if total < 32 {
                        return Err(self.malformed("short packet block"));
                    }
                    let iface_id = if btype == 6 {
                        u32_at(&self.buf, p + 8, swap)
                    } else {
                        u16_at(&self.buf, p + 8, swap) as u32
                    };
                    let hi = u32_at(&self.buf, p + 12, swap) as u64;
                    let lo = u32_at(&self.buf, p + 16, swap) as u64;
                    let caplen = u32_at(&self.buf, p + 20, swap) as usize;
                    let orig_len = u32_at(&self.buf, p + 24, swap);
                    if caplen > total - 32 {
                        return Err(self.malformed("packet longer than its block"));
                    }
                    let iface = match &self.kind {
                        Kind::Ng { ifaces, .. } => ifaces.get(iface_id as usize).copied(),
                        Kind::Pcap { .. } => None,
                    };
                    let Some(iface) = iface else {
                        return Err(self.malformed("packet of an undeclared interface"));
                    };
                    let ts_ns = to_ns((hi << 32) | lo, iface.units, iface.offset_s);
                    self.last_ts = ts_ns;
                    self.pos += total;
                    let start = p + 28;
                    return Ok(Some(Frame {
                        ts_ns,
                        link: iface.link,
                        data: &self.buf[start..start + caplen],
                        orig_len,
                        interface: iface_id,
                    }));
                }
                // simple packet block: interface 0, no timestamp
                3 => {
                    if total < 16 {
                        return Err(self.malformed("short simple packet block"));
                    }
                    let orig_len = u32_at(&self.buf, p + 8, swap);
                    let caplen = (orig_len as usize).min(total - 16);
                    let iface = match &self.kind {
                        Kind::Ng { ifaces, .. } => ifaces.first().copied(),
                        Kind::Pcap { .. } => None,
                    };
                    let Some(iface) = iface else {
                        return Err(self.malformed("packet of an undeclared interface"));
                    };
                    self.pos += total;
                    let start = p + 12;
                    return Ok(Some(Frame {
                        ts_ns: self.last_ts,
                        link: iface.link,
                        data: &self.buf[start..start + caplen],
                        orig_len,
                        interface: 0,
                    }));
                }
                _ => self.pos += total,
            }
        }
    }
}
