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

/// The simulator accepts any account; these name the demo's in the SMS log.
const DEMO_SMS_ACCOUNT_SID: &str = "ACdemo00000000000000000000000000";
const DEMO_SMS_FROM: &str = "+15550100100";

pub struct DemoOptions {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub plugins_dir: PathBuf,
}

fn secret(environment_name: &str) -> String {
    std::env::var(environment_name)
        .unwrap_or_else(|_| rand::rng().sample_iter(Alphanumeric).take(32).map(char::from).collect())
}

/// The policies we ship, in chain order: the class is set first, cold-start and send windows
/// decide whether and when, button-limit shapes the content, fallback adapts it last.
pub const SHIPPED_POLICIES: &[(&str, &str)] = &[
    ("priority", "priority.wasm"),
    ("cold-start", "cold_start.wasm"),
    ("send-window", "send_window.wasm"),
    ("button-limit", "button_limit.wasm"),
    ("fallback", "fallback.wasm"),
    ("template-lint", "template_lint.wasm"),
];

/// The plugin chain the demo runs: every policy we ship, each with its default config.
fn demo_chain(plugins_dir: &Path) -> anyhow::Result<Vec<PluginEntry>> {
    let missing: Vec<&str> = SHIPPED_POLICIES
        .iter()
        .filter(|(_, file)| !plugins_dir.join(file).exists())
        .map(|(name, _)| *name)
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "plugins {} not found in {}: build them first with `scripts/build-plugins`",
        missing.join(", "),
        plugins_dir.display()
    );
    Ok(SHIPPED_POLICIES
        .iter()
        .map(|(name, file)| PluginEntry {
            name: (*name).into(),
            file: Some((*file).into()),
            failure: crate::config::FailurePolicy::Closed,
            config: None,
        })
        .collect())
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
            enforce_templates: true,
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
    config.channel.cloud_api.business_account_id = Some(DEMO_BUSINESS_ACCOUNT_ID.into());
    // The SMS fallback goes to the simulator's Twilio-compatible API.
    config.channel.sms.base_url = simulator.base_url();
    config.channel.sms.account_sid = DEMO_SMS_ACCOUNT_SID.into();
    config.channel.sms.auth_token = Some(secret("WASP_SMS_AUTH_TOKEN"));
    config.channel.sms.from = DEMO_SMS_FROM.into();
    tracing::info!(config = %config.masked(), "demo config");

    let host = app::start(config, app::shutdown_signal()).await?;
    let url = format!("http://{}", host.addr);
    print_banner(&url, &admin_token, &simulator.base_url(), &options.data_dir);
    let served = host.server.await.context("the server task failed")?;
    simulator.shutdown().await;
    served
}

/// The business account whose templates the demo manages at the simulator.
const DEMO_BUSINESS_ACCOUNT_ID: &str = "102290129340398";

/// Numbers the banner's example may go to, one per region of the world.
const EXAMPLE_RECIPIENTS: &[&str] = &["+6591234567", "+4915112345678", "+12125550100", "+5511912345678"];

/// A recipient for whom it is daytime (07:00 to 21:00 local) now, so the example is not held
/// by the send-window policy (utility goes 07:00 to 22:00 in the recipient's time).
fn daytime_recipient(now_ms: i64) -> &'static str {
    EXAMPLE_RECIPIENTS
        .iter()
        .copied()
        .find(|recipient| {
            crate::message::PhoneNumber::parse(recipient).is_ok_and(|number| {
                let offset = crate::facts::utc_offset_minutes(crate::facts::zone_for(&number), now_ms);
                let local_minutes = (now_ms / 60_000 + i64::from(offset)).rem_euclid(24 * 60);
                (7 * 60..21 * 60).contains(&local_minutes)
            })
        })
        .unwrap_or(EXAMPLE_RECIPIENTS[0])
}

fn print_banner(url: &str, token: &str, simulator_url: &str, data_dir: &Path) {
    let to = daytime_recipient(crate::store::now_ms());
    let body = format!(
        r#"{{"to":"{to}","category":"utility","content":{{"type":"interactive","interactive":{{"type":"button","body":{{"text":"How was your delivery?"}},"action":{{"buttons":[{{"type":"reply","reply":{{"id":"great","title":"Great"}}}},{{"type":"reply","reply":{{"id":"good","title":"Good"}}}},{{"type":"reply","reply":{{"id":"okay","title":"Okay"}}}},{{"type":"reply","reply":{{"id":"late","title":"Late"}}}},{{"type":"reply","reply":{{"id":"damaged","title":"Damaged"}}}}]}}}}}}}}"#
    );
    let policies: Vec<&str> = SHIPPED_POLICIES.iter().map(|(name, _)| *name).collect();
    println!(
        "\nwasp demo is running\n\
         \n  API            {url}\
         \n  admin token    {token}\
         \n  dashboard      {url}/dashboard (it asks for the admin token above, and keeps it for the tab only)\
         \n  simulator      {simulator_url} (the Cloud API and SMS stand-in; see {simulator_url}/_sim/sent and /_sim/sms)\
         \n  data           {data}\
         \n  policies       {policies} (GET {url}/v1/plugins)\
         \n\nSend a message with 5 reply buttons (the button-limit plugin turns it into a list):\n\
         \n  curl -s -X POST {url}/v1/messages \\\
         \n    -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\\
         \n    -d '{body}'\n\
         \nThen watch it go sent → delivered → read, with each policy's say in its history (paste the id it answered):\n\
         \n  curl -s {url}/v1/messages/<id> -H 'Authorization: Bearer {token}'\n\
         \nThe facts the policies decide on: {url}/v1/contacts/{wa_id}, {url}/v1/senders, {url}/v1/regions.\
         \nTurn a policy off (or back on with true):\n\
         \n  curl -s -X PUT {url}/v1/plugins/send-window -H 'Authorization: Bearer {token}' \\\
         \n    -H 'Content-Type: application/json' -d '{{\"enabled\": false}}'\n\
         \nDefine a template (linted by the template-lint plugin, then reviewed by the simulator as Meta would):\n\
         \n  curl -s -X POST {url}/v1/templates -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\\
         \n    -d '{{\"name\":\"order_shipped\",\"language\":\"en\",\"category\":\"UTILITY\",\"components\":[{{\"type\":\"BODY\",\"text\":\"Hi {{{{1}}}}, your order has shipped.\",\"example\":{{\"body_text\":[[\"Ada\"]]}}}}]}}'\n\
         \n  curl -s {url}/v1/templates -H 'Authorization: Bearer {token}'\n\
         \nWatch it live in the dashboard, in the terminal, or as the raw event stream:\
         \n\n  {url}/dashboard\
         \n  target/debug/wasp top --url {url} --token {token}\
         \n  curl -N {url}/v1/events/stream -H 'Authorization: Bearer {token}'\
         \n\nMake the simulator fail every message to Indonesia (+62), send a few there, and watch region +62\
         \nturn degraded on the dashboard, their fallback to SMS, and the regions_degraded health rule firing\
         \n(rules panel and rule events); `[]` heals it and the rule resolves. `{{\"error_rate\": 0.5}}` makes the\
         \nsimulator answer 5xx, which the upstream_5xx rule watches:\
         \n\n  curl -s -X PUT {simulator_url}/_sim/config -H 'Content-Type: application/json' -d '{{\"failing_prefixes\": [\"62\"]}}'\
         \n  for i in $(seq 30); do curl -s -o /dev/null -X POST {url}/v1/messages -H 'Authorization: Bearer {token}' \\\
         \n    -H 'Content-Type: application/json' -d '{{\"to\":\"+6281234567890\",\"category\":\"authentication\",\"content\":{{\"type\":\"text\",\"text\":{{\"body\":\"Your code is 123456\"}}}}}}'; done\
         \n\nEvery route is in {url}/openapi.json.\
         \nCtrl-C stops the demo.\n",
        data = data_dir.display(),
        policies = policies.join(", "),
        wa_id = to.trim_start_matches('+'),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_goes_to_someone_awake() {
        // 2026-01-15 03:00 UTC: 11:00 in Singapore.
        assert_eq!(daytime_recipient(1_768_446_000_000), "+6591234567");
        // 2026-01-15 18:00 UTC: 02:00 in Singapore, 19:00 in Berlin.
        assert_eq!(daytime_recipient(1_768_500_000_000), "+4915112345678");
    }
}
