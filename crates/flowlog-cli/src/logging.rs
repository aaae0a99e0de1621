//! Structured logs on stderr; `RUST_LOG` (or `FLOWLOG_LOG`) selects the level, `info` by
//! default. Secrets are never passed to the logger.

pub fn init() {
    let filter = std::env::var("FLOWLOG_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
