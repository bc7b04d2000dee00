//! The operator's webhook (`health.webhook_url`): each firing and resolution is POSTed there as
//! JSON, from a task of its own, with a timeout and a few attempts. The evaluator only hands
//! notices over a bounded channel and never waits; a notice that cannot be delivered (or
//! finds the channel full) is logged and counted. Calls reqwest and the metrics.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

/// Notices waiting for the webhook before new ones are dropped (and counted).
const QUEUE: usize = 256;
/// Wait before the second attempt; doubled for each one after.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// One firing or resolution as the webhook receives it (keys sorted).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Notice {
    pub action: &'static str,
    /// RFC 3339.
    pub at: String,
    pub metric: &'static str,
    pub rule: String,
    /// `firing` or `resolved`.
    pub state: &'static str,
    /// A template's name, for a rule per template.
    pub subject: Option<String>,
    pub threshold: f64,
    pub value: Option<f64>,
}

/// The evaluator's end: hands notices to the delivery task.
#[derive(Clone)]
pub struct Webhook {
    queue: mpsc::Sender<Notice>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("building the health webhook client: {0}")]
    Client(#[from] reqwest::Error),
}

impl Webhook {
    /// Starts the delivery task for `url`.
    pub fn start(url: String, timeout: Duration, attempts: u32) -> Result<Self, Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let (queue, mut notices) = mpsc::channel::<Notice>(QUEUE);
        tokio::spawn(async move {
            while let Some(notice) = notices.recv().await {
                deliver(&client, &url, &notice, attempts.max(1)).await;
            }
        });
        Ok(Self { queue })
    }

    /// Queues `notice`; never waits.
    pub fn send(&self, notice: Notice) {
        if let Err(error) = self.queue.try_send(notice) {
            let notice = match error {
                mpsc::error::TrySendError::Full(notice) | mpsc::error::TrySendError::Closed(notice) => notice,
            };
            tracing::warn!(rule = %notice.rule, state = notice.state, "health webhook queue full: notice dropped");
            crate::telemetry::metrics::health_webhook_failed();
        }
    }
}

async fn deliver(client: &reqwest::Client, url: &str, notice: &Notice, attempts: u32) {
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=attempts {
        let failure = match client.post(url).json(notice).send().await {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => format!("HTTP {}", response.status().as_u16()),
            Err(error) => error.to_string(),
        };
        tracing::warn!(rule = %notice.rule, state = notice.state, attempt, %failure, "health webhook POST failed");
        if attempt < attempts {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
    tracing::error!(rule = %notice.rule, state = notice.state, attempts, "health webhook given up");
    crate::telemetry::metrics::health_webhook_failed();
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use axum::{Json, Router, extract::State, http::StatusCode, routing::post};

    use super::*;

    type Received = (Arc<AtomicUsize>, mpsc::UnboundedSender<serde_json::Value>);

    #[tokio::test]
    async fn notices_are_posted_and_a_failing_answer_is_tried_again() {
        let (sender, mut bodies) = mpsc::unbounded_channel();
        let app = Router::new()
            .route(
                "/hook",
                post(
                    |State((count, sender)): State<Received>, Json(body): Json<serde_json::Value>| async move {
                        sender.send(body).unwrap();
                        // The first POST fails: the notice must come again.
                        if count.fetch_add(1, Ordering::SeqCst) == 0 {
                            StatusCode::SERVICE_UNAVAILABLE
                        } else {
                            StatusCode::NO_CONTENT
                        }
                    },
                ),
            )
            .with_state((Arc::new(AtomicUsize::new(0)), sender));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let webhook = Webhook::start(format!("http://{address}/hook"), Duration::from_secs(5), 3).unwrap();
        webhook.send(Notice {
            action: "degrade",
            at: "2026-01-01T00:00:00Z".into(),
            metric: "backlog",
            rule: "backlog".into(),
            state: "firing",
            subject: None,
            threshold: 5_000.0,
            value: Some(6_000.0),
        });
        let limit = Duration::from_secs(10);
        let first = tokio::time::timeout(limit, bodies.recv()).await.unwrap().unwrap();
        let second = tokio::time::timeout(limit, bodies.recv()).await.unwrap().unwrap();
        assert_eq!(first, second, "the same notice again");
        assert_eq!(second["rule"], "backlog");
        assert_eq!(second["state"], "firing");
    }
}
