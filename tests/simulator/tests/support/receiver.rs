//! Test support: a webhook receiver (a small axum server) that checks
//! `X-Hub-Signature-256` over the raw bytes with its own HMAC, keeps every POST, and can
//! be told to fail the next few; plus a bounded poll helper. Shared by the integration
//! tests through `#[path]`.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use wasp_simulator::{RunningSimulator, Simulator, SimulatorConfig};

/// How long a poll waits before it gives up.
pub const POLL_LIMIT: Duration = Duration::from_secs(10);
const POLL_EVERY: Duration = Duration::from_millis(5);

/// One POST the receiver took.
#[derive(Clone, Debug)]
pub struct Post {
    /// The bytes exactly as received.
    pub raw: Bytes,
    /// The `X-Hub-Signature-256` header.
    pub signature: String,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// The parsed body.
    pub body: Value,
}

#[derive(Default)]
struct ReceiverState {
    secret: String,
    posts: Mutex<Vec<Post>>,
    refused_bodies: Mutex<Vec<Bytes>>,
    fail_next: AtomicU32,
    refused: AtomicU64,
    bad_signatures: AtomicU64,
}

/// A running webhook receiver.
pub struct Receiver {
    /// Where to point `webhook_url`.
    pub url: String,
    state: Arc<ReceiverState>,
    task: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Starts a receiver that verifies signatures with `secret`.
    pub async fn start(secret: &str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/webhooks/whatsapp", listener.local_addr()?);
        let state = Arc::new(ReceiverState {
            secret: secret.to_owned(),
            ..ReceiverState::default()
        });
        let app = Router::new()
            .route("/webhooks/whatsapp", post(receive))
            .with_state(Arc::clone(&state));
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("receiver stopped: {error}");
            }
        });
        Ok(Self { url, state, task })
    }

    /// Answers the next `count` POSTs with HTTP 500 (they are not kept).
    pub fn fail_next(&self, count: u32) {
        self.state.fail_next.store(count, Ordering::SeqCst);
    }

    /// POSTs answered 500 on purpose.
    pub fn refused(&self) -> u64 {
        self.state.refused.load(Ordering::SeqCst)
    }

    /// The raw bodies of the POSTs answered 500 on purpose.
    pub fn refused_bodies(&self) -> Vec<Bytes> {
        self.state
            .refused_bodies
            .lock()
            .map(|bodies| bodies.clone())
            .unwrap_or_default()
    }

    /// POSTs whose signature did not match (answered 401).
    pub fn bad_signatures(&self) -> u64 {
        self.state.bad_signatures.load(Ordering::SeqCst)
    }

    /// Every accepted POST, in arrival order.
    pub fn posts(&self) -> Vec<Post> {
        self.state.posts.lock().map(|posts| posts.clone()).unwrap_or_default()
    }

    /// Every status in every accepted POST, in order: (wamid, status, the status object).
    pub fn statuses(&self) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for post in self.posts() {
            for (_, value) in changes(&post.body) {
                for status in value["statuses"].as_array().into_iter().flatten() {
                    out.push((
                        status["id"].as_str().unwrap_or_default().to_owned(),
                        status["status"].as_str().unwrap_or_default().to_owned(),
                        status.clone(),
                    ));
                }
            }
        }
        out
    }

    /// Every inbound message in every accepted POST, in order.
    pub fn messages(&self) -> Vec<Value> {
        self.posts()
            .iter()
            .flat_map(|post| changes(&post.body))
            .flat_map(|(_, value)| value["messages"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Waits until `count` statuses have arrived.
    pub async fn wait_for_statuses(&self, count: usize) -> anyhow::Result<()> {
        eventually(&format!("{count} statuses"), || self.statuses().len() >= count).await
    }
}

/// The `(entry id, change value)` pairs of a webhook body.
pub fn changes(body: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for entry in body["entry"].as_array().into_iter().flatten() {
        let id = entry["id"].as_str().unwrap_or_default().to_owned();
        for change in entry["changes"].as_array().into_iter().flatten() {
            out.push((id.clone(), change["value"].clone()));
        }
    }
    out
}

async fn receive(State(state): State<Arc<ReceiverState>>, headers: HeaderMap, raw: Bytes) -> StatusCode {
    let failing = state
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(1))
        .is_ok();
    if failing {
        if let Ok(mut bodies) = state.refused_bodies.lock() {
            bodies.push(raw);
        }
        state.refused.fetch_add(1, Ordering::SeqCst);
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let signature = header("x-hub-signature-256");
    if signature != expected_signature(&state.secret, &raw) {
        state.bad_signatures.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&raw) else {
        return StatusCode::BAD_REQUEST;
    };
    let post = Post {
        raw,
        signature,
        user_agent: header("user-agent"),
        body,
    };
    if let Ok(mut posts) = state.posts.lock() {
        posts.push(post);
    }
    StatusCode::OK
}

/// `sha256=<hex>` computed here, independently of the simulator's signer.
pub fn expected_signature(secret: &str, raw: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(raw);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Polls `done` until it holds, for at most [`POLL_LIMIT`].
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + POLL_LIMIT;
    while !done() {
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    Ok(())
}

/// Starts a simulator on a free loopback port.
pub async fn simulator(config: SimulatorConfig) -> anyhow::Result<RunningSimulator> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the simulator")?;
    Simulator::start(config, listener).await
}

/// Fast delays for tests: statuses within tens of milliseconds.
pub fn fast_config(webhook_url: Option<String>) -> SimulatorConfig {
    SimulatorConfig {
        webhook_url,
        app_secret: "test_app_secret".into(),
        sent_after_ms: 5,
        delivered_after_ms: 10,
        read_after_ms: 10,
        read_ratio: 1.0,
        webhook_flush_ms: 5,
        ..SimulatorConfig::default()
    }
}

/// A text message body.
pub fn text_body(to: &str, text: &str) -> Value {
    serde_json::json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"body": text}
    })
}
