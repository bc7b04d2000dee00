//! Callbacks to the business, black-box: a small axum receiver in the test gets every state
//! change of a message that asked for callbacks, in order and signed; failed deliveries are
//! retried, then dead-lettered, and a replay delivers them; a token's default URL is used when
//! a message names none; a bad `callback_url` is a 400 naming the field.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot read what it expects fails loudly

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, http::StatusCode, routing::post};
use serde_json::{Value, json};
use wasp_integration::{HostOptions, TestHost, history_statuses, sign, text_message};

const SECRET: &str = "test-callback-secret";

/// One POST the receiver got.
#[derive(Debug, Clone)]
struct Received {
    body: Value,
    raw: Vec<u8>,
    signature: String,
    delivery: String,
    seq: i64,
    answered: u16,
}

#[derive(Default)]
struct Script {
    /// Answer 500 to this many requests first.
    fail_first: AtomicU32,
    /// Answer 500 to everything while set.
    always_fail: AtomicBool,
    received: Mutex<Vec<Received>>,
}

async fn hook(State(script): State<Arc<Script>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let failing = script.always_fail.load(Ordering::SeqCst)
        || script
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(1))
            .is_ok();
    let status = if failing {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    script.received.lock().unwrap().push(Received {
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw: body.to_vec(),
        signature: header("x-wasp-signature-256"),
        delivery: header("x-wasp-delivery"),
        seq: header("x-wasp-event-seq").parse().unwrap_or(-1),
        answered: status.as_u16(),
    });
    status
}

/// Starts a receiver; answers its URL and its script.
async fn receiver() -> anyhow::Result<(String, Arc<Script>)> {
    let script = Arc::new(Script::default());
    let router = Router::new().route("/hook", post(hook)).with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok((url, script))
}

fn options(max_attempts: u32) -> HostOptions {
    HostOptions {
        extra_config: format!(
            "[callbacks]\nsecret = \"{SECRET}\"\nmax_attempts = {max_attempts}\ninitial_backoff_ms = 20\n\
             max_backoff_ms = 100\npoll_interval_ms = 20\ntimeout_ms = 2000\n"
        ),
        ..HostOptions::default()
    }
}

/// The delivered (2xx-answered) callbacks of message `id`, in arrival order.
fn delivered(script: &Script, id: &str) -> Vec<Received> {
    script
        .received
        .lock()
        .unwrap()
        .iter()
        .filter(|received| received.answered == 200 && received.body["id"] == id)
        .cloned()
        .collect()
}

/// Waits until the receiver has taken a `status` callback of message `id`.
async fn wait_delivered(script: &Script, id: &str, status: &str, timeout: Duration) -> anyhow::Result<Vec<Received>> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = delivered(script, id);
        if got.iter().any(|received| received.body["status"] == status) {
            return Ok(got);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no {status} callback for {id} after {timeout:?}; got {:?}",
            got.iter()
                .map(|received| received.body["status"].clone())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn statuses(received: &[Received]) -> Vec<String> {
    received
        .iter()
        .map(|received| received.body["status"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn every_state_change_is_posted_in_order_and_signed() -> anyhow::Result<()> {
    let (url, script) = receiver().await?;
    let host = TestHost::start(options(8)).await?;
    let mut message = text_message("+6591230001", "your code is 123456");
    message["callback_url"] = json!(url);
    let (status, body) = host.send(&message).await?;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let view = host.wait_for(&id, "read", Duration::from_secs(20)).await?;
    let got = wait_delivered(&script, &id, "read", Duration::from_secs(20)).await?;

    // One callback per history row, in the history's order.
    assert_eq!(statuses(&got), history_statuses(&view), "{got:#?}");
    assert_eq!(statuses(&got).first().map(String::as_str), Some("accepted"));
    let mut deliveries = HashSet::new();
    let mut last_seq = 0;
    for received in &got {
        assert_eq!(
            received.signature,
            sign(SECRET, &received.raw),
            "signature of {:?}",
            received.body
        );
        assert!(deliveries.insert(received.delivery.clone()), "delivery ids are unique");
        assert!(
            received.seq > last_seq,
            "event seq increases: {} after {last_seq}",
            received.seq
        );
        last_seq = received.seq;
        let object = received.body.as_object().unwrap();
        assert!(
            !object.contains_key("content") && !received.body.to_string().contains("123456"),
            "never the body"
        );
        assert_eq!(received.body["to"], "+6591230001");
        assert_eq!(received.body["attempt"], 1);
        assert!(received.body["at"].as_str().unwrap().ends_with('Z'));
        assert!(received.body["cause"].is_string());
    }
    Ok(())
}

#[tokio::test]
async fn a_failing_receiver_gets_the_callback_on_a_later_attempt() -> anyhow::Result<()> {
    let (url, script) = receiver().await?;
    script.fail_first.store(2, Ordering::SeqCst);
    let host = TestHost::start(options(8)).await?;
    let mut message = text_message("+6591230002", "hello");
    message["callback_url"] = json!(url);
    let (status, body) = host.send(&message).await?;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let view = host.wait_for(&id, "read", Duration::from_secs(20)).await?;
    let got = wait_delivered(&script, &id, "read", Duration::from_secs(20)).await?;

    let all = script.received.lock().unwrap().clone();
    let first: Vec<&Received> = all
        .iter()
        .filter(|received| received.body["status"] == "accepted")
        .collect();
    assert_eq!(first.len(), 3, "accepted: two 500s, then 200: {first:#?}");
    assert_eq!(
        first.iter().map(|received| received.answered).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    assert_eq!(
        first
            .iter()
            .map(|received| received.body["attempt"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(
        first.iter().all(|received| received.delivery == first[0].delivery),
        "same delivery id on retries"
    );
    // Nothing overtook the retried callback.
    assert_eq!(statuses(&got), history_statuses(&view));
    Ok(())
}

#[tokio::test]
async fn dead_callbacks_are_listed_and_a_replay_delivers_them() -> anyhow::Result<()> {
    let (url, script) = receiver().await?;
    script.always_fail.store(true, Ordering::SeqCst);
    let host = TestHost::start(options(2)).await?;
    let mut message = text_message("+6591230003", "hello");
    message["callback_url"] = json!(url);
    let (status, body) = host.send(&message).await?;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let view = host.wait_for(&id, "read", Duration::from_secs(20)).await?;
    let expected = history_statuses(&view);

    // Every callback fails twice and ends dead.
    let deadline = Instant::now() + Duration::from_secs(20);
    let dead = loop {
        let (status, page) = host
            .call(reqwest::Method::GET, "/v1/callbacks/dead?limit=500", None)
            .await?;
        assert_eq!(status, 200, "{page}");
        let dead = page["callbacks"].as_array().unwrap().clone();
        if dead.len() == expected.len() {
            break dead;
        }
        anyhow::ensure!(Instant::now() < deadline, "dead callbacks: {page:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        dead.iter()
            .all(|callback| callback["attempts"] == 2 && callback["message_id"] == id.as_str())
    );
    assert!(
        dead.iter()
            .all(|callback| callback["last_error"].as_str().unwrap().contains("500"))
    );

    // Cursor paging walks the same list.
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/v1/callbacks/dead?limit=2&cursor={cursor}"),
            None => "/v1/callbacks/dead?limit=2".to_owned(),
        };
        let (status, page) = host.call(reqwest::Method::GET, &path, None).await?;
        assert_eq!(status, 200, "{page}");
        walked.extend(
            page["callbacks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|callback| callback["id"].clone()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        walked,
        dead.iter().map(|callback| callback["id"].clone()).collect::<Vec<_>>()
    );
    let (status, body) = host
        .call(reqwest::Method::GET, "/v1/callbacks/dead?limit=0", None)
        .await?;
    assert_eq!((status, body["error"]["field"].clone()), (400, json!("limit")));

    // The receiver is fixed: replay one by id, then the rest.
    script.always_fail.store(false, Ordering::SeqCst);
    let first = dead[0]["id"].clone();
    let (status, body) = host
        .call(
            reqwest::Method::POST,
            "/v1/callbacks/dead/replay",
            Some(json!({"ids": [first]})),
        )
        .await?;
    assert_eq!((status, body["replayed"].clone()), (200, json!(1)), "{body}");
    wait_delivered(&script, &id, "accepted", Duration::from_secs(10)).await?;
    let (status, body) = host
        .call(
            reqwest::Method::POST,
            "/v1/callbacks/dead/replay",
            Some(json!({"all": true})),
        )
        .await?;
    assert_eq!(
        (status, body["replayed"].clone()),
        (200, json!(expected.len() - 1)),
        "{body}"
    );
    let got = wait_delivered(&script, &id, "read", Duration::from_secs(10)).await?;
    assert_eq!(statuses(&got), expected, "replayed in outbox order");
    for received in &got {
        assert_eq!(received.signature, sign(SECRET, &received.raw));
    }
    let (_, page) = host.call(reqwest::Method::GET, "/v1/callbacks/dead", None).await?;
    assert_eq!(page["callbacks"], json!([]));
    let (status, body) = host
        .call(reqwest::Method::POST, "/v1/callbacks/dead/replay", Some(json!({})))
        .await?;
    assert_eq!((status, body["error"]["field"].clone()), (400, json!("ids")));

    // The replays are audited.
    let (_, audit) = host
        .call(reqwest::Method::GET, "/v1/audit?action=callback.replay", None)
        .await?;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 3, "{audit:#}");
    Ok(())
}

#[tokio::test]
async fn a_tokens_default_url_is_used_when_the_message_names_none() -> anyhow::Result<()> {
    let (url, script) = receiver().await?;
    let host = TestHost::start(options(8)).await?;
    let (status, created) = host
        .call(
            reqwest::Method::POST,
            "/v1/tokens",
            Some(json!({"name": "shop", "scopes": ["messages:send"], "callback_url": url})),
        )
        .await?;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["callback_url"], url.as_str());
    let secret = created["callback_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let token = created["token"].as_str().unwrap();

    let (_, listed) = host.call(reqwest::Method::GET, "/v1/tokens", None).await?;
    let entry = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["id"] == created["id"])
        .unwrap()
        .clone();
    assert_eq!(entry["callback_url"], url.as_str());
    assert!(!listed.to_string().contains(&secret), "the secret is shown once");

    let (status, body) = host
        .call_as(
            Some(token),
            reqwest::Method::POST,
            "/v1/messages",
            Some(text_message("+6591230004", "hello")),
        )
        .await?;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let view = host.wait_for(&id, "read", Duration::from_secs(20)).await?;
    let got = wait_delivered(&script, &id, "read", Duration::from_secs(20)).await?;
    assert_eq!(statuses(&got), history_statuses(&view));
    for received in &got {
        assert_eq!(
            received.signature,
            sign(&secret, &received.raw),
            "signed with the token's secret"
        );
    }

    // A message with no callback anywhere sends none.
    let (status, body) = host.send(&text_message("+6591230005", "hello")).await?;
    assert_eq!(status, 202, "{body}");
    let quiet = body["id"].as_str().unwrap().to_owned();
    host.wait_for(&quiet, "read", Duration::from_secs(20)).await?;
    assert!(delivered(&script, &quiet).is_empty());
    Ok(())
}

#[tokio::test]
async fn a_bad_callback_url_is_refused_naming_the_field() -> anyhow::Result<()> {
    let host = TestHost::start(options(8)).await?;
    for bad in ["http://hooks.example.com/wasp", "ftp://hooks.example.com/", "not a url"] {
        let mut message = text_message("+6591230006", "hello");
        message["callback_url"] = json!(bad);
        let (status, body) = host.send(&message).await?;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["field"], "callback_url", "{bad}: {body}");
    }
    let mut message = text_message("+6591230006", "hello");
    message["callback_url"] = json!("http://hooks.example.com/wasp");
    let (status, body) = host.send_batch(&[text_message("+6591230007", "fine"), message]).await?;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body["results"][1]["error"]["field"], "messages[1].callback_url",
        "{body}"
    );
    let (status, body) = host
        .call(
            reqwest::Method::POST,
            "/v1/tokens",
            Some(json!({"name": "bad", "scopes": ["messages:send"], "callback_url": "http://example.com/"})),
        )
        .await?;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (400, json!("callback_url")),
        "{body}"
    );
    Ok(())
}

#[tokio::test]
async fn callbacks_waiting_at_a_crash_are_delivered_after_the_restart() -> anyhow::Result<()> {
    let (url, script) = receiver().await?;
    script.always_fail.store(true, Ordering::SeqCst);
    let mut host = TestHost::start(options(1_000)).await?;
    let mut message = text_message("+6591230008", "hello");
    message["callback_url"] = json!(url);
    let (status, body) = host.send(&message).await?;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let view = host.wait_for(&id, "read", Duration::from_secs(20)).await?;

    // kill -9 while every callback is still in the outbox; the receiver recovers meanwhile.
    host.kill_hard()?;
    assert!(delivered(&script, &id).is_empty());
    script.always_fail.store(false, Ordering::SeqCst);
    host.restart().await?;
    let got = wait_delivered(&script, &id, "read", Duration::from_secs(20)).await?;
    assert_eq!(statuses(&got), history_statuses(&view));
    Ok(())
}
