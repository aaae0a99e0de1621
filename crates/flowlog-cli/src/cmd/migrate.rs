//! `flowlog migrate`: applies the store's pending schema migrations and prints them, without
//! starting anything else (`flowlog serve` applies them at start too).

use std::path::PathBuf;

use crate::config::Config;

#[derive(clap::Args)]
#[command(
    after_help = "The store is --store, else [store] url of --config, else SQLite in \
<data-dir>/flowlog.db. Safe to run while replicas serve: migrations run in one transaction \
under a lock, and a database newer than this flowlog is refused."
)]
pub struct Args {
    /// Store URL: postgres://user@host[:port]/database[?sslmode=require] or sqlite://PATH.
    #[arg(long, env = "FLOWLOG_STORE")]
    pub store: Option<String>,
    /// Configuration file (TOML) with a [store] section and/or data_dir.
    #[arg(long, env = "FLOWLOG_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory whose flowlog.db to migrate [default: ./.flowlog].
    #[arg(long, env = "FLOWLOG_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (data_dir, config) =
        Config::client_data_dir(args.data_dir.as_deref(), args.config.as_deref())?;
    let config = config.unwrap_or_default();
    let loc = crate::store::Location::resolve(
        args.store.as_deref().or(config.store.url.as_deref()),
        &data_dir,
    )?;
    let applied = crate::store::migrate(&loc, &config.store)?;
    if applied.is_empty() {
        println!("{}: schema up to date", loc.describe());
    } else {
        for (v, what) in &applied {
            println!("{}: applied migration {v}: {what}", loc.describe());
        }
    }
    Ok(())
}
