//! Events for plugins: statuses and inbound messages that webhooks bring, and the timers
//! plugins set, each delivered to `on-event`; and the actions plugins answer with (a
//! follow-up message, a timer set or cancelled), carried out through the store.
//!
//! Timers live in the store, so one set before a restart still fires after it; a timer is
//! removed only after its event ran (at least once). Follow-ups get an idempotency key made
//! from the event, so an event delivered twice sends one follow-up.
//! May call the store, the policy runtime and the dispatcher's wake handle.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::{
    dispatch::DispatchHandle,
    facts,
    message::{Channel, MessageId, PhoneNumber, Status, Submission},
    policy::{Envelope, PolicyRuntime, bindings::content_from_wit, wit},
    regions::RegionHealth,
    senders::Senders,
    store::{self, AppliedStatus, FallBackOutcome, NewMessage, PluginWrite, Store, Timer},
};

/// The message a follow-up falls back from, if it carries a fallback tag naming a message id.
fn fallback_original(message: &NewMessage) -> Option<MessageId> {
    message
        .submission
        .tags
        .iter()
        .find_map(|tag| wasp_sdk::fallback_of(tag))
        .and_then(|id| id.parse::<MessageId>().ok())
}

/// Timers fired in one pass.
const TIMER_BATCH: usize = 256;

pub struct Events {
    store: Store,
    policies: Arc<PolicyRuntime>,
    dispatch: DispatchHandle,
    sender: String,
    regions: Arc<RegionHealth>,
    senders: Arc<Senders>,
    timers_changed: Notify,
    poll: Duration,
    /// Timers fire on the node holding shard 0 only: once in the cluster. Also says how
    /// many shards there are.
    leader: Arc<crate::cluster::Cluster>,
}

/// Where an event came from, for the follow-up's idempotency key.
struct Origin {
    plugin: Arc<str>,
    event: String,
}

impl Events {
    /// Starts the timer loop. Events see the same region and sender facts as messages.
    pub fn start(
        store: Store,
        policies: Arc<PolicyRuntime>,
        dispatch: DispatchHandle,
        (regions, senders): (Arc<RegionHealth>, Arc<Senders>),
        sender: String,
        poll: Duration,
        leader: Arc<crate::cluster::Cluster>,
    ) -> Arc<Self> {
        let events = Arc::new(Self {
            store,
            policies,
            dispatch,
            regions,
            senders,
            sender,
            timers_changed: Notify::new(),
            poll,
            leader,
        });
        tokio::spawn(events.clone().timer_loop());
        events
    }

    fn has_listeners(&self) -> bool {
        self.policies
            .chain()
            .entries
            .iter()
            .any(|entry| entry.hooks.iter().any(|hook| hook == "on-event"))
    }

    /// Statuses that moved messages on: delivered and failed count toward their region's
    /// health at once; every status goes to `on-event` in the background, so the webhook
    /// answers without waiting for plugins.
    pub fn statuses(self: &Arc<Self>, applied: Vec<AppliedStatus>) {
        let now = store::now_ms();
        for status in &applied {
            let failed = match status.update.status {
                Status::Delivered => false,
                Status::Failed => true,
                _ => continue,
            };
            if let Ok(number) = PhoneNumber::parse(&status.recipient)
                && let Some(country) = number.country_code()
            {
                self.regions.record(country, failed, None, now);
            }
        }
        if applied.is_empty() || !self.has_listeners() {
            return;
        }
        let events = self.clone();
        tokio::spawn(async move {
            if let Err(error) = events.deliver_statuses(applied).await {
                tracing::error!(%error, "delivering status events to plugins failed");
            }
        });
    }

    /// Inbound messages from customers.
    pub fn inbound(self: &Arc<Self>, messages: Vec<wit::InboundMessage>) {
        if messages.is_empty() || !self.has_listeners() {
            return;
        }
        let events = self.clone();
        tokio::spawn(async move {
            let now = store::now_ms();
            for message in messages {
                let to = PhoneNumber::parse(&message.from).ok();
                let shard = to
                    .as_ref()
                    .map_or(0, |number| number.shard(events.leader.shard_count()));
                let contact = match &to {
                    Some(number) => events
                        .store
                        .contacts(&[number.digits()])
                        .await
                        .ok()
                        .and_then(|mut found| found.pop()),
                    None => None,
                };
                let sends = match &to {
                    Some(number) => events
                        .store
                        .send_counts(&[number.digits()], now)
                        .await
                        .ok()
                        .and_then(|mut found| found.remove(number.digits())),
                    None => None,
                };
                let context = events
                    .context(to.as_ref(), contact.as_ref(), sends.as_ref(), shard, now)
                    .await;
                let identity = format!("inbound:{}", message.wamid);
                events.run(wit::Event::Inbound(message), context, None, identity).await;
            }
        });
    }

    async fn deliver_statuses(&self, applied: Vec<AppliedStatus>) -> store::Result<()> {
        let ids: Vec<MessageId> = applied.iter().map(|status| status.id).collect();
        let messages: BTreeMap<MessageId, store::PendingMessage> = self
            .store
            .messages_by_id(&ids)
            .await?
            .into_iter()
            .map(|message| (message.id, message))
            .collect();
        let recipients: Vec<&str> = messages.values().map(|message| message.to.digits()).collect();
        let contacts = self.store.contacts_by_wa_id(&recipients).await?;
        let now = store::now_ms();
        let sends = self.store.send_counts(&recipients, now).await?;
        for AppliedStatus { id, update, .. } in applied {
            let Some(message) = messages.get(&id) else { continue };
            let status = match update.status {
                Status::Sent => wit::DeliveryStatus::Sent,
                Status::Delivered => wit::DeliveryStatus::Delivered,
                Status::Read => wit::DeliveryStatus::Read,
                Status::Failed => wit::DeliveryStatus::Failed,
                _ => continue,
            };
            let envelope = Envelope::from_pending(message, &self.sender);
            let event = wit::Event::Status(wit::StatusEvent {
                message: envelope.to_wit(),
                status,
                at_ms: update.at_ms,
                error_code: update.error_code.and_then(|code| i32::try_from(code).ok()),
                error_title: update.error_title.clone(),
            });
            let context = self
                .context(
                    Some(&message.to),
                    contacts.get(message.to.digits()),
                    sends.get(message.to.digits()),
                    message.shard,
                    now,
                )
                .await;
            self.run(event, context, None, format!("status:{id}:{}", update.status))
                .await;
        }
        Ok(())
    }

    async fn timer_loop(self: Arc<Self>) {
        loop {
            if !self.leader.is_leader() {
                tokio::time::sleep(self.poll).await;
                continue;
            }
            let now = store::now_ms();
            let due = match self.store.due_timers(now, TIMER_BATCH).await {
                Ok(due) => due,
                Err(error) => {
                    tracing::error!(%error, "reading due timers failed");
                    tokio::time::sleep(self.poll).await;
                    continue;
                }
            };
            if due.is_empty() {
                let wait = match self.store.next_timer_due_ms().await {
                    Ok(Some(next)) => Duration::from_millis(u64::try_from(next - now).unwrap_or(0)).min(self.poll),
                    _ => self.poll,
                };
                tokio::select! {
                    () = self.timers_changed.notified() => {}
                    () = tokio::time::sleep(wait) => {}
                }
                continue;
            }
            for timer in &due {
                let context = self.context(None, None, None, 0, now).await;
                let event = wit::Event::Timer(wit::TimerEvent {
                    key: timer.key.clone(),
                    payload: timer.payload.clone(),
                    at_ms: timer.due_at_ms,
                });
                let identity = format!("timer:{}:{}", timer.key, timer.due_at_ms);
                self.run(event, context, Some(timer.plugin.clone()), identity).await;
            }
            if let Err(error) = self.store.plugin_writes(vec![PluginWrite::FiredTimers(due)]).await {
                tracing::error!(%error, "removing fired timers failed; they fire again");
            }
        }
    }

    /// The context of an event about `to`: the same facts a message to them is judged on.
    async fn context(
        &self,
        to: Option<&PhoneNumber>,
        contact: Option<&store::Contact>,
        sends: Option<&store::SendCounts>,
        shard: u16,
        now: i64,
    ) -> wit::Context {
        let sender_facts = self.senders.facts(now).await.unwrap_or_else(|error| {
            tracing::warn!(%error, "reading sender facts failed; the event sees none");
            crate::senders::SenderFacts::default()
        });
        let region = to
            .and_then(PhoneNumber::country_code)
            .map(|code| self.regions.state(code, now));
        facts::context(
            &facts::Known {
                to,
                contact,
                sends,
                region: region.as_ref(),
                sender: &self.sender,
                sender_facts,
                shard,
                shard_backlog: self.dispatch.shard_backlog(shard),
                degraded_mode: self.dispatch.degraded(),
            },
            now,
        )
    }

    /// Runs one event through the chain on a blocking thread, then carries out the actions.
    async fn run(&self, event: wit::Event, context: wit::Context, only: Option<String>, identity: String) {
        let chain = self.policies.chain();
        let answered = tokio::task::spawn_blocking(move || chain.on_event(&event, &context, only.as_deref())).await;
        let answered = match answered {
            Ok(answered) => answered,
            Err(error) => {
                tracing::error!(%error, "on-event task failed");
                return;
            }
        };
        for (plugin, actions) in answered {
            let origin = Origin {
                plugin,
                event: identity.clone(),
            };
            self.carry_out(&origin, actions).await;
        }
    }

    async fn carry_out(&self, origin: &Origin, actions: Vec<wit::Action>) {
        let mut follow_ups = Vec::new();
        let mut writes = Vec::new();
        for (index, action) in actions.into_iter().enumerate() {
            match action {
                wit::Action::Send(follow_up) => match self.follow_up(origin, index, follow_up) {
                    Ok(message) => follow_ups.push(message),
                    Err(reason) => tracing::warn!(plugin = %origin.plugin, %reason, "follow-up refused"),
                },
                wit::Action::SetTimer(request) => writes.push(PluginWrite::SetTimer(Timer {
                    plugin: origin.plugin.to_string(),
                    key: request.key,
                    payload: request.payload,
                    due_at_ms: request.at_ms,
                })),
                wit::Action::CancelTimer(key) => writes.push(PluginWrite::CancelTimer {
                    plugin: origin.plugin.to_string(),
                    key,
                }),
            }
        }
        if !writes.is_empty() {
            match self.store.plugin_writes(writes).await {
                Ok(()) => self.timers_changed.notify_one(),
                Err(error) => tracing::error!(plugin = %origin.plugin, %error, "storing timers failed"),
            }
        }
        let (fallbacks, follow_ups): (Vec<NewMessage>, Vec<NewMessage>) = follow_ups
            .into_iter()
            .partition(|message| fallback_original(message).is_some());
        for fallback in fallbacks {
            self.fall_back(origin, fallback).await;
        }
        if !follow_ups.is_empty() {
            match self.store.accept(follow_ups).await {
                Ok(_) => self.dispatch.wake(),
                Err(error) => tracing::error!(plugin = %origin.plugin, %error, "accepting follow-ups failed"),
            }
        }
    }

    /// A follow-up tagged as the fallback of an earlier message: the original ends `fell_back`
    /// with it, or, if the original was read (or ended otherwise) meanwhile, it is dropped.
    async fn fall_back(&self, origin: &Origin, follow_up: NewMessage) {
        let Some(original) = fallback_original(&follow_up) else {
            return;
        };
        let (category, priority) = (follow_up.submission.category, follow_up.submission.priority);
        match self.store.fall_back(original, follow_up).await {
            Ok(FallBackOutcome::FellBack { follow_up: id }) => {
                // The original's class is not read back: the follow-up carries the same category.
                crate::telemetry::metrics::status(Status::FellBack, category, priority);
                tracing::info!(plugin = %origin.plugin, %original, follow_up = %id, "message fell back");
                self.dispatch.wake();
            }
            Ok(FallBackOutcome::Skipped { status }) => {
                tracing::info!(plugin = %origin.plugin, %original, %status, "fallback dropped: the message is no longer waiting for one");
            }
            Ok(FallBackOutcome::UnknownOriginal) => {
                tracing::warn!(plugin = %origin.plugin, %original, "fallback names a message that does not exist; dropped");
            }
            Err(error) => tracing::error!(plugin = %origin.plugin, %original, %error, "recording a fallback failed"),
        }
    }

    fn follow_up(&self, origin: &Origin, index: usize, follow_up: wit::FollowUp) -> Result<NewMessage, String> {
        let to = PhoneNumber::parse(&follow_up.to).map_err(|error| format!("follow-up `to`: {error}"))?;
        let content = content_from_wit(follow_up.content);
        content
            .validate()
            .map_err(|error| format!("follow-up {}: {}", error.field, error.message))?;
        let key = format!("{}:{}:{index}", origin.plugin, origin.event);
        let idempotency_key = format!("follow-up:{}", hex::encode(&Sha256::digest(key.as_bytes())[..16]));
        let submission = Submission {
            channel: Channel::from(follow_up.channel),
            to,
            category: follow_up.category.into(),
            priority: follow_up.priority.into(),
            idempotency_key: Some(idempotency_key),
            tags: follow_up.tags,
            content,
        };
        Ok(NewMessage {
            id: MessageId::new(),
            shard: submission.to.shard(self.leader.shard_count()),
            request_hash: crate::api::messages::request_hash(&submission),
            at_ms: store::now_ms(),
            expires_at_ms: None,
            // A follow-up is a new message of the plugin's making, stored in the clear.
            sensitive: false,
            submission,
        })
    }
}
