//! Logging set-up: a `RUST_LOG`-style filter (the environment wins over config) and text or
//! JSON lines. Logs never carry message bodies, tokens or secrets. [`metrics`] owns the
//! Prometheus side, [`live`] the event stream.

pub mod live;
pub mod metrics;

use tracing_subscriber::{EnvFilter, fmt};

use crate::config::LogConfig;

/// Installs the global subscriber; a second call (tests, the demo) keeps the first.
pub fn init(config: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Logs go to stderr: stdout stays for what a command prints (the demo banner, bench tables).
    let installed = if config.format == "json" {
        fmt()
            .json()
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .try_init()
    } else {
        fmt()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_env_filter(filter)
            .with_target(false)
            .try_init()
    };
    if installed.is_err() {
        tracing::debug!("a log subscriber was already installed");
    }
}
