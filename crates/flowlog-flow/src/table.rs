//! [`FlowTable`]: packet counters per key per epoch-aligned window, and their records.
//!
//! Invariants:
//! - A packet with timestamp `t` (seconds) belongs to the window starting at
//!   `t - t % interval`. Records carry the first and last packet second of their key inside
//!   that window (spec §14 Q5); NODATA and SKIPDATA records carry the window bounds.
//! - Several windows may be open at once (the caller closes them); entries of all open windows
//!   together never exceed `capacity`. A packet that would need a new entry beyond it is counted
//!   in [`FlowStats::overflow_packets`] and makes its window emit one SKIPDATA record for its ENI.
//! - Per packet there is no allocation once the maps have grown to their working size: closed
//!   windows return their maps to a pool with their capacity kept (up to
//!   `POOL_KEEP_ENTRIES`; larger maps give their memory back).
//! - With a shared [`FlowBudget`] ([`FlowTable::set_budget`]) a new entry also needs a unit of
//!   it; entries give their units back when their window closes.
//! - [`FlowTable::reject`] moves packets and bytes from ACCEPT to REJECT; the ACCEPT entry keeps
//!   its first/last times and flags (they may include the moved packet), and prints nothing once
//!   its packet count reaches zero.
//! - Excluded traffic ([`crate::exclude`]) is counted in the stats and never recorded.
//! - Output order is deterministic: windows by start, then records by ENI, first packet second
//!   and key; SKIPDATA and NODATA records of a window follow its traffic records.

use flowlog_capture::Direction;
use flowlog_capture::{packet::addr, PacketMeta};
use flowlog_model::record::{FlowDirection, Traffic};
use flowlog_model::{Action, FlowRecord, LogStatus};

use crate::budget::FlowBudget;
use crate::exclude::{excluded, excluded_key};
use crate::frag::FragmentPorts;
use crate::key::FlowKey;
use crate::map::{hash_key, Counters, Entry, Entry4, Entry6, FlowMap, Hashed};
use flowlog_capture::packet::Fragment;
use flowlog_capture::Family;

/// The entries of one window: IPv4 and IPv6 flows in their own compact maps.
#[derive(Debug, Default)]
struct Map {
    v4: FlowMap<Entry4>,
    v6: FlowMap<Entry6>,
}

impl Map {
    fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    fn bytes(&self) -> usize {
        self.v4.bytes() + self.v6.bytes()
    }

    fn allocated_bytes(&self) -> usize {
        self.v4.allocated_bytes() + self.v6.allocated_bytes()
    }

    #[inline(always)]
    fn touch(&self, key: &FlowKey, h: Hashed) -> u64 {
        match key.family {
            Family::V4 => self.v4.touch(h),
            Family::V6 => self.v6.touch(h),
        }
    }

    #[inline(always)]
    fn get_mut(&mut self, key: &FlowKey, h: Hashed) -> Option<&mut Counters> {
        match key.family {
            Family::V4 => self.v4.get_mut(key, h),
            Family::V6 => self.v6.get_mut(key, h),
        }
    }

    #[inline]
    fn insert_new(&mut self, key: &FlowKey, h: Hashed, c: Counters) {
        match key.family {
            Family::V4 => self.v4.insert_new(key, h, c),
            Family::V6 => self.v6.insert_new(key, h, c),
        }
    }
}

/// Entries a map returned to the pool keeps room for (per family: under 0.6 MiB with its
/// index); larger maps give their memory back when their window closes, so a flood's table
/// does not stay allocated after it and memory held outside a [`FlowBudget`] stays small.
const POOL_KEEP_ENTRIES: usize = 1 << 12;

/// Longest window accepted (longer configurations are clamped): keeps window arithmetic
/// far from overflow.
pub const MAX_INTERVAL: u64 = 1 << 32;

/// Packets handled per batch by [`FlowTable::add_batch`].
const BATCH: usize = 32;

/// Configuration of a [`FlowTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowConfig {
    /// Aggregation window in seconds (1 to [`MAX_INTERVAL`]).
    pub interval_s: u64,
    /// Most entries held across all open windows.
    pub capacity: usize,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            interval_s: 600,
            capacity: 1_000_000,
        }
    }
}

/// Running totals of what the table saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// Packets counted into records (after GSO expansion).
    pub packets: u64,
    pub bytes: u64,
    /// Packets of excluded traffic (metadata, time sync, DHCP).
    pub excluded_packets: u64,
    /// Packets dropped because the table was full (reported as SKIPDATA).
    pub overflow_packets: u64,
    /// Packets counted by the caller as lost (e.g. kernel drops), reported as SKIPDATA.
    pub lost_packets: u64,
    /// Packets that arrived for a window that had already been closed; they were counted
    /// in a re-opened window, so their key may get a second record for that window.
    pub late_packets: u64,
    /// Rejected packets that had no matching ACCEPT packet to move.
    pub reject_unmatched: u64,
    /// Later IP fragments that got the ports of their first fragment.
    pub fragments_resolved: u64,
    /// Later IP fragments whose first fragment was not seen: counted with ports 0.
    pub fragments_unresolved: u64,
}

/// What [`FlowTable::add`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    Counted,
    Excluded,
    /// Table full: counted as skipped for the ENI's window.
    Overflow,
}

/// What [`FlowTable::reject`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectOutcome {
    /// One packet moved from the ACCEPT entry of the key to its REJECT entry.
    Moved,
    /// No ACCEPT packet of the key in that window: counted directly as REJECT.
    Unmatched,
    Excluded,
    Overflow,
}

#[derive(Debug)]
struct Window {
    start: u64,
    flows: Map,
    /// (ENI, packets) that could not be recorded.
    skipped: Vec<(u32, u64)>,
}

/// A closed record before ENI names are attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowRecord {
    pub eni: u32,
    pub start: u64,
    pub end: u64,
    pub traffic: Option<Traffic>,
    pub status: LogStatus,
}

impl WindowRecord {
    /// Attaches the account and interface ids.
    pub fn into_record(self, account_id: &str, interface_id: &str) -> FlowRecord {
        FlowRecord {
            account_id: account_id.to_owned(),
            interface_id: interface_id.to_owned(),
            start: self.start,
            end: self.end,
            traffic: self.traffic,
            status: self.status,
            context: None,
        }
    }
}

/// The flow table. See the module docs for its invariants.
#[derive(Debug)]
pub struct FlowTable {
    interval: u64,
    capacity: usize,
    /// Open windows, sorted by start.
    windows: Vec<Window>,
    /// Index into `windows` of the last window used.
    hot: usize,
    /// Nanosecond range `[lo, hi)` of the window at `hot` (empty when unknown), so that most
    /// packets find their window without a division.
    hot_lo_ns: u64,
    hot_hi_ns: u64,
    entries: usize,
    pool: Vec<Map>,
    /// Host-wide entry budget shared with other tables, if any.
    budget: Option<FlowBudget>,
    /// Every window starting before this has been closed at least once.
    closed_before: u64,
    /// NODATA has been considered for every window starting before this.
    nodata_before: u64,
    stats: FlowStats,
    frags: FragmentPorts,
}

impl FlowTable {
    pub fn new(cfg: FlowConfig) -> FlowTable {
        FlowTable {
            interval: cfg.interval_s.clamp(1, MAX_INTERVAL),
            capacity: cfg.capacity,
            windows: Vec::new(),
            hot: 0,
            hot_lo_ns: 0,
            hot_hi_ns: 0,
            entries: 0,
            pool: Vec::new(),
            budget: None,
            closed_before: 0,
            nodata_before: 0,
            stats: FlowStats::default(),
            frags: FragmentPorts::default(),
        }
    }

    /// Shares `budget` with other tables: a new entry needs a unit of it besides room under
    /// this table's own capacity; without one the packet becomes SKIPDATA like an overflow.
    pub fn set_budget(&mut self, budget: FlowBudget) {
        if let Some(old) = self.budget.take() {
            old.give_back(self.entries);
        }
        // entries already held count against the new budget (they may exceed it)
        for _ in 0..self.entries {
            if !budget.try_take() {
                break;
            }
        }
        self.budget = Some(budget);
    }

    pub fn interval(&self) -> u64 {
        self.interval
    }

    pub fn stats(&self) -> FlowStats {
        FlowStats {
            fragments_resolved: self.frags.resolved,
            fragments_unresolved: self.frags.unresolved,
            ..self.stats
        }
    }

    /// Bytes of memory the table's maps use: index buckets and written entries of the open
    /// windows, plus everything the pooled maps of closed windows keep allocated.
    pub fn memory_bytes(&self) -> usize {
        self.windows.iter().map(|w| w.flows.bytes()).sum::<usize>()
            + self.pool.iter().map(Map::allocated_bytes).sum::<usize>()
    }

    /// Entries currently held across open windows.
    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Start of the window holding second `t`.
    #[inline]
    pub fn window_start(&self, t_s: u64) -> u64 {
        t_s - t_s % self.interval
    }

    /// Number of open windows.
    pub fn open_window_count(&self) -> usize {
        self.windows.len()
    }

    /// Starts of the open windows, ascending.
    pub fn open_windows(&self) -> impl Iterator<Item = u64> + '_ {
        self.windows.iter().map(|w| w.start)
    }

    /// Index of the window holding `ts_ns`, created if needed.
    #[inline(always)]
    fn window_of(&mut self, ts_ns: u64) -> usize {
        if ts_ns >= self.hot_lo_ns && ts_ns < self.hot_hi_ns {
            return self.hot;
        }
        self.window_index(self.window_start(ts_ns / 1_000_000_000))
    }

    #[inline]
    fn window_index(&mut self, start: u64) -> usize {
        let i = match self.windows.get(self.hot) {
            Some(w) if w.start == start => self.hot,
            _ => self.find_or_open(start),
        };
        self.hot = i;
        self.hot_lo_ns = start.saturating_mul(1_000_000_000);
        self.hot_hi_ns = (start + self.interval).saturating_mul(1_000_000_000);
        i
    }

    fn find_or_open(&mut self, start: u64) -> usize {
        match self.windows.binary_search_by_key(&start, |w| w.start) {
            Ok(i) => i,
            Err(i) => {
                let flows = self.pool.pop().unwrap_or_default();
                self.windows.insert(
                    i,
                    Window {
                        start,
                        flows,
                        skipped: Vec::new(),
                    },
                );
                i
            }
        }
    }

    /// Counts one packet of `ip_len` bytes.
    #[inline]
    pub fn add(&mut self, eni: u32, m: &PacketMeta, ts_ns: u64, action: Action) -> AddOutcome {
        self.add_counts(eni, m, ts_ns, action, 1, m.ip_len as u64)
    }

    /// Counts `packets` packets totalling `bytes` bytes (a GSO super-frame expanded with
    /// [`flowlog_capture::gso_segments`]).
    #[inline]
    pub fn add_counts(
        &mut self,
        eni: u32,
        m: &PacketMeta,
        ts_ns: u64,
        action: Action,
        packets: u64,
        bytes: u64,
    ) -> AddOutcome {
        let mut m = *m;
        let m = &mut m;
        if m.fragment != Fragment::None {
            self.frags.resolve(m);
        }
        if excluded(m) {
            self.stats.excluded_packets += packets;
            return AddOutcome::Excluded;
        }
        let key = FlowKey::new(eni, m, action);
        let h = hash_key(&key);
        if self.count(key, h, ts_ns, packets, bytes, m.tcp_flags) {
            AddOutcome::Counted
        } else {
            AddOutcome::Overflow
        }
    }

    /// Counts a batch of packets `(timestamp ns, packet)` of one ENI and action, one packet
    /// each, exactly as [`FlowTable::add`] would. Faster on large tables: the table slots of the
    /// whole batch are loaded before any is updated, so their cache misses overlap.
    pub fn add_batch(&mut self, eni: u32, pkts: &[(u64, PacketMeta)], action: Action) {
        // (key, hash, excluded) of each packet of the chunk
        let mut keys = [None::<(FlowKey, Hashed, bool)>; BATCH];
        for chunk in pkts.chunks(BATCH) {
            let mut acc = 0u32;
            for (slot, (ts_ns, m)) in keys.iter_mut().zip(chunk) {
                let key = if m.fragment == Fragment::None {
                    FlowKey::new(eni, m, action)
                } else {
                    let mut r = *m;
                    self.frags.resolve(&mut r);
                    FlowKey::new(eni, &r, action)
                };
                let skip = excluded_key(&key);
                let h = hash_key(&key);
                let wi = self.window_of(*ts_ns);
                acc ^= self.windows[wi].flows.touch(&key, h) as u32;
                *slot = Some((key, h, skip));
            }
            std::hint::black_box(acc);
            for (slot, (ts_ns, m)) in keys.iter().zip(chunk) {
                match *slot {
                    Some((_, _, true)) => self.stats.excluded_packets += 1,
                    Some((key, h, false)) => {
                        self.count(key, h, *ts_ns, 1, m.ip_len as u64, m.tcp_flags);
                    }
                    None => {}
                }
            }
        }
    }

    #[inline]
    fn count(
        &mut self,
        key: FlowKey,
        h: Hashed,
        ts_ns: u64,
        packets: u64,
        bytes: u64,
        flags: u8,
    ) -> bool {
        let t = ts_ns / 1_000_000_000;
        let wi = self.window_of(ts_ns);
        if self.windows[wi].start < self.closed_before {
            self.stats.late_packets += packets;
        }
        let w = &mut self.windows[wi];
        // seconds into the window: below the interval, at most 2^32
        let t_off = (t - w.start) as u32;
        if let Some(c) = w.flows.get_mut(&key, h) {
            c.add(packets, bytes, t_off, flags);
        } else if self.entries >= self.capacity
            || self.budget.as_ref().is_some_and(|b| !b.try_take())
        {
            match w.skipped.iter_mut().find(|(e, _)| *e == key.eni) {
                Some((_, n)) => *n += packets,
                None => w.skipped.push((key.eni, packets)),
            }
            self.stats.overflow_packets += packets;
            return false;
        } else {
            w.flows
                .insert_new(&key, h, Counters::new(&key, packets, bytes, t_off, flags));
            self.entries += 1;
        }
        self.stats.packets += packets;
        self.stats.bytes += bytes;
        true
    }

    /// An inbound packet the firewall rejected after it was counted as ACCEPT: moves one packet
    /// (and `m.ip_len` bytes) of the key from ACCEPT to REJECT in the window of `ts_ns`. An
    /// ACCEPT entry left with zero packets emits no record. Without a matching ACCEPT packet the
    /// packet is counted as REJECT only.
    pub fn reject(&mut self, eni: u32, m: &PacketMeta, ts_ns: u64) -> RejectOutcome {
        let mut m = *m;
        let m = &mut m;
        if m.fragment != Fragment::None {
            self.frags.resolve(m);
        }
        if excluded(m) {
            self.stats.excluded_packets += 1;
            return RejectOutcome::Excluded;
        }
        let bytes = m.ip_len as u64;
        let key = FlowKey::new(eni, m, Action::Accept);
        let start = self.window_start(ts_ns / 1_000_000_000);
        let mut moved = false;
        if let Ok(wi) = self.windows.binary_search_by_key(&start, |w| w.start) {
            if let Some(c) = self.windows[wi].flows.get_mut(&key, hash_key(&key)) {
                if c.take_one(bytes) {
                    moved = true;
                    self.stats.packets -= 1;
                    self.stats.bytes = self.stats.bytes.saturating_sub(bytes);
                }
            }
        }
        if !moved {
            self.stats.reject_unmatched += 1;
        }
        let rkey = key.with_action(Action::Reject);
        if !self.count(rkey, hash_key(&rkey), ts_ns, 1, bytes, m.tcp_flags) {
            return RejectOutcome::Overflow;
        }
        if moved {
            RejectOutcome::Moved
        } else {
            RejectOutcome::Unmatched
        }
    }

    /// Records `packets` packets of `eni` that were lost before parsing (kernel drops, ...):
    /// the window of `ts_ns` emits a SKIPDATA record for the ENI.
    pub fn note_lost(&mut self, eni: u32, ts_ns: u64, packets: u64) {
        if packets == 0 {
            return;
        }
        let start = self.window_start(ts_ns / 1_000_000_000);
        let wi = self.window_index(start);
        let w = &mut self.windows[wi];
        match w.skipped.iter_mut().find(|(e, _)| *e == eni) {
            Some((_, n)) => *n += packets,
            None => w.skipped.push((eni, packets)),
        }
        self.stats.lost_packets += packets;
    }

    /// Closes every window that ends at or before `until_s` and hands its records to `sink`.
    ///
    /// `nodata` lists ENIs that must be reported: each one without any record in a window
    /// ending at or before `until_s` (and not yet reported) gets a NODATA record for it. Pass
    /// an empty slice for pcap files, where idle windows are not reported.
    pub fn close_until(
        &mut self,
        until_s: u64,
        nodata: &[u32],
        sink: &mut impl FnMut(WindowRecord),
    ) {
        let interval = self.interval;
        let n_close = self
            .windows
            .iter()
            .take_while(|w| w.start + interval <= until_s)
            .count();
        let closing: Vec<Window> = self.windows.drain(..n_close).collect();
        self.hot = 0;
        self.hot_lo_ns = 0;
        self.hot_hi_ns = 0;
        let mut closing = closing.into_iter().peekable();
        if !nodata.is_empty() {
            // every fully elapsed window since the last NODATA pass, with or without traffic
            let last_end = until_s - until_s % interval;
            let mut ws = self.nodata_before.max(self.closed_before);
            if ws == 0 {
                // first pass: from the oldest window with traffic, or the last elapsed one
                let oldest = closing
                    .peek()
                    .map(|w| w.start)
                    .or(self.windows.first().map(|w| w.start));
                ws = oldest.unwrap_or(last_end.saturating_sub(interval));
            }
            while ws + interval <= last_end {
                while let Some(w) = closing.next_if(|w| w.start < ws) {
                    self.emit(w, &[], sink);
                }
                match closing.next_if(|w| w.start == ws) {
                    Some(w) => self.emit(w, nodata, sink),
                    None => {
                        for &eni in nodata {
                            sink(WindowRecord {
                                eni,
                                start: ws,
                                end: ws + interval,
                                traffic: None,
                                status: LogStatus::NoData,
                            });
                        }
                    }
                }
                ws += interval;
            }
            self.nodata_before = self.nodata_before.max(last_end);
        }
        for w in closing {
            self.emit(w, &[], sink);
        }
        self.closed_before = self.closed_before.max(until_s - until_s % interval);
    }

    /// Closes every open window (end of a capture file, shutdown).
    pub fn close_all(&mut self, sink: &mut impl FnMut(WindowRecord)) {
        let windows: Vec<Window> = std::mem::take(&mut self.windows);
        self.hot = 0;
        self.hot_lo_ns = 0;
        self.hot_hi_ns = 0;
        for w in windows {
            let end = w.start + self.interval;
            self.closed_before = self.closed_before.max(end);
            self.emit(w, &[], sink);
        }
    }

    /// The records the open windows would close with now (OK and SKIPDATA, no NODATA),
    /// leaving the table unchanged: what a checkpoint saves so a crash loses at most the
    /// traffic since the last one.
    pub fn snapshot(&self, sink: &mut impl FnMut(WindowRecord)) {
        let mut items: Vec<(FlowKey, Counters)> = Vec::new();
        for w in &self.windows {
            items.clear();
            items.extend(
                w.flows
                    .v4
                    .entries()
                    .iter()
                    .map(|e| (e.key(), *e.counters())),
            );
            items.extend(
                w.flows
                    .v6
                    .entries()
                    .iter()
                    .map(|e| (e.key(), *e.counters())),
            );
            // the order closing gives: (ENI, first second, key)
            items.sort_unstable_by(|a, b| {
                (a.0.eni, a.1.first, &a.0).cmp(&(b.0.eni, b.1.first, &b.0))
            });
            for (k, c) in items.iter().filter(|(_, c)| c.packets() > 0) {
                sink(traffic_record(w.start, k, c));
            }
            for &(eni, _) in &w.skipped {
                sink(WindowRecord {
                    eni,
                    start: w.start,
                    end: w.start + self.interval,
                    traffic: None,
                    status: LogStatus::SkipData,
                });
            }
        }
    }

    /// Like [`FlowTable::close_until`], naming ENIs by index into `names` (account id,
    /// interface id); unknown indexes are named `unknown`.
    pub fn drain_records(
        &mut self,
        until_s: u64,
        nodata: &[u32],
        names: &[(String, String)],
        out: &mut Vec<FlowRecord>,
    ) {
        self.close_until(until_s, nodata, &mut |r| out.push(named(r, names)));
    }

    /// Like [`FlowTable::close_all`] with names, see [`FlowTable::drain_records`].
    pub fn drain_all_records(&mut self, names: &[(String, String)], out: &mut Vec<FlowRecord>) {
        self.close_all(&mut |r| out.push(named(r, names)));
    }

    fn emit(&mut self, mut w: Window, nodata: &[u32], sink: &mut impl FnMut(WindowRecord)) {
        let end = w.start + self.interval;
        let held = w.flows.len();
        self.entries -= held;
        if let Some(b) = &self.budget {
            b.give_back(held);
        }
        // both families sorted in place, then merged by (ENI, first second): IPv4 keys order
        // before IPv6 ones at equal (ENI, first second), as FlowKey orders them
        let mut seen: Vec<u32> = Vec::new();
        {
            let start = w.start;
            let Map { v4, v6 } = &mut w.flows;
            let (v4, v6) = (v4.sorted(), v6.sorted());
            let (mut i, mut j) = (0, 0);
            loop {
                let take4 = match (v4.get(i), v6.get(j)) {
                    (Some(a), Some(b)) => a.eni_first() <= b.eni_first(),
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    (None, None) => break,
                };
                let (k, c) = if take4 {
                    i += 1;
                    (v4[i - 1].key(), *v4[i - 1].counters())
                } else {
                    j += 1;
                    (v6[j - 1].key(), *v6[j - 1].counters())
                };
                if c.packets() == 0 {
                    continue;
                }
                if !nodata.is_empty() && seen.last() != Some(&k.eni) {
                    seen.push(k.eni);
                }
                sink(traffic_record(start, &k, &c));
            }
        }
        w.flows.v4.clear();
        w.flows.v6.clear();
        w.skipped.sort_unstable();
        for &(eni, _) in &w.skipped {
            seen.push(eni);
            sink(WindowRecord {
                eni,
                start: w.start,
                end,
                traffic: None,
                status: LogStatus::SkipData,
            });
        }
        for &eni in nodata {
            if !seen.contains(&eni) {
                sink(WindowRecord {
                    eni,
                    start: w.start,
                    end,
                    traffic: None,
                    status: LogStatus::NoData,
                });
            }
        }
        w.flows.v4.shrink(POOL_KEEP_ENTRIES);
        w.flows.v6.shrink(POOL_KEEP_ENTRIES);
        self.pool.push(w.flows);
    }
}

impl Drop for FlowTable {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.give_back(self.entries);
        }
    }
}

fn named(r: WindowRecord, names: &[(String, String)]) -> FlowRecord {
    match names.get(r.eni as usize) {
        Some((account, eni)) => r.into_record(account, eni),
        None => r.into_record("unknown", "unknown"),
    }
}

#[cfg(test)]
mod tests;

/// The OK record of one flow of the window starting at `start`.
#[inline]
fn traffic_record(start: u64, k: &FlowKey, c: &Counters) -> WindowRecord {
    WindowRecord {
        eni: k.eni,
        start: start + c.first as u64,
        end: start + c.last as u64,
        traffic: Some(Traffic {
            src: addr(k.family, &k.src),
            dst: addr(k.family, &k.dst),
            src_port: k.src_port,
            dst_port: k.dst_port,
            protocol: k.protocol,
            packets: c.packets(),
            bytes: c.bytes,
            action: k.action,
            tcp_flags: c.tcp_flags(),
            direction: flow_direction(k.direction),
        }),
        status: LogStatus::Ok,
    }
}

/// The record's flow-direction of a capture direction (unknown for files without it).
fn flow_direction(d: Direction) -> Option<FlowDirection> {
    match d {
        Direction::Unknown => None,
        Direction::Ingress => Some(FlowDirection::Ingress),
        Direction::Egress => Some(FlowDirection::Egress),
    }
}
