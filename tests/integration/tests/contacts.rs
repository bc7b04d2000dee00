//! Contact facts and attributes, black-box: inbound messages counted once, the 24-hour
//! window, attributes and opt-out set over the API, and bad input named.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot read what it expects fails loudly

use std::time::Duration;

use serde_json::{Value, json};
use wasp_integration::{APP_SECRET, HostOptions, TestHost};
use wasp_simulator::Inbound;

async fn contact(host: &TestHost, wa_id: &str) -> anyhow::Result<(u16, Value)> {
    host.call(reqwest::Method::GET, &format!("/v1/contacts/{wa_id}"), None)
        .await
}

async fn put_contact(host: &TestHost, wa_id: &str, body: Value) -> anyhow::Result<(u16, Value)> {
    host.call(reqwest::Method::PUT, &format!("/v1/contacts/{wa_id}"), Some(body))
        .await
}

#[tokio::test]
async fn inbound_messages_open_the_window_and_count_once() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    assert_eq!(contact(&host, "6591234567").await?.0, 404);
    host.simulator
        .inject_inbound(Inbound::text("100000000000001", "6591234567", "hello"))
        .await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let view = loop {
        let (status, view) = contact(&host, "+6591234567").await?;
        if status == 200 {
            break view;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the inbound message was not recorded"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(view["facts"]["interactions"], 1);
    assert_eq!(view["facts"]["service_window_open"], true);
    assert_eq!(view["facts"]["time_zone"], "Asia/Singapore");
    assert_eq!(view["facts"]["utc_offset_minutes"], 480);

    // Meta delivering the same webhook twice counts it once.
    let body = serde_json::to_vec(
        &json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "1", "phone_number_id": "100000000000001"},
        "contacts": [{"profile": {"name": "A"}, "wa_id": "6591234567"}],
        "messages": [{"from": "6591234567", "id": "wamid.SAME", "timestamp": "1900000000", "type": "text", "text": {"body": "again"}}]}}]}]}),
    )?;
    assert_eq!(host.post_webhook(&body, Some(APP_SECRET)).await?, 200);
    assert_eq!(host.post_webhook(&body, Some(APP_SECRET)).await?, 200);
    let (_, view) = contact(&host, "6591234567").await?;
    assert_eq!(view["facts"]["interactions"], 2, "{view}");
    Ok(())
}

#[tokio::test]
async fn attributes_and_opt_out_are_set_and_checked() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let (status, view) = put_contact(
        &host,
        "4915112345678",
        json!({"attributes": {"time_zone": "America/Chicago", "device_hints": ["old-device"], "language": "de"}, "opted_out": true}),
    )
    .await?;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["facts"]["time_zone"], "America/Chicago");
    assert_eq!(view["opted_out"], true);
    assert_eq!(view["attributes"]["device_hints"], json!(["old-device"]));
    assert_eq!(view["facts"]["interactions"], 0);
    assert_eq!(view["facts"]["service_window_open"], false);

    // Opt-out alone leaves the attributes as they are.
    let (_, view) = put_contact(&host, "4915112345678", json!({"opted_out": false})).await?;
    assert_eq!(view["opted_out"], false);
    assert_eq!(view["attributes"]["language"], "de");

    let cases = [
        (
            "4915112345678",
            json!({"attributes": {"time_zone": "Mars/Olympus"}}),
            "attributes.time_zone",
        ),
        ("4915112345678", json!({"attributes": {"colour": "red"}}), "attributes"),
        ("4915112345678", json!({}), "attributes"),
        ("12", json!({"opted_out": true}), "wa_id"),
    ];
    for (wa_id, body, field) in cases {
        let (status, answer) = put_contact(&host, wa_id, body.clone()).await?;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            answer["error"]["field"].as_str().unwrap_or_default().starts_with(field),
            "{body}: {answer}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn an_opted_out_recipient_gets_no_business_initiated_message() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let (status, _) = put_contact(&host, "6591234567", json!({"opted_out": true})).await?;
    assert_eq!(status, 200);
    let (_, answer) = host
        .send(&wasp_integration::text_message("+6591234567", "flash sale"))
        .await?;
    let message = host
        .wait_for(answer["id"].as_str().unwrap(), "rejected", Duration::from_secs(20))
        .await?;
    assert!(message["reason"].as_str().unwrap().contains("opted out"), "{message}");
    let service = json!({"to": "+6591234567", "category": "service", "content": {"type": "text", "text": {"body": "your answer"}}});
    let (_, answer) = host.send(&service).await?;
    host.wait_for(answer["id"].as_str().unwrap(), "rejected", Duration::from_secs(20))
        .await?;
    // Once the customer writes, a service reply inside their window goes; marketing still does not.
    host.simulator
        .inject_inbound(Inbound::text("100000000000001", "6591234567", "hi?"))
        .await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while contact(&host, "6591234567").await?.1["facts"]["service_window_open"] != true {
        anyhow::ensure!(std::time::Instant::now() < deadline, "the window never opened");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (_, answer) = host.send(&service).await?;
    host.wait_for(answer["id"].as_str().unwrap(), "read", Duration::from_secs(20))
        .await?;
    assert_eq!(host.simulator.sent().len(), 1);
    Ok(())
}
