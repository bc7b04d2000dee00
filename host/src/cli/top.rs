//! `wasp top`: the live numbers of one node in the terminal, from the same event stream the
//! dashboard reads (`GET /v1/events/stream`, scope `messages:read`), with the same `--url` /
//! `WASP_URL` and `--token` / `WASP_ADMIN_TOKEN` as every command that talks to a server. A
//! screen is drawn at each tick (once a second): on a terminal it is redrawn in place, else
//! each one is printed after the last, without escape codes. `--once` prints one and exits.
//!
//! Owns the SSE reader of the client side. May call the admin API over HTTP.

use std::{collections::VecDeque, io::IsTerminal as _, time::Duration};

use anyhow::Context as _;
use clap::Args;
use reqwest::{StatusCode, Url, header};
use serde_json::Value;

use super::{
    admin::{AdminClient, AdminError, Connection, decode},
    cluster::duration,
    table::thousands,
};
use crate::telemetry::live::{History, MessageEvent, RuleEvent, StepCounts, TickSample};

/// How long connecting may take; the stream itself stays open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Failures shown at the bottom.
const FAILURES_SHOWN: usize = 5;
/// Rule events shown.
const RULE_EVENTS_SHOWN: usize = 3;
/// Clears the screen and moves to its top.
const CLEAR: &str = "\x1b[H\x1b[2J";

/// `wasp top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// Print one screen after the first tick and exit.
    #[arg(long)]
    pub once: bool,
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub kind: String,
    pub data: String,
}

/// Reads SSE framing from chunks as they arrive (a chunk may end inside a character):
/// `event:` and `data:` lines, events ended by a blank line, comments (`:`) ignored.
#[derive(Debug, Default)]
pub struct SseReader {
    buffer: Vec<u8>,
    kind: Option<String>,
    data: Vec<String>,
}

impl SseReader {
    /// The events `chunk` completes.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.iter().position(|byte| *byte == b'\n') {
            let bytes: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&bytes);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() {
                    events.push(SseEvent {
                        kind: self.kind.take().unwrap_or_else(|| "message".to_owned()),
                        data: self.data.join("\n"),
                    });
                }
                self.kind = None;
                self.data.clear();
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.kind = Some(value.to_owned()),
                "data" => self.data.push(value.to_owned()),
                _ => {}
            }
        }
        events
    }
}

/// What the screen shows, gathered from the stream.
#[derive(Debug, Default)]
pub struct TopView {
    pub tick: Option<TickSample>,
    /// Newest first.
    pub failures: VecDeque<MessageEvent>,
    /// Newest first.
    pub rule_events: VecDeque<RuleEvent>,
    /// Events this reader was too slow for.
    pub missed: u64,
}

impl TopView {
    /// Takes one event in; answers whether it is a tick (time to draw).
    pub fn apply(&mut self, event: &SseEvent) -> anyhow::Result<bool> {
        let parse = |what: &str| -> anyhow::Result<Value> {
            serde_json::from_str(&event.data)
                .with_context(|| format!("the server sent a {what} event that is not JSON"))
        };
        match event.kind.as_str() {
            "tick" => {
                let tick: TickSample = serde_json::from_value(parse("tick")?).context(
                    "the server sent a tick this command does not know; is it older or newer than this command?",
                )?;
                self.tick = Some(tick);
                return Ok(true);
            }
            "history" => {
                let history: History = serde_json::from_value(parse("history")?)
                    .context("the server sent a history this command does not know")?;
                if let Some(last) = history.samples.last() {
                    self.tick = Some(last.clone());
                }
            }
            "message" => {
                let message: MessageEvent = serde_json::from_value(parse("message")?)
                    .context("the server sent a message event this command does not know")?;
                if message.status == "failed" {
                    self.failures.push_front(message);
                    self.failures.truncate(FAILURES_SHOWN);
                }
            }
            "rule" => {
                let rule: RuleEvent = serde_json::from_value(parse("rule")?)
                    .context("the server sent a rule event this command does not know")?;
                self.rule_events.push_front(rule);
                self.rule_events.truncate(RULE_EVENTS_SHOWN);
            }
            "lagged" => {
                self.missed += parse("lagged")?["missed"].as_u64().unwrap_or(0);
            }
            _ => {}
        }
        Ok(false)
    }
}

fn ratio(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

fn steps(counts: &StepCounts) -> String {
    format!(
        "accepted {}  sent {}  delivered {}  read {}  failed {}  fell back {}",
        thousands(counts.accepted),
        thousands(counts.sent),
        thousands(counts.delivered),
        thousands(counts.read),
        thousands(counts.failed),
        thousands(counts.fell_back),
    )
}

/// A time of day, UTC, from ms since the epoch.
fn clock(at_ms: i64) -> String {
    let seconds = at_ms.div_euclid(1_000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", seconds / 3_600, seconds % 3_600 / 60, seconds % 60)
}

/// The screen, plain lines.
pub fn render(view: &TopView) -> String {
    let Some(tick) = &view.tick else {
        return "waiting for the first tick…\n".to_owned();
    };
    let mut out = format!(
        "wasp top: node {node}, up {up}, at {at} UTC\n\n",
        node = tick.node_id,
        up = duration(tick.at_ms - tick.started_at_ms),
        at = clock(tick.at_ms),
    );
    let classes: Vec<String> = tick
        .backlog_by_priority
        .iter()
        .map(|(class, count)| format!("{class} {}", thousands(*count)))
        .collect();
    out.push_str(&format!(
        "backlog      {} (store by class: {})   sending {}\n",
        thousands(tick.backlog),
        if classes.is_empty() {
            "-".to_owned()
        } else {
            classes.join(", ")
        },
        thousands(tick.sending),
    ));
    out.push_str(&format!("per second   {}\n", steps(&tick.last_second)));
    out.push_str(&format!("since start  {}\n", steps(&tick.since_start)));
    let total = &tick.since_start;
    out.push_str(&format!(
        "ratios       delivered/sent {}  read/delivered {}  failed/sent {}\n",
        ratio(total.delivered, total.sent),
        ratio(total.read, total.delivered),
        ratio(total.failed, total.sent),
    ));
    let regions: Vec<String> = tick.regions_degraded.iter().map(|code| format!("+{code}")).collect();
    out.push_str(&format!(
        "regions      degraded: {}\n",
        if regions.is_empty() {
            "none".to_owned()
        } else {
            regions.join(", ")
        }
    ));
    out.push_str(&format!(
        "rules        firing: {}\n",
        if tick.rules_firing.is_empty() {
            "none".to_owned()
        } else {
            tick.rules_firing.join(", ")
        }
    ));
    for rule in &view.rule_events {
        out.push_str(&format!(
            "             {} {}{} {} ({} against {}) → {}\n",
            clock(rule.at_ms),
            rule.name,
            rule.subject
                .as_deref()
                .map(|subject| format!(" on {subject}"))
                .unwrap_or_default(),
            rule.state,
            rule.value,
            rule.threshold,
            rule.action,
        ));
    }
    out.push_str("last failures");
    if view.failures.is_empty() {
        out.push_str(": none\n");
    } else {
        out.push('\n');
        for failure in &view.failures {
            out.push_str(&format!(
                "  {}  {}  {}  {}  Meta error {}{}\n",
                clock(failure.at_ms),
                failure.id,
                failure.category.as_deref().unwrap_or("-"),
                failure.region.map_or_else(|| "-".to_owned(), |code| format!("+{code}")),
                failure
                    .error_code
                    .map_or_else(|| "-".to_owned(), |code| code.to_string()),
                if failure.status == "fell_back" {
                    ", fell back"
                } else {
                    ""
                },
            ));
        }
    }
    if view.missed > 0 {
        out.push_str(&format!(
            "(this screen was too slow for {} events)\n",
            thousands(view.missed)
        ));
    }
    out
}

/// The last failures before the stream opened, newest first, from `GET /v1/messages`.
async fn earlier_failures(connection: &Connection) -> anyhow::Result<Vec<MessageEvent>> {
    let client = AdminClient::new(connection)?;
    let request = client
        .request(reqwest::Method::GET, &["v1", "messages"])
        // A failure the fallback plugin took over ends `fell_back`, with Meta's code kept.
        .query(&[("status", "failed,fell_back"), ("limit", &FAILURES_SHOWN.to_string())])
        .build();
    let page: Value = client.send(request).await?;
    let messages = page["messages"].as_array().cloned().unwrap_or_default();
    Ok(messages.iter().filter_map(failure_of_summary).collect())
}

/// A failed message as `GET /v1/messages` lists it, as a message event.
fn failure_of_summary(summary: &Value) -> Option<MessageEvent> {
    let at = time::OffsetDateTime::parse(
        summary["updated_at"].as_str()?,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()?;
    Some(MessageEvent {
        at_ms: i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()?,
        category: summary["category"].as_str().map(str::to_owned),
        error_code: summary["error_code"].as_i64(),
        id: summary["id"].as_str()?.to_owned(),
        region: None,
        status: summary["status"].as_str()?.to_owned(),
        template: None,
    })
}

/// `GET /v1/events/stream` at `url`.
fn stream_url(url: &str) -> anyhow::Result<Url> {
    let mut base = Url::parse(url).with_context(|| format!("--url / WASP_URL {url:?} is not a URL"))?;
    anyhow::ensure!(
        matches!(base.scheme(), "http" | "https") && !base.cannot_be_a_base(),
        "--url / WASP_URL {url:?} must be an http:// or https:// URL"
    );
    if let Ok(mut path) = base.path_segments_mut() {
        path.pop_if_empty().extend(["v1", "events", "stream"]);
    }
    Ok(base)
}

pub async fn run(args: TopArgs) -> anyhow::Result<()> {
    let url = stream_url(&args.connection.url)?;
    let http = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .context("building the HTTP client")?;
    let mut request = http.get(url.clone()).header(header::ACCEPT, "text/event-stream");
    if let Some(token) = args.connection.token.as_deref().filter(|token| !token.is_empty()) {
        request = request.bearer_auth(token);
    }
    let mut response = request.send().await.map_err(|error| AdminError::Unreachable {
        url: args.connection.url.clone(),
        reason: error.without_url().to_string(),
    })?;
    let status = response.status();
    if status != StatusCode::OK {
        let body = response.bytes().await.unwrap_or_default();
        let error = decode::<Value>(status, &body, url.as_str())
            .err()
            .unwrap_or(AdminError::Status {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        return Err(anyhow::Error::new(error).context("opening the live event stream"));
    }
    let is_stream = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/event-stream"));
    anyhow::ensure!(
        is_stream,
        "{url} did not answer an event stream; is --url / WASP_URL a wasp server?"
    );
    let terminal = std::io::stdout().is_terminal();
    let mut reader = SseReader::default();
    let mut view = TopView::default();
    match earlier_failures(&args.connection).await {
        Ok(failures) => view.failures.extend(failures),
        Err(error) => tracing::warn!("reading the last failures: {error:#}"),
    }
    loop {
        let chunk = response
            .chunk()
            .await
            .with_context(|| format!("reading the live event stream from {url}"))?;
        let Some(chunk) = chunk else {
            anyhow::bail!("the server closed the live event stream (it is shutting down?)");
        };
        for event in reader.push(&chunk) {
            if view.apply(&event)? {
                let screen = render(&view);
                if args.once {
                    print!("{screen}");
                    return Ok(());
                }
                if terminal {
                    print!("{CLEAR}{screen}");
                } else {
                    println!("{screen}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::stream::{KEEP_ALIVE_FRAME, frame};

    #[test]
    fn the_reader_reads_what_the_server_frames_in_any_chunks() {
        let text = format!(
            "{}{KEEP_ALIVE_FRAME}{}",
            frame("tick", r#"{"at_ms":1}"#),
            frame("note", "one\ntwo")
        );
        let expected = vec![
            SseEvent {
                kind: "tick".into(),
                data: r#"{"at_ms":1}"#.into(),
            },
            SseEvent {
                kind: "note".into(),
                data: "one\ntwo".into(),
            },
        ];
        let mut whole = SseReader::default();
        assert_eq!(whole.push(text.as_bytes()), expected);
        let mut bytewise = SseReader::default();
        let mut events = Vec::new();
        for byte in text.as_bytes() {
            events.extend(bytewise.push(&[*byte]));
        }
        assert_eq!(events, expected);
        let mut split_character = SseReader::default();
        let text = "event: note\ndata: é\n\n".as_bytes();
        assert!(split_character.push(&text[..19]).is_empty());
        assert_eq!(split_character.push(&text[19..])[0].data, "é");
        let mut crlf = SseReader::default();
        assert_eq!(crlf.push(b"event: tick\r\ndata:x\r\n\r\n")[0].data, "x");
    }

    fn tick() -> TickSample {
        TickSample {
            at_ms: 1_790_000_125_000,
            backlog: 12,
            backlog_by_priority: [("bulk", 2), ("critical", 0), ("high", 10), ("normal", 0)]
                .into_iter()
                .map(|(class, count)| (class.to_owned(), count))
                .collect(),
            last_second: StepCounts {
                accepted: 5,
                sent: 4,
                delivered: 3,
                read: 2,
                failed: 1,
                fell_back: 0,
            },
            node_id: "alpha-1a2b".into(),
            regions_degraded: vec![65],
            rules_firing: vec!["error-rate".into()],
            sending: 3,
            since_start: StepCounts {
                accepted: 1_200,
                sent: 1_000,
                delivered: 900,
                read: 450,
                failed: 20,
                fell_back: 5,
            },
            started_at_ms: 1_790_000_000_000,
        }
    }

    #[test]
    fn the_screen_shows_the_numbers_of_the_last_tick() {
        let mut view = TopView::default();
        assert_eq!(render(&view), "waiting for the first tick…\n");
        let failure = MessageEvent {
            at_ms: 1_790_000_120_000,
            category: Some("marketing".into()),
            error_code: Some(131_026),
            id: "0190c2a8-0000-7000-8000-000000000001".into(),
            region: Some(65),
            status: "failed".into(),
            template: None,
        };
        let message = frame("message", &serde_json::to_string(&failure).unwrap());
        let tick_frame = frame("tick", &serde_json::to_string(&tick()).unwrap());
        let mut reader = SseReader::default();
        let drawn: Vec<bool> = reader
            .push(format!("{message}{tick_frame}").as_bytes())
            .iter()
            .map(|event| view.apply(event).unwrap())
            .collect();
        assert_eq!(drawn, [false, true]);
        assert_eq!(
            render(&view),
            "wasp top: node alpha-1a2b, up 2m05s, at 14:15:25 UTC\n\
             \n\
             backlog      12 (store by class: bulk 2, critical 0, high 10, normal 0)   sending 3\n\
             per second   accepted 5  sent 4  delivered 3  read 2  failed 1  fell back 0\n\
             since start  accepted 1,200  sent 1,000  delivered 900  read 450  failed 20  fell back 5\n\
             ratios       delivered/sent 90.0%  read/delivered 50.0%  failed/sent 2.0%\n\
             regions      degraded: +65\n\
             rules        firing: error-rate\n\
             last failures\n\
             \x20 14:15:20  0190c2a8-0000-7000-8000-000000000001  marketing  +65  Meta error 131026\n"
        );
    }

    #[test]
    fn a_listed_failure_reads_as_an_event() {
        let summary = serde_json::json!({
            "category": "utility", "error_code": 131_026, "id": "0190c2a8-0000-7000-8000-000000000001",
            "status": "fell_back", "updated_at": "2026-09-21T14:15:20.250Z"
        });
        let failure = failure_of_summary(&summary).unwrap();
        assert_eq!(
            (
                failure.at_ms,
                failure.error_code,
                failure.category.as_deref(),
                failure.status.as_str()
            ),
            (1_790_000_120_250, Some(131_026), Some("utility"), "fell_back")
        );
        assert_eq!(failure_of_summary(&serde_json::json!({"id": "x"})), None);
    }

    #[test]
    fn an_unknown_tick_shape_is_named() {
        let mut view = TopView::default();
        let error = view
            .apply(&SseEvent {
                kind: "tick".into(),
                data: r#"{"at_ms": 1}"#.into(),
            })
            .unwrap_err();
        assert!(
            format!("{error:#}").contains("tick this command does not know"),
            "{error:#}"
        );
    }

    #[test]
    fn the_stream_url_is_under_the_base() {
        assert_eq!(
            stream_url("http://127.0.0.1:8080").unwrap().as_str(),
            "http://127.0.0.1:8080/v1/events/stream"
        );
        assert_eq!(
            stream_url("https://wasp.example/base/").unwrap().as_str(),
            "https://wasp.example/base/v1/events/stream"
        );
        assert!(stream_url("ftp://x").is_err());
        assert!(stream_url("not a url").is_err());
    }
}
