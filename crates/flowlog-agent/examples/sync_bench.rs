//! Sync load generator for bench/sync_bench.py: many simulated agents, each a real
//! `RemoteControlPlane` (SigV4-signed `POST /agent/v1/sync`, its own connection, the cursor
//! like `flowlog agent`), each with its own host name and an inventory file of `--enis` ENIs
//! in a VPC of its own.
//!
//!   sync_bench --url http://127.0.0.1:PORT --key K --secret S --hosts 1000 --enis 100 \
//!              --every 2 --seconds 30 --threads 64
//!
//! `--register` syncs every host once and exits (the driver then creates flow logs). Without it
//! every agent syncs every `--every` seconds (staggered) for `--seconds`; prints one JSON line:
//! syncs, errors, syncs/s, latency p50/p99/max in ms, late (syncs started more than one period
//! after they were due), and the assignments seen.
//! Not a test: no assertions beyond "the server answered".

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowlog_agent::remote::RemoteControlPlane;
use flowlog_agent::{ControlPlane, SyncRequest};
use flowlog_inventory::discover::HostInterface;
use flowlog_sigv4::Credentials;

struct Args {
    url: String,
    key: String,
    secret: String,
    hosts: usize,
    enis: usize,
    every: f64,
    seconds: f64,
    threads: usize,
    register: bool,
    first_host: usize,
}

fn args() -> Args {
    let mut a = Args {
        url: String::new(),
        key: String::new(),
        secret: String::new(),
        hosts: 1000,
        enis: 100,
        every: 2.0,
        seconds: 30.0,
        threads: 64,
        register: false,
        first_host: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--url" => a.url = v(),
            "--key" => a.key = v(),
            "--secret" => a.secret = v(),
            "--hosts" => a.hosts = v().parse().expect("--hosts"),
            "--enis" => a.enis = v().parse().expect("--enis"),
            "--every" => a.every = v().parse().expect("--every"),
            "--seconds" => a.seconds = v().parse().expect("--seconds"),
            "--threads" => a.threads = v().parse().expect("--threads"),
            "--first-host" => a.first_host = v().parse().expect("--first-host"),
            "--register" => a.register = true,
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(!a.url.is_empty(), "--url is required");
    assert!(a.enis <= 250, "--enis: at most 250 (one /24 per host)");
    a
}

/// Host `i`: VPC 10.<i/256>.<i%256>.0/24 with one subnet and `enis` ENIs on eth0..ethN in a
/// namespace named after the host.
fn host(i: usize, enis: usize) -> (String, SyncRequest) {
    let name = format!("bench-host-{i:05}");
    let net = format!("10.{}.{}", (i / 256) % 256, i % 256);
    let mut inv = format!(
        "[[vpc]]\nname = \"{name}\"\ncidr_block = \"{net}.0/24\"\n\n\
         [[subnet]]\nname = \"{name}-a\"\nvpc = \"{name}\"\ncidr_block = \"{net}.0/24\"\n\n"
    );
    let mut interfaces = Vec::new();
    for j in 0..enis {
        inv.push_str(&format!(
            "[[network_interface]]\nsubnet = \"{name}-a\"\ninterface = \"eth{j}\"\nnetns = \"{name}\"\nprivate_ip = \"{net}.{}\"\n\n",
            j + 4
        ));
        // ENI IDs derive from (netns, interface): a namespace per host keeps them distinct
        interfaces.push(HostInterface {
            netns: Some(name.clone()),
            name: format!("eth{j}"),
            ifindex: j as u32 + 2,
            mac: format!("02:00:{:02x}:{:02x}:00:{:02x}", (i / 256) % 256, i % 256, j),
            ipv4: vec![(format!("{net}.{}", j + 4).parse().unwrap(), 24)],
        });
    }
    let req = SyncRequest {
        host: name.clone(),
        interfaces,
        inventory: Some(inv),
        ..SyncRequest::default()
    };
    (name, req)
}

fn main() -> anyhow::Result<()> {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let creds = Credentials {
        access_key_id: a.key.clone(),
        secret_access_key: a.secret.clone(),
        session_token: None,
    };
    let agents: Vec<(SyncRequest, RemoteControlPlane)> = (a.first_host..a.first_host + a.hosts)
        .map(|i| {
            let (_, req) = host(i, a.enis);
            let cp = RemoteControlPlane::new(
                &a.url,
                "us-east-1",
                creds.clone(),
                None,
                rt.handle().clone(),
            )
            .expect("control plane URL");
            (req, cp)
        })
        .collect();
    let agents = Arc::new(agents);
    let period = Duration::from_secs_f64(a.every);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(if a.register { 0.0 } else { a.seconds });
    let lat = Arc::new(Mutex::new(Vec::<f64>::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let late = Arc::new(AtomicU64::new(0));
    let assigned = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let threads: Vec<_> = (0..a.threads.min(agents.len()).max(1))
        .map(|t| {
            let (agents, lat, errors, late, assigned, first_error) = (
                agents.clone(),
                lat.clone(),
                errors.clone(),
                late.clone(),
                assigned.clone(),
                first_error.clone(),
            );
            let (nthreads, register) = (a.threads.min(agents.len()).max(1), a.register);
            std::thread::spawn(move || {
                let mut mine: Vec<usize> = (t..agents.len()).step_by(nthreads).collect();
                // agent k first syncs at k/n of a period: an even spread, like hosts booted at
                // random times
                let mut due: Vec<Instant> = mine
                    .iter()
                    .map(|&k| start + period.mul_f64(k as f64 / agents.len() as f64))
                    .collect();
                let mut local = Vec::new();
                while let Some((slot, &when)) = due.iter().enumerate().min_by_key(|(_, d)| **d) {
                    if !register && when >= end {
                        break;
                    }
                    let now = Instant::now();
                    if when > now && !register {
                        std::thread::sleep(when - now);
                    } else if now - when > period {
                        late.fetch_add(1, Ordering::Relaxed);
                    }
                    let (req, cp) = &agents[mine[slot]];
                    let t0 = Instant::now();
                    match cp.sync(req) {
                        Ok(r) => {
                            local.push(t0.elapsed().as_secs_f64() * 1000.0);
                            assigned.fetch_add(r.assignments.len() as u64, Ordering::Relaxed);
                        }
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            first_error.lock().unwrap().get_or_insert(format!("{e:#}"));
                        }
                    }
                    if register {
                        due.remove(slot);
                        mine.remove(slot);
                        continue;
                    }
                    due[slot] = when + period;
                }
                lat.lock().unwrap().extend(local);
            })
        })
        .collect();
    for t in threads {
        t.join().expect("bench thread");
    }
    let wall = start.elapsed().as_secs_f64();
    let mut lat = lat.lock().unwrap().clone();
    lat.sort_by(|x, y| x.total_cmp(y));
    let pct = |p: f64| {
        if lat.is_empty() {
            f64::NAN
        } else {
            lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)]
        }
    };
    let n = lat.len() as u64 + errors.load(Ordering::Relaxed);
    println!(
        "{}",
        serde_json::json!({
            "hosts": a.hosts,
            "enis": a.enis,
            "syncs": lat.len(),
            "errors": errors.load(Ordering::Relaxed),
            "first_error": *first_error.lock().unwrap(),
            "wall_s": wall,
            "syncs_per_s": lat.len() as f64 / wall,
            "offered_per_s": a.hosts as f64 / a.every,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "max_ms": pct(1.0),
            "late": late.load(Ordering::Relaxed),
            "assignments_per_sync": assigned.load(Ordering::Relaxed) as f64 / n.max(1) as f64,
        })
    );
    Ok(())
}
