//! The live event stream, black-box: `GET /v1/events/stream` opens with the tick history, shows
//! a message going accepted → sent → delivered → read in order and a tick each second, sends
//! only the kinds `types` asks for, and refuses a missing token and an unknown type; `wasp top
//! --once` prints a screen from it, and says what is wrong with a bad token or URL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot read what it expects fails loudly

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use wasp::cli::top::{SseEvent, SseReader};
use wasp_integration::{HostOptions, TOKEN, TestHost, text_message, wasp_binary};

/// Longest the test waits for any one event.
const WAIT: Duration = Duration::from_secs(20);

/// An open stream, read event by event.
struct Stream {
    response: reqwest::Response,
    reader: SseReader,
    pending: std::collections::VecDeque<SseEvent>,
}

impl Stream {
    async fn open(host: &TestHost, query: &str) -> anyhow::Result<Self> {
        let response = host
            .client
            .get(format!("{}/v1/events/stream{query}", host.url))
            .bearer_auth(TOKEN)
            .send()
            .await?;
        anyhow::ensure!(response.status() == 200, "the stream answered {}", response.status());
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Ok(Self {
            response,
            reader: SseReader::default(),
            pending: Default::default(),
        })
    }

    /// The next event (comments are not events).
    async fn next(&mut self) -> anyhow::Result<SseEvent> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
            }
            let chunk = tokio::time::timeout(WAIT, self.response.chunk())
                .await
                .map_err(|_| anyhow::anyhow!("no event within {WAIT:?}"))??
                .ok_or_else(|| anyhow::anyhow!("the stream ended"))?;
            self.pending.extend(self.reader.push(&chunk));
        }
    }

    /// Events up to and including the first that `done` accepts.
    async fn until(
        &mut self,
        mut done: impl FnMut(&SseEvent, &Value) -> bool,
    ) -> anyhow::Result<Vec<(SseEvent, Value)>> {
        let mut seen = Vec::new();
        loop {
            let event = self.next().await?;
            let data: Value = serde_json::from_str(&event.data)?;
            let last = done(&event, &data);
            seen.push((event, data));
            if last {
                return Ok(seen);
            }
        }
    }
}

async fn send(host: &TestHost, to: &str) -> anyhow::Result<String> {
    let (status, answer) = host.send(&text_message(to, "hello")).await?;
    anyhow::ensure!(status == 202, "send answered {status}: {answer}");
    Ok(answer["id"].as_str().unwrap().to_owned())
}

fn is_status(event: &SseEvent, data: &Value, id: &str, status: &str) -> bool {
    event.kind == "message" && data["id"] == id && data["status"] == status
}

#[tokio::test]
async fn a_message_goes_by_in_order_and_ticks_count_it() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let mut stream = Stream::open(&host, "").await?;
    let history = stream.next().await?;
    assert_eq!(history.kind, "history");
    let history: Value = serde_json::from_str(&history.data)?;
    assert_eq!(history["interval_ms"], 10_000);
    assert!(history["samples"].is_array(), "{history}");

    let id = send(&host, "+6591234567").await?;
    let seen = stream.until(|event, data| is_status(event, data, &id, "read")).await?;
    let statuses: Vec<&str> = seen
        .iter()
        .filter(|(event, data)| event.kind == "message" && data["id"] == id.as_str())
        .map(|(_, data)| data["status"].as_str().unwrap())
        .collect();
    let order = ["accepted", "sent", "delivered", "read"];
    let positions: Vec<usize> = order
        .iter()
        .map(|status| {
            statuses
                .iter()
                .position(|seen| seen == status)
                .unwrap_or_else(|| panic!("no {status} event for {id}: {statuses:?}"))
        })
        .collect();
    assert!(positions.is_sorted(), "out of order: {statuses:?}");
    let accepted = &seen
        .iter()
        .find(|(event, data)| event.kind == "message" && data["status"] == "accepted")
        .unwrap()
        .1;
    assert_eq!(accepted["category"], "utility");
    assert_eq!(accepted["region"], 65);
    assert!(accepted["at_ms"].as_i64().unwrap() > 0);

    // The ticks count it: the first tick that has the read in its totals.
    let ticks = stream
        .until(|event, data| event.kind == "tick" && data["since_start"]["read"].as_u64() >= Some(1))
        .await?;
    let (_, tick) = ticks.last().unwrap();
    for step in ["accepted", "sent", "delivered", "read"] {
        assert!(tick["since_start"][step].as_u64() >= Some(1), "{step}: {tick}");
    }
    assert!(tick["node_id"].as_str().is_some_and(|node| !node.is_empty()), "{tick}");
    assert!(tick["backlog"].is_u64() && tick["sending"].is_u64(), "{tick}");
    assert_eq!(tick["backlog_by_priority"].as_object().unwrap().len(), 4, "{tick}");
    assert_eq!(tick["regions_degraded"], serde_json::json!([]));
    // Keys sorted, as in every JSON answer of the API.
    for (event, data) in seen.iter().chain(&ticks) {
        assert_eq!(serde_json::to_string(data)?, event.data);
    }
    Ok(())
}

#[tokio::test]
async fn types_pick_the_kinds_sent() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let mut everything = Stream::open(&host, "").await?;
    let mut messages = Stream::open(&host, "?types=message").await?;
    let mut ticks = Stream::open(&host, "?types=tick").await?;

    let first = send(&host, "+4915112345678").await?;
    everything
        .until(|event, data| is_status(event, data, &first, "read"))
        .await?;
    // A tick after the read, on the stream that gets everything...
    everything.until(|event, _| event.kind == "tick").await?;
    // ...so it was published before this second message's events.
    let second = send(&host, "+4915112345678").await?;
    let seen = messages
        .until(|event, data| is_status(event, data, &second, "accepted"))
        .await?;
    let kinds: Vec<&str> = seen.iter().map(|(event, _)| event.kind.as_str()).collect();
    assert!(kinds.iter().all(|kind| *kind == "message"), "{kinds:?}");
    assert!(
        seen.iter()
            .any(|(_, data)| data["id"] == first.as_str() && data["status"] == "read")
    );

    let seen = ticks
        .until(|event, data| event.kind == "tick" && data["since_start"]["accepted"].as_u64() >= Some(2))
        .await?;
    assert_eq!(seen[0].0.kind, "history");
    assert!(seen[1..].iter().all(|(event, _)| event.kind == "tick"), "{seen:?}");
    Ok(())
}

#[tokio::test]
async fn the_stream_needs_a_token_and_known_types() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let (status, body) = host.call_as(None, Method::GET, "/v1/events/stream", None).await?;
    assert_eq!(status, 401, "{body}");
    let (status, body) = host
        .call(Method::GET, "/v1/events/stream?types=message,bogus", None)
        .await?;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "types", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("bogus"), "{body}");
    let (status, body) = host.call(Method::GET, "/v1/events/stream?since=1", None).await?;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "since", "{body}");
    Ok(())
}

async fn top(args: &[&str]) -> anyhow::Result<std::process::Output> {
    let output = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new(wasp_binary()?)
            .arg("top")
            .args(args)
            .env_remove("WASP_URL")
            .env_remove("WASP_ADMIN_TOKEN")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| anyhow::anyhow!("wasp top {args:?} did not end within {WAIT:?}"))??;
    Ok(output)
}

#[tokio::test]
async fn wasp_top_prints_a_screen_and_says_what_is_wrong() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let id = send(&host, "+6591234567").await?;
    host.wait_for(&id, "read", WAIT).await?;

    let output = top(&["--once", "--url", &host.url, "--token", TOKEN]).await?;
    let screen = String::from_utf8(output.stdout)?;
    assert!(
        output.status.success(),
        "{screen}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !screen.contains('\x1b'),
        "no escape codes when not a terminal: {screen:?}"
    );
    for expected in [
        "wasp top: node ",
        "backlog      0 (store by class: bulk 0, critical 0, high 0, normal 0)",
        "per second   accepted ",
        "since start  accepted 1  sent 1  delivered 1  read 1  failed 0  fell back 0",
        "ratios       delivered/sent 100.0%  read/delivered 100.0%  failed/sent 0.0%",
        "regions      degraded: none",
        "rules        firing: none",
        "last failures: none",
    ] {
        assert!(screen.contains(expected), "{expected:?} not in:\n{screen}");
    }

    let refused = top(&["--once", "--url", &host.url, "--token", "wrong"]).await?;
    assert!(!refused.status.success());
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(error.contains("set --token or WASP_ADMIN_TOKEN"), "{error}");

    let port = wasp_integration::free_port()?;
    let unreachable = top(&["--once", "--url", &format!("http://127.0.0.1:{port}"), "--token", TOKEN]).await?;
    assert!(!unreachable.status.success());
    let error = String::from_utf8_lossy(&unreachable.stderr);
    assert!(error.contains("cannot reach the wasp server"), "{error}");

    let not_a_url = top(&["--once", "--url", "nowhere", "--token", TOKEN]).await?;
    assert!(!not_a_url.status.success());
    assert!(String::from_utf8_lossy(&not_a_url.stderr).contains("is not a URL"));
    Ok(())
}

#[tokio::test]
async fn a_shutdown_ends_open_streams_instead_of_waiting_on_them() -> anyhow::Result<()> {
    let mut host = TestHost::start(HostOptions::default()).await?;
    let mut stream = Stream::open(&host, "").await?;
    assert_eq!(stream.next().await?.kind, "history");
    assert!(
        host.terminate(Duration::from_secs(15)).await?,
        "wasp did not exit cleanly with a stream open:\n{}",
        host.log()
    );
    loop {
        match stream.next().await {
            Ok(event) => assert!(["tick", "message", "region", "rule"].contains(&event.kind.as_str())),
            Err(error) => {
                assert!(error.to_string().contains("the stream ended"), "{error:#}");
                break;
            }
        }
    }
    Ok(())
}
