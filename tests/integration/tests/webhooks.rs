//! The webhook receiver, black-box: signatures, the handshake, real Meta bodies, and statuses
//! that arrive late, twice or out of order.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot read what it expects fails loudly

use std::time::Duration;

use serde_json::json;
use wasp_integration::{APP_SECRET, HostOptions, TestHost, VERIFY_TOKEN, meta_webhooks_dir, text_message};
use wasp_simulator::SimulatorConfig;

const WAIT: Duration = Duration::from_secs(20);

fn status_body(wamid: &str, status: &str, timestamp: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": "100000000000001"},
            "statuses": [{"id": wamid, "status": status, "timestamp": timestamp.to_string(), "recipient_id": "6591234567"}]
        }}]}]
    }))
    .unwrap()
}

/// A host whose simulator sends no webhooks of its own, so the test drives every status.
async fn quiet_host() -> anyhow::Result<TestHost> {
    TestHost::start(HostOptions {
        simulator: SimulatorConfig {
            sent_after_ms: 3_600_000,
            delivered_after_ms: 3_600_000,
            read_after_ms: 3_600_000,
            ..SimulatorConfig::default()
        },
        ..HostOptions::default()
    })
    .await
}

#[tokio::test]
async fn wrong_or_missing_signature_is_refused_and_changes_nothing() -> anyhow::Result<()> {
    let host = quiet_host().await?;
    let (_, answer) = host.send(&text_message("+6591234567", "hi")).await?;
    let id = answer["id"].as_str().unwrap();
    let message = host.wait_for(id, "sent", WAIT).await?;
    let wamid = message["wamid"].as_str().unwrap();

    let body = status_body(wamid, "read", 1_900_000_000);
    assert_eq!(host.post_webhook(&body, Some("not-the-secret")).await?, 401);
    assert_eq!(host.post_webhook(&body, None).await?, 401);
    assert_eq!(host.message(id).await?["status"], "sent");
    // The same body, rightly signed, applies.
    assert_eq!(host.post_webhook(&body, Some(APP_SECRET)).await?, 200);
    assert_eq!(host.message(id).await?["status"], "read");
    Ok(())
}

#[tokio::test]
async fn replayed_and_out_of_order_statuses_never_move_a_message_back() -> anyhow::Result<()> {
    let host = quiet_host().await?;
    let (_, answer) = host.send(&text_message("+6591234567", "hi")).await?;
    let id = answer["id"].as_str().unwrap();
    let wamid = host.wait_for(id, "sent", WAIT).await?["wamid"]
        .as_str()
        .unwrap()
        .to_owned();

    for (status, timestamp) in [
        ("read", 1_900_000_030),
        ("delivered", 1_900_000_020),
        ("sent", 1_900_000_010),
        ("read", 1_900_000_030),
    ] {
        assert_eq!(
            host.post_webhook(&status_body(&wamid, status, timestamp), Some(APP_SECRET))
                .await?,
            200
        );
    }
    let message = host.message(id).await?;
    assert_eq!(message["status"], "read");
    let statuses = wasp_integration::history_statuses(&message);
    // Read without delivered is how Meta sometimes reports it; the late ones are not history.
    assert_eq!(statuses, ["accepted", "queued", "sending", "sent", "read"]);
    Ok(())
}

#[tokio::test]
async fn handshake_answers_the_challenge_only_with_the_verify_token() -> anyhow::Result<()> {
    let host = quiet_host().await?;
    let url = format!("{}/webhooks/whatsapp", host.url);
    let ok = host
        .client
        .get(&url)
        .query(&[
            ("hub.mode", "subscribe"),
            ("hub.verify_token", VERIFY_TOKEN),
            ("hub.challenge", "1158201444"),
        ])
        .send()
        .await?;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await?, "1158201444");
    let wrong = host
        .client
        .get(&url)
        .query(&[
            ("hub.mode", "subscribe"),
            ("hub.verify_token", "wrong"),
            ("hub.challenge", "1"),
        ])
        .send()
        .await?;
    assert_eq!(wrong.status(), 403);
    Ok(())
}

#[tokio::test]
async fn every_real_meta_webhook_body_is_accepted() -> anyhow::Result<()> {
    let host = quiet_host().await?;
    let mut files: Vec<_> = std::fs::read_dir(meta_webhooks_dir()?)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "json"))
        .collect();
    files.sort();
    assert!(files.len() > 50, "only {} fixtures", files.len());
    for path in files {
        let body = std::fs::read(&path)?;
        let status = host.post_webhook(&body, Some(APP_SECRET)).await?;
        assert_eq!(status, 200, "{} was answered {status}", path.display());
    }
    Ok(())
}

#[tokio::test]
async fn a_send_that_arrived_before_its_answer_was_lost_is_not_sent_again() -> anyhow::Result<()> {
    // Every send is accepted by the simulator, then the connection is reset before the answer:
    // wasp cannot know it arrived, but the status Meta sends for it carries the message id.
    let host = TestHost::start(HostOptions {
        simulator: SimulatorConfig {
            reset_rate: 1.0,
            reset_after_accept: true,
            sent_after_ms: 0,
            delivered_after_ms: 20,
            read_after_ms: 20,
            read_ratio: 1.0,
            webhook_flush_ms: 5,
            ..SimulatorConfig::default()
        },
        dispatch: "retry_base_ms = 1000".into(),
        ..HostOptions::default()
    })
    .await?;
    let (_, answer) = host.send(&text_message("+6591234567", "one copy only")).await?;
    let message = host.wait_for(answer["id"].as_str().unwrap(), "read", WAIT).await?;
    assert_eq!(host.simulator.sent().len(), 1, "sent upstream once: {message:#}");
    let causes = wasp_integration::history_field(&message, "cause");
    assert!(
        causes.iter().any(|cause| cause.contains("not sent again")),
        "{message:#}"
    );
    Ok(())
}

#[tokio::test]
async fn a_full_batch_of_a_thousand_updates_is_read_whole() -> anyhow::Result<()> {
    let host = quiet_host().await?;
    let (_, answer) = host.send(&text_message("+6591234567", "hi")).await?;
    let id = answer["id"].as_str().unwrap();
    let message = host.wait_for(id, "sent", WAIT).await?;
    let wamid = message["wamid"].as_str().unwrap();
    // Meta's largest batch: 1,000 statuses in one POST, past the API's own body limit.
    let mut statuses: Vec<serde_json::Value> = (0..999)
        .map(|index| {
            json!({"id": format!("wamid.HBgLNjU5MTIzNDU2NzgVAgARGBI{index:020}"), "status": "delivered",
                "timestamp": "1900000000", "recipient_id": "6591234567",
                "conversation": {"id": format!("{index:032x}"), "expiration_timestamp": "1900086400",
                    "origin": {"type": "utility"}},
                "pricing": {"billable": true, "pricing_model": "PMP", "category": "utility", "type": "regular"}})
        })
        .collect();
    statuses.push(json!({"id": wamid, "status": "read", "timestamp": "1900000000", "recipient_id": "6591234567"}));
    let body = serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": "100000000000001"},
            "statuses": statuses}}]}]
    }))?;
    assert!(body.len() > 262_144, "{} bytes", body.len());
    assert_eq!(host.post_webhook(&body, Some(APP_SECRET)).await?, 200);
    assert_eq!(host.message(id).await?["status"], "read");
    Ok(())
}
