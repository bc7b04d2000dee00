//! The `fallback` plugin, black-box through the host and the simulator: media to a degraded
//! region goes as text (images at once, documents after waiting), an unread utility message
//! falls back to SMS and the original ends `fell_back`, and an old device gets buttons as
//! numbered plain text.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot read what it expects fails loudly

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasp_integration::{
    ChainEntry, HostOptions, SMS_FROM, TOKEN, TestHost, buttons_message, history_field, history_statuses, text_message,
};
use wasp_simulator::SimulatorConfig;

const WAIT: Duration = Duration::from_secs(20);

/// Fast statuses; `read_ratio` as given.
fn simulator(read_ratio: f64, failing_prefixes: &[&str]) -> SimulatorConfig {
    SimulatorConfig {
        failing_prefixes: failing_prefixes.iter().map(|prefix| (*prefix).to_owned()).collect(),
        sent_after_ms: 5,
        delivered_after_ms: 5,
        read_after_ms: 100,
        read_ratio,
        webhook_flush_ms: 5,
        ..SimulatorConfig::default()
    }
}

/// `GET {simulator}/_sim/sent`: what the simulated Cloud API accepted, oldest first.
async fn simulator_sent(host: &TestHost) -> anyhow::Result<Vec<Value>> {
    let sent: Value = host
        .client
        .get(format!("{}/_sim/sent?limit=1000", host.simulator.base_url()))
        .send()
        .await?
        .json()
        .await?;
    Ok(sent.as_array().cloned().unwrap_or_default())
}

/// Polls the simulator until it has accepted a message to `digits`; answers its body.
async fn received_by(host: &TestHost, digits: &str) -> anyhow::Result<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(sent) = simulator_sent(host)
            .await?
            .into_iter()
            .find(|sent| sent["to"] == digits)
        {
            return Ok(sent["body"].clone());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the simulator received nothing for {digits}; wasp's log:\n{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn plugin_status(host: &TestHost) -> anyhow::Result<Value> {
    Ok(host
        .client
        .get(format!("{}/v1/plugins/fallback", host.url))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .json()
        .await?)
}

async fn send(host: &TestHost, body: &Value) -> anyhow::Result<String> {
    let (status, answer) = host.send(body).await?;
    anyhow::ensure!(status == 202, "send refused ({status}): {answer}");
    Ok(answer["id"].as_str().unwrap_or_default().to_owned())
}

/// Sends failing texts to Indonesia until `GET /v1/regions` shows 62 degraded.
async fn degrade_indonesia(host: &TestHost) -> anyhow::Result<()> {
    for index in 0..8 {
        send(host, &text_message(&format!("+6281234567{index:02}"), "parcel update")).await?;
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let regions: Value = host
            .client
            .get(format!("{}/v1/regions", host.url))
            .bearer_auth(TOKEN)
            .send()
            .await?
            .json()
            .await?;
        let degraded = regions["regions"]
            .as_array()
            .and_then(|all| all.iter().find(|region| region["country_code"] == 62))
            .is_some_and(|region| region["degraded"] == true);
        if degraded {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "region 62 never degraded: {regions}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn media_to_a_degraded_region_goes_as_text() -> anyhow::Result<()> {
    let host =
        TestHost::start(HostOptions {
            chain: vec![ChainEntry::new("fallback")?.with_config(
                "{ sms = { enabled = false }, degraded_region = { recheck_ms = 200, max_wait_ms = 1500 } }",
            )],
            simulator: simulator(1.0, &["62"]),
            extra_config: "[regions]\nmin_samples = 5\ndegrade_error_rate = 0.5\ndegrade_after_ms = 0\n".into(),
            ..HostOptions::default()
        })
        .await?;
    degrade_indonesia(&host).await?;

    // An image leaves at once, as its caption and link with a link preview.
    let image = send(
        &host,
        &json!({"to": "+6281299990001", "category": "utility", "content": {"type": "image",
            "image": {"link": "https://cdn.example.com/parcels/4411.jpg", "caption": "Your parcel at the door"}}}),
    )
    .await?;
    let body = received_by(&host, "6281299990001").await?;
    assert_eq!(body["type"], "text", "{body}");
    assert_eq!(
        body["text"]["body"],
        "Your parcel at the door\nhttps://cdn.example.com/parcels/4411.jpg"
    );
    assert_eq!(body["text"]["preview_url"], true);
    assert!(body.get("image").is_none(), "{body}");
    let view = host.message(&image).await?;
    assert_eq!(view["upstream"]["rewritten_by"], json!(["fallback"]), "{view}");
    assert_eq!(
        view["content"]["type"], "image",
        "the submitted content is kept: {view}"
    );

    // A document waits for the region (deferred, rechecked), and at max_wait_ms goes as text.
    let document = send(
        &host,
        &json!({"to": "+6281299990002", "category": "utility", "content": {"type": "document",
            "document": {"link": "https://cdn.example.com/invoices/4411.pdf", "filename": "invoice-4411.pdf",
                "caption": "Your invoice"}}}),
    )
    .await?;
    let body = received_by(&host, "6281299990002").await?;
    assert_eq!(body["type"], "text", "{body}");
    assert_eq!(
        body["text"]["body"],
        "Your invoice\ninvoice-4411.pdf\nhttps://cdn.example.com/invoices/4411.pdf"
    );
    assert_eq!(body["text"]["preview_url"], true);
    let view = host.message(&document).await?;
    let statuses = history_statuses(&view);
    let deferred = statuses.iter().position(|status| status == "deferred");
    let sending = statuses.iter().rposition(|status| status == "sending");
    assert!(
        matches!((deferred, sending), (Some(deferred), Some(sending)) if deferred < sending),
        "deferred before it was sent: {view:#}"
    );
    assert!(
        history_field(&view, "cause")
            .iter()
            .any(|cause| cause.contains("fallback")),
        "{view:#}"
    );
    let counters = &plugin_status(&host).await?["counters"];
    assert_eq!(counters["degraded_images_as_text"], 1, "{counters}");
    assert_eq!(counters["degraded_media_as_text"], 1, "{counters}");
    Ok(())
}

/// UUID-looking words in `text` (message ids).
fn ids_in(text: &str) -> Vec<String> {
    text.split(|character: char| !(character.is_ascii_hexdigit() || character == '-'))
        .filter(|word| word.len() == 36 && word.matches('-').count() == 4)
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn an_unread_utility_message_falls_back_to_sms() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions {
        chain: vec![ChainEntry::new("fallback")?.with_config("{ sms = { unread_after_ms = 1500 } }")],
        sms: true,
        simulator: simulator(1.0, &[]),
        ..HostOptions::default()
    })
    .await?;

    // Read in time: the fallback timer is cancelled and no SMS goes.
    let read = send(&host, &text_message("+6591230001", "Your parcel arrives today.")).await?;
    host.wait_for(&read, "read", WAIT).await?;
    let deadline = Instant::now() + WAIT;
    loop {
        let status = plugin_status(&host).await?;
        if status["pending_timers"] == 0 && status["counters"]["sms_timers_cancelled"] == 1 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the timer was not cancelled: {status}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // Never read: after unread_after_ms it goes again over SMS.
    host.simulator.set_config(|config| config.read_ratio = 0.0);
    let text = "Your parcel arrives today between 9 and 12.";
    let unread = send(&host, &text_message("+6591230002", text)).await?;
    host.wait_for(&unread, "delivered", WAIT).await?;
    let deadline = Instant::now() + WAIT;
    let sms = loop {
        if let Some(sms) = host.simulator.sms_sent().into_iter().next() {
            break sms;
        }
        anyhow::ensure!(Instant::now() < deadline, "no SMS was sent:\n{}", host.log());
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(sms.to, "+6591230002");
    assert_eq!(sms.from, SMS_FROM);
    assert_eq!(sms.body, text);
    let sms_sent = host.simulator.sms_sent();
    assert_eq!(sms_sent.len(), 1, "the read message did not fall back: {sms_sent:?}");

    // The original ends `fell_back`, its history naming the SMS message (needs the host's
    // handling of `wasp_sdk::fallback_tag`).
    let original = host.wait_for(&unread, "fell_back", WAIT).await?;
    let statuses = history_statuses(&original);
    assert!(statuses.iter().any(|status| status == "sending"), "{original:#}");
    assert!(statuses.iter().any(|status| status == "delivered"), "{original:#}");
    assert_eq!(statuses.last().map(String::as_str), Some("fell_back"), "{original:#}");
    let mut fallback = None;
    for id in history_field(&original, "cause").iter().flat_map(|cause| ids_in(cause)) {
        if id == unread {
            continue;
        }
        let candidate = host.message(&id).await?;
        if candidate["channel"] == "sms" {
            fallback = Some(candidate);
        }
    }
    let fallback = fallback.unwrap_or_else(|| panic!("no SMS message named in the history: {original:#}"));
    assert_eq!(fallback["to"], "+6591230002");
    assert!(
        fallback["tags"]
            .as_array()
            .is_some_and(|tags| tags.contains(&json!(format!("wasp.fallback-of:{unread}")))),
        "{fallback:#}"
    );
    let counters = &plugin_status(&host).await?["counters"];
    assert_eq!(counters["sms_sent_unread"], 1, "{counters}");
    Ok(())
}

#[tokio::test]
async fn an_undeliverable_message_goes_over_sms_at_once() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions {
        chain: vec![ChainEntry::new("fallback")?],
        sms: true,
        // Indonesia's messages fail with 131026, "message undeliverable".
        simulator: simulator(1.0, &["62"]),
        ..HostOptions::default()
    })
    .await?;
    let text = "Your code is 482913";
    let mut body = text_message("+6281299990003", text);
    body["category"] = json!("authentication");
    let id = send(&host, &body).await?;
    let original = host.wait_for(&id, "fell_back", WAIT).await?;
    let statuses = history_statuses(&original);
    assert!(statuses.iter().any(|status| status == "failed"), "{original:#}");
    assert_eq!(original["error_code"], 131_026, "{original:#}");
    let deadline = Instant::now() + WAIT;
    let sms = loop {
        if let Some(sms) = host.simulator.sms_sent().into_iter().next() {
            break sms;
        }
        anyhow::ensure!(Instant::now() < deadline, "no SMS was sent:\n{}", host.log());
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(sms.to, "+6281299990003");
    assert_eq!(sms.body, text);
    let counters = &plugin_status(&host).await?["counters"];
    assert_eq!(counters["sms_sent_undeliverable"], 1, "{counters}");
    assert!(counters.get("sms_timers_set").is_none_or(|set| set == 0), "{counters}");
    Ok(())
}

/// Meta's pair rate is WhatsApp's: the SMS that replaces a failed WhatsApp message to the same
/// recipient does not wait for it (here a minute).
#[tokio::test]
async fn the_sms_fallback_does_not_wait_for_the_whatsapp_pair_rate() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions {
        chain: vec![ChainEntry::new("fallback")?],
        sms: true,
        simulator: simulator(1.0, &["62"]),
        cloud_api: "messages_per_second = 0\npair_interval_ms = 60000\npair_burst = 1\n".to_owned(),
        ..HostOptions::default()
    })
    .await?;
    let mut body = text_message("+6281299990004", "Your code is 118822");
    body["category"] = json!("authentication");
    let id = send(&host, &body).await?;
    host.wait_for(&id, "fell_back", WAIT).await?;
    let deadline = Instant::now() + WAIT;
    while host.simulator.sms_sent().is_empty() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the SMS waited for WhatsApp's pair rate:\n{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Ok(())
}

#[tokio::test]
async fn an_old_device_gets_buttons_as_numbered_text() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions {
        chain: vec![ChainEntry::new("fallback")?],
        simulator: simulator(1.0, &[]),
        ..HostOptions::default()
    })
    .await?;
    let response = host
        .client
        .put(format!("{}/v1/contacts/6591230003", host.url))
        .bearer_auth(TOKEN)
        .json(&json!({"attributes": {"device_hints": ["old-device"]}}))
        .send()
        .await?;
    anyhow::ensure!(response.status().is_success(), "PUT contact: {}", response.status());

    let mut old = buttons_message("+6591230003", 2, None);
    old["content"]["interactive"]["body"]["text"] = json!("How was your delivery? 😊");
    send(&host, &old).await?;
    let body = received_by(&host, "6591230003").await?;
    assert_eq!(body["type"], "text", "{body}");
    assert_eq!(
        body["text"]["body"],
        "How was your delivery?\n\n1. Choice 0\n2. Choice 1\nReply with the number."
    );

    // Someone without the hint gets the buttons as they are.
    send(&host, &buttons_message("+6591230004", 2, None)).await?;
    let body = received_by(&host, "6591230004").await?;
    assert_eq!(body["type"], "interactive", "{body}");
    assert_eq!(
        body["interactive"]["action"]["buttons"].as_array().map(Vec::len),
        Some(2)
    );
    Ok(())
}
