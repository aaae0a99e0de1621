//! Fuzzes the SigV4 `Authorization` header parser and the `X-Amz-Date` parser: arbitrary text
//! must give `Ok` or an `AuthError`, never a panic; an accepted header keeps its invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(auth) = flowlog_api::sigv4::parse_authorization(text) {
        assert_eq!(auth.signature.len(), 64);
        assert!(auth.signature.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!auth.access_key_id.is_empty());
        assert!(auth.signed_headers.iter().all(|h| !h.is_empty()));
    }
    let _ = flowlog_api::sigv4::parse_amz_date(text);
});
