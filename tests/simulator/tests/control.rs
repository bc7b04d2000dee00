//! The `/_sim/` control surface over HTTP, and the `wasp-simulator` binary driven by
//! flags and `SIM_…` variables.

#[path = "support/receiver.rs"]
mod support;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use anyhow::Context as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Receiver, eventually, fast_config, simulator, text_body};
use wasp_simulator::SimulatorConfig;

const PHONE_NUMBER_ID: &str = "106540352242922";

/// Kills the child process if a test fails before it stopped it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[tokio::test]
async fn config_can_be_read_and_partly_changed() -> anyhow::Result<()> {
    let sim = simulator(SimulatorConfig {
        access_token: Some("secret-token".into()),
        ..SimulatorConfig::default()
    })
    .await?;
    let client = reqwest::Client::new();
    let url = format!("{}/_sim/config", sim.base_url());

    let shown: Value = client.get(&url).send().await?.json().await?;
    assert_eq!(shown["access_token"], "***");
    assert_eq!(shown["app_secret"], "***");

    let response = client
        .put(&url)
        .json(&json!({"error_rate": 0.5, "failing_prefixes": ["62", "91"], "latency_ms": 3}))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    let shown: Value = response.json().await?;
    assert_eq!(shown["error_rate"], 0.5);
    let config = sim.config();
    assert_eq!(config.error_rate, 0.5);
    assert_eq!(config.failing_prefixes, ["62", "91"]);
    assert_eq!(config.latency_ms, 3);
    assert_eq!(config.access_token.as_deref(), Some("secret-token"), "untouched");

    for (patch, field) in [
        (json!({"read_ratio": 2.0}), "read_ratio"),
        (json!({"no_such_key": 1}), "config"),
        (json!({"webhook_batch_max": 5000}), "webhook_batch_max"),
    ] {
        let response = client.put(&url).json(&patch).send().await?;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let error: Value = response.json().await?;
        assert_eq!(error["error"]["code"], "invalid_config");
        assert_eq!(error["error"]["field"], field);
    }
    assert_eq!(sim.config().error_rate, 0.5, "refused patches change nothing");
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn counters_sent_log_and_reset() -> anyhow::Result<()> {
    let sim = simulator(SimulatorConfig::default()).await?;
    let client = reqwest::Client::new();
    let base = sim.base_url();
    for index in 0..3 {
        client
            .post(format!("{base}/v21.0/{PHONE_NUMBER_ID}/messages"))
            .json(&text_body(&format!("1555000000{index}"), "hi"))
            .send()
            .await?
            .error_for_status()?;
    }
    let refused = client
        .post(format!("{base}/v21.0/{PHONE_NUMBER_ID}/messages"))
        .json(&json!({"messaging_product": "whatsapp", "to": "1555", "type": "text"}))
        .send()
        .await?;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);

    let counters: Value = client.get(format!("{base}/_sim/counters")).send().await?.json().await?;
    assert_eq!(counters["requests"], 4);
    assert_eq!(counters["accepted"], 3);
    assert_eq!(counters["rejected"], json!({"131008": 1}));
    let typed: wasp_simulator::Counters = serde_json::from_value(counters)?;
    assert_eq!(typed, sim.counters());

    let sent: Vec<Value> = client
        .get(format!("{base}/_sim/sent?limit=2"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1]["to"], "15550000002");
    assert_eq!(sent[1]["phone_number_id"], PHONE_NUMBER_ID);
    assert_eq!(sent[1]["body"]["text"]["body"], "hi");
    assert!(sent[1]["wamid"].as_str().is_some_and(|id| id.starts_with("wamid.")));
    assert!(
        sent[1]["time_unix_ms"]
            .as_u64()
            .is_some_and(|ms| ms > 1_600_000_000_000)
    );

    let bad = client.get(format!("{base}/_sim/sent?limit=lots")).send().await?;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    let reset = client.post(format!("{base}/_sim/reset")).send().await?;
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert_eq!(sim.counters().accepted, 0);
    assert!(sim.sent().is_empty());
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn inbound_can_be_posted_through_the_control_surface() -> anyhow::Result<()> {
    let receiver = Receiver::start("test_app_secret").await?;
    let sim = simulator(fast_config(Some(receiver.url.clone()))).await?;
    let client = reqwest::Client::new();
    let url = format!("{}/_sim/inbound", sim.base_url());
    let response = client
        .post(&url)
        .json(&json!({"phone_number_id": PHONE_NUMBER_ID, "from": "16505551234",
                      "profile_name": "Sheena Nelson", "type": "text", "body": "Is this still available?"}))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let messages = receiver.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["text"]["body"], "Is this still available?");

    let response = client
        .post(&url)
        .json(&json!({"phone_number_id": PHONE_NUMBER_ID, "from": "16505551234",
                      "type": "button_reply", "id": "yes", "title": "Yes"}))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "a reply needs reply_to");
    let error: Value = response.json().await?;
    assert_eq!(error["error"]["code"], "invalid_inbound");
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn the_binary_serves_with_flags_and_env_and_stops_on_sigterm() -> anyhow::Result<()> {
    let receiver = Receiver::start("binary-secret").await?;
    let child = Command::new(env!("CARGO_BIN_EXE_wasp-simulator"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--sent-after-ms",
            "5",
            "--webhook-flush-ms",
            "5",
        ])
        .args(["--webhook-url", &receiver.url])
        .env("SIM_APP_SECRET", "binary-secret")
        .env("SIM_FAILING_PREFIXES", "62,91")
        .env("SIM_DELIVERED_AFTER_MS", "5")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting wasp-simulator")?;
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().context("child stdout")?;
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await??;
    let base = line.trim().rsplit(' ').next().context("listening line")?.to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{line}");

    let client = reqwest::Client::new();
    let config: Value = client.get(format!("{base}/_sim/config")).send().await?.json().await?;
    assert_eq!(config["failing_prefixes"], json!(["62", "91"]));
    client
        .post(format!("{base}/v21.0/{PHONE_NUMBER_ID}/messages"))
        .json(&text_body("+91 98765 43210", "hi"))
        .send()
        .await?
        .error_for_status()?;
    receiver.wait_for_statuses(2).await?;
    let statuses: Vec<String> = receiver.statuses().into_iter().map(|(_, status, _)| status).collect();
    assert_eq!(statuses, ["sent", "failed"]);
    assert_eq!(receiver.bad_signatures(), 0, "signed with SIM_APP_SECRET");

    let killed = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()?;
    assert!(killed.success());
    let mut exit = None;
    eventually("the binary to exit", || {
        exit = child.0.try_wait().ok().flatten();
        exit.is_some()
    })
    .await?;
    assert!(exit.is_some_and(|status| status.success()), "{exit:?}");
    Ok(())
}
