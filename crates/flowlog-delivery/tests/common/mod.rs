//! Helpers shared by the integration tests: records, free ports, child processes stopped by
//! pid on drop, locating `moto_server` and `s3s-fs`, and the strict CloudWatch Logs fake.
#![allow(dead_code)]

pub mod cwl_fake;

use flowlog_delivery::target::{Destination, FlowLogTarget};
use flowlog_model::record::{RecordFormat, Traffic};
use flowlog_model::{Action, FlowRecord, LogStatus, TrafficType};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ACCOUNT: &str = "123456789012";
pub const ROLE: &str = "arn:aws:iam::123456789012:role/fl";

/// `n` distinct records on `eni`, starting and ending within 55 s after `window_start`.
pub fn records(eni: &str, n: usize, window_start: u64, seed: u32) -> Vec<FlowRecord> {
    (0..n)
        .map(|i| {
            let i = i as u32 + seed * 1_000_000;
            let action = if i.is_multiple_of(3) {
                Action::Reject
            } else {
                Action::Accept
            };
            FlowRecord {
                account_id: ACCOUNT.into(),
                interface_id: eni.into(),
                start: window_start + (i as u64 % 25),
                end: window_start + 25 + (i as u64 % 30),
                traffic: Some(Traffic {
                    src: std::net::Ipv4Addr::from(0x0a00_0000 + i).into(),
                    dst: "10.0.1.10".parse().unwrap(),
                    src_port: (i % 60000) as u16 + 1024,
                    dst_port: 443,
                    protocol: 6,
                    packets: 1 + (i as u64 % 7),
                    bytes: 60 + (i as u64 % 1400),
                    action,
                    tcp_flags: 2,
                    direction: None,
                }),
                status: LogStatus::Ok,
                context: None,
            }
        })
        .collect()
}

pub fn s3_target(id: &str, bucket: &str, prefix: &str) -> FlowLogTarget {
    FlowLogTarget {
        flow_log_id: id.into(),
        account_id: ACCOUNT.into(),
        region: "us-east-1".into(),
        traffic_type: TrafficType::All,
        format: RecordFormat::default(),
        destination: Destination::S3 {
            bucket: bucket.into(),
            prefix: prefix.into(),
        },
        options: Default::default(),
    }
}

pub fn cwl_target(id: &str, group: &str, tt: TrafficType) -> FlowLogTarget {
    FlowLogTarget {
        flow_log_id: id.into(),
        account_id: ACCOUNT.into(),
        region: "us-east-1".into(),
        traffic_type: tt,
        format: RecordFormat::default(),
        destination: Destination::CloudWatchLogs {
            group: group.into(),
            role_arn: ROLE.into(),
        },
        options: Default::default(),
    }
}

/// Window start (5-minute aligned) a little in the past, so CWL age limits accept it.
pub fn recent_window(window: u64) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let w = now - 600;
    w - w % window
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A child process killed (by pid) and reaped on drop.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Finds a tool: env var, then PATH, then the repo's `.venv/bin` / `.tools/bin`.
pub fn find_tool(env: &str, name: &str) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(env) {
        return Some(PathBuf::from(p));
    }
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    for dir in [".venv/bin", ".tools/bin"] {
        let p = workspace_root().join(dir).join(name);
        if p.is_file() {
            return Some(p);
        }
    }
    None
}

/// A peer server is not installed: outside CI the test says SKIP and returns; in CI (where
/// `scripts/setup.sh` installs every peer) a missing peer is a failure, never a silent pass.
pub fn missing(tool: &str) {
    if std::env::var_os("CI").is_some() || std::env::var_os("FLOWLOG_REQUIRE_PEERS").is_some() {
        panic!("{tool} is not installed, but CI must run this test (scripts/setup.sh installs it)");
    }
    eprintln!("SKIP: {tool} not found (set its path in the environment or run scripts/setup.sh)");
}

/// Starts `moto_server` on a free port; `None` (with a printed reason) when not installed.
pub fn start_moto() -> Option<(ChildGuard, String)> {
    let Some(bin) = find_tool("MOTO_SERVER", "moto_server") else {
        missing("moto_server");
        return None;
    };
    let port = free_port();
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn moto_server");
    let guard = ChildGuard(child);
    assert!(
        wait_port(port, Duration::from_secs(30)),
        "moto_server did not start"
    );
    Some((guard, format!("http://127.0.0.1:{port}")))
}

/// Starts `s3s-fs` with credentials (so it verifies SigV4) over a fresh directory.
pub fn start_s3s(
    root: &std::path::Path,
    access: &str,
    secret: &str,
) -> Option<(ChildGuard, String)> {
    let Some(bin) = find_tool("S3S_FS", "s3s-fs") else {
        missing("s3s-fs");
        return None;
    };
    let port = free_port();
    let child = Command::new(bin)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--access-key",
            access,
            "--secret-key",
            secret,
        ])
        .arg(root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn s3s-fs");
    let guard = ChildGuard(child);
    assert!(
        wait_port(port, Duration::from_secs(30)),
        "s3s-fs did not start"
    );
    Some((guard, format!("http://127.0.0.1:{port}")))
}

pub fn gunzip(data: &[u8]) -> String {
    use std::io::Read;
    let mut s = String::new();
    flate2::read::MultiGzDecoder::new(data)
        .read_to_string(&mut s)
        .expect("valid gzip");
    s
}
