//! The cold-start policy through the real host and the Cloud API simulator, black-box:
//! marketing to a stranger ends `rejected` with the plugin's reason; once the customer writes
//! in (an inbound message through the simulator) marketing is sent; with a ramp of one
//! marketing message per 24 h the second one waits (`deferred`, not sent) while a utility
//! message to the same customer still goes.
//!
//! Needs `scripts/build-plugins` and `cargo build -p wasp` first.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot read what it expects fails loudly

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasp_integration::{ChainEntry, HostOptions, TOKEN, TestHost, history_field, text_message};
use wasp_simulator::Inbound;

const WAIT: Duration = Duration::from_secs(20);
/// The business phone number id the simulated customer writes to.
const BUSINESS: &str = "100000000000001";
/// The customer, E.164 and as Meta's `wa_id`.
const CUSTOMER: &str = "+4915112345678";
const CUSTOMER_WA_ID: &str = "4915112345678";

fn marketing(to: &str) -> Value {
    json!({"to": to, "category": "marketing",
        "content": {"type": "template", "template": {"name": "spring_sale", "language": {"code": "de_DE"}}}})
}

async fn host_with(config: Option<&str>) -> anyhow::Result<TestHost> {
    let mut entry = ChainEntry::new("cold-start")?;
    if let Some(config) = config {
        entry = entry.with_config(config);
    }
    TestHost::start(HostOptions {
        chain: vec![entry],
        ..HostOptions::default()
    })
    .await
}

async fn submit(host: &TestHost, body: &Value) -> anyhow::Result<String> {
    let (status, answer) = host.send(body).await?;
    anyhow::ensure!(status == 202, "{status}: {answer}");
    Ok(answer["id"].as_str().unwrap().to_owned())
}

/// The customer writes to the business; returns once the host has counted the interaction.
async fn customer_writes_in(host: &TestHost) -> anyhow::Result<()> {
    host.simulator
        .inject_inbound(Inbound::text(BUSINESS, CUSTOMER_WA_ID, "Hallo, was gibt es Neues?"))
        .await?;
    let deadline = Instant::now() + WAIT;
    loop {
        let response = host
            .client
            .get(format!("{}/v1/contacts/{CUSTOMER_WA_ID}", host.url))
            .bearer_auth(TOKEN)
            .send()
            .await?;
        if response.status().is_success() {
            let view: Value = response.json().await?;
            if view["facts"]["interactions"].as_u64().unwrap_or(0) >= 1 {
                return Ok(());
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "the inbound message was never recorded");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn marketing_to_a_stranger_is_rejected_with_the_reason() -> anyhow::Result<()> {
    let host = host_with(None).await?;
    let id = submit(&host, &marketing(CUSTOMER)).await?;
    let message = host.wait_for(&id, "rejected", WAIT).await?;
    assert_eq!(
        message["reason"],
        "cold-start: marketing to +49…78: the recipient has not written to this business yet (0 interactions); \
         only authentication, utility and service messages may reach them",
        "{message:#}"
    );
    assert!(
        history_field(&message, "cause")
            .iter()
            .any(|cause| cause.starts_with("rejected on-submit")),
        "{message:#}"
    );
    // A utility message to the same stranger goes; nothing else reached Meta.
    let utility = submit(&host, &text_message(CUSTOMER, "Ihr Paket ist unterwegs.")).await?;
    host.wait_for(&utility, "read", WAIT).await?;
    assert_eq!(host.simulator.sent().len(), 1);
    Ok(())
}

#[tokio::test]
async fn marketing_is_sent_once_the_customer_has_written_in() -> anyhow::Result<()> {
    let host = host_with(None).await?;
    customer_writes_in(&host).await?;
    let id = submit(&host, &marketing(CUSTOMER)).await?;
    host.wait_for(&id, "read", WAIT).await?;
    assert_eq!(host.simulator.sent().len(), 1);
    Ok(())
}

/// Relies on the host counting business-initiated sends per contact and category into
/// `context.recipient.sent24h`: with that count at 0 the second marketing message is sent.
#[tokio::test]
async fn the_second_marketing_message_of_the_day_waits_while_utility_goes() -> anyhow::Result<()> {
    let host = host_with(Some(
        "{ ramp = [{ min_interactions = 1, marketing_per_24h = 1, marketing_per_7d = 7 }] }",
    ))
    .await?;
    customer_writes_in(&host).await?;

    let first = submit(&host, &marketing(CUSTOMER)).await?;
    host.wait_for(&first, "read", WAIT).await?;

    let second = submit(&host, &marketing(CUSTOMER)).await?;
    let deferred = host.wait_for(&second, "deferred", WAIT).await?;
    assert!(
        history_field(&deferred, "cause")
            .iter()
            .any(|cause| cause.starts_with("deferred on-dispatch by cold-start")),
        "{deferred:#}"
    );

    let utility = submit(&host, &text_message(CUSTOMER, "Ihr Paket ist unterwegs.")).await?;
    host.wait_for(&utility, "read", WAIT).await?;
    // The deferred marketing message is still waiting (an hour, by default), never sent.
    assert_eq!(host.message(&second).await?["status"], "deferred");
    assert_eq!(
        host.simulator.sent().len(),
        2,
        "first marketing and the utility message only"
    );
    Ok(())
}
