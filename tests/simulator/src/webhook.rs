//! Webhooks to the business: the poster task that signs and POSTs status batches, and
//! the direct POSTs of inbound messages and template status updates. Both go through one reused `reqwest::Client`
//! and retry a failed POST (non-2xx or connection error) with doubling back-off.
//!
//! The poster sends one POST at a time, so statuses reach the receiver in the order
//! they fell due. Owns the retry policy; calls `payload` for bodies, `wire` for the
//! signature and bumps the counters in `state`.

pub mod payload;
pub mod schedule;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use reqwest::header::{CONTENT_TYPE, USER_AGENT};
use tokio::sync::{mpsc, watch};

use crate::error::{Error, Result};
use crate::inbound::Inbound;
use crate::state::{CounterCells, Shared, unix_seconds};
use crate::templates::Template;
use crate::wire;
use schedule::StatusUpdate;

/// POST attempts per webhook before it is given up (the first try and three retries).
pub const WEBHOOK_ATTEMPTS: u32 = 4;
/// Wait before the first retry; doubled for each further one.
pub const WEBHOOK_RETRY_BASE_MS: u64 = 50;
/// Time limit of one webhook POST.
pub const WEBHOOK_TIMEOUT_MS: u64 = 10_000;
/// The user agent Meta's webhook deliveries carry.
pub const WEBHOOK_USER_AGENT: &str = "facebookexternalua";

/// Posts status batches until shutdown or until the scheduler goes away.
pub(crate) async fn run_poster(
    shared: Arc<Shared>,
    mut batches: mpsc::Receiver<Vec<StatusUpdate>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let batch = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            batch = batches.recv() => match batch {
                Some(batch) => batch,
                None => break,
            },
        };
        let count = batch.len();
        let delivered = post_statuses(&shared, &batch, &mut shutdown).await;
        let counters = &shared.counters;
        if delivered {
            CounterCells::add(&counters.webhook_posts, 1);
            CounterCells::add(&counters.webhook_statuses, count as u64);
        } else {
            CounterCells::add(&counters.webhook_dropped, count as u64);
        }
        counters.backlog_sub(count);
    }
}

/// Encodes, signs and posts one batch; whether the receiver took it.
async fn post_statuses(shared: &Shared, batch: &[StatusUpdate], shutdown: &mut watch::Receiver<bool>) -> bool {
    let config = shared.config.snapshot();
    let Some(url) = config.webhook_url.as_deref() else {
        return false;
    };
    let signed = payload::statuses_body(&config, batch)
        .map_err(Error::Encoding)
        .and_then(|body| Ok((wire::signature(&config.app_secret, &body)?, body)));
    let result = match signed {
        Ok((signature, body)) => deliver(shared, url, Bytes::from(body), &signature, shutdown).await,
        Err(error) => Err(error),
    };
    match result {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(statuses = batch.len(), %error, "status webhook dropped");
            false
        }
    }
}

/// Posts one inbound message now (not through the status batcher).
pub(crate) async fn post_inbound(
    shared: &Shared,
    inbound: &Inbound,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<()> {
    inbound.validate()?;
    let config = shared.config.snapshot();
    let url = config.webhook_url.as_deref().ok_or(Error::NoWebhookUrl)?;
    let sender = inbound.sender_digits();
    let wamid = shared.wamids.inbound(&sender);
    let body = payload::inbound_body(&config, inbound, &sender, &wamid, unix_seconds()).map_err(Error::Encoding)?;
    let signature = wire::signature(&config.app_secret, &body)?;
    deliver(shared, url, Bytes::from(body), &signature, shutdown).await?;
    CounterCells::add(&shared.counters.webhook_posts, 1);
    CounterCells::add(&shared.counters.webhook_messages, 1);
    Ok(())
}

/// Posts one `message_template_status_update` now (not through the status batcher).
pub(crate) async fn post_template_status(
    shared: &Shared,
    template: &Template,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<()> {
    let config = shared.config.snapshot();
    let url = config.webhook_url.as_deref().ok_or(Error::NoWebhookUrl)?;
    let body = payload::template_status_body(template, unix_seconds()).map_err(Error::Encoding)?;
    let signature = wire::signature(&config.app_secret, &body)?;
    deliver(shared, url, Bytes::from(body), &signature, shutdown).await?;
    CounterCells::add(&shared.counters.webhook_posts, 1);
    CounterCells::add(&shared.counters.webhook_template_updates, 1);
    Ok(())
}

/// POSTs `body` with retries; every failed attempt is counted.
async fn deliver(
    shared: &Shared,
    url: &str,
    body: Bytes,
    signature: &str,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<()> {
    let mut last = String::new();
    for attempt in 1..=WEBHOOK_ATTEMPTS {
        let sent = shared
            .http
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, WEBHOOK_USER_AGENT)
            .header(wire::SIGNATURE_HEADER, signature)
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status();
                // Reading the answer lets the connection go back to the pool.
                let answer = response.bytes().await;
                if status.is_success() {
                    return Ok(());
                }
                last = match answer {
                    Ok(_) => format!("HTTP {status}"),
                    Err(error) => format!("HTTP {status}, body unreadable: {error}"),
                };
            }
            Err(error) => last = error.to_string(),
        }
        CounterCells::add(&shared.counters.webhook_failures, 1);
        tracing::debug!(attempt, url, error = %last, "webhook POST failed");
        if attempt < WEBHOOK_ATTEMPTS {
            let backoff = Duration::from_millis(WEBHOOK_RETRY_BASE_MS << (attempt - 1));
            tokio::select! {
                biased;
                _ = shutdown.changed() => return Err(Error::ShuttingDown),
                () = tokio::time::sleep(backoff) => {}
            }
        }
    }
    Err(Error::WebhookFailed {
        url: url.to_owned(),
        attempts: WEBHOOK_ATTEMPTS,
        last,
    })
}
