//! `flowlog pcap FILE`: a pcap or pcapng file → VPC flow log records (v2 by default; any
//! `--log-format`, as text or, with `--file-format parquet`, as the Parquet file S3 delivery
//! writes).
//!
//! One pass over the file on two threads: a reading thread turns [`CaptureReader`] frames into
//! parsed packets ([`parse`]) and hands them over in batches of 4096; the calling thread counts
//! them into the [`FlowTable`] (one ENI, every packet ACCEPT) and formats records. Windows close as packet time moves on; the current and the previous window
//! stay open so slightly out-of-order files still count exactly, and memory stays bounded on
//! files of any size. Records go to `--out` or stdout through one large buffer; a progress line
//! goes to stderr when it is a terminal, and a summary of skipped frames at the end. A file
//! cut short mid-record still gets all its complete records written, then exits non-zero.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use flowlog_capture::Direction;
use flowlog_capture::{parse, CaptureError, CaptureFormat, CaptureReader, PacketMeta, SkipCounts};
use flowlog_delivery::s3::parquet::LineWriter;
use flowlog_flow::{FlowConfig, FlowTable, WindowRecord};
use flowlog_model::record::{InterfaceContext, IpPrefix, RecordFormat};
use flowlog_model::{Action, FileFormat, FlowRecord, LogStatus};
use std::net::IpAddr;

#[derive(clap::Args)]
pub struct Args {
    /// Capture file (pcap or pcapng; Ethernet, VLAN, Linux SLL/SLL2 or raw IP).
    pub file: PathBuf,
    /// interface-id written in every record.
    #[arg(long, default_value = "eni-00000000000000000")]
    pub eni: String,
    /// account-id written in every record.
    #[arg(long, default_value = "000000000000")]
    pub account: String,
    /// Aggregation window in seconds; windows are aligned to multiples of it since the epoch.
    #[arg(long, default_value_t = 600)]
    pub interval: u64,
    /// Write records to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Start with the field-name header line (as in S3 log files).
    #[arg(long)]
    pub header: bool,
    /// Most flow entries held at once across the open windows; each costs at most 64 bytes
    /// of table (IPv4 about 50-60, IPv6 about 75-85: 1000000 flows is about 61 MiB). New
    /// flows beyond it are reported as SKIPDATA.
    #[arg(long, default_value_t = 1_000_000)]
    pub capacity: usize,
    /// Record format: `${field}` tokens separated by single spaces, as CreateFlowLogs'
    /// LogFormat (e.g. '${version} ${vpc-id} ${srcaddr} ${dstaddr} ${flow-direction}').
    /// Default: the v2 format.
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// `plain-text` (lines) or `parquet` (the Parquet file S3 delivery writes; needs --out).
    #[arg(long, default_value = "plain-text", value_name = "FORMAT")]
    pub file_format: String,
    /// The interface's own address (repeatable): packets from it are `egress`, to it
    /// `ingress` (flow-direction, traffic-path). Without it those fields are `-`.
    #[arg(long = "address", value_name = "IP")]
    pub addresses: Vec<IpAddr>,
    /// vpc-id written in every record.
    #[arg(long)]
    pub vpc_id: Option<String>,
    /// subnet-id written in every record.
    #[arg(long)]
    pub subnet_id: Option<String>,
    /// instance-id written in every record.
    #[arg(long)]
    pub instance_id: Option<String>,
    /// region written in every record.
    #[arg(long)]
    pub region: Option<String>,
    /// az-id written in every record.
    #[arg(long)]
    pub az_id: Option<String>,
    /// CIDR of the interface's VPC (repeatable): egress into it is traffic-path 1.
    #[arg(long = "vpc-cidr", value_name = "CIDR")]
    pub vpc_cidrs: Vec<String>,
    /// AWS ip-ranges.json (or a file of its shape) for pkt-src/dst-aws-service.
    #[arg(long, value_name = "FILE")]
    pub aws_ip_ranges: Option<PathBuf>,
}

const OUT_BUFFER: usize = 1 << 20;
/// Read buffer of the capture reader (refilled with reads of up to this size). Small enough
/// that the bytes the kernel copies in are still in this core's L2 cache when parsed: 128 KiB
/// measured faster than 32 KiB, 256 KiB and 1 MiB on large.pcap.
const READ_BUFFER: usize = 128 << 10;

/// Formats records into one reused line buffer and writes it out in large chunks.
struct Output<'a> {
    w: Box<dyn Write + 'a>,
    format: RecordFormat,
    template: FlowRecord,
    line: String,
    records: u64,
    error: Option<io::Error>,
    /// `--file-format parquet`: lines go to this writer instead of `w`.
    parquet: Option<LineWriter<BufWriter<File>>>,
}

impl Output<'_> {
    fn record(&mut self, r: WindowRecord) {
        self.template.start = r.start;
        self.template.end = r.end;
        self.template.traffic = r.traffic;
        self.template.status = r.status;
        self.records += 1;
        if let Some(pq) = &mut self.parquet {
            self.line.clear();
            self.format.write_line(&self.template, &mut self.line);
            if let Err(e) = pq.push_line(&self.line) {
                self.error.get_or_insert(e);
            }
            self.line.clear();
            return;
        }
        self.format.write_line(&self.template, &mut self.line);
        self.line.push('\n');
        if self.line.len() >= OUT_BUFFER {
            self.flush_line();
        }
    }

    fn flush_line(&mut self) {
        if self.error.is_none() {
            if let Err(e) = self.w.write_all(self.line.as_bytes()) {
                self.error = Some(e);
            }
        }
        self.line.clear();
    }

    fn finish(mut self) -> io::Result<u64> {
        if let Some(pq) = self.parquet.take() {
            if let Some(e) = self.error.take() {
                return Err(e);
            }
            pq.finish()?.flush()?;
            return Ok(self.records);
        }
        self.flush_line();
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.w.flush()?;
        Ok(self.records)
    }
}

struct Progress {
    enabled: bool,
    total: u64,
    last: Instant,
}

impl Progress {
    fn show(&mut self, pos: u64, frames: u64, done: bool) {
        if !self.enabled {
            return;
        }
        if !done && self.last.elapsed() < Duration::from_millis(250) {
            return;
        }
        self.last = Instant::now();
        let pct = if self.total > 0 {
            pos as f64 * 100.0 / self.total as f64
        } else {
            100.0
        };
        eprint!(
            "\r{:>6.1}%  {} / {} MB  {} frames{}",
            pct,
            pos >> 20,
            self.total >> 20,
            frames,
            if done { "\n" } else { "" }
        );
    }
}

/// Parsed packets handed from the reading thread to the table, in file order.
type Batch = Vec<(u64, PacketMeta)>;

/// What the reading thread reports when it is done.
struct ReadEnd {
    frames: u64,
    skips: SkipCounts,
    format: CaptureFormat,
    error: Option<CaptureError>,
}

const BATCH_PACKETS: usize = 4096;

/// The reading thread: file → frames → parsed packets, sent in batches. Reading and parsing
/// here and counting on the caller's thread keeps each core's cache on its own data.
fn read_packets(
    mut reader: CaptureReader<File>,
    full: mpsc::SyncSender<Batch>,
    free: mpsc::Receiver<Batch>,
    position: Arc<AtomicU64>,
    addresses: Vec<IpAddr>,
) -> ReadEnd {
    let mut frames = 0u64;
    let mut skips = SkipCounts::default();
    let mut batch: Batch = Vec::with_capacity(BATCH_PACKETS);
    let error = loop {
        let frame = match reader.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => break None,
            Err(e) => break Some(e),
        };
        frames += 1;
        match parse(frame.link, frame.data) {
            Ok(mut m) => {
                if !addresses.is_empty() {
                    m.direction = direction(&m, &addresses);
                }
                batch.push((frame.ts_ns, m))
            }
            Err(reason) => skips.add(reason),
        }
        if batch.len() == BATCH_PACKETS {
            position.store(reader.position(), Ordering::Relaxed);
            let next = free
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(BATCH_PACKETS));
            if full.send(std::mem::replace(&mut batch, next)).is_err() {
                break None;
            }
        }
    };
    position.store(reader.position(), Ordering::Relaxed);
    if !batch.is_empty() {
        let _ = full.send(batch);
    }
    ReadEnd {
        frames,
        skips,
        format: reader.format(),
        error,
    }
}

/// A file has no capture direction: the interface's own addresses give it.
fn direction(m: &PacketMeta, addresses: &[IpAddr]) -> Direction {
    if addresses.contains(&m.src_addr()) {
        Direction::Egress
    } else if addresses.contains(&m.dst_addr()) {
        Direction::Ingress
    } else {
        Direction::Unknown
    }
}

/// The `--log-format` and interface options as a format and a record context.
fn format_and_context(
    args: &Args,
) -> anyhow::Result<(RecordFormat, Option<Arc<InterfaceContext>>)> {
    let format = match &args.log_format {
        None => RecordFormat::default(),
        Some(f) => RecordFormat::parse_checked(f).map_err(|e| {
            anyhow::anyhow!("--log-format {f:?} is not valid: {e} (example: --log-format '${{version}} ${{srcaddr}} ${{dstaddr}} ${{flow-direction}}')")
        })?,
    };
    let vpc_cidrs = args
        .vpc_cidrs
        .iter()
        .map(|c| {
            IpPrefix::parse(c).ok_or_else(|| {
                anyhow::anyhow!("--vpc-cidr {c:?} is not a CIDR block (e.g. 10.0.0.0/16)")
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let aws_ranges = match &args.aws_ip_ranges {
        Some(p) => Some(Arc::new(flowlog_inventory::ip_ranges::load(p)?)),
        None => None,
    };
    let ctx = InterfaceContext {
        vpc_id: args.vpc_id.clone(),
        subnet_id: args.subnet_id.clone(),
        instance_id: args.instance_id.clone(),
        region: args.region.clone(),
        az_id: args.az_id.clone(),
        vpc_cidrs,
        aws_ranges,
    };
    let context = (ctx != InterfaceContext::default()).then(|| Arc::new(ctx));
    Ok((format, context))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.interval == 0 || args.interval > flowlog_flow::table::MAX_INTERVAL {
        bail!(
            "--interval must be between 1 and {} seconds",
            flowlog_flow::table::MAX_INTERVAL
        );
    }
    if args.capacity == 0 {
        bail!("--capacity must be at least 1");
    }
    let (format, context) = format_and_context(&args)?;
    let file_format = FileFormat::parse(&args.file_format).ok_or_else(|| {
        anyhow::anyhow!(
            "--file-format {:?} is not valid: use plain-text or parquet",
            args.file_format
        )
    })?;
    let parquet = match (file_format, &args.out) {
        (FileFormat::PlainText, _) => None,
        (FileFormat::Parquet, None) => {
            bail!("--file-format parquet writes a binary file: give it with --out FILE")
        }
        (FileFormat::Parquet, Some(p)) => {
            let f = File::create(p).with_context(|| format!("cannot create {}", p.display()))?;
            Some(LineWriter::new(
                format.fields(),
                BufWriter::with_capacity(OUT_BUFFER, f),
            )?)
        }
    };
    let file = File::open(&args.file)
        .with_context(|| format!("cannot open capture file {}", args.file.display()))?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let reader = match CaptureReader::with_buffer_size(file, READ_BUFFER) {
        Ok(r) => r,
        Err(e) => bail!("{}: {e}", args.file.display()),
    };

    let stdout = io::stdout();
    let w: Box<dyn Write> = match &args.out {
        Some(_) if parquet.is_some() => Box::new(io::sink()),
        Some(p) => Box::new(BufWriter::with_capacity(
            OUT_BUFFER,
            File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(stdout.lock()),
    };
    let mut out = Output {
        w,
        template: FlowRecord {
            account_id: args.account.clone(),
            interface_id: args.eni.clone(),
            start: 0,
            end: 0,
            traffic: None,
            status: LogStatus::Ok,
            context,
        },
        format,
        line: String::with_capacity(OUT_BUFFER + 4096),
        records: 0,
        error: None,
        parquet,
    };
    if args.header && out.parquet.is_none() {
        out.line.push_str(&out.format.header());
        out.line.push('\n');
    }

    let interval = args.interval;
    let mut table = FlowTable::new(FlowConfig {
        interval_s: interval,
        capacity: args.capacity,
    });
    let mut progress = Progress {
        enabled: io::stderr().is_terminal(),
        total,
        last: Instant::now(),
    };
    let position = Arc::new(AtomicU64::new(0));
    let (full_tx, full_rx) = mpsc::sync_channel::<Batch>(4);
    let (free_tx, free_rx) = mpsc::sync_channel::<Batch>(8);
    let reading = {
        let position = position.clone();
        let addresses = args.addresses.clone();
        std::thread::spawn(move || read_packets(reader, full_tx, free_rx, position, addresses))
    };

    // packets at or after this time open a new window, which closes the one before the previous
    let mut next_window_ns: u64 = 0;
    let mut current_start: u64 = 0;
    let mut counted = 0u64;
    for batch in full_rx.iter() {
        let mut rest = &batch[..];
        while !rest.is_empty() {
            // the packets before the next window change go to the table in one call
            let n = rest
                .iter()
                .position(|(ts, _)| *ts >= next_window_ns)
                .unwrap_or(rest.len());
            table.add_batch(0, &rest[..n], Action::Accept);
            rest = &rest[n..];
            if let Some((ts, _)) = rest.first() {
                let t = ts / 1_000_000_000;
                let start = t - t % interval;
                next_window_ns = (start + interval).saturating_mul(1_000_000_000);
                current_start = start;
                table.close_until(start.saturating_sub(interval), &[], &mut |r| out.record(r));
                table.add_batch(0, &rest[..1], Action::Accept);
                rest = &rest[1..];
            }
        }
        // packets older than the previous window re-open theirs: close them again at once, so
        // that a file with wild timestamps cannot keep many windows open
        if table.open_window_count() > 2 {
            table.close_until(current_start.saturating_sub(interval), &[], &mut |r| {
                out.record(r)
            });
        }
        counted += batch.len() as u64;
        let mut batch = batch;
        batch.clear();
        let _ = free_tx.try_send(batch);
        if out.error.is_some() {
            break;
        }
        if counted & 0xffff < BATCH_PACKETS as u64 {
            progress.show(position.load(Ordering::Relaxed), counted, false);
        }
    }
    // a failed output (full disk, closed pipe) stops the reading thread early
    drop(full_rx);
    let end = match reading.join() {
        Ok(end) => end,
        Err(_) => bail!("the reading thread failed"),
    };
    table.close_all(&mut |r: WindowRecord| out.record(r));
    progress.show(position.load(Ordering::Relaxed), end.frames, true);
    let ReadEnd {
        frames,
        skips,
        format,
        error: end_error,
    } = end;
    let format_name = match format {
        CaptureFormat::Pcap => "pcap",
        CaptureFormat::PcapNg => "pcapng",
    };
    let records = match out.finish() {
        Ok(n) => n,
        // the reader of our output went away (`| head`): stop quietly, like other filters
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
        Err(e) => return Err(e).context("cannot write records"),
    };

    let st = table.stats();
    let mut summary = format!(
        "flowlog pcap: {} ({format_name}): {frames} frames, {} packets / {} bytes in {records} records",
        args.file.display(),
        st.packets,
        st.bytes
    );
    if st.excluded_packets > 0 {
        summary.push_str(&format!(
            "; excluded (metadata/time/DHCP): {}",
            st.excluded_packets
        ));
    }
    if st.overflow_packets > 0 {
        summary.push_str(&format!(
            "; over capacity (SKIPDATA): {}",
            st.overflow_packets
        ));
    }
    if st.late_packets > 0 {
        summary.push_str(&format!(
            "; out of order beyond one window: {}",
            st.late_packets
        ));
    }
    if skips.total() > 0 {
        summary.push_str(&format!("; skipped {} frames (", skips.total()));
        let parts: Vec<String> = skips
            .iter()
            .map(|(r, n)| format!("{}: {n}", r.as_str()))
            .collect();
        summary.push_str(&parts.join(", "));
        summary.push(')');
    }
    eprintln!("{summary}");

    match end_error {
        None => Ok(()),
        Some(e @ CaptureError::Truncated { .. }) => {
            bail!(
                "{}: {e} (records of the complete packets before it were written)",
                args.file.display()
            )
        }
        Some(e) => bail!(
            "{}: {e} (records of the packets before it were written)",
            args.file.display()
        ),
    }
}
