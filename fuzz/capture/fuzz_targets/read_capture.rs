//! A capture file of arbitrary bytes through the reader, the parser and a small FlowTable,
//! as `flowlog pcap` does. Checks that every counted packet comes out in a record.
#![no_main]

use std::io::Cursor;

use flowlog_capture::{parse, CaptureReader};
use flowlog_flow::{FlowConfig, FlowTable};
use flowlog_model::{Action, LogStatus};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = CaptureReader::with_buffer_size(Cursor::new(data), 256) else { return };
    let mut table = FlowTable::new(FlowConfig { interval_s: 60, capacity: 64 });
    let mut packets = 0u64;
    let mut next_window_ns = 0u64;
    let mut out_packets = 0u64;
    let mut sink = |r: flowlog_flow::WindowRecord| {
        if r.status == LogStatus::Ok {
            out_packets += r.traffic.map(|t| t.packets).unwrap_or(0);
        }
    };
    while let Ok(Some(f)) = reader.next_frame() {
        if let Ok(m) = parse(f.link, f.data) {
            if f.ts_ns >= next_window_ns {
                let t = f.ts_ns / 1_000_000_000;
                let start = t - t % 60;
                next_window_ns = (start + 60).saturating_mul(1_000_000_000);
                table.close_until(start.saturating_sub(60), &[], &mut sink);
            }
            table.add(0, &m, f.ts_ns, Action::Accept);
            packets += 1;
        }
    }
    table.close_all(&mut sink);
    let st = table.stats();
    assert_eq!(st.packets + st.overflow_packets + st.excluded_packets, packets);
    assert_eq!(out_packets, st.packets);
});
