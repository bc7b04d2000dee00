//! The whole path, black-box: a message goes in over the API, through the button-limit plugin,
//! to the simulator, and the signed status webhooks bring it to `read`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot read what it expects fails loudly

use std::time::Duration;

use serde_json::json;
use wasp_integration::{ChainEntry, HostOptions, TestHost, buttons_message, text_message};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn five_buttons_become_a_list_and_reach_read() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions {
        chain: vec![ChainEntry::new("button-limit")?],
        ..HostOptions::default()
    })
    .await?;

    let (status, answer) = host.send(&buttons_message("+6591234567", 5, Some("order-42"))).await?;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["status"], "accepted");
    let id = answer["id"].as_str().unwrap().to_owned();

    let message = host.wait_for(&id, "read", WAIT).await?;
    assert!(message["wamid"].as_str().unwrap().starts_with("wamid."), "{message:#}");
    assert_eq!(message["upstream"]["rewritten_by"], json!(["button-limit"]));
    let upstream = &message["upstream"]["content"];
    assert_eq!(upstream["interactive"]["type"], "list", "{message:#}");
    let rows = &upstream["interactive"]["action"]["sections"][0]["rows"];
    assert_eq!(rows.as_array().unwrap().len(), 5);
    // The original stays as submitted.
    assert_eq!(message["content"]["interactive"]["type"], "button");

    let statuses = wasp_integration::history_statuses(&message);
    assert_eq!(
        statuses,
        ["accepted", "queued", "sending", "sent", "delivered", "read"],
        "{message:#}"
    );
    assert!(
        message["history"]
            .as_array()
            .unwrap()
            .iter()
            .all(|entry| entry["at"].as_str().is_some())
    );

    // What the simulator received is the list, in Meta's shape.
    let sent = host.simulator.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body["type"], "interactive");
    assert_eq!(sent[0].body["interactive"]["type"], "list");
    assert_eq!(sent[0].body["to"], "6591234567");

    // The same idempotency key answers with the first message, and sends nothing more.
    let (status, again) = host.send(&buttons_message("+6591234567", 5, Some("order-42"))).await?;
    assert_eq!(status, 202);
    assert_eq!(again["id"], answer["id"]);
    let (status, conflict) = host.send(&buttons_message("+6591234567", 4, Some("order-42"))).await?;
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(conflict["error"]["field"], "idempotency_key");
    Ok(())
}

#[tokio::test]
async fn too_many_choices_are_rejected_with_a_reason_and_never_sent() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions {
        chain: vec![ChainEntry::new("button-limit")?],
        ..HostOptions::default()
    })
    .await?;
    let (status, answer) = host.send(&buttons_message("+6591234568", 12, None)).await?;
    assert_eq!(status, 202);
    let id = answer["id"].as_str().unwrap();
    let message = host.wait_for(id, "rejected", WAIT).await?;
    let reason = message["reason"].as_str().unwrap();
    assert!(reason.starts_with("button-limit:"), "{reason}");
    assert!(reason.contains("12"), "{reason}");
    assert!(host.simulator.sent().is_empty());
    Ok(())
}

#[tokio::test]
async fn without_plugins_the_simulator_refuses_five_buttons_with_metas_error() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let (_, answer) = host.send(&buttons_message("+6591234569", 5, None)).await?;
    let id = answer["id"].as_str().unwrap();
    let message = host.wait_for(id, "failed", WAIT).await?;
    assert_eq!(message["error_code"], 131009, "{message:#}");
    assert!(message["reason"].as_str().unwrap().contains("131009"));
    // A plain text message goes through the same host untouched.
    let (_, answer) = host.send(&text_message("+6591234569", "hello")).await?;
    let message = host.wait_for(answer["id"].as_str().unwrap(), "read", WAIT).await?;
    assert!(message["upstream"]["rewritten_by"].as_array().unwrap().is_empty());
    Ok(())
}

#[tokio::test]
async fn messages_to_one_recipient_leave_in_order() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let mut ids = Vec::new();
    for index in 0..20 {
        let (status, answer) = host
            .send(&text_message("+4915112345678", &format!("step {index}")))
            .await?;
        assert_eq!(status, 202);
        ids.push(answer["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        host.wait_for(id, "read", WAIT).await?;
    }
    let bodies: Vec<String> = host
        .simulator
        .sent()
        .iter()
        .map(|sent| sent.body["text"]["body"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (0..20).map(|index| format!("step {index}")).collect();
    assert_eq!(bodies, expected);
    Ok(())
}
