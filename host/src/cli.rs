//! The plugin author's command line, `wasp plugin …`: scaffold a plugin crate (`new`), build
//! and check it against the host (`build`), run it offline against JSON fixtures (`test`),
//! drive the admin API (`push`, `ls`, `activate`, `rollback`, `shadow`), and measure a policy
//! (`bench`, the same as `wasp bench policy`); and the operator's `wasp token …` ([`tokens`])
//! and `wasp cluster status` ([`cluster`]), and `wasp stats` ([`stats`]), and `wasp top`
//! ([`top`]).
//!
//! Owns those commands' arguments and terminal output. May call the policy runtime (through
//! [`offline`], on a throwaway store), cargo and rustup, and the admin API over HTTP; never
//! the dispatcher, the channel or a real store.

pub mod admin;
pub mod bench_policy;
pub mod build;
pub mod cluster;
pub mod fixtures;
pub mod offline;
pub mod scaffold;
pub mod stats;
pub mod table;
pub mod tokens;
pub mod top;
pub mod values;

use std::{io::IsTerminal as _, path::Path};

use clap::Subcommand;

pub use bench_policy::{PolicyBenchArgs, run_policy_bench};
pub use cluster::ClusterCommand;
pub use stats::StatsArgs;
pub use tokens::TokenCommand;
pub use top::TopArgs;

/// `wasp plugin …`.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Scaffold a plugin crate that builds out of the box.
    New(scaffold::NewArgs),
    /// Build a plugin crate for wasm32-wasip2 and check the component loads in the host.
    Build(build::BuildArgs),
    /// Run a component offline against JSON fixtures and print a pass/fail table.
    Test(fixtures::TestArgs),
    /// Upload a component (or build a crate and upload it) as a new version.
    Push(admin::PushArgs),
    /// List the plugins in the chain, or show one with its versions.
    Ls(admin::ListArgs),
    /// Make a version live.
    Activate(admin::ActivateArgs),
    /// Go back to the version that was live before.
    Rollback(admin::RollbackArgs),
    /// Run a version in shadow beside the live one, or show how they agree.
    Shadow(admin::ShadowArgs),
    /// Measure a policy's cost per call beside native Rust (the same as `wasp bench policy`).
    Bench(PolicyBenchArgs),
}

/// Runs one `wasp plugin` command. Plugin log lines and the host's warnings go to standard
/// error (`RUST_LOG=info` shows what a plugin logs); results go to standard output.
pub async fn run(command: PluginCommand) -> anyhow::Result<()> {
    init_logging();
    match command {
        PluginCommand::New(args) => scaffold::run(args),
        PluginCommand::Build(args) => build::run(args).await,
        PluginCommand::Test(args) => fixtures::run(args).await,
        PluginCommand::Push(args) => admin::push(args).await,
        PluginCommand::Ls(args) => admin::list(args).await,
        PluginCommand::Activate(args) => admin::activate(args).await,
        PluginCommand::Rollback(args) => admin::rollback(args).await,
        PluginCommand::Shadow(args) => admin::shadow(args).await,
        PluginCommand::Bench(args) => run_policy_bench(args).await,
    }
}

/// Runs one `wasp token` command.
pub async fn run_token(command: TokenCommand) -> anyhow::Result<()> {
    init_logging();
    tokens::run(command).await
}

/// Runs one `wasp cluster` command.
pub async fn run_cluster(command: ClusterCommand) -> anyhow::Result<()> {
    init_logging();
    cluster::run(command).await
}

/// Runs `wasp stats`.
pub async fn run_stats(args: StatsArgs) -> anyhow::Result<()> {
    init_logging();
    stats::run(args).await
}

/// Runs `wasp top`.
pub async fn run_top(args: TopArgs) -> anyhow::Result<()> {
    init_logging();
    top::run(args).await
}

/// The filter the CLI logs with unless `RUST_LOG` says otherwise.
const DEFAULT_LOG_FILTER: &str = "warn";

/// Logs to standard error, so standard output stays the command's result.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
    if installed.is_err() {
        tracing::debug!("a log subscriber was already installed");
    }
}

/// The plugin name a component file stands for: its stem, `_` as `-`, lowercased
/// (`button_limit.wasm` → `button-limit`); `plugin` when that is not a valid name.
pub fn plugin_name(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().replace('_', "-").to_lowercase())
        .unwrap_or_default();
    if scaffold::validate_name(&stem).is_ok() {
        stem
    } else {
        "plugin".to_owned()
    }
}

/// A wasmtime error as an `anyhow` one, its causes kept in the text.
pub fn wasm_error(error: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{error:#}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names_come_from_file_names() {
        assert_eq!(plugin_name(Path::new("target/x/button_limit.wasm")), "button-limit");
        assert_eq!(plugin_name(Path::new("Quiet_Hours.wasm")), "quiet-hours");
        assert_eq!(plugin_name(Path::new("1.wasm")), "plugin");
        assert_eq!(plugin_name(Path::new("")), "plugin");
    }
}
