//! `wasp-simulator`: runs the Cloud API simulator as a process until Ctrl-C (or
//! SIGTERM). Every config key is a flag and a `SIM_…` variable, declared beside its
//! default. Owns argument parsing and logging set-up; calls the library only.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Parser;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;
use wasp_simulator::config::{
    DEFAULT_APP_SECRET, DEFAULT_DELIVERED_AFTER_MS, DEFAULT_DISPLAY_PHONE_NUMBER, DEFAULT_ENFORCE_TEMPLATES,
    DEFAULT_ERROR_RATE, DEFAULT_FAULT_RATE, DEFAULT_LATENCY_JITTER_MS, DEFAULT_LATENCY_MS, DEFAULT_READ_AFTER_MS,
    DEFAULT_READ_RATIO, DEFAULT_RESET_AFTER_ACCEPT, DEFAULT_RESET_RATE, DEFAULT_SENT_AFTER_MS,
    DEFAULT_TEMPLATE_REVIEW_MS, DEFAULT_WABA_ID, DEFAULT_WEBHOOK_BATCH_MAX, DEFAULT_WEBHOOK_DELAY_MS,
    DEFAULT_WEBHOOK_DUPLICATE_RATE, DEFAULT_WEBHOOK_FLUSH_MS, DEFAULT_WEBHOOK_REORDER,
};
use wasp_simulator::{Simulator, SimulatorConfig};

/// Address the simulator listens on unless told otherwise.
const DEFAULT_LISTEN: &str = "127.0.0.1:8089";

/// A WhatsApp Cloud API simulator speaking Meta's wire format.
#[derive(Debug, Parser)]
#[command(name = "wasp-simulator", version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "SIM_LISTEN", default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Require `Authorization: Bearer <token>` on Graph API requests.
    #[arg(long, env = "SIM_ACCESS_TOKEN", hide_env_values = true)]
    access_token: Option<String>,
    /// Secret that signs webhooks (X-Hub-Signature-256).
    #[arg(long, env = "SIM_APP_SECRET", default_value = DEFAULT_APP_SECRET, hide_env_values = true)]
    app_secret: String,
    /// Where status and inbound webhooks are posted; none when unset.
    #[arg(long, env = "SIM_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// Added before a send is answered.
    #[arg(long, env = "SIM_LATENCY_MS", default_value_t = DEFAULT_LATENCY_MS)]
    latency_ms: u64,
    /// Largest random extra latency (uniform, 0..=this) added to `--latency-ms`.
    #[arg(long, env = "SIM_LATENCY_JITTER_MS", default_value_t = DEFAULT_LATENCY_JITTER_MS)]
    latency_jitter_ms: u64,
    /// Share of sends whose connection is reset instead of answered (0..=1).
    #[arg(long, env = "SIM_RESET_RATE", default_value_t = DEFAULT_RESET_RATE)]
    reset_rate: f64,
    /// Accept a reset send first ("may have arrived"); `--reset-after-accept` alone: true.
    #[arg(
        long,
        env = "SIM_RESET_AFTER_ACCEPT",
        default_value_t = DEFAULT_RESET_AFTER_ACCEPT,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    reset_after_accept: bool,
    /// Delay of `sent` after a send was accepted.
    #[arg(long, env = "SIM_SENT_AFTER_MS", default_value_t = DEFAULT_SENT_AFTER_MS)]
    sent_after_ms: u64,
    /// Delay of `delivered` (or `failed`) after `sent`.
    #[arg(long, env = "SIM_DELIVERED_AFTER_MS", default_value_t = DEFAULT_DELIVERED_AFTER_MS)]
    delivered_after_ms: u64,
    /// Delay of `read` after `delivered`.
    #[arg(long, env = "SIM_READ_AFTER_MS", default_value_t = DEFAULT_READ_AFTER_MS)]
    read_after_ms: u64,
    /// Share of delivered messages that are read (0..=1).
    #[arg(long, env = "SIM_READ_RATIO", default_value_t = DEFAULT_READ_RATIO)]
    read_ratio: f64,
    /// Share of sends answered with a transient 500, code 131000 (0..=1).
    #[arg(long, env = "SIM_ERROR_RATE", default_value_t = DEFAULT_ERROR_RATE)]
    error_rate: f64,
    /// Recipient prefixes (digits, comma-separated) whose messages fail with 131026.
    #[arg(long, env = "SIM_FAILING_PREFIXES", value_delimiter = ',')]
    failing_prefixes: Vec<String>,
    /// Error code of the `failed` statuses of `--failing-prefixes` (default 131026).
    #[arg(long, env = "SIM_FAILING_REGION_ERROR_CODE")]
    failing_region_error_code: Option<u32>,
    /// A Meta error code answered to a share `--fault-rate` of sends (e.g. 130429, 131000).
    #[arg(long, env = "SIM_FAULT_CODE")]
    fault_code: Option<u32>,
    /// Share of sends answered with `--fault-code` (0..=1).
    #[arg(long, env = "SIM_FAULT_RATE", default_value_t = DEFAULT_FAULT_RATE)]
    fault_rate: f64,
    /// Recipient prefixes (digits, comma-separated) the fault applies to; none: all.
    #[arg(long, env = "SIM_FAULT_PREFIXES", value_delimiter = ',')]
    fault_prefixes: Vec<String>,
    /// Statuses per webhook POST (1..=1000).
    #[arg(long, env = "SIM_WEBHOOK_BATCH_MAX", default_value_t = DEFAULT_WEBHOOK_BATCH_MAX)]
    webhook_batch_max: usize,
    /// How long the batcher waits to fill a POST.
    #[arg(long, env = "SIM_WEBHOOK_FLUSH_MS", default_value_t = DEFAULT_WEBHOOK_FLUSH_MS)]
    webhook_flush_ms: u64,
    /// Extra time each status waits, after it happened, before it is posted.
    #[arg(long, env = "SIM_WEBHOOK_DELAY_MS", default_value_t = DEFAULT_WEBHOOK_DELAY_MS)]
    webhook_delay_ms: u64,
    /// Share of statuses posted a second time, in a later batch (0..=1).
    #[arg(long, env = "SIM_WEBHOOK_DUPLICATE_RATE", default_value_t = DEFAULT_WEBHOOK_DUPLICATE_RATE)]
    webhook_duplicate_rate: f64,
    /// Shuffle the statuses of each webhook POST; `--webhook-reorder` alone: true.
    #[arg(
        long,
        env = "SIM_WEBHOOK_REORDER",
        default_value_t = DEFAULT_WEBHOOK_REORDER,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    webhook_reorder: bool,
    /// `metadata.display_phone_number` in webhooks.
    #[arg(long, env = "SIM_DISPLAY_PHONE_NUMBER", default_value = DEFAULT_DISPLAY_PHONE_NUMBER)]
    display_phone_number: String,
    /// `entry[].id` in webhooks.
    #[arg(long, env = "SIM_WABA_ID", default_value = DEFAULT_WABA_ID)]
    waba_id: String,
    /// How long a created message template stays PENDING before it is reviewed.
    #[arg(long, env = "SIM_TEMPLATE_REVIEW_MS", default_value_t = DEFAULT_TEMPLATE_REVIEW_MS)]
    template_review_ms: u64,
    /// Refuse template sends naming a template that is not APPROVED here (132001,
    /// 132015, 132016); `--enforce-templates` alone: true.
    #[arg(
        long,
        env = "SIM_ENFORCE_TEMPLATES",
        default_value_t = DEFAULT_ENFORCE_TEMPLATES,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    enforce_templates: bool,
}

impl Args {
    fn into_config(self) -> (SocketAddr, SimulatorConfig) {
        let config = SimulatorConfig {
            access_token: self.access_token.filter(|token| !token.is_empty()),
            app_secret: self.app_secret,
            webhook_url: self.webhook_url.filter(|url| !url.is_empty()),
            latency_ms: self.latency_ms,
            latency_jitter_ms: self.latency_jitter_ms,
            reset_rate: self.reset_rate,
            reset_after_accept: self.reset_after_accept,
            sent_after_ms: self.sent_after_ms,
            delivered_after_ms: self.delivered_after_ms,
            read_after_ms: self.read_after_ms,
            read_ratio: self.read_ratio,
            error_rate: self.error_rate,
            failing_prefixes: self
                .failing_prefixes
                .into_iter()
                .map(|prefix| prefix.trim().to_owned())
                .filter(|prefix| !prefix.is_empty())
                .collect(),
            failing_region_error_code: self.failing_region_error_code,
            fault_code: self.fault_code,
            fault_rate: self.fault_rate,
            fault_prefixes: self
                .fault_prefixes
                .into_iter()
                .map(|prefix| prefix.trim().to_owned())
                .filter(|prefix| !prefix.is_empty())
                .collect(),
            webhook_batch_max: self.webhook_batch_max,
            webhook_flush_ms: self.webhook_flush_ms,
            webhook_delay_ms: self.webhook_delay_ms,
            webhook_duplicate_rate: self.webhook_duplicate_rate,
            webhook_reorder: self.webhook_reorder,
            display_phone_number: self.display_phone_number,
            waba_id: self.waba_id,
            template_review_ms: self.template_review_ms,
            enforce_templates: self.enforce_templates,
        };
        (self.listen, config)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let (listen, config) = Args::parse().into_config();
    config.validate().context("checking the simulator configuration")?;
    tracing::info!(config = ?config.masked(), "starting wasp simulator");
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let running = Simulator::start(config, listener).await?;
    println!("wasp-simulator listening on {}", running.base_url());
    stop_signal().await?;
    tracing::info!("stopping wasp simulator");
    running.shutdown().await;
    Ok(())
}

/// Waits for Ctrl-C or, on Unix, SIGTERM.
async fn stop_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("listening for SIGTERM")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("listening for Ctrl-C"),
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.context("listening for Ctrl-C")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_map_onto_the_config() {
        let args = Args::try_parse_from([
            "wasp-simulator",
            "--listen",
            "127.0.0.1:0",
            "--failing-prefixes",
            "62, 91",
            "--error-rate",
            "0.1",
            "--webhook-url",
            "http://127.0.0.1:9/hook",
        ])
        .expect("flags parse");
        let (listen, config) = args.into_config();
        assert_eq!(listen.port(), 0);
        assert_eq!(config.failing_prefixes, vec!["62".to_owned(), "91".to_owned()]);
        assert_eq!(config.error_rate, 0.1);
        assert_eq!(config.webhook_url.as_deref(), Some("http://127.0.0.1:9/hook"));
        config.validate().expect("valid");
    }

    #[test]
    fn fault_flags_map_onto_the_config() {
        let args = Args::try_parse_from([
            "wasp-simulator",
            "--latency-jitter-ms",
            "40",
            "--reset-rate",
            "0.2",
            "--reset-after-accept",
            "--failing-region-error-code",
            "131049",
            "--webhook-delay-ms",
            "300",
            "--webhook-duplicate-rate",
            "0.5",
            "--webhook-reorder",
            "true",
            "--template-review-ms",
            "25",
            "--enforce-templates",
        ])
        .expect("flags parse");
        let (_, config) = args.into_config();
        assert_eq!(config.latency_jitter_ms, 40);
        assert_eq!(config.reset_rate, 0.2);
        assert!(config.reset_after_accept);
        assert_eq!(config.failing_region_error_code, Some(131049));
        assert_eq!(config.webhook_delay_ms, 300);
        assert_eq!(config.webhook_duplicate_rate, 0.5);
        assert!(config.webhook_reorder);
        assert_eq!(config.template_review_ms, 25);
        assert!(config.enforce_templates);
        config.validate().expect("valid");
        let args =
            Args::try_parse_from(["wasp-simulator", "--webhook-reorder", "false"]).expect("an explicit false parses");
        assert!(!args.into_config().1.webhook_reorder);
    }

    #[test]
    fn defaults_match_the_library() {
        let args = Args::try_parse_from(["wasp-simulator"]).expect("no flags needed");
        let (_, config) = args.into_config();
        assert_eq!(config, SimulatorConfig::default());
    }
}
