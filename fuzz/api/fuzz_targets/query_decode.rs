//! Fuzzes the EC2 Query decoder (`flowlog_api::query::decode`) with arbitrary bytes: it must
//! never panic, and whatever it accepts must survive a strict re-encode/decode round trip
//! unchanged (names and values are exactly what was sent, `+` already turned into a space).
#![no_main]

use libfuzzer_sys::fuzz_target;

fn encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(params) = flowlog_api::query::decode(data) else {
        return;
    };
    let mut again = String::new();
    for (name, value) in params.iter() {
        if !again.is_empty() {
            again.push('&');
        }
        encode(name, &mut again);
        again.push('=');
        encode(value, &mut again);
    }
    let round = flowlog_api::query::decode(again.as_bytes())
        .expect("a re-encoded decode result must decode");
    assert_eq!(round, params, "round trip changed the parameters");
    // The typed readers every action uses must not panic either.
    for name in params.names().map(str::to_string).collect::<Vec<_>>() {
        let _ = params.bool(&name);
        let _ = params.int(&name);
        let _ = params.list(&name);
        let _ = params.struct_indices(&name);
    }
    let _ = flowlog_api::query::filters(&params);
    let _ = flowlog_api::query::check_known(&params, &["Action", "Version", "Filter", "FlowLogId"]);
});
