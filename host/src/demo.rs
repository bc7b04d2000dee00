//! `wasp demo`: the Cloud API simulator, the host and our plugins in one process, on SQLite in a
//! data directory, with any secret that is not set generated, and a banner saying where to look.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use rand::{Rng, distr::Alphanumeric};
use wasp_simulator::{Simulator, SimulatorConfig};

use crate::{
    app,
    config::{Config, PluginEntry},
};

pub struct DemoOptions {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub plugins_dir: PathBuf,
}

fn secret(environment_name: &str) -> String {
    std::env::var(environment_name)
        .unwrap_or_else(|_| rand::rng().sample_iter(Alphanumeric).take(32).map(char::from).collect())
}

/// The plugin chain the demo runs: every policy we ship that is built.
fn demo_chain(plugins_dir: &Path) -> anyhow::Result<Vec<PluginEntry>> {
    let shipped = [("button-limit", "button_limit.wasm")];
    let mut chain = Vec::new();
    for (name, file) in shipped {
        if plugins_dir.join(file).exists() {
            chain.push(PluginEntry {
                name: name.into(),
                file: Some(file.into()),
                failure: crate::config::FailurePolicy::Closed,
                config: None,
            });
        }
    }
    anyhow::ensure!(
        !chain.is_empty(),
        "no plugins found in {}: build them first with `scripts/build-plugins`",
        plugins_dir.display()
    );
    Ok(chain)
}

pub async fn run(options: DemoOptions) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.data_dir)
        .with_context(|| format!("creating the data directory {}", options.data_dir.display()))?;
    let admin_token = secret("WASP_ADMIN_TOKEN");
    let app_secret = secret("WASP_APP_SECRET");
    let verify_token = secret("WASP_VERIFY_TOKEN");
    let cloud_api_token = secret("WASP_CLOUD_API_TOKEN");

    let simulator_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the simulator")?;
    let simulator = Simulator::start(
        SimulatorConfig {
            access_token: Some(cloud_api_token.clone()),
            app_secret: app_secret.clone(),
            webhook_url: Some(format!("http://{}/webhooks/whatsapp", options.listen)),
            sent_after_ms: 300,
            delivered_after_ms: 1_000,
            read_after_ms: 2_000,
            read_ratio: 1.0,
            ..SimulatorConfig::default()
        },
        simulator_listener,
    )
    .await
    .context("starting the Cloud API simulator")?;

    let mut config = Config::load(None)?;
    config.server.listen = options.listen.to_string();
    config.server.admin_token = Some(admin_token.clone());
    config.webhook.app_secret = Some(app_secret);
    config.webhook.verify_token = Some(verify_token);
    config.store.database_url = format!("sqlite://{}", options.data_dir.join("wasp.db").display());
    config.policy.plugins_dir = options.plugins_dir.display().to_string();
    config.policy.compiled_cache_dir = options.data_dir.join("compiled").display().to_string();
    config.policy.plugins = demo_chain(&options.plugins_dir)?;
    config.channel.cloud_api.base_url = simulator.base_url();
    config.channel.cloud_api.access_token = Some(cloud_api_token);
    tracing::info!(config = %config.masked(), "demo config");

    let host = app::start(config, app::shutdown_signal()).await?;
    let url = format!("http://{}", host.addr);
    print_banner(&url, &admin_token, &simulator.base_url(), &options.data_dir);
    let served = host.server.await.context("the server task failed")?;
    simulator.shutdown().await;
    served
}

fn print_banner(url: &str, token: &str, simulator_url: &str, data_dir: &Path) {
    let body = r#"{"to":"+6591234567","category":"utility","idempotency_key":"demo-1","content":{"type":"interactive","interactive":{"type":"button","body":{"text":"How was your delivery?"},"action":{"buttons":[{"type":"reply","reply":{"id":"great","title":"Great"}},{"type":"reply","reply":{"id":"good","title":"Good"}},{"type":"reply","reply":{"id":"okay","title":"Okay"}},{"type":"reply","reply":{"id":"late","title":"Late"}},{"type":"reply","reply":{"id":"damaged","title":"Damaged"}}]}}}}"#;
    println!(
        "\nwasp demo is running\n\
         \n  API            {url}\
         \n  admin token    {token}\
         \n  simulator      {simulator_url} (the Cloud API stand-in; see {simulator_url}/_sim/sent)\
         \n  data           {data}\
         \n\nSend a message with 5 reply buttons (the button-limit plugin turns it into a list):\n\
         \n  curl -s -X POST {url}/v1/messages \\\
         \n    -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\\
         \n    -d '{body}'\n\
         \nThen watch it go sent → delivered → read (paste the id it answered):\n\
         \n  curl -s {url}/v1/messages/<id> -H 'Authorization: Bearer {token}'\n\
         \nCtrl-C stops the demo.\n",
        data = data_dir.display(),
    );
}
