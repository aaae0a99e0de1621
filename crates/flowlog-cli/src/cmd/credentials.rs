//! `flowlog credentials`: prints shell `export` lines for the admin credential that
//! `flowlog serve` created in the data dir, for `eval "$(flowlog credentials)"`.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Data dir of the server [default: ./.flowlog].
    #[arg(long, env = "FLOWLOG_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Region to export as AWS_DEFAULT_REGION.
    #[arg(long, default_value = crate::config::DEFAULT_REGION)]
    pub region: String,
    /// Print only the secret access key.
    #[arg(long)]
    pub secret: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = args.data_dir.unwrap_or_else(|| PathBuf::from(".flowlog"));
    let c = crate::credentials::load(&dir)?;
    if args.secret {
        println!("{}", c.secret_access_key);
        return Ok(());
    }
    println!("export AWS_ACCESS_KEY_ID={}", c.access_key_id);
    println!("export AWS_SECRET_ACCESS_KEY='{}'", c.secret_access_key);
    println!("export AWS_DEFAULT_REGION={}", args.region);
    Ok(())
}
