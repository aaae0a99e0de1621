//! The PutRecordBatch batcher: a pure function from record sizes to request batches within
//! Firehose's limits: at most 500 records and 4 MiB per call, and no record over
//! 1,000 KiB (1,024,000 bytes). A record over that limit can never be accepted: it is
//! skipped (the caller counts and logs it) and never sent.

/// The Firehose limits a batch respects (the defaults are AWS's; tests shrink them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_records: usize,
    pub max_batch_bytes: usize,
    pub max_record_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_records: 500,
            max_batch_bytes: 4 * 1024 * 1024,
            max_record_bytes: 1_024_000,
        }
    }
}

/// One PutRecordBatch call: indices of the records it sends, the records skipped as too large
/// since the previous batch, and `end`, the index after the last record it consumes (sent or
/// skipped): the resume point once every record of the batch is acknowledged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub records: Vec<usize>,
    pub end: usize,
    pub too_large: Vec<usize>,
}

/// Splits records of the given sizes (bytes of each record's data, its `\n` included) into
/// consecutive batches. Every index appears exactly once, in `records` or in `too_large`; a
/// final batch without records carries trailing skips.
pub fn plan(sizes: &[usize], l: &Limits) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut cur = Batch::default();
    let mut bytes = 0usize;
    for (i, &size) in sizes.iter().enumerate() {
        if size > l.max_record_bytes || size > l.max_batch_bytes {
            cur.too_large.push(i);
            cur.end = i + 1;
            continue;
        }
        if !cur.records.is_empty()
            && (cur.records.len() >= l.max_records || bytes + size > l.max_batch_bytes)
        {
            out.push(std::mem::take(&mut cur));
            bytes = 0;
        }
        cur.records.push(i);
        cur.end = i + 1;
        bytes += size;
    }
    if !cur.records.is_empty() || !cur.too_large.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn counts_and_bytes_split_batches() {
        let l = Limits::default();
        let b = plan(&vec![100; 1201], &l);
        assert_eq!(
            b.iter().map(|b| b.records.len()).collect::<Vec<_>>(),
            vec![500, 500, 201]
        );
        assert_eq!(b[0].end, 500);
        assert_eq!(b[2].end, 1201);
        // Four records of 1,000,000 bytes fit 4 MiB (4,194,304), a fifth does not.
        let b = plan(&[1_000_000; 5], &l);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].records, vec![0, 1, 2, 3]);
        assert_eq!(b[1].records, vec![4]);
    }

    #[test]
    fn records_over_the_limit_are_skipped_never_sent() {
        let l = Limits::default();
        let b = plan(&[10, 1_024_001, 1_024_000, 20], &l);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].records, vec![0, 2, 3]);
        assert_eq!(b[0].too_large, vec![1]);
        assert_eq!(b[0].end, 4);
        // Only too-large records: one batch with nothing to send, to move progress on.
        let b = plan(&[2_000_000, 3_000_000], &l);
        assert_eq!(b.len(), 1);
        assert!(b[0].records.is_empty());
        assert_eq!((b[0].too_large.len(), b[0].end), (2, 2));
        assert!(plan(&[], &l).is_empty());
    }

    proptest! {
        #[test]
        fn every_batch_is_within_limits_and_every_record_is_placed_once(
            sizes in proptest::collection::vec(1usize..60, 0..300),
            max_records in 1usize..20,
            max_batch_bytes in 1usize..200,
            max_record_bytes in 1usize..80,
        ) {
            let l = Limits { max_records, max_batch_bytes, max_record_bytes };
            let batches = plan(&sizes, &l);
            let mut seen = Vec::new();
            let mut prev_end = 0;
            for b in &batches {
                prop_assert!(b.records.len() <= l.max_records);
                prop_assert!(b.records.iter().map(|&i| sizes[i]).sum::<usize>() <= l.max_batch_bytes);
                prop_assert!(!b.records.is_empty() || !b.too_large.is_empty());
                for &i in &b.records {
                    prop_assert!(sizes[i] <= l.max_record_bytes);
                }
                for &i in &b.too_large {
                    prop_assert!(sizes[i] > l.max_record_bytes || sizes[i] > l.max_batch_bytes);
                }
                let mut here: Vec<usize> = b.records.iter().chain(&b.too_large).copied().collect();
                here.sort_unstable();
                // Consecutive: a batch covers exactly [previous end, its end).
                prop_assert_eq!(here, (prev_end..b.end).collect::<Vec<_>>());
                prev_end = b.end;
                seen.extend(b.records.iter().chain(&b.too_large).copied());
            }
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..sizes.len()).collect::<Vec<_>>());
            // Greedy: a batch is cut only when the next record would not fit.
            for w in batches.windows(2) {
                if let (Some(&first_next), false) = (w[1].records.first(), w[0].records.is_empty()) {
                    let used: usize = w[0].records.iter().map(|&i| sizes[i]).sum();
                    prop_assert!(w[0].records.len() == l.max_records || used + sizes[first_next] > l.max_batch_bytes);
                }
            }
        }
    }
}
