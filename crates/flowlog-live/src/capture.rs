//! The capture loop for one interface: ring blocks and NFLOG datagrams in, flow records out.
//!
//! [`Capture`] is generic over [`Source`] and is handed the wall-clock time on every call, so
//! tests replay byte buffers with a fake clock. Per step it reads every retired ring block
//! (waiting at most the given timeout for the first), walks the packets, counts them in the
//! [`FlowTable`] as ACCEPT (GSO super-frames as the wire packets they stand for), then reads
//! the NFLOG socket and turns logged packets into REJECTs:
//!
//! - hook PREROUTING, INPUT or FORWARD with `indev` = our interface: AF_PACKET already counted
//!   the packet as ACCEPT, so it is moved to REJECT. The move waits until the ring is known to
//!   be read past the moment NFLOG delivered it (a later packet was seen, or the ring was found
//!   empty a block-retire timeout later); otherwise the ACCEPT could arrive after the move.
//! - hook OUTPUT or POSTROUTING (or FORWARD leaving through our interface): the packet never
//!   reached AF_PACKET, so it is counted directly as REJECT.
//! - anything logged on other interfaces or in other groups is ignored (counted).
//!
//! Direction comes from `sll_pkttype`: OUTGOING is egress; HOST, BROADCAST and MULTICAST are
//! ingress. OTHERHOST frames (addressed to another MAC, seen only in promiscuous mode or on
//! some bridge ports) are not traffic of this interface and are skipped, as an ENI never
//! receives them. On loopback every packet shows up twice (OUTGOING then HOST), so only the
//! OUTGOING copy is counted there.
//!
//! Windows close `grace` after their end, once late blocks and NFLOG batches have arrived.
//! Kernel drops (ring `tp_drops`, NFLOG overruns) are read every step and make the current
//! window emit SKIPDATA. An idle interface still gets NODATA, because the ring poll times out.

use std::time::Duration;

use flowlog_capture::{gso_segments, parse, Direction, LinkType, PacketMeta, SkipCounts};
use flowlog_flow::{FlowConfig, FlowTable, WindowRecord};
use flowlog_model::Action;

use crate::error::Result;
use crate::nflog::{self, Hook, LoggedPacket, Message};
use crate::source::Source;
use crate::tpacket::{self, RingPacket};

/// The ENI index used in the flow table (one interface per capture).
const ENI: u32 = 0;
/// Ring blocks read per step before NFLOG gets its turn.
const MAX_BLOCKS_PER_STEP: usize = 64;
/// NFLOG datagrams read per step, so a flood of rejects cannot starve the ring.
const MAX_DATAGRAMS_PER_STEP: usize = 256;

/// Settings of one capture.
#[derive(Debug, Clone, Copy)]
pub struct CaptureConfig {
    pub ifindex: u32,
    pub interval_s: u64,
    pub capacity: usize,
    /// Whether ring frames carry a `virtio_net_hdr` (`PACKET_VNET_HDR`); the real ring
    /// overrides it with what the kernel accepted.
    pub vnet: bool,
    /// The ring's block retire timeout.
    pub block_timeout: Duration,
    /// How long after its end a window closes.
    pub grace: Duration,
    /// The NFLOG group we listen to, if any.
    pub nflog_group: Option<u16>,
}

impl CaptureConfig {
    pub fn new(ifindex: u32, interval_s: u64) -> Self {
        CaptureConfig {
            ifindex,
            interval_s,
            capacity: 1_000_000,
            vnet: true,
            block_timeout: Duration::from_millis(50),
            grace: Duration::from_millis(400),
            nflog_group: None,
        }
    }
}

/// Counters of one capture, for the summary line and tests.
#[derive(Debug, Clone, Default)]
pub struct LiveStats {
    /// Frames read from the ring.
    pub frames: u64,
    /// Wire packets counted (GSO frames expanded).
    pub packets: u64,
    /// IP bytes of those packets (the IP length, as records count them).
    pub bytes: u64,
    /// GSO/GRO super-frames among the frames.
    pub gso_frames: u64,
    /// Frames the parser skipped, by reason.
    pub skipped: SkipCounts,
    /// OTHERHOST frames and loopback duplicates.
    pub not_ours: u64,
    /// Ring packet headers that pointed outside their block.
    pub malformed_ring: u64,
    /// Packets the kernel dropped because the ring was full.
    pub kernel_drops: u64,
    /// Logged packets moved from ACCEPT to REJECT.
    pub rejects_moved: u64,
    /// Logged inbound packets with no ACCEPT to move (counted as REJECT only).
    pub rejects_unmatched: u64,
    /// Logged outbound packets counted directly as REJECT.
    pub rejects_outbound: u64,
    /// Logged packets of other interfaces, groups or hooks.
    pub nflog_ignored: u64,
    /// Netlink messages that did not parse, and payloads that were not IP.
    pub nflog_malformed: u64,
    /// Times the NFLOG socket overflowed (messages lost).
    pub nflog_overruns: u64,
}

#[derive(Debug, Clone, Copy)]
struct PendingReject {
    meta: PacketMeta,
    ts_ns: u64,
    recv_ns: u64,
}

/// Counting state, split from the sources so a borrowed chunk can be walked into it.
#[derive(Debug)]
struct Counter {
    cfg: CaptureConfig,
    table: FlowTable,
    stats: LiveStats,
    pending: Vec<PendingReject>,
    /// Every ring packet up to this wall-clock time has been counted.
    ring_synced_ns: u64,
    /// Wall clock of the first step: windows that ended before it get no NODATA.
    started_ns: Option<u64>,
}

/// One interface's capture: ring, optional NFLOG socket, flow table.
#[derive(Debug)]
pub struct Capture<R, N> {
    ring: R,
    nflog: Option<N>,
    counter: Counter,
}

fn ns(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}

impl<R: Source, N: Source> Capture<R, N> {
    /// A ring that knows whether it delivers virtio headers overrides `cfg.vnet`.
    pub fn new(ring: R, nflog: Option<N>, mut cfg: CaptureConfig) -> Self {
        if let Some(vnet) = ring.vnet_header() {
            cfg.vnet = vnet;
        }
        let table = FlowTable::new(FlowConfig {
            interval_s: cfg.interval_s,
            capacity: cfg.capacity,
        });
        Capture {
            ring,
            nflog,
            counter: Counter {
                cfg,
                table,
                stats: LiveStats::default(),
                pending: Vec::new(),
                ring_synced_ns: 0,
                started_ns: None,
            },
        }
    }

    /// Shares a host-wide flow-entry budget with other captures: when it is spent, new
    /// flows of this interface become SKIPDATA (see [`flowlog_flow::FlowBudget`]).
    pub fn set_budget(&mut self, budget: flowlog_flow::FlowBudget) {
        self.counter.table.set_budget(budget);
    }

    /// The ring and the NFLOG source (tests push bytes into fakes through this).
    pub fn sources_mut(&mut self) -> (&mut R, Option<&mut N>) {
        (&mut self.ring, self.nflog.as_mut())
    }

    pub fn stats(&self) -> &LiveStats {
        &self.counter.stats
    }

    /// The records of the open windows as they stand (see `FlowTable::snapshot`).
    pub fn snapshot(&self, sink: &mut impl FnMut(WindowRecord)) {
        self.counter.table.snapshot(sink)
    }

    /// Flow entries held across the open windows (against `CaptureConfig::capacity`).
    pub fn table_entries(&self) -> usize {
        self.counter.table.len()
    }

    /// Reads what the kernel has: ring blocks (waiting up to `wait` for the first), then
    /// NFLOG datagrams, then the drop counters. `now_ns` is the wall clock (Unix ns).
    pub fn step(&mut self, wait: Duration, now_ns: u64) -> Result<()> {
        let c = &mut self.counter;
        c.started_ns.get_or_insert(now_ns);
        let mut timeout = wait;
        let mut drained = false;
        for _ in 0..MAX_BLOCKS_PER_STEP {
            match self.ring.next_chunk(timeout)? {
                Some(block) => {
                    let s = tpacket::walk_block(block, c.cfg.vnet, |p| c.on_ring_packet(p));
                    c.stats.malformed_ring += u64::from(s.malformed);
                }
                None => {
                    drained = true;
                    break;
                }
            }
            timeout = Duration::ZERO;
        }
        if drained {
            // Nothing retired now: whatever was received a block timeout ago is counted.
            let margin = ns(c.cfg.block_timeout) + 20_000_000;
            c.ring_synced_ns = c.ring_synced_ns.max(now_ns.saturating_sub(margin));
        }
        if let Some(nl) = self.nflog.as_mut() {
            for _ in 0..MAX_DATAGRAMS_PER_STEP {
                let Some(datagram) = nl.next_chunk(Duration::ZERO)? else {
                    break;
                };
                c.on_datagram(datagram, now_ns);
            }
            let overruns = nl.take_drops()?;
            if overruns > 0 {
                c.stats.nflog_overruns += overruns;
                c.table.note_lost(ENI, now_ns, overruns);
            }
        }
        let drops = self.ring.take_drops()?;
        if drops > 0 {
            c.stats.kernel_drops += drops;
            c.table.note_lost(ENI, now_ns, drops);
        }
        c.apply_pending(false, 0);
        Ok(())
    }

    /// Feeds one NFLOG datagram read elsewhere: a process capturing several interfaces of one
    /// namespace can bind the group once (only one socket may) and hand every datagram to
    /// each interface's capture; each keeps only the packets of its own ifindex. Needs
    /// `cfg.nflog_group` set.
    pub fn feed_nflog(&mut self, datagram: &[u8], now_ns: u64) {
        self.counter.on_datagram(datagram, now_ns);
    }

    /// Closes the windows that ended at least `grace` before `now_ns`; an idle window gives
    /// NODATA. Returns how many records went to `sink`.
    pub fn close_due(&mut self, now_ns: u64, sink: &mut impl FnMut(WindowRecord)) -> usize {
        let c = &mut self.counter;
        let until_s = now_ns.saturating_sub(ns(c.cfg.grace)) / 1_000_000_000;
        let interval = c.table.interval();
        let closing_end = until_s - until_s % interval;
        c.apply_pending(true, closing_end);
        let started_s = *c.started_ns.get_or_insert(now_ns) / 1_000_000_000;
        // Windows that ended before the capture started were not watched: no NODATA for them.
        let nodata: &[u32] = if closing_end > started_s - started_s % interval {
            &[ENI]
        } else {
            &[]
        };
        let mut n = 0;
        c.table.close_until(until_s, nodata, &mut |r| {
            n += 1;
            sink(r)
        });
        n
    }

    /// Ends the capture: reads the ring and NFLOG for `settle` more (so the open block
    /// retires), then closes every window, the current one included (NODATA when idle).
    pub fn finish(
        &mut self,
        now_ns: impl Fn() -> u64,
        settle: Duration,
        sink: &mut impl FnMut(WindowRecord),
    ) -> Result<usize> {
        let start = now_ns();
        while now_ns().saturating_sub(start) < ns(settle) {
            self.step(Duration::from_millis(10), now_ns())?;
        }
        let now = now_ns();
        let c = &mut self.counter;
        c.apply_pending(true, u64::MAX);
        let interval = c.table.interval();
        let now_s = now / 1_000_000_000;
        let current_end = now_s - now_s % interval + interval;
        let mut n = 0;
        c.table.close_until(current_end, &[ENI], &mut |r| {
            n += 1;
            sink(r)
        });
        c.table.close_all(&mut |r| {
            n += 1;
            sink(r)
        });
        Ok(n)
    }
}

impl Counter {
    fn on_ring_packet(&mut self, p: RingPacket<'_>) {
        self.stats.frames += 1;
        let ts_ns = u64::from(p.sec) * 1_000_000_000 + u64::from(p.nsec);
        self.ring_synced_ns = self.ring_synced_ns.max(ts_ns);
        let ours = match p.pkttype {
            tpacket::PACKET_OUTGOING => true,
            tpacket::PACKET_HOST | tpacket::PACKET_BROADCAST | tpacket::PACKET_MULTICAST => {
                p.hatype != tpacket::ARPHRD_LOOPBACK
            }
            _ => false,
        };
        if !ours {
            self.stats.not_ours += 1;
            return;
        }
        let parsed = match p.hatype {
            tpacket::ARPHRD_ETHER | tpacket::ARPHRD_LOOPBACK => parse(LinkType::Ethernet, p.frame),
            _ => parse(LinkType::RawIp, p.frame.get(p.net_offset..).unwrap_or(&[])),
        };
        let mut meta = match parsed {
            Ok(m) => m,
            Err(reason) => {
                self.stats.skipped.add(reason);
                return;
            }
        };
        meta.direction = if p.pkttype == tpacket::PACKET_OUTGOING {
            Direction::Egress
        } else {
            Direction::Ingress
        };
        let (packets, bytes) = match p.vnet.and_then(|v| v.gso()) {
            Some(gso_size) => {
                self.stats.gso_frames += 1;
                gso_segments(&meta, gso_size)
            }
            None => (1, u64::from(meta.ip_len)),
        };
        self.stats.packets += packets;
        self.stats.bytes += bytes;
        self.table
            .add_counts(ENI, &meta, ts_ns, Action::Accept, packets, bytes);
    }

    fn on_datagram(&mut self, datagram: &[u8], now_ns: u64) {
        for msg in nflog::messages(datagram) {
            match msg {
                Message::Packet(p) => self.on_logged(&p, now_ns),
                Message::Malformed => self.stats.nflog_malformed += 1,
                Message::Ack { .. } | Message::Other => {}
            }
        }
    }

    fn on_logged(&mut self, p: &LoggedPacket<'_>, now_ns: u64) {
        if Some(p.group) != self.cfg.nflog_group {
            self.stats.nflog_ignored += 1;
            return;
        }
        let mut meta = match parse(LinkType::RawIp, p.payload) {
            Ok(m) => m,
            Err(_) => {
                self.stats.nflog_malformed += 1;
                return;
            }
        };
        let ts_ns = p
            .timestamp
            .map(|(s, n)| s * 1_000_000_000 + u64::from(n))
            .unwrap_or(now_ns);
        let us = Some(self.cfg.ifindex);
        let inbound = p.indev == us;
        let outbound = p.outdev == us;
        match p.hook {
            Hook::PreRouting | Hook::LocalIn | Hook::Forward if inbound => {
                // The ring saw this packet arrive: the same key, so the move finds it.
                meta.direction = Direction::Ingress;
                self.pending.push(PendingReject {
                    meta,
                    ts_ns,
                    recv_ns: now_ns,
                });
            }
            Hook::LocalOut | Hook::PostRouting | Hook::Forward if outbound => {
                meta.direction = Direction::Egress;
                self.stats.rejects_outbound += 1;
                self.table.add(ENI, &meta, ts_ns, Action::Reject);
            }
            _ => self.stats.nflog_ignored += 1,
        }
    }

    /// Moves pending inbound rejects whose packet the ring has surely delivered; with `force`,
    /// also those whose window ends at or before `window_end_s`.
    fn apply_pending(&mut self, force: bool, window_end_s: u64) {
        let interval = self.table.interval();
        let synced = self.ring_synced_ns;
        let mut i = 0;
        while i < self.pending.len() {
            let p = self.pending[i];
            let t = p.ts_ns / 1_000_000_000;
            let due = p.recv_ns <= synced || (force && t - t % interval + interval <= window_end_s);
            if due {
                self.pending.swap_remove(i);
                match self.table.reject(ENI, &p.meta, p.ts_ns) {
                    flowlog_flow::RejectOutcome::Moved => self.stats.rejects_moved += 1,
                    flowlog_flow::RejectOutcome::Unmatched => self.stats.rejects_unmatched += 1,
                    _ => {}
                }
            } else {
                i += 1;
            }
        }
    }
}
