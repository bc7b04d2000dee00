//! Receipts and rates, black-box: messages go out through the simulator, which answers with
//! statuses (a failing country with 131026); `GET /v1/stats` counts them by category and by
//! minute, the same after a restart (the counts are the store's), and a bad `window` or `by`
//! is a 400 naming it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot read what it expects fails loudly

use std::time::Duration;

use serde_json::Value;
use wasp_integration::{HostOptions, TestHost, text_message};
use wasp_simulator::SimulatorConfig;

const WAIT: Duration = Duration::from_secs(20);

async fn stats(host: &TestHost, query: &str) -> anyhow::Result<Value> {
    let (status, body) = host
        .call(reqwest::Method::GET, &format!("/v1/stats?{query}"), None)
        .await?;
    anyhow::ensure!(status == 200, "GET /v1/stats?{query}: {status} {body}");
    Ok(body)
}

fn group<'a>(answer: &'a Value, key: &str) -> &'a Value {
    answer["groups"]
        .as_array()
        .and_then(|groups| groups.iter().find(|group| group["key"] == key))
        .unwrap_or_else(|| panic!("no group {key} in {answer:#}"))
}

fn count(figures: &Value, field: &str) -> u64 {
    figures[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} is not a count in {figures}"))
}

const COUNTS: [&str; 8] = [
    "accepted",
    "sent",
    "delivered",
    "read",
    "failed",
    "fell_back",
    "rejected",
    "expired",
];

fn check_by_category(answer: &Value) {
    assert_eq!(answer["by"], "category");
    assert_eq!(answer["window"], "1h");
    let utility = group(answer, "utility");
    for (field, expected) in [
        ("accepted", 3),
        ("sent", 3),
        ("delivered", 3),
        ("read", 3),
        ("failed", 0),
    ] {
        assert_eq!(count(utility, field), expected, "utility {field}: {answer:#}");
    }
    assert_eq!(utility["delivered_rate"], 1.0);
    assert_eq!(utility["read_rate"], 1.0);
    assert!(utility["median_ms_to_delivered"].as_i64().is_some(), "{utility}");
    assert!(utility["median_ms_to_read"].as_i64().is_some(), "{utility}");
    assert_eq!(utility["failure_codes"], serde_json::json!([]));

    let marketing = group(answer, "marketing");
    for (field, expected) in [
        ("accepted", 2),
        ("sent", 2),
        ("delivered", 0),
        ("read", 0),
        ("failed", 2),
    ] {
        assert_eq!(count(marketing, field), expected, "marketing {field}: {answer:#}");
    }
    assert_eq!(marketing["delivered_rate"], 0.0);
    assert_eq!(marketing["read_rate"], Value::Null);
    assert_eq!(marketing["median_ms_to_delivered"], Value::Null);
    assert_eq!(
        marketing["failure_codes"],
        serde_json::json!([{"code": 131026, "count": 2}])
    );

    let total = &answer["total"];
    assert!(total.get("key").is_none());
    for (field, expected) in [
        ("accepted", 5),
        ("sent", 5),
        ("delivered", 3),
        ("read", 3),
        ("failed", 2),
    ] {
        assert_eq!(count(total, field), expected, "total {field}: {answer:#}");
    }
    assert_eq!(total["delivered_rate"], 0.6);
    assert_eq!(total["read_rate"], 1.0);
}

#[tokio::test]
async fn stats_count_what_happened_and_survive_a_restart() -> anyhow::Result<()> {
    let mut host = TestHost::start(HostOptions {
        simulator: SimulatorConfig {
            failing_prefixes: vec!["62".into()],
            sent_after_ms: 5,
            delivered_after_ms: 30,
            read_after_ms: 30,
            read_ratio: 1.0,
            webhook_flush_ms: 5,
            ..SimulatorConfig::default()
        },
        ..HostOptions::default()
    })
    .await?;
    let mut read = Vec::new();
    for index in 0..3 {
        let (status, body) = host
            .send(&text_message(&format!("+6591234{index:03}"), "parcel update"))
            .await?;
        anyhow::ensure!(status == 202, "send: {status} {body}");
        read.push(body["id"].as_str().unwrap().to_owned());
    }
    let mut failed = Vec::new();
    for index in 0..2 {
        let mut message = text_message(&format!("+6281234567{index:02}"), "new offers");
        message["category"] = "marketing".into();
        let (status, body) = host.send(&message).await?;
        anyhow::ensure!(status == 202, "send: {status} {body}");
        failed.push(body["id"].as_str().unwrap().to_owned());
    }
    for id in &read {
        host.wait_for(id, "read", WAIT).await?;
    }
    for id in &failed {
        host.wait_for(id, "failed", WAIT).await?;
    }

    let by_category = stats(&host, "by=category").await?;
    check_by_category(&by_category);
    // The defaults: the last hour by category.
    assert_eq!(stats(&host, "").await?["groups"], by_category["groups"]);

    // Every send left from the one configured number; acceptances have no number yet.
    let by_sender = stats(&host, "by=sender").await?;
    let senders = by_sender["groups"].as_array().unwrap();
    let sender = senders
        .iter()
        .find(|group| group["key"] == wasp::config::DEFAULT_PHONE_NUMBER_ID)
        .unwrap_or_else(|| panic!("no group for the sender number: {by_sender:#}"));
    assert_eq!(
        count(sender, "sent"),
        count(&by_category["total"], "sent"),
        "{by_sender:#}"
    );
    assert_eq!(count(sender, "accepted"), 0, "{by_sender:#}");

    let by_minute = stats(&host, "window=1h&by=minute").await?;
    let minutes = by_minute["groups"].as_array().unwrap();
    assert_eq!(minutes.len(), 60, "every minute of the hour: {by_minute:#}");
    assert_eq!(minutes[0]["key"], by_minute["from"]);
    // RFC 3339 in one shape sorts as time does: minute starts, strictly in order.
    let keys: Vec<&str> = minutes.iter().map(|minute| minute["key"].as_str().unwrap()).collect();
    assert!(keys.iter().all(|key| key.ends_with(":00Z")), "{keys:?}");
    assert!(keys.windows(2).all(|pair| pair[0] < pair[1]), "{keys:?}");
    assert!(*keys.last().unwrap() < by_minute["to"].as_str().unwrap());
    // The minutes add up to the window's total, and the total to the counts by category.
    for field in COUNTS {
        let summed: u64 = minutes.iter().map(|minute| count(minute, field)).sum();
        assert_eq!(summed, count(&by_minute["total"], field), "{field}");
        assert_eq!(summed, count(&by_category["total"], field), "{field}");
    }
    // Most of the hour is empty: zeros, and no rate where nothing was sent.
    let empty: Vec<&Value> = minutes.iter().filter(|minute| count(minute, "sent") == 0).collect();
    assert!(empty.len() >= 57, "{by_minute:#}");
    assert!(
        empty.iter().all(|minute| minute["delivered_rate"].is_null()),
        "{by_minute:#}"
    );

    host.restart().await?;
    let after = stats(&host, "by=category").await?;
    check_by_category(&after);
    assert_eq!(after["groups"], by_category["groups"]);
    assert_eq!(after["total"], by_category["total"]);
    Ok(())
}

#[tokio::test]
async fn a_bad_window_or_grouping_is_a_400_naming_it() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    for (query, field) in [
        ("window=30s", "window"),
        ("window=0m", "window"),
        ("window=36d", "window"),
        ("window=1h&by=country", "by"),
        ("window=1h&since=now", "since"),
    ] {
        let (status, body) = host
            .call(reqwest::Method::GET, &format!("/v1/stats?{query}"), None)
            .await?;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
    let (status, body) = host.call_as(None, reqwest::Method::GET, "/v1/stats", None).await?;
    assert_eq!(status, 401, "{body}");
    Ok(())
}
