//! Health rules, black-box: a backlog past the configured threshold puts the node in degraded
//! mode (`GET /v1/health/rules` shows the rule firing, bulk stays queued while critical goes,
//! the fallback policy sends media as text, the audit log has the firing), and once the backlog drains the rule resolves and bulk goes.
//! Also: mistakes in `[health]` stop start-up naming the key.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot read what it expects fails loudly

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasp_integration::{ChainEntry, HostOptions, TestHost, text_message};

/// Polls `GET /v1/health/rules` until `done` holds, within `timeout`.
async fn rules_until(host: &TestHost, timeout: Duration, done: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, body) = host.call(reqwest::Method::GET, "/v1/health/rules", None).await?;
        anyhow::ensure!(status == 200, "GET /v1/health/rules: {status} {body}");
        if done(&body) {
            return Ok(body);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "health rules never got there: {body}\n{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn backlog_rule(body: &Value) -> &Value {
    &body["rules"][0]
}

#[tokio::test]
async fn a_growing_backlog_degrades_the_node_until_it_drains() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions {
        chain: vec![ChainEntry::new("fallback")?],
        // The backlog is 40 messages to one recipient, who takes two a second: it drains in
        // about twenty seconds, and meanwhile nothing else waits behind it.
        cloud_api: "pair_interval_ms = 500\npair_burst = 1\n".into(),
        extra_config: "[health]\nevaluate_every_ms = 100\n\n[[health.rules]]\nname = \"backlog\"\nmetric = \"backlog\"\nabove = 20\nclear = 5\nfor_ms = 0\nclear_for_ms = 300\naction = \"degrade\"\n".into(),
        ..HostOptions::default()
    })
    .await?;
    let (status, body) = host.call(reqwest::Method::GET, "/v1/health/rules", None).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["degraded"], false);
    assert_eq!(
        body["rules"].as_array().map(Vec::len),
        Some(1),
        "given rules replace the defaults"
    );
    assert_eq!(backlog_rule(&body)["firing"], false);
    assert_eq!(backlog_rule(&body)["threshold"], 20.0);

    let messages: Vec<Value> = (0..40)
        .map(|index| text_message("+6591200000", &format!("parcel update {index}")))
        .collect();
    let (status, body) = host.send_batch(&messages).await?;
    assert_eq!(status, 202, "{body}");
    let body = rules_until(&host, Duration::from_secs(10), |body| body["degraded"] == true).await?;
    let rule = backlog_rule(&body);
    assert_eq!(rule["firing"], true, "{body}");
    assert!(rule["since"].is_string() && rule["last_fired_at"].is_string(), "{body}");
    assert!(rule["value"].as_f64().unwrap() > 20.0, "{body}");

    // Degraded: the fallback policy sees it and sends media to a healthy region as text.
    let (status, image) = host
        .send(&json!({"to": "+6598760003", "category": "utility", "priority": "critical",
            "content": {"type": "image", "image": {"link": "https://cdn.example.com/parcels/4411.jpg", "caption": "Your parcel"}}}))
        .await?;
    assert_eq!(status, 202, "{image}");
    let image = host
        .wait_for(image["id"].as_str().unwrap(), "read", Duration::from_secs(10))
        .await?;
    assert_eq!(image["upstream"]["content"]["type"], "text", "{image}");
    assert_eq!(image["upstream"]["rewritten_by"], json!(["fallback"]), "{image}");

    // Degraded: bulk waits, critical goes.
    let mut bulk = text_message("+6598760001", "autumn sale");
    bulk["category"] = json!("marketing");
    bulk["priority"] = json!("bulk");
    let (status, bulk) = host.send(&bulk).await?;
    assert_eq!(status, 202, "{bulk}");
    let bulk_id = bulk["id"].as_str().unwrap().to_owned();
    let mut critical = text_message("+6598760002", "your code is 123456");
    critical["category"] = json!("authentication");
    critical["priority"] = json!("critical");
    let (status, critical) = host.send(&critical).await?;
    assert_eq!(status, 202, "{critical}");
    let critical_id = critical["id"].as_str().unwrap();
    host.wait_for(critical_id, "read", Duration::from_secs(10)).await?;
    let waiting = host.message(&bulk_id).await?;
    assert!(
        matches!(waiting["status"].as_str(), Some("accepted" | "queued")),
        "bulk goes nowhere in degraded mode: {waiting}"
    );
    // Still degraded (the backlog is far above the clear mark): the bulk message, to another
    // recipient with nothing ahead of it, was held by the degraded mode.
    let (_, now) = host.call(reqwest::Method::GET, "/v1/health/rules", None).await?;
    assert_eq!(now["degraded"], true, "{now}");

    let (status, audit) = host
        .call(reqwest::Method::GET, "/v1/audit?action=health.fire", None)
        .await?;
    assert_eq!(status, 200, "{audit}");
    let entries = audit["entries"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), 1, "one firing, one row: {audit}");
    assert_eq!(entries[0]["target"], "backlog", "{audit}");
    assert_eq!(entries[0]["token_id"], "health", "{audit}");

    // The backlog drains: the rule resolves and bulk goes.
    let body = rules_until(&host, Duration::from_secs(60), |body| body["degraded"] == false).await?;
    let rule = backlog_rule(&body);
    assert_eq!(rule["firing"], false, "{body}");
    assert!(rule["last_resolved_at"].is_string(), "{body}");
    assert!(rule["since"].is_null(), "{body}");
    host.wait_for(&bulk_id, "read", Duration::from_secs(20)).await?;
    let (_, audit) = host
        .call(reqwest::Method::GET, "/v1/audit?action=health.resolve", None)
        .await?;
    assert_eq!(audit["entries"].as_array().map(Vec::len), Some(1), "{audit}");
    let (_, audit) = host
        .call(reqwest::Method::GET, "/v1/audit?action=health.fire", None)
        .await?;
    assert_eq!(
        audit["entries"].as_array().map(Vec::len),
        Some(1),
        "fired once: {audit}"
    );
    Ok(())
}

#[test]
fn mistakes_in_the_health_section_stop_start_up_naming_the_key() -> anyhow::Result<()> {
    let binary = wasp_integration::wasp_binary()?;
    let directory = tempfile::tempdir()?;
    let cases = [
        (
            "[[health.rules]]\nname = \"backlog\"\nmetric = \"backlog\"\nabove = 20\nclear = 30\naction = \"degrade\"\n",
            "health.rules[0] (\"backlog\").clear",
        ),
        (
            "[[health.rules]]\nname = \"slow\"\nmetric = \"upstream_5xx_rate\"\naction = \"flag_template\"\n",
            "health.rules[0] (\"slow\").action",
        ),
        ("[health]\nevaluate_every_ms = 0\n", "health.evaluate_every_ms"),
    ];
    for (text, expected) in cases {
        let path = directory.path().join("wasp.toml");
        std::fs::write(&path, text)?;
        let output = std::process::Command::new(&binary)
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .env(
                "WASP_DATABASE_URL",
                format!("sqlite://{}/wasp.db", directory.path().display()),
            )
            .output()?;
        assert!(!output.status.success(), "{text}: started");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{text}: {stderr}");
    }
    Ok(())
}
