//! A throwaway PostgreSQL cluster for the tests: `initdb` (as the `postgres` OS user when
//! running as root, since initdb refuses root) in a temp dir owned by that user, `pg_ctl
//! start` on a free loopback port with the socket in the temp dir, one fresh database per
//! test. One cluster serves the whole test binary; a watchdog process started with it stops
//! it (`pg_ctl stop -m immediate`) and removes its directory as soon as the test process is
//! gone, whether the tests passed, failed, panicked or the process was killed.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
    user: Option<String>,
}

static CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();
static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

fn pg_bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn as_user(user: &Option<String>, bin: &Path) -> Command {
    match user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--"]).arg(bin);
            c
        }
        None => Command::new(bin),
    }
}

/// Starts `sh` that waits for this process to end, then stops the cluster and removes `dir`.
// The watchdog must outlive this process (that is its job), so it is never waited for; when
// this process ends it is re-parented and reaped by init.
#[allow(clippy::zombie_processes)]
fn watchdog(bin: &Path, dir: &Path, user: &Option<String>) {
    let stop = match user {
        Some(u) => format!("runuser -u {u} -- "),
        None => String::new(),
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.3; done; \
         {stop}'{pg_ctl}' -D '{data}' stop -m immediate -w >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        pg_ctl = bin.join("pg_ctl").display(),
        data = dir.join("data").display(),
        dir = dir.display(),
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the cluster's watchdog starts");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn start() -> Option<Cluster> {
    let bin = pg_bin_dir()?;
    // /proc/self belongs to the effective user.
    let root = std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    let user = root.then(|| "postgres".to_string());
    let dir = std::env::temp_dir().join(format!("flowlog-store-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    if root {
        let st = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status()
            .expect("chown");
        assert!(
            st.success(),
            "chown of {} to postgres failed",
            dir.display()
        );
    }
    watchdog(&bin, &dir, &user);
    let out = as_user(&user, &bin.join("initdb"))
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        .output()
        .expect("initdb runs");
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = free_port();
    let opts = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
        dir.display()
    );
    let out = as_user(&user, &bin.join("pg_ctl"))
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-o", &opts, "-l"])
        .arg(dir.join("log"))
        .args(["-w", "start"])
        .output()
        .expect("pg_ctl runs");
    assert!(
        out.status.success(),
        "pg_ctl start failed: {} {}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(dir.join("log")).unwrap_or_default()
    );
    Some(Cluster {
        bin,
        dir,
        port,
        user,
    })
}

/// The test binary's cluster, or None when PostgreSQL is not installed (a failure under
/// `CI=true`, where a skip counts as a failure).
pub fn cluster() -> Option<&'static Cluster> {
    let c = CLUSTER.get_or_init(start).as_ref();
    if c.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run scripts/setup.sh"
        );
        eprintln!("SKIPPED: PostgreSQL is not installed (run scripts/setup.sh)");
    }
    c
}

impl Cluster {
    /// A new empty database; returns its URL.
    pub fn fresh_database(&self) -> String {
        let n = NEXT_DB.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{}_{n}", std::process::id());
        let out = as_user(&self.user, &self.bin.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg(&name)
            .output()
            .expect("createdb runs");
        assert!(
            out.status.success(),
            "createdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Runs SQL in a database with psql (to set up old layouts or inspect).
    pub fn psql(&self, url: &str, sql: &str) -> String {
        let out = as_user(&self.user, &self.bin.join("psql"))
            .args([url, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    #[allow(dead_code)]
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
