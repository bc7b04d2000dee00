//! The priority policy end to end: the built `wasp` binary with the plugin in its chain,
//! against the Cloud API simulator. Each message ends with the class the policy gave it in
//! `GET /v1/messages/{id}`, whatever the caller or the host's default said.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot read what it expects fails loudly

use std::time::Duration;

use serde_json::{Value, json};
use wasp_integration::{ChainEntry, HostOptions, TestHost, history_field};

const WAIT: Duration = Duration::from_secs(20);

fn text(to: &str, category: &str, tags: &[&str]) -> Value {
    json!({"to": to, "category": category, "tags": tags,
           "content": {"type": "text", "text": {"body": "Your order has shipped"}}})
}

async fn start_host(config: Option<&str>) -> anyhow::Result<TestHost> {
    let mut entry = ChainEntry::new("priority")?;
    if let Some(config) = config {
        entry = entry.with_config(config);
    }
    TestHost::start(HostOptions {
        chain: vec![entry],
        ..HostOptions::default()
    })
    .await
}

/// Sends `body` and waits for it to be read; answers its final view.
async fn delivered(host: &TestHost, body: &Value) -> anyhow::Result<Value> {
    let (status, answer) = host.send(body).await?;
    anyhow::ensure!(status == 202, "send answered {status}: {answer}");
    host.wait_for(answer["id"].as_str().unwrap(), "read", WAIT).await
}

#[tokio::test]
async fn categories_and_tags_decide_the_priority() -> anyhow::Result<()> {
    let host = start_host(None).await?;
    let cases = [
        (text("+6591240001", "authentication", &[]), "critical"),
        (text("+6591240002", "marketing", &[]), "bulk"),
        // The host's own default for utility is high; the policy makes it normal...
        (text("+6591240003", "utility", &["delivery"]), "normal"),
        // ...unless a tag rule says otherwise.
        (text("+6591240004", "utility", &["payment"]), "high"),
        (text("+6591240005", "marketing", &["newsletter", "customs"]), "high"),
    ];
    for (body, class) in cases {
        let message = delivered(&host, &body).await?;
        assert_eq!(message["priority"], class, "{message:#}");
    }
    Ok(())
}

#[tokio::test]
async fn a_caller_priority_is_replaced_and_the_history_says_by_whom() -> anyhow::Result<()> {
    let host = start_host(None).await?;
    let mut body = text("+6591240006", "marketing", &[]);
    body["priority"] = "critical".into();
    let message = delivered(&host, &body).await?;
    assert_eq!(message["priority"], "bulk", "{message:#}");
    let causes = history_field(&message, "cause");
    assert!(
        causes.iter().any(|cause| cause == "admitted; rewritten by priority"),
        "{causes:?}"
    );
    // A message already in its class is admitted untouched.
    let message = delivered(&host, &text("+6591240007", "authentication", &[])).await?;
    let causes = history_field(&message, "cause");
    assert!(
        causes.iter().any(|cause| cause == "admitted by the policies"),
        "{causes:?}"
    );
    Ok(())
}

#[tokio::test]
async fn config_overrides_the_rules() -> anyhow::Result<()> {
    let host = start_host(Some(
        "{ categories = { utility = \"high\" }, tags = { otp = \"critical\" } }",
    ))
    .await?;
    let message = delivered(&host, &text("+6591240008", "utility", &[])).await?;
    assert_eq!(message["priority"], "high", "{message:#}");
    let message = delivered(&host, &text("+6591240009", "utility", &["payment", "otp"])).await?;
    assert_eq!(message["priority"], "critical", "{message:#}");
    Ok(())
}
