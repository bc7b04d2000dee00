//! The fault modes end to end: connection resets (before and after the message was
//! accepted), latency jitter, delayed, duplicated and reordered webhooks, and the error
//! code of a failing region. A real receiver checks every webhook signature; the tests
//! poll with a bounded timeout.

#[path = "support/receiver.rs"]
mod support;

use std::collections::HashMap;
use std::io::ErrorKind;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Receiver, eventually, fast_config, simulator, text_body};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wasp_simulator::{RunningSimulator, SimulatorConfig};

const PHONE_NUMBER_ID: &str = "106540352242922";
const SECRET: &str = "test_app_secret";
/// How long a single request may take before a test calls it hung.
const REQUEST_LIMIT: Duration = Duration::from_secs(5);

fn messages_url(sim: &RunningSimulator) -> String {
    format!("{}/v21.0/{PHONE_NUMBER_ID}/messages", sim.base_url())
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().timeout(REQUEST_LIMIT).build()?)
}

/// Sends one text and returns the answer, or the transport error.
async fn try_send(client: &reqwest::Client, sim: &RunningSimulator, to: &str) -> Result<Value, reqwest::Error> {
    client
        .post(messages_url(sim))
        .json(&text_body(to, "hello"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
}

async fn send(sim: &RunningSimulator, to: &str) -> anyhow::Result<String> {
    let answer = try_send(&client()?, sim, to).await?;
    Ok(answer["messages"][0]["id"].as_str().unwrap_or_default().to_owned())
}

/// Writes one send by hand and reads until the server closes: the error it closed with.
async fn raw_send(sim: &RunningSimulator) -> anyhow::Result<std::io::Result<Vec<u8>>> {
    let body = text_body("16505551234", "hello").to_string();
    let request = format!(
        "POST /v21.0/{PHONE_NUMBER_ID}/messages HTTP/1.1\r\nHost: {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        sim.local_addr(),
        body.len()
    );
    let mut stream = TcpStream::connect(sim.local_addr()).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(REQUEST_LIMIT, stream.read_to_end(&mut answer)).await?;
    Ok(read.map(|_| answer))
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
async fn reset_before_accept_sends_an_rst_and_keeps_nothing() -> anyhow::Result<()> {
    let sim = simulator(SimulatorConfig {
        reset_rate: 1.0,
        ..fast_config(None)
    })
    .await?;

    let closed = raw_send(&sim).await?;
    match closed {
        Err(error) => assert_eq!(error.kind(), ErrorKind::ConnectionReset, "{error}"),
        Ok(answer) => panic!(
            "expected a reset, got {} bytes: {}",
            answer.len(),
            String::from_utf8_lossy(&answer)
        ),
    }

    let started = Instant::now();
    let error = try_send(&client()?, &sim, "16505551234").await.expect_err("no answer");
    assert!(!error.is_timeout(), "a reset, not a timeout: {error}");
    assert!(started.elapsed() < REQUEST_LIMIT);

    let counters = sim.counters();
    assert_eq!(counters.requests, 2);
    assert_eq!(counters.connection_resets, 2);
    assert_eq!(counters.accepted, 0);
    assert!(sim.sent().is_empty());
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn reset_after_accept_keeps_the_message_and_its_statuses() -> anyhow::Result<()> {
    let receiver = Receiver::start(SECRET).await?;
    let sim = simulator(SimulatorConfig {
        reset_rate: 1.0,
        reset_after_accept: true,
        ..fast_config(Some(receiver.url.clone()))
    })
    .await?;

    let error = try_send(&client()?, &sim, "16505551234").await.expect_err("no answer");
    assert!(!error.is_timeout(), "a reset, not a timeout: {error}");
    let sent = sim.sent();
    assert_eq!(sent.len(), 1, "the message arrived although no answer did");
    receiver.wait_for_statuses(3).await?;
    assert_eq!(by_wamid(&receiver)[&sent[0].wamid], ["sent", "delivered", "read"]);
    let counters = sim.counters();
    assert_eq!((counters.accepted, counters.connection_resets), (1, 1));
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn reset_rate_resets_that_share_and_other_sends_are_answered() -> anyhow::Result<()> {
    let sim = simulator(SimulatorConfig {
        reset_rate: 0.5,
        ..fast_config(None)
    })
    .await?;
    let client = client()?;
    let mut failed = 0;
    let mut answered = 0;
    for _ in 0..40 {
        match try_send(&client, &sim, "16505551234").await {
            Ok(answer) => {
                assert!(answer["messages"][0]["id"].is_string());
                answered += 1;
            }
            Err(error) => {
                assert!(!error.is_timeout(), "{error}");
                failed += 1;
            }
        }
    }
    let counters = sim.counters();
    assert_eq!(counters.connection_resets, failed);
    assert_eq!(counters.accepted, answered);
    assert!(failed > 0 && answered > 0, "{failed} reset, {answered} answered");
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn latency_jitter_spreads_answers_within_bounds() -> anyhow::Result<()> {
    let sim = simulator(SimulatorConfig {
        latency_ms: 20,
        latency_jitter_ms: 60,
        ..fast_config(None)
    })
    .await?;
    let client = client()?;
    let mut took = Vec::new();
    for _ in 0..12 {
        let started = Instant::now();
        try_send(&client, &sim, "16505551234").await?;
        took.push(started.elapsed());
    }
    let fastest = took.iter().min().copied().unwrap_or_default();
    let slowest = took.iter().max().copied().unwrap_or_default();
    assert!(fastest >= Duration::from_millis(20), "{took:?}");
    assert!(slowest < Duration::from_millis(20 + 60 + 500), "{took:?}");
    assert!(slowest - fastest >= Duration::from_millis(5), "jittered: {took:?}");
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn webhook_delay_holds_statuses_back() -> anyhow::Result<()> {
    let receiver = Receiver::start(SECRET).await?;
    let sim = simulator(SimulatorConfig {
        sent_after_ms: 0,
        webhook_delay_ms: 250,
        ..fast_config(Some(receiver.url.clone()))
    })
    .await?;
    let started = Instant::now();
    let wamid = send(&sim, "16505551234").await?;
    receiver.wait_for_statuses(1).await?;
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "first status after {:?}",
        started.elapsed()
    );
    receiver.wait_for_statuses(3).await?;
    assert_eq!(by_wamid(&receiver)[&wamid], ["sent", "delivered", "read"]);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn duplicated_statuses_come_again_in_a_later_post() -> anyhow::Result<()> {
    let receiver = Receiver::start(SECRET).await?;
    let sim = simulator(SimulatorConfig {
        webhook_duplicate_rate: 1.0,
        ..fast_config(Some(receiver.url.clone()))
    })
    .await?;
    let mut wamids = Vec::new();
    for to in ["16505551234", "16505550000", "447700900123"] {
        wamids.push(send(&sim, to).await?);
    }
    receiver.wait_for_statuses(18).await?;
    eventually("an empty backlog", || sim.counters().webhook_backlog == 0).await?;

    // (wamid, status) → the index of every POST it came in, and its objects.
    let mut seen: HashMap<(String, String), Vec<(usize, Value)>> = HashMap::new();
    for (index, post) in receiver.posts().iter().enumerate() {
        for (_, value) in support::changes(&post.body) {
            for status in value["statuses"].as_array().into_iter().flatten() {
                let key = (
                    status["id"].as_str().unwrap_or_default().to_owned(),
                    status["status"].as_str().unwrap_or_default().to_owned(),
                );
                seen.entry(key).or_default().push((index, status.clone()));
            }
        }
    }
    assert_eq!(seen.len(), 9);
    for ((wamid, status), copies) in &seen {
        assert!(wamids.contains(wamid));
        assert_eq!(copies.len(), 2, "{wamid} {status} twice");
        assert!(copies[0].0 < copies[1].0, "the copy comes in a later POST");
        assert_eq!(copies[0].1, copies[1].1, "the copy is identical");
    }
    let counters = sim.counters();
    assert_eq!(counters.webhook_duplicates, 9);
    assert_eq!(counters.webhook_statuses, 18);
    assert_eq!(receiver.bad_signatures(), 0);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn reordered_posts_can_put_read_before_delivered() -> anyhow::Result<()> {
    let receiver = Receiver::start(SECRET).await?;
    let sim = simulator(SimulatorConfig {
        sent_after_ms: 0,
        delivered_after_ms: 0,
        read_after_ms: 0,
        webhook_reorder: true,
        ..fast_config(Some(receiver.url.clone()))
    })
    .await?;
    let mut wamids = Vec::new();
    for index in 0..20 {
        wamids.push(send(&sim, &format!("1650555{index:04}")).await?);
    }
    receiver.wait_for_statuses(60).await?;
    let statuses = by_wamid(&receiver);
    let mut out_of_order = 0;
    for wamid in &wamids {
        let mut got = statuses[wamid].clone();
        if got != ["sent", "delivered", "read"] {
            out_of_order += 1;
        }
        got.sort();
        assert_eq!(got, ["delivered", "read", "sent"], "{wamid}: all three, once");
    }
    assert!(out_of_order > 0, "some statuses arrive out of order");
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn failing_region_error_code_chooses_the_failure() -> anyhow::Result<()> {
    let receiver = Receiver::start(SECRET).await?;
    let sim = simulator(SimulatorConfig {
        failing_prefixes: vec!["62".into()],
        failing_region_error_code: Some(131049),
        ..fast_config(Some(receiver.url.clone()))
    })
    .await?;
    let first = send(&sim, "+62 812 3456 7890").await?;
    receiver.wait_for_statuses(2).await?;

    let control = client()?;
    let changed: Value = control
        .put(format!("{}/_sim/config", sim.base_url()))
        .json(&json!({"failing_region_error_code": 131000}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(changed["failing_region_error_code"], 131000);
    let second = send(&sim, "6281200000000").await?;
    receiver.wait_for_statuses(4).await?;

    let failed: HashMap<String, Value> = receiver
        .statuses()
        .into_iter()
        .filter(|(_, status, _)| status == "failed")
        .map(|(wamid, _, value)| (wamid, value))
        .collect();
    assert_eq!(
        failed[&first]["errors"],
        json!([{
            "code": 131049,
            "title": "This message was not delivered to maintain healthy ecosystem engagement.",
            "message": "This message was not delivered to maintain healthy ecosystem engagement.",
            "error_data": {
                "details": "In order to maintain a healthy ecosystem engagement, the message failed to be delivered."
            },
            "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
        }])
    );
    assert_eq!(failed[&second]["errors"][0]["code"], 131000);

    let refused = control
        .put(format!("{}/_sim/config", sim.base_url()))
        .json(&json!({"failing_region_error_code": 42}))
        .send()
        .await?;
    assert_eq!(refused.status(), 400);
    let refused: Value = refused.json().await?;
    assert_eq!(refused["error"]["field"], "failing_region_error_code");
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn put_config_sets_every_fault_key() -> anyhow::Result<()> {
    let sim = simulator(fast_config(None)).await?;
    let control = client()?;
    let url = format!("{}/_sim/config", sim.base_url());
    let patch = json!({
        "latency_jitter_ms": 7,
        "reset_rate": 0.25,
        "reset_after_accept": true,
        "failing_region_error_code": 131047,
        "webhook_delay_ms": 40,
        "webhook_duplicate_rate": 0.5,
        "webhook_reorder": true
    });
    let shown: Value = control
        .put(&url)
        .json(&patch)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    for (key, value) in patch.as_object().into_iter().flatten() {
        assert_eq!(&shown[key], value, "{key}");
    }
    let config = sim.config();
    assert_eq!(config.reset_rate, 0.25);
    assert!(config.reset_after_accept && config.webhook_reorder);

    for (key, value) in [("reset_rate", json!(1.5)), ("webhook_duplicate_rate", json!(-1))] {
        let refused = control.put(&url).json(&json!({ key: value })).send().await?;
        assert_eq!(refused.status(), 400, "{key}");
        let body: Value = refused.json().await?;
        assert_eq!(body["error"]["field"], key);
    }
    sim.shutdown().await;
    Ok(())
}
