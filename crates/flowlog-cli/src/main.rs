//! The `flowlog` binary: one executable for the control plane (`serve`), offline and live
//! flow capture (`pcap`, `capture`), and the helper commands. Each subcommand lives in
//! `cmd/<name>.rs` with its clap arguments and its `run` function.

mod cmd;
mod config;
mod credentials;
mod http;
mod logging;
mod metrics;
mod store;

use clap::{Parser, Subcommand};

/// Self-hosted VPC Flow Logs: the EC2 flow-log API, packet capture, and delivery to
/// S3 and CloudWatch Logs in the AWS formats.
#[derive(Parser)]
#[command(name = "flowlog", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: the EC2 flow-log API, the capture agent and delivery (embedded
    /// defaults, or a config file).
    Serve(cmd::serve::Args),
    /// Turn a pcap or pcapng file into flow log records.
    Pcap(cmd::pcap::Args),
    /// Capture live traffic on a Linux interface and print flow log records.
    Capture(cmd::capture::Args),
    /// Run only the capture agent, taking its desired state from a control plane over HTTP.
    Agent(cmd::agent::Args),
    /// Print `export` lines for the admin credential created by `serve`.
    Credentials(cmd::credentials::Args),
    /// Read CloudWatch Logs events kept by the embedded store (get, tail, filter).
    Logs(cmd::logs::Args),
    /// Show what a running server is doing: ENIs and their capture state, flow logs with
    /// delivery status and lag, the spool backlog.
    Status(cmd::status::Args),
    /// Print the Athena CREATE TABLE (partition projection) and DuckDB view for an S3 flow
    /// log's files.
    Ddl(cmd::ddl::Args),
    /// Apply the store's pending schema migrations (SQLite or PostgreSQL) and print them.
    Migrate(cmd::migrate::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => cmd::serve::run(args),
        Command::Pcap(args) => cmd::pcap::run(args),
        Command::Capture(args) => cmd::capture::run(args),
        Command::Logs(args) => cmd::logs::run(args),
        Command::Credentials(args) => cmd::credentials::run(args),
        Command::Agent(args) => cmd::agent::run(args),
        Command::Status(args) => cmd::status::run(args),
        Command::Ddl(args) => cmd::ddl::run(args),
        Command::Migrate(args) => cmd::migrate::run(args),
    }
}
