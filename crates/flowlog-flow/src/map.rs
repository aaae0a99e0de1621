//! [`FlowMap`]: the open-addressing hash table behind each window of the flow table.
//!
//! Linear probing over two parallel arrays: 32-bit tags (hash bits, 0 = empty) and slots
//! (key + counters). The dense tag array keeps probes short and lets a whole window be emptied
//! with one `fill`. [`FlowMap::touch`] loads the tag and slot a key will use, so a caller that
//! touches a batch of keys before updating them gets their cache misses served in parallel
//! (software prefetch without `unsafe`). Load factor at most 3/4 (probes walk the dense tag array; a slot is read only on a tag match); the table only grows, and is
//! reused across windows with its capacity kept.

use std::hash::BuildHasher;

use rustc_hash::FxBuildHasher;

use crate::key::FlowKey;

/// Per-key counters of one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counters {
    pub packets: u64,
    pub bytes: u64,
    pub first_s: u64,
    pub last_s: u64,
    pub tcp_flags: u8,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    key: FlowKey,
    c: Counters,
}

const EMPTY_SLOT: Slot = Slot {
    key: FlowKey {
        eni: 0,
        family: flowlog_capture::Family::V4,
        src: [0; 16],
        dst: [0; 16],
        src_port: 0,
        dst_port: 0,
        protocol: 0,
        action: flowlog_model::Action::Accept,
        direction: flowlog_capture::Direction::Unknown,
    },
    c: Counters {
        packets: 0,
        bytes: 0,
        first_s: 0,
        last_s: 0,
        tcp_flags: 0,
    },
};

/// A key's hash, computed once and reused for touch, lookup and insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hashed(u64);

#[inline(always)]
pub(crate) fn hash_key(k: &FlowKey) -> Hashed {
    // FxHasher's low bits are weak: mix before using them as an index
    let x = FxBuildHasher.hash_one(k);
    Hashed(x ^ (x >> 29) ^ (x >> 47))
}

#[inline(always)]
fn tag_of(h: Hashed) -> u32 {
    ((h.0 >> 32) as u32) | 1
}

#[derive(Debug)]
pub(crate) struct FlowMap {
    tags: Vec<u32>,
    slots: Vec<Slot>,
    mask: usize,
    len: usize,
}

impl Default for FlowMap {
    fn default() -> Self {
        FlowMap::with_slots(64)
    }
}

impl FlowMap {
    fn with_slots(n: usize) -> FlowMap {
        let n = n.next_power_of_two().max(16);
        FlowMap {
            tags: vec![0; n],
            slots: vec![EMPTY_SLOT; n],
            mask: n - 1,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Loads the cache lines `h` will probe first; returns a value only to keep the loads.
    #[inline(always)]
    pub fn touch(&self, h: Hashed) -> u32 {
        let i = h.0 as usize & self.mask;
        self.tags[i] ^ self.slots[i].key.eni
    }

    /// The counters of `key`, if present.
    #[inline(always)]
    pub fn get_mut(&mut self, key: &FlowKey, h: Hashed) -> Option<&mut Counters> {
        let tag = tag_of(h);
        let mut i = h.0 as usize & self.mask;
        loop {
            let t = self.tags[i];
            if t == 0 {
                return None;
            }
            if t == tag && self.slots[i].key == *key {
                return Some(&mut self.slots[i].c);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Inserts a key known to be absent.
    #[inline]
    pub fn insert_new(&mut self, key: FlowKey, h: Hashed, c: Counters) {
        if (self.len + 1) * 4 > self.tags.len() * 3 {
            self.grow();
        }
        self.place(key, h, c);
        self.len += 1;
    }

    #[inline(always)]
    fn place(&mut self, key: FlowKey, h: Hashed, c: Counters) {
        let mut i = h.0 as usize & self.mask;
        while self.tags[i] != 0 {
            i = (i + 1) & self.mask;
        }
        self.tags[i] = tag_of(h);
        self.slots[i] = Slot { key, c };
    }

    fn grow(&mut self) {
        let old = std::mem::replace(self, FlowMap::with_slots(self.tags.len() * 2));
        for (t, s) in old.tags.iter().zip(old.slots.iter()) {
            if *t != 0 {
                self.place(s.key, hash_key(&s.key), s.c);
            }
        }
        self.len = old.len;
    }

    /// Moves every entry out into `out` and leaves the map empty (capacity kept).
    pub fn drain_into(&mut self, out: &mut Vec<(FlowKey, Counters)>) {
        if self.len > 0 {
            for (t, s) in self.tags.iter().zip(self.slots.iter()) {
                if *t != 0 {
                    out.push((s.key, s.c));
                }
            }
            self.tags.fill(0);
        }
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowlog_model::Action;

    fn key(i: u32) -> FlowKey {
        let mut k = EMPTY_SLOT.key;
        k.eni = i % 3;
        k.src[..4].copy_from_slice(&i.to_be_bytes());
        k.dst_port = (i % 7) as u16;
        if i % 5 == 1 {
            k.action = Action::Reject;
        }
        k
    }

    #[test]
    fn insert_find_grow_drain() {
        let mut m = FlowMap::default();
        let c = Counters {
            packets: 1,
            bytes: 2,
            first_s: 3,
            last_s: 4,
            tcp_flags: 5,
        };
        for i in 0..10_000 {
            let k = key(i);
            let h = hash_key(&k);
            assert!(m.get_mut(&k, h).is_none());
            m.insert_new(
                k,
                h,
                Counters {
                    packets: i as u64,
                    ..c
                },
            );
        }
        assert_eq!(m.len(), 10_000);
        for i in 0..10_000 {
            let k = key(i);
            let _ = m.touch(hash_key(&k));
            assert_eq!(
                m.get_mut(&k, hash_key(&k)).map(|c| c.packets),
                Some(i as u64)
            );
        }
        assert!(m.get_mut(&key(10_001), hash_key(&key(10_001))).is_none());
        let mut out = Vec::new();
        m.drain_into(&mut out);
        assert_eq!(out.len(), 10_000);
        assert_eq!(m.len(), 0);
        assert!(m.get_mut(&key(5), hash_key(&key(5))).is_none());
    }
}
