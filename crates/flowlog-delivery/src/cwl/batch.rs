//! The PutLogEvents batcher: a pure function from sorted events and "now" to request batches
//! that respect every CloudWatch Logs limit (spec §6): at most 10 000 events, at most
//! 1 048 576 bytes counting UTF-8 message bytes plus 26 per event, chronological, never
//! spanning 24 hours; events older than 14 days or more than 2 hours in the future are dropped
//! and counted, as are single events larger than the 256 KiB event limit.

use crate::router::Event;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_events: usize,
    pub max_bytes: usize,
    pub event_overhead: usize,
    pub max_event_bytes: usize,
    pub max_span_ms: i64,
    pub max_age_ms: i64,
    pub max_future_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_events: 10_000,
            max_bytes: 1_048_576,
            event_overhead: 26,
            max_event_bytes: 262_144,
            max_span_ms: 24 * 3600 * 1000,
            max_age_ms: 14 * 24 * 3600 * 1000,
            max_future_ms: 2 * 3600 * 1000,
        }
    }
}

/// One PutLogEvents request: indices into the event slice, plus the events skipped since the
/// previous batch. `end` is the index after the last event this batch consumes (sent or
/// skipped), i.e. the resume point once it is acknowledged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub events: Vec<usize>,
    pub end: usize,
    pub too_old: u64,
    pub too_new: u64,
    pub too_large: u64,
}

impl Batch {
    pub fn skipped(&self) -> u64 {
        self.too_old + self.too_new + self.too_large
    }
}

/// Size of one event as CloudWatch Logs counts it.
pub fn event_size(e: &Event, l: &Limits) -> usize {
    e.message.len() + l.event_overhead
}

/// Splits `events` (must be sorted by timestamp) into batches. A final batch with no events
/// carries trailing skips.
pub fn plan(events: &[Event], now_ms: i64, l: &Limits) -> Vec<Batch> {
    debug_assert!(events.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    let mut out = Vec::new();
    let mut cur = Batch::default();
    let mut bytes = 0usize;
    for (i, e) in events.iter().enumerate() {
        let size = event_size(e, l);
        if e.timestamp < now_ms - l.max_age_ms {
            cur.too_old += 1;
        } else if e.timestamp > now_ms + l.max_future_ms {
            cur.too_new += 1;
        } else if size > l.max_event_bytes || size > l.max_bytes {
            cur.too_large += 1;
        } else {
            let full = !cur.events.is_empty()
                && (cur.events.len() >= l.max_events
                    || bytes + size > l.max_bytes
                    || e.timestamp - events[cur.events[0]].timestamp >= l.max_span_ms);
            if full {
                out.push(std::mem::take(&mut cur));
                bytes = 0;
            }
            cur.events.push(i);
            bytes += size;
        }
        cur.end = i + 1;
    }
    if !cur.events.is_empty() || cur.skipped() > 0 {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_700_000_000_000;

    fn ev(ts: i64, len: usize) -> Event {
        Event {
            timestamp: ts,
            message: "x".repeat(len),
        }
    }

    fn check_invariants(events: &[Event], batches: &[Batch], l: &Limits) {
        let mut next = 0;
        let mut counted = 0u64;
        for b in batches {
            assert!(b.events.len() <= l.max_events);
            let bytes: usize = b.events.iter().map(|&i| event_size(&events[i], l)).sum();
            assert!(bytes <= l.max_bytes, "batch of {bytes} bytes");
            if let (Some(&f), Some(&z)) = (b.events.first(), b.events.last()) {
                assert!(events[z].timestamp - events[f].timestamp < l.max_span_ms);
            }
            for w in b.events.windows(2) {
                assert!(w[0] < w[1]);
            }
            for &i in &b.events {
                assert!(i >= next && i < b.end);
                let e = &events[i];
                assert!(e.timestamp >= NOW - l.max_age_ms && e.timestamp <= NOW + l.max_future_ms);
            }
            assert!(b.end > next || b.events.is_empty());
            counted += b.events.len() as u64 + b.skipped();
            next = b.end;
        }
        assert_eq!(next, events.len());
        assert_eq!(
            counted,
            events.len() as u64,
            "every event sent or counted once"
        );
    }

    #[test]
    fn count_limit_splits_at_10000() {
        let events: Vec<Event> = (0..25_000).map(|i| ev(NOW - 1000 + i / 100, 10)).collect();
        let b = plan(&events, NOW, &Limits::default());
        assert_eq!(
            b.iter().map(|b| b.events.len()).collect::<Vec<_>>(),
            vec![10_000, 10_000, 5_000]
        );
        check_invariants(&events, &b, &Limits::default());
    }

    #[test]
    fn byte_limit_counts_26_per_event() {
        // 1000-byte messages: 1026 each; 1_048_576 / 1026 = 1022.0 → 1022 per batch.
        let events: Vec<Event> = (0..3000).map(|_| ev(NOW, 1000)).collect();
        let b = plan(&events, NOW, &Limits::default());
        assert_eq!(b[0].events.len(), 1022);
        check_invariants(&events, &b, &Limits::default());
        // Exactly at the limit fits: 1_048_576 = 16 * 65_536 → messages of 65_510 bytes.
        let events: Vec<Event> = (0..17).map(|_| ev(NOW, 65_510)).collect();
        let b = plan(&events, NOW, &Limits::default());
        assert_eq!(b[0].events.len(), 16);
        assert_eq!(b[1].events.len(), 1);
    }

    #[test]
    fn never_spans_24_hours() {
        let day = 24 * 3600 * 1000;
        let events = vec![
            ev(NOW - 3 * day, 1),
            ev(NOW - 2 * day - 1, 1),
            ev(NOW - 2 * day, 1),
            ev(NOW - day, 1),
        ];
        let b = plan(&events, NOW, &Limits::default());
        assert_eq!(
            b.iter().map(|b| b.events.clone()).collect::<Vec<_>>(),
            vec![vec![0, 1], vec![2], vec![3]]
        );
    }

    #[test]
    fn too_old_and_too_new_are_dropped_and_counted() {
        let l = Limits::default();
        let events = vec![
            ev(NOW - l.max_age_ms - 1, 1),
            ev(NOW - l.max_age_ms, 1),
            ev(NOW + l.max_future_ms, 1),
            ev(NOW + l.max_future_ms + 1, 1),
            ev(NOW + l.max_future_ms + 2, 300_000),
        ];
        let b = plan(&events, NOW, &l);
        // The two kept events are 14 days apart: two batches (24 h rule).
        assert_eq!(
            b.iter().map(|b| b.events.clone()).collect::<Vec<_>>(),
            vec![vec![1], vec![2]]
        );
        assert_eq!((b[0].too_old, b[1].too_new, b[1].too_large), (1, 2, 0));
        assert_eq!(b[1].end, 5);
        let big = vec![ev(NOW, 300_000), ev(NOW, 5)];
        let b = plan(&big, NOW, &l);
        assert_eq!((b[0].events.clone(), b[0].too_large), (vec![1], 1));
        assert!(plan(&[], NOW, &l).is_empty());
    }

    proptest! {
        #[test]
        fn batches_respect_every_limit(
            mut spec in proptest::collection::vec((-(20i64 * 24 * 3600 * 1000)..(3 * 3600 * 1000), 0usize..3000), 0..3000),
            max_events in 1usize..50,
            max_bytes in 100usize..20_000,
        ) {
            spec.sort();
            let events: Vec<Event> = spec.iter().map(|&(dt, len)| ev(NOW + dt, len)).collect();
            let l = Limits { max_events, max_bytes, ..Limits::default() };
            let b = plan(&events, NOW, &l);
            check_invariants(&events, &b, &l);
            let l = Limits::default();
            let b = plan(&events, NOW, &l);
            check_invariants(&events, &b, &l);
        }
    }
}
