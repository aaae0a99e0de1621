//! A bounded UDP flood for measuring live capture: sends `payload`-byte datagrams from
//! `src_port` to `dst` as fast as one thread can for `seconds`, then prints how many were sent.
//! Only meant for addresses inside a network namespace the measurement created.
//!
//! `cargo run --release -p flowlog-live --example udp_flood -- 10.201.0.2:9000 18 5 40010`

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: udp_flood DST_ADDR:PORT PAYLOAD_BYTES SECONDS SRC_PORT");
        std::process::exit(2);
    }
    let dst: SocketAddr = args[1].parse().expect("destination address");
    let payload: usize = args[2].parse().expect("payload size");
    let seconds: f64 = args[3].parse().expect("seconds");
    let src_port: u16 = args[4].parse().expect("source port");
    let bind: SocketAddr = if dst.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], src_port))
    } else {
        SocketAddr::from(([0u16; 8], src_port))
    };
    let sock = UdpSocket::bind(bind).expect("bind");
    sock.connect(dst).expect("connect");
    let buf = vec![0x5au8; payload];
    let (mut sent, mut failed) = (0u64, 0u64);
    let start = Instant::now();
    let limit = Duration::from_secs_f64(seconds);
    while start.elapsed() < limit {
        for _ in 0..256 {
            match sock.send(&buf) {
                Ok(_) => sent += 1,
                Err(_) => failed += 1,
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "sent={sent} failed={failed} seconds={secs:.3} pps={:.0}",
        sent as f64 / secs
    );
}
