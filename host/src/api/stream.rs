//! `GET /v1/events/stream`: this node's live events as Server-Sent Events, for the dashboard,
//! `wasp top` and scripts. Each event is `event: <kind>` and one `data:` line of JSON (keys
//! sorted); first a `history` event with the last hour of ticks (when ticks are asked for);
//! a comment every [`KEEP_ALIVE`] while nothing happens; `lagged` with how many events a slow
//! reader lost. `?types=message,rule,region,tick` picks kinds.
//! May call the live event bus only.

use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::{Query, State},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use tokio::sync::{broadcast, watch};
use utoipa::IntoParams;

use super::{ApiError, ApiState, error::ErrorBody};
use crate::telemetry::live::LiveEvent;

/// How long the stream may stay silent before a comment line keeps proxies from closing it.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The kinds a client may ask for.
pub const KINDS: [&str; 4] = ["message", "rule", "region", "tick"];

/// The query as documented.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Comma-separated kinds among `message`, `rule`, `region`, `tick`; all when left out.
    pub types: Option<String>,
}

/// Which kinds a subscriber wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kinds([bool; KINDS.len()]);

impl Kinds {
    pub const ALL: Kinds = Kinds([true; KINDS.len()]);

    /// `message,tick` → those two; an empty or unknown kind is refused naming `types`.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let mut wanted = [false; KINDS.len()];
        for name in text.split(',').map(str::trim) {
            let Some(index) = KINDS.iter().position(|kind| *kind == name) else {
                return Err(ApiError::invalid(
                    "types",
                    format!("unknown event type {name:?}; expected some of {}", KINDS.join(", ")),
                ));
            };
            wanted[index] = true;
        }
        Ok(Kinds(wanted))
    }

    pub fn wants(self, kind: &str) -> bool {
        KINDS
            .iter()
            .position(|known| *known == kind)
            .is_some_and(|index| self.0[index])
    }
}

/// One event as the stream writes it: `event:`, a `data:` line per line of `data`, a blank line.
pub fn frame(kind: &str, data: &str) -> String {
    let mut text = format!("event: {kind}\n");
    for line in data.split('\n') {
        text.push_str("data: ");
        text.push_str(line);
        text.push('\n');
    }
    text.push('\n');
    text
}

/// The comment that keeps an idle stream open; readers ignore it.
pub const KEEP_ALIVE_FRAME: &str = ": keep-alive\n\n";

/// What a subscriber has yet to hear, and from where.
struct Subscriber {
    first: Option<String>,
    events: broadcast::Receiver<Arc<LiveEvent>>,
    kinds: Kinds,
    keep_alive: tokio::time::Interval,
    closing: watch::Receiver<bool>,
}

impl Subscriber {
    /// The next frame to write; `None` ends the stream (the server is shutting down).
    async fn next(&mut self) -> Option<String> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        loop {
            if *self.closing.borrow() {
                return None;
            }
            tokio::select! {
                changed = self.closing.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                received = self.events.recv() => {
                    let frame = match received {
                        Ok(event) if self.kinds.wants(event.kind()) => match serde_json::to_string(&*event) {
                            Ok(data) => frame(event.kind(), &data),
                            Err(error) => {
                                tracing::error!(%error, kind = event.kind(), "a live event did not serialize");
                                continue;
                            }
                        },
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            frame("lagged", &serde_json::json!({ "missed": missed }).to_string())
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    };
                    self.keep_alive.reset();
                    return Some(frame);
                }
                _ = self.keep_alive.tick() => return Some(KEEP_ALIVE_FRAME.to_owned()),
            }
        }
    }
}

/// The live events of this node as they happen.
#[utoipa::path(
    get,
    path = "/v1/events/stream",
    tag = "events",
    params(StreamQuery),
    responses(
        (status = 200, description = "Server-Sent Events, until the client leaves: `event: history` first \
                                      (`{\"interval_ms\", \"samples\": [tick, ...]}`, the last hour of ticks), \
                                      then `message` (a status change: `{\"at_ms\", \"category\", \"error_code\", \
                                      \"id\", \"region\", \"status\", \"template\"}`), `region` (degraded or \
                                      healthy again), `rule` (a health rule firing or resolved), `tick` (once a \
                                      second: this node's backlog, rates and counts) and `lagged` \
                                      (`{\"missed\"}`: events this reader was too slow for). Each `data:` is \
                                      one line of JSON. A `: keep-alive` comment comes every 15 s of silence.",
         content_type = "text/event-stream", body = String),
        (status = 400, description = "`types` names an unknown event type, or the query has an unknown parameter", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `messages:read`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn stream(
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    if let Some(unknown) = query.keys().find(|name| name.as_str() != "types") {
        return Err(ApiError::invalid(
            unknown.clone(),
            format!("unknown parameter {unknown:?}"),
        ));
    }
    let kinds = match query.get("types") {
        Some(types) => Kinds::parse(types)?,
        None => Kinds::ALL,
    };
    // Subscribed before the history is read: a tick published in between shows in both, never
    // in neither.
    let events = state.live.subscribe();
    let first = if kinds.wants("tick") {
        let history = serde_json::to_string(&state.live.history())
            .map_err(|error| ApiError::internal("serializing the tick history", &error))?;
        frame("history", &history)
    } else {
        // Headers go out at once, so a client knows it is connected before the first event.
        KEEP_ALIVE_FRAME.to_owned()
    };
    let subscriber = Subscriber {
        first: Some(first),
        events,
        kinds,
        keep_alive: tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE),
        closing: state.live.closing(),
    };
    let body = futures::stream::unfold(subscriber, |mut subscriber| async move {
        let frame = subscriber.next().await?;
        Some((Ok::<_, std::convert::Infallible>(frame), subscriber))
    });
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            // Proxies that buffer (nginx) pass each event on at once.
            (
                header::HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use futures::StreamExt as _;

    use super::*;
    use crate::telemetry::live::{Live, RegionEvent};

    #[test]
    fn an_event_is_its_kind_its_data_and_a_blank_line() {
        assert_eq!(frame("tick", r#"{"a":1}"#), "event: tick\ndata: {\"a\":1}\n\n");
        assert_eq!(frame("note", "one\ntwo"), "event: note\ndata: one\ndata: two\n\n");
        assert!(KEEP_ALIVE_FRAME.starts_with(':') && KEEP_ALIVE_FRAME.ends_with("\n\n"));
    }

    #[test]
    fn types_pick_kinds_and_unknown_ones_are_refused() {
        let kinds = Kinds::parse("message, tick").unwrap();
        assert!(kinds.wants("message") && kinds.wants("tick"));
        assert!(!kinds.wants("rule") && !kinds.wants("region"));
        assert!(KINDS.iter().all(|kind| Kinds::ALL.wants(kind)));
        for bad in ["messages", "", "tick,,rule"] {
            let error = Kinds::parse(bad).unwrap_err();
            assert_eq!(error.field.as_deref(), Some("types"), "{bad:?}");
        }
    }

    fn region(at_ms: i64) -> LiveEvent {
        LiveEvent::Region(RegionEvent {
            at_ms,
            country_code: 65,
            degraded: true,
            error_rate: 0.5,
        })
    }

    fn subscriber(live: &Live, kinds: Kinds) -> Subscriber {
        Subscriber {
            first: None,
            events: live.subscribe(),
            kinds,
            keep_alive: tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE),
            closing: live.closing(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_subscriber_gets_what_it_asked_for_keep_alives_and_the_end() {
        let live = Live::new();
        let mut only_regions = subscriber(&live, Kinds::parse("region").unwrap());
        live.publish(LiveEvent::Tick(serde_json::json!({"at_ms": 1})));
        live.publish(region(2));
        assert_eq!(
            only_regions.next().await.unwrap(),
            "event: region\ndata: {\"at_ms\":2,\"country_code\":65,\"degraded\":true,\"error_rate\":0.5}\n\n"
        );
        // Nothing more: after 15 s of silence, the comment.
        assert_eq!(only_regions.next().await.unwrap(), KEEP_ALIVE_FRAME);
        live.close();
        assert_eq!(only_regions.next().await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_subscriber_is_told_how_many_it_lost_and_goes_on() {
        let live = Live::new();
        let mut slow = subscriber(&live, Kinds::ALL);
        for at_ms in 0..5_000 {
            live.publish(region(at_ms));
        }
        let lagged = slow.next().await.unwrap();
        assert!(lagged.starts_with("event: lagged\ndata: {\"missed\":"), "{lagged}");
        let missed: serde_json::Value =
            serde_json::from_str(lagged.trim_end().trim_start_matches("event: lagged\ndata: ")).unwrap();
        assert_eq!(missed["missed"], 5_000 - 4_096);
        let next = slow.next().await.unwrap();
        assert!(next.starts_with("event: region\ndata: {\"at_ms\":904,"), "{next}");
    }

    #[tokio::test]
    async fn the_body_ends_when_the_server_closes() {
        let live = Live::new();
        let mut subscriber = subscriber(&live, Kinds::ALL);
        subscriber.first = Some(frame("history", "{}"));
        let body = futures::stream::unfold(subscriber, |mut subscriber| async move {
            Some((subscriber.next().await?, subscriber))
        });
        live.close();
        let frames: Vec<String> = body.collect().await;
        assert_eq!(frames, ["event: history\ndata: {}\n\n"]);
    }
}
