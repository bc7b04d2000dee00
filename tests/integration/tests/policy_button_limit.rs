//! The button-limit plugin end to end, black-box: the built `wasp` binary runs the plugin,
//! and what Meta would have received is read back from the simulator (`GET /_sim/sent`).
//!
//! List mode (the default) with the message's history and statuses is covered by
//! `message_path.rs` (`five_buttons_become_a_list_and_reach_read`); here it is asked for by
//! config. Progressive mode: the first step reaches the simulator, the customer answers a
//! menu button (`POST /_sim/inbound`, a signed webhook to the host), and the follow-up with
//! the detailed choices reaches the simulator in turn.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot read what it expects fails loudly

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasp_integration::{ChainEntry, HostOptions, TestHost, buttons_message};

const WAIT: Duration = Duration::from_secs(20);

async fn start(config: &str) -> anyhow::Result<TestHost> {
    TestHost::start(HostOptions {
        chain: vec![ChainEntry::new("button-limit")?.with_config(config)],
        ..HostOptions::default()
    })
    .await
}

/// `GET /_sim/sent`: what the simulator accepted, oldest first.
async fn sent(host: &TestHost) -> anyhow::Result<Vec<Value>> {
    let response = host
        .client
        .get(format!("{}/_sim/sent", host.simulator.base_url()))
        .send()
        .await?;
    anyhow::ensure!(response.status().is_success(), "GET /_sim/sent: {}", response.status());
    let sent: Value = response.json().await?;
    Ok(sent.as_array().cloned().unwrap_or_default())
}

/// Waits until the simulator has accepted `count` messages; returns them all.
async fn wait_sent(host: &TestHost, count: usize) -> anyhow::Result<Vec<Value>> {
    let deadline = Instant::now() + WAIT;
    loop {
        let sent = sent(host).await?;
        if sent.len() >= count {
            return Ok(sent);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the simulator has {} messages, not {count}, after {WAIT:?}: {sent:#?}\nlog:\n{}",
            sent.len(),
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The customer taps reply button `id` (`title`) of the message the simulator sent as `answered`.
async fn tap(host: &TestHost, answered: &Value, id: &str, title: &str) -> anyhow::Result<()> {
    let response = host
        .client
        .post(format!("{}/_sim/inbound", host.simulator.base_url()))
        .json(&json!({
            "phone_number_id": answered["phone_number_id"],
            "from": answered["to"],
            "type": "button_reply",
            "id": id,
            "title": title,
            "reply_to": answered["wamid"],
        }))
        .send()
        .await?;
    let status = response.status();
    anyhow::ensure!(
        status.is_success(),
        "POST /_sim/inbound: {status}: {}",
        response.text().await?
    );
    Ok(())
}

/// The (id, title) of each reply button of an interactive `button` message, or of each row
/// of a `list`, in Meta's shape.
fn choices(body: &Value) -> Vec<(String, String)> {
    let interactive = &body["interactive"];
    let pairs = |items: &Value, id: &str, title: &str| -> Vec<(String, String)> {
        items
            .as_array()
            .into_iter()
            .flatten()
            .map(|item| {
                (
                    item.pointer(id).and_then(Value::as_str).unwrap_or_default().to_owned(),
                    item.pointer(title)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect()
    };
    match interactive["type"].as_str() {
        Some("button") => pairs(&interactive["action"]["buttons"], "/reply/id", "/reply/title"),
        Some("list") => interactive["action"]["sections"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|section| pairs(&section["rows"], "/id", "/title"))
            .collect(),
        other => panic!("not an interactive button or list message ({other:?}): {body:#}"),
    }
}

fn expected(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(id, title)| ((*id).to_owned(), (*title).to_owned()))
        .collect()
}

#[tokio::test]
async fn list_mode_sends_five_buttons_as_one_list() -> anyhow::Result<()> {
    let host = start(r#"{ mode = "list", list_button_label = "See options" }"#).await?;
    let (status, answer) = host.send(&buttons_message("+6591230001", 5, None)).await?;
    assert_eq!(status, 202, "{answer}");

    let sent = wait_sent(&host, 1).await?;
    assert_eq!(sent.len(), 1, "{sent:#?}");
    let body = &sent[0]["body"];
    assert_eq!(sent[0]["to"], "6591230001");
    assert_eq!(body["type"], "interactive");
    assert_eq!(body["interactive"]["type"], "list", "{body:#}");
    assert_eq!(body["interactive"]["action"]["button"], "See options");
    assert_eq!(body["interactive"]["body"]["text"], "How was your delivery?");
    assert_eq!(
        choices(body),
        expected(&[
            ("b0", "Choice 0"),
            ("b1", "Choice 1"),
            ("b2", "Choice 2"),
            ("b3", "Choice 3"),
            ("b4", "Choice 4")
        ])
    );
    Ok(())
}

#[tokio::test]
async fn progressive_mode_pages_six_buttons_and_answers_more_options_with_the_next_page() -> anyhow::Result<()> {
    let host = start(r#"{ mode = "progressive" }"#).await?;
    let (status, answer) = host.send(&buttons_message("+6591230002", 6, None)).await?;
    assert_eq!(status, 202, "{answer}");

    // The first step: two choices and "More options".
    let sent = wait_sent(&host, 1).await?;
    let first = &sent[0];
    assert_eq!(first["to"], "6591230002");
    assert_eq!(first["body"]["interactive"]["type"], "button", "{first:#}");
    assert_eq!(first["body"]["interactive"]["body"]["text"], "How was your delivery?");
    assert_eq!(
        choices(&first["body"]),
        expected(&[("b0", "Choice 0"), ("b1", "Choice 1"), ("menu:page:2", "More options")])
    );
    let id = answer["id"].as_str().unwrap();
    let message = host.wait_for(id, "read", WAIT).await?;
    assert_eq!(message["upstream"]["rewritten_by"], json!(["button-limit"]));

    // The customer taps "More options": the next page follows, to the same customer.
    tap(&host, first, "menu:page:2", "More options").await?;
    let sent = wait_sent(&host, 2).await?;
    let second = &sent[1];
    assert_eq!(second["to"], "6591230002");
    assert_eq!(second["body"]["interactive"]["type"], "button", "{second:#}");
    assert_eq!(second["body"]["interactive"]["body"]["text"], "How was your delivery?");
    assert_eq!(
        choices(&second["body"]),
        expected(&[("b2", "Choice 2"), ("b3", "Choice 3"), ("menu:page:3", "More options")])
    );

    // And again: the last page, without "More options".
    tap(&host, second, "menu:page:3", "More options").await?;
    let sent = wait_sent(&host, 3).await?;
    assert_eq!(
        choices(&sent[2]["body"]),
        expected(&[("b4", "Choice 4"), ("b5", "Choice 5")])
    );
    Ok(())
}

#[tokio::test]
async fn progressive_mode_offers_groups_first_and_a_groups_choices_when_it_is_answered() -> anyhow::Result<()> {
    let host = start(
        r#"{ mode = "progressive", group_titles = { orders = "Orders", returns = "Returns", account = "My account" } }"#,
    )
    .await?;
    let buttons: Vec<Value> = [
        ("orders/track", "Track an order"),
        ("orders/change", "Change an order"),
        ("returns/start", "Start a return"),
        ("returns/status", "Return status"),
        ("account/login", "Login trouble"),
        ("account/details", "Update details"),
        ("account/delete", "Delete account"),
        ("account/other", "Something else"),
    ]
    .iter()
    .map(|(id, title)| json!({"type": "reply", "reply": {"id": id, "title": title}}))
    .collect();
    let (status, answer) = host
        .send(&json!({
            "to": "+6591230003",
            "category": "utility",
            "content": {"type": "interactive", "interactive": {"type": "button",
                "header": {"type": "text", "text": "Help"},
                "body": {"text": "What can we help you with?"}, "action": {"buttons": buttons}}}
        }))
        .await?;
    assert_eq!(status, 202, "{answer}");

    let sent = wait_sent(&host, 1).await?;
    let first = &sent[0];
    assert_eq!(
        choices(&first["body"]),
        expected(&[
            ("menu:group:orders", "Orders"),
            ("menu:group:returns", "Returns"),
            ("menu:group:account", "My account")
        ])
    );

    // Four choices in the group: they follow as a list, with the business's own ids.
    tap(&host, first, "menu:group:account", "My account").await?;
    let sent = wait_sent(&host, 2).await?;
    let detail = &sent[1]["body"];
    assert_eq!(sent[1]["to"], "6591230003");
    assert_eq!(detail["interactive"]["type"], "list", "{detail:#}");
    assert_eq!(detail["interactive"]["header"]["text"], "Help");
    assert_eq!(detail["interactive"]["body"]["text"], "What can we help you with?");
    assert_eq!(
        choices(detail),
        expected(&[
            ("account/login", "Login trouble"),
            ("account/details", "Update details"),
            ("account/delete", "Delete account"),
            ("account/other", "Something else")
        ])
    );
    Ok(())
}
