//! The `wasp` command: `serve` runs the host from a config file, `demo` runs the host with the
//! Cloud API simulator and our plugins in one process, `plugin` is the plugin author's tools.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use wasp::{app, config::Config, demo, telemetry};

#[derive(Parser)]
#[command(
    name = "wasp",
    version,
    about = "WhatsApp Business dispatch with WebAssembly policies"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the host: API, dispatcher, policies, channel.
    Serve {
        /// TOML config file; every key can also be set by a WASP_… environment variable.
        #[arg(long, env = "WASP_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run the simulator, the host and our plugins together, printing where to look.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[arg(long, default_value = "./.wasp")]
        data_dir: PathBuf,
        /// Where the built plugin components are.
        #[arg(long, default_value = "target/wasm32-wasip2/plugin")]
        plugins_dir: PathBuf,
    },
    /// Measure the host in one run: end-to-end throughput, accept-to-upstream latency,
    /// webhook ingest, failover, and the raw upstream and raw insert baselines.
    Bench(wasp::bench::BenchOptions),
    /// Create, list and revoke API tokens (scope `admin`).
    Token {
        #[command(subcommand)]
        command: wasp::cli::TokenCommand,
    },
    /// See the nodes sharing the database and the shards each one holds.
    Cluster {
        #[command(subcommand)]
        command: wasp::cli::ClusterCommand,
    },
    /// Receipts and rates over a window (counts, delivered and read rates, median times,
    /// failure codes), by category, template, region, sender or minute.
    Stats(wasp::cli::StatsArgs),
    /// Watch one node's live numbers: backlog, rates, regions, rules, failures.
    Top(wasp::cli::TopArgs),
    /// Write, build, test, ship and measure policy plugins.
    Plugin {
        #[command(subcommand)]
        command: wasp::cli::PluginCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("wasp: starting the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("wasp: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => {
            let config = Config::load(config.as_deref())?;
            telemetry::init(&config.log);
            anyhow::ensure!(
                config.server.admin_token.is_some(),
                "no admin token: set WASP_ADMIN_TOKEN or server.admin_token"
            );
            tracing::info!(config = %config.masked(), "starting");
            let host = app::start(config, app::shutdown_signal()).await?;
            tracing::info!(addr = %host.addr, "serving");
            host.server.await.context("the server task failed")?
        }
        Command::Demo {
            listen,
            data_dir,
            plugins_dir,
        } => {
            telemetry::init(&Default::default());
            demo::run(demo::DemoOptions {
                listen,
                data_dir,
                plugins_dir,
            })
            .await
        }
        Command::Plugin { command } => wasp::cli::run(command).await,
        Command::Token { command } => wasp::cli::run_token(command).await,
        Command::Cluster { command } => wasp::cli::run_cluster(command).await,
        Command::Top(args) => wasp::cli::run_top(args).await,
        Command::Stats(args) => wasp::cli::run_stats(args).await,
        Command::Bench(mut options) => {
            match options.command.take() {
                Some(wasp::bench::BenchCommand::Conversations(args)) => {
                    return wasp::conversations::bench::run(&args).map(|_| ());
                }
                Some(wasp::bench::BenchCommand::Policy(args)) => return wasp::cli::run_policy_bench(args).await,
                None => {}
            }
            telemetry::init(&wasp::config::LogConfig {
                filter: "warn".into(),
                ..Default::default()
            });
            options.plugins.retain(|name| !name.is_empty());
            wasp::bench::run(options).await.map(|_| ())
        }
    }
}
