//! Fuzzes the whole request pipeline, `flowlog_api::Api::handle`, with correctly signed
//! requests, so fuzzed parameters get past authentication and reach every action's parsing,
//! validation and store calls. The first input byte picks the action, the rest is appended to
//! the form body. A client's request, however malformed, must never get a 5xx or a panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use flowlog_api::{Api, ApiConfig, Credential, Request};
use libfuzzer_sys::fuzz_target;

const ACTIONS: &[&str] = &[
    "CreateFlowLogs",
    "DeleteFlowLogs",
    "DescribeFlowLogs",
    "CreateVpc",
    "DescribeVpcs",
    "DeleteVpc",
    "CreateSubnet",
    "DescribeSubnets",
    "DeleteSubnet",
    "CreateNetworkInterface",
    "DescribeNetworkInterfaces",
    "DeleteNetworkInterface",
    "CreateTags",
    "DeleteTags",
];
const KEY: &str = "AKIAFUZZADMIN0000001";
const SECRET: &str = "fuzz-secret";
const AMZ_DATE: &str = "20260101T000000Z";
const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("flowlog-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let store = flowlog_store::SqliteStore::open(&dir.join("state.db")).expect("open store");
        Api {
            config: ApiConfig {
                region: "us-east-1".into(),
                credentials: vec![Credential {
                    access_key_id: KEY.into(),
                    secret_access_key: SECRET.into(),
                    account_id: "123456789012".into(),
                    allow: vec!["ec2:*".into()],
                    hosts: None,
                }],
                max_flow_logs_per_resource: Some(2),
            },
            store: Arc::new(store),
            buckets: None,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let action = ACTIONS[usize::from(pick) % ACTIONS.len()];
    let mut body = format!("Action={action}&Version=2016-11-15&").into_bytes();
    body.extend_from_slice(rest);
    let headers = flowlog_api::sigv4::sign_headers(
        "POST",
        "127.0.0.1",
        "/",
        &body,
        KEY,
        SECRET,
        "us-east-1",
        AMZ_DATE,
    );
    let req = Request {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body: &body,
        now: NOW,
    };
    let resp = api().handle(&req);
    assert!(
        resp.status < 500,
        "client input got HTTP {}: {}",
        resp.status,
        resp.body
    );
    assert!(
        resp.body.starts_with("<?xml"),
        "not an XML body: {}",
        resp.body
    );
});
