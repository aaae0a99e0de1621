//! `flowlog credentials`: prints shell `export` lines for the admin credential that
//! `flowlog serve` created in the data dir, for `eval "$(flowlog credentials)"`.

use std::path::PathBuf;

#[derive(clap::Args)]
#[command(
    after_help = "The data dir is --data-dir, else the `data_dir` of --config, else ./.flowlog; \
the region is --region, else the config's `region`, else us-east-1 (it must be the server's: \
SigV4 scopes name it)."
)]
pub struct Args {
    /// Data dir of the server [default: the config's data_dir, or ./.flowlog].
    #[arg(long, env = "FLOWLOG_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The server's config file (for its data_dir and region).
    #[arg(long, env = "FLOWLOG_CONFIG")]
    pub config: Option<PathBuf>,
    /// Region to export as AWS_DEFAULT_REGION [default: the config's region, or us-east-1].
    #[arg(long)]
    pub region: Option<String>,
    /// Print only the secret access key.
    #[arg(long)]
    pub secret: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (dir, config) =
        crate::config::Config::client_data_dir(args.data_dir.as_deref(), args.config.as_deref())?;
    let server_region = config.as_ref().map(|c| c.region.clone());
    if let (Some(asked), Some(server)) = (&args.region, &server_region) {
        if asked != server {
            anyhow::bail!(
                "--region {asked} differs from the server's region {server} (in {}): the server would reject every request signed for {asked}",
                args.config.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
            );
        }
    }
    let region = args
        .region
        .or(server_region)
        .unwrap_or_else(|| crate::config::DEFAULT_REGION.to_string());
    let c = crate::credentials::load(&dir)?;
    if args.secret {
        println!("{}", c.secret_access_key);
        return Ok(());
    }
    println!("export AWS_ACCESS_KEY_ID={}", c.access_key_id);
    println!("export AWS_SECRET_ACCESS_KEY='{}'", c.secret_access_key);
    println!("export AWS_DEFAULT_REGION={region}");
    Ok(())
}
