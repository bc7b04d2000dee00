//! The facts policies decide on, black-box: sends counted per contact and category, the
//! sender's tier and quality from Meta's webhook and from an operator, and a plugin turned off
//! and on over the admin API without losing its config.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot read what it expects fails loudly

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use wasp_integration::{APP_SECRET, ChainEntry, HostOptions, TestHost, buttons_message, text_message};

#[tokio::test]
async fn sends_are_counted_per_contact_and_category() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    assert_eq!(host.call(Method::GET, "/v1/contacts/6591234567", None).await?.0, 404);
    let mut marketing = text_message("+6591234567", "New arrivals");
    marketing["category"] = "marketing".into();
    let mut ids = Vec::new();
    for body in [text_message("+6591234567", "Order shipped"), marketing] {
        let (status, answer) = host.send(&body).await?;
        assert_eq!(status, 202, "{answer}");
        ids.push(answer["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        host.wait_for(id, "read", Duration::from_secs(20)).await?;
    }
    let (status, contact) = host.call(Method::GET, "/v1/contacts/+6591234567", None).await?;
    assert_eq!(status, 200, "{contact}");
    let facts = &contact["facts"];
    assert_eq!(facts["sent_24h"]["utility"], 1, "{contact}");
    assert_eq!(facts["sent_24h"]["marketing"], 1, "{contact}");
    assert_eq!(facts["sent_7d"]["marketing"], 1, "{contact}");
    assert_eq!(facts["interactions"], 0, "sending is not an interaction");
    // Delivered and read statuses are not sends.
    let (_, senders) = host.call(Method::GET, "/v1/senders", None).await?;
    assert_eq!(senders["sent_24h"], 2, "{senders}");
    Ok(())
}

#[tokio::test]
async fn tier_and_quality_come_from_meta_and_from_the_operator() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions {
        cloud_api: "daily_tier_limit = 250\n".into(),
        ..HostOptions::default()
    })
    .await?;
    let (status, senders) = host.call(Method::GET, "/v1/senders", None).await?;
    assert_eq!(status, 200);
    assert_eq!(
        senders["tier_limit"], 250,
        "the configured tier until Meta says otherwise"
    );
    assert_eq!(senders["quality"], "unknown");

    let upgrade =
        std::fs::read(wasp_integration::meta_webhooks_dir()?.join("meta-docs--phone-number-quality-update.json"))?;
    assert_eq!(host.post_webhook(&upgrade, Some(APP_SECRET)).await?, 200);
    let (_, senders) = host.call(Method::GET, "/v1/senders", None).await?;
    assert_eq!(senders["tier_limit"], Value::Null, "TIER_UNLIMITED: {senders}");
    assert_eq!(senders["numbers"][0]["phone_number"], "15550783881");
    assert_eq!(senders["numbers"][0]["last_event"], "THROUGHPUT_UPGRADE");

    let flagged = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "time": 1748454394,
        "changes": [{"field": "phone_number_quality_update", "value": {
            "display_phone_number": "15550783881", "event": "FLAGGED", "current_limit": "TIER_1K"}}]}]});
    let body = serde_json::to_vec(&flagged)?;
    assert_eq!(host.post_webhook(&body, Some(APP_SECRET)).await?, 200);
    let (_, senders) = host.call(Method::GET, "/v1/senders", None).await?;
    assert_eq!(
        (senders["tier_limit"].clone(), senders["quality"].clone()),
        (json!(1000), json!("red")),
        "{senders}"
    );

    let (status, senders) = host
        .call(
            Method::PUT,
            "/v1/senders/15550783881",
            Some(json!({"tier_limit": 10000, "quality": "green"})),
        )
        .await?;
    assert_eq!(status, 200, "{senders}");
    assert_eq!(senders["numbers"][0]["source"], "admin");
    assert_eq!(
        (senders["tier_limit"].clone(), senders["quality"].clone()),
        (json!(10000), json!("green"))
    );

    for (path, body, field) in [
        (
            "/v1/senders/15550783881",
            json!({"tier_limit": 0, "quality": "green"}),
            "tier_limit",
        ),
        (
            "/v1/senders/15550783881",
            json!({"tier_limit": 10, "quality": "purple"}),
            "quality",
        ),
        (
            "/v1/senders/not-a-number",
            json!({"tier_limit": 10, "quality": "green"}),
            "phone_number",
        ),
    ] {
        let (status, error) = host.call(Method::PUT, path, Some(body)).await?;
        assert_eq!(status, 400, "{error}");
        assert_eq!(error["error"]["field"], field, "{error}");
    }
    Ok(())
}

#[tokio::test]
async fn a_plugin_turned_off_leaves_the_chain_and_comes_back_with_its_config() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions {
        chain: vec![ChainEntry::new("button-limit")?.with_config("{ list_button_label = \"Pick one\" }")],
        ..HostOptions::default()
    })
    .await?;
    let (status, plugin) = host
        .call(Method::PUT, "/v1/plugins/button-limit", Some(json!({"enabled": false})))
        .await?;
    assert_eq!(status, 200, "{plugin}");
    assert_eq!(plugin["enabled"], false);

    let (_, answer) = host.send(&text_message("+6591234567", "hello")).await?;
    let plain = host
        .wait_for(answer["id"].as_str().unwrap(), "read", Duration::from_secs(20))
        .await?;
    assert!(
        plain["upstream"].is_null() || plain["upstream"]["rewritten_by"] == json!([]),
        "{plain}"
    );

    let (status, plugin) = host
        .call(Method::PUT, "/v1/plugins/button-limit", Some(json!({"enabled": true})))
        .await?;
    assert_eq!(status, 200, "{plugin}");
    assert_eq!(plugin["config"]["list_button_label"], "Pick one");
    let (_, answer) = host.send(&buttons_message("+6591234567", 5, None)).await?;
    let listed = host
        .wait_for(answer["id"].as_str().unwrap(), "read", Duration::from_secs(20))
        .await?;
    assert_eq!(listed["upstream"]["rewritten_by"], json!(["button-limit"]), "{listed}");
    assert_eq!(
        listed["upstream"]["content"]["interactive"]["action"]["button"], "Pick one",
        "{listed}"
    );
    Ok(())
}

#[tokio::test]
async fn shard_backlogs_are_listed_and_bad_limits_named() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let (status, shards) = host.call(Method::GET, "/v1/shards", None).await?;
    assert_eq!(status, 200, "{shards}");
    assert_eq!(shards["shards_total"], 256);
    assert_eq!(shards["backlog"], 0, "{shards}");
    assert_eq!(shards["shards"], json!([]));
    for (query, field) in [
        ("?limit=0", "limit"),
        ("?limit=999", "limit"),
        ("?limit=x", "limit"),
        ("?colour=red", "colour"),
    ] {
        let (status, error) = host.call(Method::GET, &format!("/v1/shards{query}"), None).await?;
        assert_eq!(status, 400, "{query}: {error}");
        assert_eq!(error["error"]["field"], field, "{query}: {error}");
    }
    Ok(())
}
