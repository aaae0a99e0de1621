//! [`FlowMap`]: the hash table behind each window of the flow table, sized for millions of
//! flows.
//!
//! Two parts (see ARCHITECTURE.md, "Memory per flow"):
//! - a dense `Vec` of entries, one per flow in insertion order: an [`Entry4`] (40 bytes) for
//!   IPv4 or an [`Entry6`] (64 bytes) for IPv6, each holding the compact key and its counters.
//!   No empty slots are stored, so the entries cost exactly their size per flow (the `Vec`'s
//!   spare capacity is never written, so the kernel never backs it with memory).
//! - an open-addressing index of `u64` buckets, linear probing, at most 4/5 full: the high
//!   32 bits are the key's hash tag, the low 32 bits the entry's position + 1 (0 = empty). The
//!   bucket position is derived from the tag, so growing the index re-places buckets without
//!   reading a single entry or hashing a key again. 8 bytes per bucket, 10 to 20 per flow.
//!
//! Closing a window sorts the entries in place (no second copy of the window) and clears
//! the index with one `fill`. [`FlowMap::touch`] loads the bucket a key will probe first, so
//! a caller that touches a batch of keys before updating them gets those cache misses served
//! in parallel (software prefetch without `unsafe`).
//!
//! Hand-written rather than `hashbrown`: the table needs the split of compact entries from
//! a tag index (so an IPv4 flow costs 40 bytes instead of a padded 88-byte key+counter slot),
//! in-place sorting of the entries at window close, and a growth step that never rehashes.

use std::cmp::Ordering;
use std::hash::BuildHasher;

use flowlog_capture::Family;
use flowlog_model::Action;
use rustc_hash::FxBuildHasher;

use crate::key::FlowKey;

/// Packets counted per entry saturate here (2^47 ≈ 1.4e14 packets of one flow in one window:
/// 160 days at 10 million packets per second).
pub(crate) const MAX_PACKETS: u64 = (1 << 47) - 1;
const REJECT_BIT: u64 = 1 << 47;
const FLAGS_SHIFT: u32 = 48;
const PROTO_SHIFT: u32 = 56;

/// Counters of one entry, 24 bytes: bytes, then one word holding packets (47 bits), the
/// REJECT bit, the OR of TCP flags and the protocol (the last two are part of the key or the
/// counters, packed together), then the first and last packet second as offsets from the
/// window start (windows are at most 2^32 s long).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counters {
    pub bytes: u64,
    word: u64,
    pub first: u32,
    pub last: u32,
}

impl Counters {
    #[inline(always)]
    pub fn new(k: &FlowKey, packets: u64, bytes: u64, t_off: u32, flags: u8) -> Counters {
        Counters {
            bytes,
            word: packets.min(MAX_PACKETS)
                | if k.action == Action::Reject {
                    REJECT_BIT
                } else {
                    0
                }
                | (flags as u64) << FLAGS_SHIFT
                | (k.protocol as u64) << PROTO_SHIFT,
            first: t_off,
            last: t_off,
        }
    }

    #[inline(always)]
    pub fn packets(&self) -> u64 {
        self.word & MAX_PACKETS
    }

    #[inline(always)]
    pub fn tcp_flags(&self) -> u8 {
        (self.word >> FLAGS_SHIFT) as u8
    }

    #[inline(always)]
    fn protocol(&self) -> u8 {
        (self.word >> PROTO_SHIFT) as u8
    }

    #[inline(always)]
    fn action(&self) -> Action {
        if self.word & REJECT_BIT != 0 {
            Action::Reject
        } else {
            Action::Accept
        }
    }

    /// The key bits kept in the counter word (REJECT bit and protocol).
    #[inline(always)]
    fn key_bits(&self) -> u64 {
        self.word & (REJECT_BIT | 0xff << PROTO_SHIFT)
    }

    #[inline(always)]
    fn key_bits_of(k: &FlowKey) -> u64 {
        (if k.action == Action::Reject {
            REJECT_BIT
        } else {
            0
        }) | (k.protocol as u64) << PROTO_SHIFT
    }

    /// Adds packets seen at `t_off` seconds into the window.
    #[inline(always)]
    pub fn add(&mut self, packets: u64, bytes: u64, t_off: u32, flags: u8) {
        let p = (self.packets() + packets).min(MAX_PACKETS);
        self.word = (self.word & !MAX_PACKETS) | p | (flags as u64) << FLAGS_SHIFT;
        self.bytes += bytes;
        self.first = self.first.min(t_off);
        self.last = self.last.max(t_off);
    }

    /// Takes one packet of `bytes` bytes away; false when there is none.
    #[inline]
    pub fn take_one(&mut self, bytes: u64) -> bool {
        let p = self.packets();
        if p == 0 {
            return false;
        }
        self.word = (self.word & !MAX_PACKETS) | (p - 1);
        self.bytes = self.bytes.saturating_sub(bytes);
        true
    }
}

/// One stored flow: compact key and counters.
pub(crate) trait Entry: Copy {
    fn new(k: &FlowKey, c: Counters) -> Self;
    fn counters(&self) -> &Counters;
    fn counters_mut(&mut self) -> &mut Counters;
    fn matches(&self, k: &FlowKey) -> bool;
    /// The full key back (at window close).
    fn key(&self) -> FlowKey;
    /// The table's output order: ENI, first second, then the key as [`FlowKey`] orders it.
    fn order(&self, o: &Self) -> Ordering;
    /// (ENI, first second): the merge key between the IPv4 and IPv6 entries of a window.
    #[inline(always)]
    fn eni_first(&self) -> (u32, u32) {
        (self.eni(), self.counters().first)
    }
    fn eni(&self) -> u32;
}

/// An IPv4 flow, 40 bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry4 {
    c: Counters,
    /// Addresses as big-endian numbers, so that numeric order is byte order.
    src: u32,
    dst: u32,
    /// `src_port << 16 | dst_port`.
    ports: u32,
    eni: u32,
}

/// An IPv6 flow, 64 bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry6 {
    c: Counters,
    src: [u8; 16],
    dst: [u8; 16],
    ports: u32,
    eni: u32,
}

#[inline(always)]
fn ports_of(k: &FlowKey) -> u32 {
    (k.src_port as u32) << 16 | k.dst_port as u32
}

#[inline(always)]
fn v4(a: &[u8; 16]) -> u32 {
    u32::from_be_bytes([a[0], a[1], a[2], a[3]])
}

fn v4_bytes(a: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&a.to_be_bytes());
    b
}

impl Entry for Entry4 {
    #[inline(always)]
    fn new(k: &FlowKey, c: Counters) -> Self {
        Entry4 {
            c,
            src: v4(&k.src),
            dst: v4(&k.dst),
            ports: ports_of(k),
            eni: k.eni,
        }
    }
    #[inline(always)]
    fn counters(&self) -> &Counters {
        &self.c
    }
    #[inline(always)]
    fn counters_mut(&mut self) -> &mut Counters {
        &mut self.c
    }
    #[inline(always)]
    fn matches(&self, k: &FlowKey) -> bool {
        self.src == v4(&k.src)
            && self.dst == v4(&k.dst)
            && self.ports == ports_of(k)
            && self.eni == k.eni
            && self.c.key_bits() == Counters::key_bits_of(k)
    }
    fn key(&self) -> FlowKey {
        FlowKey {
            eni: self.eni,
            family: Family::V4,
            src: v4_bytes(self.src),
            dst: v4_bytes(self.dst),
            src_port: (self.ports >> 16) as u16,
            dst_port: self.ports as u16,
            protocol: self.c.protocol(),
            action: self.c.action(),
        }
    }
    #[inline]
    fn order(&self, o: &Self) -> Ordering {
        let a = |e: &Entry4| {
            (
                (e.eni as u64) << 32 | e.c.first as u64,
                (e.src as u64) << 32 | e.dst as u64,
                (e.ports as u64) << 16 | (e.c.protocol() as u64) << 8 | (e.c.word >> 47 & 1),
            )
        };
        a(self).cmp(&a(o))
    }
    #[inline(always)]
    fn eni(&self) -> u32 {
        self.eni
    }
}

impl Entry for Entry6 {
    #[inline(always)]
    fn new(k: &FlowKey, c: Counters) -> Self {
        Entry6 {
            c,
            src: k.src,
            dst: k.dst,
            ports: ports_of(k),
            eni: k.eni,
        }
    }
    #[inline(always)]
    fn counters(&self) -> &Counters {
        &self.c
    }
    #[inline(always)]
    fn counters_mut(&mut self) -> &mut Counters {
        &mut self.c
    }
    #[inline(always)]
    fn matches(&self, k: &FlowKey) -> bool {
        self.src == k.src
            && self.dst == k.dst
            && self.ports == ports_of(k)
            && self.eni == k.eni
            && self.c.key_bits() == Counters::key_bits_of(k)
    }
    fn key(&self) -> FlowKey {
        FlowKey {
            eni: self.eni,
            family: Family::V6,
            src: self.src,
            dst: self.dst,
            src_port: (self.ports >> 16) as u16,
            dst_port: self.ports as u16,
            protocol: self.c.protocol(),
            action: self.c.action(),
        }
    }
    #[inline]
    fn order(&self, o: &Self) -> Ordering {
        (self.eni, self.c.first, &self.src, &self.dst, self.ports)
            .cmp(&(o.eni, o.c.first, &o.src, &o.dst, o.ports))
            .then_with(|| {
                (self.c.protocol(), self.c.word >> 47 & 1)
                    .cmp(&(o.c.protocol(), o.c.word >> 47 & 1))
            })
    }
    #[inline(always)]
    fn eni(&self) -> u32 {
        self.eni
    }
}

/// A key's hash, computed once and reused for touch, lookup and insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hashed(u64);

#[inline(always)]
pub(crate) fn hash_key(k: &FlowKey) -> Hashed {
    // FxHasher's low bits are weak and the tag takes the high ones: mix both ways
    let x = FxBuildHasher.hash_one(k);
    Hashed(x ^ (x >> 29) ^ (x << 23))
}

#[inline(always)]
fn tag_of(h: Hashed) -> u32 {
    (h.0 >> 32) as u32
}

/// Index buckets held per entry at most: 5 buckets per 4 entries (4/5 load).
const LOAD_NUM: usize = 4;
const LOAD_DEN: usize = 5;
const MIN_BUCKETS: usize = 16;

#[derive(Debug)]
pub(crate) struct FlowMap<E> {
    index: Vec<u64>,
    entries: Vec<E>,
    mask: usize,
}

impl<E: Entry> Default for FlowMap<E> {
    fn default() -> Self {
        FlowMap {
            index: vec![0; MIN_BUCKETS],
            entries: Vec::new(),
            mask: MIN_BUCKETS - 1,
        }
    }
}

impl<E: Entry> FlowMap<E> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes in use: the index and the written entries (the `Vec`'s spare capacity is never
    /// written, so it takes no memory).
    pub fn bytes(&self) -> usize {
        self.index.len() * 8 + self.entries.len() * std::mem::size_of::<E>()
    }

    /// Bytes allocated, spare entry capacity included (what a pooled map keeps).
    pub fn allocated_bytes(&self) -> usize {
        self.index.len() * 8 + self.entries.capacity() * std::mem::size_of::<E>()
    }

    /// Loads the cache line `h` will probe first; returns a value only to keep the load.
    #[inline(always)]
    pub fn touch(&self, h: Hashed) -> u64 {
        self.index[tag_of(h) as usize & self.mask]
    }

    /// The counters of `key`, if present.
    #[inline(always)]
    pub fn get_mut(&mut self, key: &FlowKey, h: Hashed) -> Option<&mut Counters> {
        let tag = tag_of(h);
        let mut i = tag as usize & self.mask;
        loop {
            let b = self.index[i];
            if b == 0 {
                return None;
            }
            if (b >> 32) as u32 == tag {
                let e = (b as u32 - 1) as usize;
                if self.entries[e].matches(key) {
                    return Some(self.entries[e].counters_mut());
                }
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Inserts a key known to be absent.
    #[inline]
    pub fn insert_new(&mut self, key: &FlowKey, h: Hashed, c: Counters) {
        if (self.entries.len() + 1) * LOAD_DEN > self.index.len() * LOAD_NUM {
            self.grow();
        }
        // positions are stored + 1 in 32 bits
        assert!(self.entries.len() < u32::MAX as usize, "flow map full");
        self.entries.push(E::new(key, c));
        let b = (tag_of(h) as u64) << 32 | self.entries.len() as u64;
        self.place(b);
    }

    #[inline(always)]
    fn place(&mut self, b: u64) {
        let mut i = (b >> 32) as usize & self.mask;
        while self.index[i] != 0 {
            i = (i + 1) & self.mask;
        }
        self.index[i] = b;
    }

    fn grow(&mut self) {
        let n = self.index.len() * 2;
        let old = std::mem::replace(&mut self.index, vec![0; n]);
        self.mask = n - 1;
        for b in old {
            if b != 0 {
                self.place(b);
            }
        }
    }

    /// Sorts the entries into output order in place (no copy) and returns them; call
    /// [`FlowMap::clear`] after reading them.
    pub fn sorted(&mut self) -> &mut Vec<E> {
        let v = &mut self.entries;
        // Entries are appended as flows appear, so they are usually in (ENI, first second)
        // order already (one ENI per table, packets in time order): then only each second's
        // run needs sorting, which costs a third less and stays in cache.
        if v.windows(2).all(|w| w[0].eni_first() <= w[1].eni_first()) {
            for run in v.chunk_by_mut(|a, b| a.eni_first() == b.eni_first()) {
                run.sort_unstable_by(|a, b| a.order(b));
            }
        } else {
            v.sort_unstable_by(|a, b| a.order(b));
        }
        v
    }

    /// Empties the map (capacity kept).
    pub fn clear(&mut self) {
        if !self.entries.is_empty() {
            self.index.fill(0);
            self.entries.clear();
        }
    }

    /// Frees memory beyond what `keep` entries need (maps returned to the pool).
    pub fn shrink(&mut self, keep: usize) {
        let buckets = (keep * LOAD_DEN / LOAD_NUM + 1)
            .next_power_of_two()
            .max(MIN_BUCKETS);
        if self.index.len() > buckets && self.entries.is_empty() {
            self.index = vec![0; buckets];
            self.mask = buckets - 1;
        }
        self.entries.shrink_to(keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowlog_model::Action;

    fn key(i: u32) -> FlowKey {
        FlowKey {
            eni: i % 3,
            family: if i.is_multiple_of(4) {
                Family::V6
            } else {
                Family::V4
            },
            src: {
                let mut a = [0u8; 16];
                a[..4].copy_from_slice(&i.to_be_bytes());
                a
            },
            dst: [0; 16],
            src_port: 7,
            dst_port: (i % 7) as u16,
            protocol: (i % 11) as u8,
            action: if i % 5 == 1 {
                Action::Reject
            } else {
                Action::Accept
            },
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(std::mem::size_of::<Counters>(), 24);
        assert_eq!(std::mem::size_of::<Entry4>(), 40);
        assert_eq!(std::mem::size_of::<Entry6>(), 64);
    }

    fn insert_find_grow_drain<E: Entry>() {
        let mut m = FlowMap::<E>::default();
        for i in 0..10_000 {
            let k = key(i);
            let h = hash_key(&k);
            assert!(m.get_mut(&k, h).is_none());
            m.insert_new(&k, h, Counters::new(&k, i as u64, 2, 3, 4));
        }
        assert_eq!(m.len(), 10_000);
        for i in 0..10_000 {
            let k = key(i);
            let _ = m.touch(hash_key(&k));
            let c = m.get_mut(&k, hash_key(&k)).unwrap();
            assert_eq!(c.packets(), i as u64);
            c.add(1, 1, 9, 0x12);
            assert_eq!((c.first, c.last, c.tcp_flags()), (3, 9, 0x16));
            // the other action is another key
            let other = k.with_action(match k.action {
                Action::Accept => Action::Reject,
                Action::Reject => Action::Accept,
            });
            assert!(m.get_mut(&other, hash_key(&other)).is_none());
        }
        assert!(m.get_mut(&key(10_001), hash_key(&key(10_001))).is_none());
        // 16384 buckets at 4/5 load: 8 bytes of index per bucket
        assert!(m.index.len() <= 16384, "{}", m.index.len());
        let v = m.sorted();
        assert!(v.windows(2).all(|w| w[0].order(&w[1]) != Ordering::Greater));
        let mut keys: Vec<FlowKey> = v.iter().map(|e| e.key()).collect();
        keys.sort();
        let mut want: Vec<FlowKey> = (0..10_000)
            .map(|i| {
                let mut k = key(i);
                if std::mem::size_of::<E>() == 40 {
                    k.family = Family::V4;
                } else {
                    k.family = Family::V6;
                }
                k
            })
            .collect();
        want.sort();
        assert_eq!(keys, want);
        m.clear();
        assert_eq!(m.len(), 0);
        assert!(m.get_mut(&key(5), hash_key(&key(5))).is_none());
    }

    #[test]
    fn v4_and_v6_maps() {
        insert_find_grow_drain::<Entry4>();
        insert_find_grow_drain::<Entry6>();
    }

    #[test]
    fn packets_saturate_and_take_one() {
        let k = key(3);
        let mut c = Counters::new(&k, MAX_PACKETS - 1, 10, 0, 0);
        c.add(5, 1, 1, 0);
        assert_eq!(c.packets(), MAX_PACKETS);
        assert_eq!(c.protocol(), 3);
        let mut c = Counters::new(&k, 1, 10, 0, 0);
        assert!(c.take_one(4));
        assert_eq!((c.packets(), c.bytes), (0, 6));
        assert!(!c.take_one(4));
    }
}
