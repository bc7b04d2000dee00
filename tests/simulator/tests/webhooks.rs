//! Status and inbound webhooks end to end: a real receiver checks every signature over
//! the raw bytes and the tests read what arrived.

#[path = "support/receiver.rs"]
mod support;

use std::collections::HashMap;

use serde_json::{Value, json};
use support::{Receiver, changes, eventually, fast_config, simulator, text_body};
use wasp_simulator::{Inbound, RunningSimulator, SimulatorConfig, WEBHOOK_ATTEMPTS};

const PHONE_NUMBER_ID: &str = "106540352242922";
const SECRET: &str = "test_app_secret";

async fn send(sim: &RunningSimulator, phone_number_id: &str, to: &str) -> anyhow::Result<String> {
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/v21.0/{phone_number_id}/messages", sim.base_url()))
        .json(&text_body(to, "hello"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(answer["messages"][0]["id"].as_str().unwrap_or_default().to_owned())
}

/// Statuses per wamid, in arrival order.
fn by_wamid(receiver: &Receiver) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for (wamid, status, _) in receiver.statuses() {
        out.entry(wamid).or_default().push(status);
    }
    out
}

#[tokio::test]
async fn statuses_arrive_signed_in_order_and_shaped_like_metas() -> anyhow::Result<()> {
    let receiver = Receiver::start(SECRET).await?;
    let sim = simulator(SimulatorConfig {
        display_phone_number: "15550783881".into(),
        waba_id: "102290129340398".into(),
        ..fast_config(Some(receiver.url.clone()))
    })
    .await?;
    let mut wamids = Vec::new();
    for to in ["+1 650-555-1234", "16505550000", "447700900123"] {
        wamids.push(send(&sim, PHONE_NUMBER_ID, to).await?);
    }
    receiver.wait_for_statuses(9).await?;
    eventually("an empty backlog", || sim.counters().webhook_backlog == 0).await?;

    let statuses = by_wamid(&receiver);
    for wamid in &wamids {
        assert_eq!(statuses[wamid], ["sent", "delivered", "read"], "{wamid}");
    }
    assert_eq!(receiver.bad_signatures(), 0);
    for post in receiver.posts() {
        assert!(post.raw.is_ascii());
        assert_eq!(post.user_agent, "facebookexternalua");
        assert_eq!(post.body["object"], "whatsapp_business_account");
        for (entry_id, value) in changes(&post.body) {
            assert_eq!(entry_id, "102290129340398");
            assert_eq!(value["messaging_product"], "whatsapp");
            assert_eq!(
                value["metadata"],
                json!({"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID})
            );
        }
    }
    let (_, _, first) = &receiver.statuses()[0];
    assert_eq!(first["recipient_id"], "16505551234");
    assert!(
        first["timestamp"]
            .as_str()
            .is_some_and(|t| t.len() >= 10 && t.bytes().all(|b| b.is_ascii_digit()))
    );
    assert_eq!(
        first["pricing"],
        json!({"billable": true, "pricing_model": "PMP", "type": "regular", "category": "utility"})
    );
    assert!(first.get("conversation").is_none());

    let counters = sim.counters();
    assert_eq!(counters.webhook_statuses, 9);
    assert_eq!(counters.webhook_posts, receiver.posts().len() as u64);
    assert_eq!(counters.webhook_failures, 0);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn failing_prefixes_get_sent_then_failed_with_131026() -> anyhow::Result<()> {
    let receiver = Receiver::start(SECRET).await?;
    let sim = simulator(SimulatorConfig {
        failing_prefixes: vec!["62".into()],
        ..fast_config(Some(receiver.url.clone()))
    })
    .await?;
    let failing = send(&sim, PHONE_NUMBER_ID, "+62 812 3456 7890").await?;
    let fine = send(&sim, PHONE_NUMBER_ID, "16505551234").await?;
    receiver.wait_for_statuses(5).await?;
    eventually("an empty backlog", || sim.counters().webhook_backlog == 0).await?;

    let statuses = by_wamid(&receiver);
    assert_eq!(statuses[&failing], ["sent", "failed"]);
    assert_eq!(statuses[&fine], ["sent", "delivered", "read"]);
    let failed = receiver
        .statuses()
        .into_iter()
        .find(|(_, status, _)| status == "failed")
        .map(|(_, _, value)| value)
        .unwrap_or_default();
    assert_eq!(failed["recipient_id"], "6281234567890");
    assert!(failed.get("pricing").is_none());
    assert_eq!(
        failed["errors"],
        json!([{
            "code": 131026,
            "title": "Message undeliverable",
            "message": "Message undeliverable",
            "error_data": {"details": "Message Undeliverable."},
            "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
        }])
    );
    let raw = receiver
        .posts()
        .into_iter()
        .find(|post| post.raw.windows(6).any(|w| w == b"131026"))
        .map(|post| post.raw)
        .unwrap_or_default();
    assert!(
        raw.windows(12).any(|w| w == br"https:\/\/de"),
        "slashes are escaped on the wire"
    );
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn batches_respect_the_maximum_and_group_by_phone_number() -> anyhow::Result<()> {
    let receiver = Receiver::start(SECRET).await?;
    let sim = simulator(SimulatorConfig {
        sent_after_ms: 150,
        delivered_after_ms: 60_000,
        read_ratio: 0.0,
        webhook_batch_max: 5,
        webhook_flush_ms: 100,
        ..fast_config(Some(receiver.url.clone()))
    })
    .await?;
    for index in 0..12 {
        let phone_number_id = if index % 2 == 0 { "111111" } else { "222222" };
        send(&sim, phone_number_id, &format!("1555000{index:04}")).await?;
    }
    receiver.wait_for_statuses(12).await?;

    let posts = receiver.posts();
    assert!(posts.len() >= 3, "12 statuses, at most 5 a POST");
    for post in &posts {
        let changes = changes(&post.body);
        let total: usize = changes
            .iter()
            .map(|(_, value)| value["statuses"].as_array().map_or(0, Vec::len))
            .sum();
        assert!((1..=5).contains(&total), "{total} statuses in one POST");
        let mut phone_number_ids: Vec<&str> = changes
            .iter()
            .map(|(_, value)| value["metadata"]["phone_number_id"].as_str().unwrap_or_default())
            .collect();
        for (_, value) in &changes {
            let id = &value["metadata"]["phone_number_id"];
            let wamids_for_this_number = value["statuses"].as_array().into_iter().flatten();
            for status in wamids_for_this_number {
                let sent = sim
                    .sent()
                    .into_iter()
                    .find(|sent| Some(sent.wamid.as_str()) == status["id"].as_str())
                    .map(|sent| sent.phone_number_id)
                    .unwrap_or_default();
                assert_eq!(Some(sent.as_str()), id.as_str(), "status under its own number");
            }
        }
        let before = phone_number_ids.len();
        phone_number_ids.dedup();
        assert_eq!(before, phone_number_ids.len(), "one change per number");
    }
    assert_eq!(
        changes(&posts[0].body).len(),
        2,
        "the first full batch holds both numbers"
    );
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn failed_posts_are_retried_with_the_same_bytes() -> anyhow::Result<()> {
    let receiver = Receiver::start(SECRET).await?;
    let sim = simulator(SimulatorConfig {
        read_ratio: 0.0,
        delivered_after_ms: 60_000,
        ..fast_config(Some(receiver.url.clone()))
    })
    .await?;
    receiver.fail_next(2);
    send(&sim, PHONE_NUMBER_ID, "16505551234").await?;
    receiver.wait_for_statuses(1).await?;
    eventually("the delivery to be counted", || sim.counters().webhook_statuses == 1).await?;
    assert_eq!(receiver.refused(), 2);
    let delivered = receiver.posts()[0].raw.clone();
    assert_eq!(receiver.refused_bodies(), [delivered.clone(), delivered]);
    let counters = sim.counters();
    assert_eq!(counters.webhook_failures, 2);
    assert_eq!(counters.webhook_statuses, 1);
    assert_eq!(counters.webhook_dropped, 0);

    receiver.fail_next(WEBHOOK_ATTEMPTS);
    send(&sim, PHONE_NUMBER_ID, "16505551235").await?;
    eventually("a dropped status", || sim.counters().webhook_dropped == 1).await?;
    let counters = sim.counters();
    assert_eq!(counters.webhook_failures, 2 + u64::from(WEBHOOK_ATTEMPTS));
    assert_eq!(receiver.statuses().len(), 1);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_unreachable_receiver_is_counted_not_fatal() -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let closed = format!("http://{}/hook", listener.local_addr()?);
    drop(listener);
    let sim = simulator(SimulatorConfig {
        read_ratio: 0.0,
        delivered_after_ms: 60_000,
        ..fast_config(Some(closed))
    })
    .await?;
    send(&sim, PHONE_NUMBER_ID, "16505551234").await?;
    eventually("a dropped status", || sim.counters().webhook_dropped == 1).await?;
    assert_eq!(sim.counters().webhook_failures, u64::from(WEBHOOK_ATTEMPTS));
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn inbound_messages_are_escaped_signed_and_shaped() -> anyhow::Result<()> {
    let receiver = Receiver::start(SECRET).await?;
    let sim = simulator(SimulatorConfig {
        read_ratio: 0.0,
        ..fast_config(Some(receiver.url.clone()))
    })
    .await?;
    sim.inject_inbound(
        Inbound::text(PHONE_NUMBER_ID, "+1 650 555 1234", "Olá 😮 see https://x.y/z").with_profile_name("Zoë"),
    )
    .await?;
    let wamid = send(&sim, PHONE_NUMBER_ID, "16505551234").await?;
    sim.inject_inbound(Inbound::button_reply(
        PHONE_NUMBER_ID,
        "16505551234",
        wamid.clone(),
        "confirm",
        "Confirm",
    ))
    .await?;
    sim.inject_inbound(Inbound::list_reply(
        PHONE_NUMBER_ID,
        "16505551234",
        wamid.clone(),
        "slot-am",
        "Morning",
        Some("9 to 12".into()),
    ))
    .await?;

    let messages = receiver.messages();
    assert_eq!(messages.len(), 3);
    assert_eq!(receiver.bad_signatures(), 0);
    let text_post = &receiver.posts()[0];
    let raw = String::from_utf8_lossy(&text_post.raw).into_owned();
    assert!(raw.is_ascii());
    assert!(
        raw.contains(r#""body":"Ol\u00e1 \ud83d\ude2e see https:\/\/x.y\/z""#),
        "{raw}"
    );
    assert!(
        raw.contains(r#""profile":{"name":"Zo\u00eb"},"wa_id":"16505551234""#),
        "{raw}"
    );
    assert_eq!(messages[0]["type"], "text");
    assert_eq!(messages[0]["from"], "16505551234");
    assert!(messages[0]["id"].as_str().is_some_and(|id| id.starts_with("wamid.")));
    assert!(messages[0].get("context").is_none());

    assert_eq!(messages[1]["type"], "interactive");
    assert_eq!(messages[1]["context"]["id"], wamid.as_str());
    assert_eq!(
        messages[1]["interactive"],
        json!({"type": "button_reply", "button_reply": {"id": "confirm", "title": "Confirm"}})
    );
    assert_eq!(
        messages[2]["interactive"],
        json!({"type": "list_reply", "list_reply": {"id": "slot-am", "title": "Morning", "description": "9 to 12"}})
    );
    let counters = sim.counters();
    assert_eq!(counters.webhook_messages, 3);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn faults_change_at_runtime() -> anyhow::Result<()> {
    let receiver = Receiver::start(SECRET).await?;
    let sim = simulator(fast_config(Some(receiver.url.clone()))).await?;
    let before = send(&sim, PHONE_NUMBER_ID, "6281100000").await?;
    sim.set_config(|config| config.failing_prefixes.push("62".into()));
    let after = send(&sim, PHONE_NUMBER_ID, "6281100000").await?;
    receiver.wait_for_statuses(5).await?;
    eventually("an empty backlog", || sim.counters().webhook_backlog == 0).await?;
    let statuses = by_wamid(&receiver);
    assert_eq!(statuses[&before], ["sent", "delivered", "read"]);
    assert_eq!(statuses[&after], ["sent", "failed"]);
    assert_eq!(sim.config().failing_prefixes, ["62"]);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn without_a_webhook_url_nothing_is_posted() -> anyhow::Result<()> {
    let sim = simulator(fast_config(None)).await?;
    send(&sim, PHONE_NUMBER_ID, "16505551234").await?;
    let counters = sim.counters();
    assert_eq!(counters.accepted, 1);
    assert_eq!(counters.webhook_backlog, 0);
    let refused = sim
        .inject_inbound(Inbound::text(PHONE_NUMBER_ID, "16505551234", "hi"))
        .await;
    assert!(refused.is_err());
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_sends_gets_every_status_in_large_batches() -> anyhow::Result<()> {
    const MESSAGES: usize = 2_000;
    const SENDERS: usize = 16;
    let receiver = Receiver::start(SECRET).await?;
    let sim = simulator(SimulatorConfig {
        webhook_batch_max: 1_000,
        webhook_flush_ms: 20,
        ..fast_config(Some(receiver.url.clone()))
    })
    .await?;
    let url = format!("{}/v21.0/{PHONE_NUMBER_ID}/messages", sim.base_url());
    let client = reqwest::Client::new();
    let mut senders = tokio::task::JoinSet::new();
    for sender in 0..SENDERS {
        let client = client.clone();
        let url = url.clone();
        senders.spawn(async move {
            for index in (sender..MESSAGES).step_by(SENDERS) {
                client
                    .post(&url)
                    .json(&text_body(&format!("1555{index:07}"), "load"))
                    .send()
                    .await?
                    .error_for_status()?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = senders.join_next().await {
        done??;
    }
    receiver.wait_for_statuses(MESSAGES * 3).await?;
    eventually("an empty backlog", || sim.counters().webhook_backlog == 0).await?;
    let counters = sim.counters();
    assert_eq!(counters.accepted, MESSAGES as u64);
    assert_eq!(counters.webhook_statuses, (MESSAGES * 3) as u64);
    assert_eq!(receiver.bad_signatures(), 0);
    let posts = receiver.posts().len();
    assert!(posts < MESSAGES, "{posts} POSTs: statuses are batched");
    let statuses = by_wamid(&receiver);
    assert_eq!(statuses.len(), MESSAGES);
    assert!(
        statuses
            .values()
            .all(|seen| seen.as_slice() == ["sent", "delivered", "read"])
    );
    sim.shutdown().await;
    Ok(())
}
