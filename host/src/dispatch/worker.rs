//! One dispatch worker: admits (on-submit), prepares (on-dispatch) and sends the messages of
//! its shards, a batch at a time. State changes of a batch are written together: once after
//! the policies, once after the sends.
//!
//! Before each send the rate limits are asked ([`Limits`]); a send that would break one waits
//! briefly or goes back to the queue with its due time, and holds back the later messages of
//! its recipient in this batch. A message past its deadline ends `expired` instead of going.

use std::{collections::HashMap, sync::Arc};

use futures::StreamExt;
use rand::Rng;
use tokio::sync::{Notify, mpsc};

use super::{
    Backlog, Claimed,
    limits::{Admission, Limits},
};
use crate::{
    channel::{ErrorClass, RateScope, SendError},
    config::DispatchConfig,
    message::{Channel, Content, MessageId, PhoneNumber, Status},
    policy::{Chain, ChainOutcome, Decision, Envelope, Hook, PolicyRuntime},
    store::{self, Changes, PendingMessage, Store, Transition},
};

/// Most messages a worker takes into one batch.
const WORKER_BATCH: usize = 512;

pub struct Worker {
    pub index: usize,
    pub config: DispatchConfig,
    pub store: Store,
    pub policies: Arc<PolicyRuntime>,
    pub outbound: super::Outbound,
    pub wake: Arc<Notify>,
    pub limits: Arc<Limits>,
    pub backlog: Backlog,
    pub cluster: Arc<crate::cluster::Cluster>,
    /// Degraded mode (set by the health rules): the policies' context says so.
    pub degraded: Arc<std::sync::atomic::AtomicBool>,
}

/// A message that passed its policies and goes out now.
struct Outgoing {
    id: MessageId,
    to: PhoneNumber,
    channel: Channel,
    content: Content,
    /// The class it goes in (after the policies): the daily tier defers only `bulk`.
    priority: crate::message::Priority,
    attempts: u32,
    /// Not sent by then: `expired`.
    deadline_ms: Option<i64>,
    /// Marked as such upstream (in `biz_opaque_callback_data`), so a simulator keeps no copy.
    sensitive: bool,
    /// Its shard: sent only while this node still holds the shard's lease.
    shard: u16,
}

/// What the status counters need of a transition, kept aside before the store takes it.
type Counted = Vec<(MessageId, Status, Option<crate::message::Priority>)>;

/// The transitions that move a message towards its end (see
/// [`counts_status`](crate::telemetry::metrics::counts_status)).
fn to_count(transitions: &[Transition]) -> Counted {
    transitions
        .iter()
        .filter(|transition| crate::telemetry::metrics::counts_status(transition.status))
        .map(|transition| (transition.id, transition.status, transition.changes.priority))
        .collect()
}

/// Counts recorded transitions in the class the message had when claimed (or the priority a
/// policy gave it).
fn count_transitions(batch: &[Claimed], counted: &Counted) {
    if counted.is_empty() {
        return;
    }
    let classes: HashMap<MessageId, (crate::message::Category, crate::message::Priority)> = batch
        .iter()
        .map(|claimed| (claimed.message.id, (claimed.message.category, claimed.message.priority)))
        .collect();
    for (id, status, changed) in counted {
        if let Some((category, priority)) = classes.get(id) {
            crate::telemetry::metrics::status(*status, *category, changed.unwrap_or(*priority));
        }
    }
}

/// Messages a batch of transitions takes out of the queue (sent or ended).
fn leaving_queue(transitions: &[Transition]) -> usize {
    transitions
        .iter()
        .filter(|transition| !transition.status.is_pending())
        .count()
}

impl Worker {
    pub async fn run(self, mut receiver: mpsc::UnboundedReceiver<Claimed>) {
        loop {
            let mut batch = Vec::with_capacity(WORKER_BATCH);
            if receiver.recv_many(&mut batch, WORKER_BATCH).await == 0 {
                break;
            }
            self.process(batch).await;
            // The batch's permits are back: the claimer may have more for us.
            self.wake.notify_one();
        }
        tracing::debug!(worker = self.index, "dispatch worker stopped");
    }

    async fn process(&self, batch: Vec<Claimed>) {
        let Some(batch) = self.settle_interrupted(batch).await else {
            return;
        };
        // Plugins are guest code and may block (their WASI calls wait synchronously): they run
        // on a blocking thread, never on an async worker.
        let chain = self.policies.chain();
        let sender = self.outbound.cloud_api.phone_number_id().to_owned();
        let ttl_ms = self.config.message_ttl_ms;
        let facts = match self.facts(&batch).await {
            Ok(facts) => facts,
            Err(error) => {
                // The leases run out and the messages are claimed again.
                tracing::error!(%error, worker = self.index, "reading contact facts failed");
                return;
            }
        };
        let judged = tokio::task::spawn_blocking(move || {
            let (transitions, outgoing) = judge(&chain, &sender, ttl_ms, &facts, &batch);
            (transitions, outgoing, batch)
        })
        .await;
        // The batch (and its in-flight permits) lives until its sends are recorded.
        let (mut transitions, outgoing, batch) = match judged {
            Ok(judged) => judged,
            Err(error) => {
                // The leases run out and the messages are claimed again.
                tracing::error!(%error, worker = self.index, "running the policies failed");
                return;
            }
        };
        mark_sensitive(&batch, &mut transitions);
        // The pre-send write is fenced: only for shards this node still holds at the epoch it
        // believes, so a node that lost a shard (paused, cut off) never sends for it.
        let shard_of: HashMap<MessageId, u16> = batch
            .iter()
            .map(|claimed| (claimed.message.id, claimed.message.shard))
            .collect();
        let shards: Vec<u16> = transitions
            .iter()
            .map(|transition| shard_of.get(&transition.id).copied().unwrap_or_default())
            .collect();
        // What the counters need, kept aside before the store takes the transitions.
        let leaving: Vec<MessageId> = transitions
            .iter()
            .filter(|transition| !transition.status.is_pending())
            .map(|transition| transition.id)
            .collect();
        let mut counted = to_count(&transitions);
        let refused = match self
            .store
            .record_fenced(transitions, shards, &self.cluster.fence())
            .await
        {
            Ok(refused) => refused,
            Err(error) => {
                // Nothing was sent; the leases run out and the messages are claimed again.
                tracing::error!(%error, worker = self.index, "recording policy outcomes failed");
                return;
            }
        };
        let mut ended = leaving.len();
        if !refused.is_empty() {
            crate::telemetry::metrics::fenced(refused.len());
            tracing::warn!(
                count = refused.len(),
                worker = self.index,
                "shard lease lost: messages left to the node that holds their shard now"
            );
            counted.retain(|(id, ..)| !refused.contains(id));
            ended = leaving.iter().filter(|id| !refused.contains(id)).count();
        }
        count_transitions(&batch, &counted);
        self.backlog.remove(ended);
        let outgoing: Vec<Outgoing> = outgoing
            .into_iter()
            .filter(|message| !refused.contains(&message.id))
            .collect();

        let results = self.send_all(outgoing).await;
        let left = leaving_queue(&results);
        let counted = to_count(&results);
        match self.store.record(results).await {
            Ok(()) => {
                count_transitions(&batch, &counted);
                self.backlog.remove(left);
            }
            // The sends happened but are not recorded: after the lease they go again
            // (at least once), and the upstream wamid check catches what it can.
            Err(error) => tracing::error!(%error, worker = self.index, "recording send results failed"),
        }
    }

    /// Sends tried before (claimed while `sending` after a crash, or retried after a reset
    /// that may have come after Meta accepted them) that Meta is known to have accepted (a
    /// status carrying their id as callback data arrived) are recorded as sent with that
    /// wamid instead of going out again. Returns the rest, or `None` if the store failed.
    async fn settle_interrupted(&self, batch: Vec<Claimed>) -> Option<Vec<Claimed>> {
        let interrupted: Vec<MessageId> = batch
            .iter()
            .filter(|claimed| claimed.message.status == Status::Sending || claimed.message.attempts > 0)
            .map(|claimed| claimed.message.id)
            .collect();
        if interrupted.is_empty() {
            return Some(batch);
        }
        let arrived = match self.store.held_wamids(&interrupted).await {
            Ok(arrived) => arrived,
            Err(error) => {
                // The leases run out and the messages are claimed again.
                tracing::error!(%error, worker = self.index, "looking for statuses of interrupted sends failed");
                return None;
            }
        };
        if arrived.is_empty() {
            return Some(batch);
        }
        let now = store::now_ms();
        let (settled, rest): (Vec<Claimed>, Vec<Claimed>) = batch
            .into_iter()
            .partition(|claimed| arrived.contains_key(&claimed.message.id));
        let transitions: Vec<Transition> = settled
            .iter()
            .filter_map(|claimed| {
                let wamid = arrived.get(&claimed.message.id)?.clone();
                Some(Transition {
                    id: claimed.message.id,
                    status: Status::Sent,
                    at_ms: now,
                    cause: format!(
                        "already accepted by the Cloud API as {} on an earlier attempt (a status for it arrived): not sent again",
                        wamid.0
                    ),
                    changes: Changes {
                        wamid: Some(wamid),
                        ..Changes::default()
                    },
                })
            })
            .collect();
        let count = transitions.len();
        let counted = to_count(&transitions);
        match self.store.record(transitions).await {
            Ok(()) => {
                count_transitions(&settled, &counted);
                self.backlog.remove(count);
                tracing::info!(
                    count,
                    worker = self.index,
                    "interrupted sends found delivered; not sent again"
                );
            }
            Err(error) => tracing::error!(%error, worker = self.index, "recording interrupted sends failed"),
        }
        Some(rest)
    }

    /// What the store and the region tracker know of the batch's recipients: one read for the
    /// whole batch.
    async fn facts(&self, batch: &[Claimed]) -> crate::store::Result<BatchFacts> {
        let mut recipients: Vec<&str> = batch.iter().map(|claimed| claimed.message.to.digits()).collect();
        recipients.sort_unstable();
        recipients.dedup();
        let contacts = self.store.contacts_by_wa_id(&recipients).await?;
        let now = store::now_ms();
        let sends = self.store.send_counts(&recipients, now).await?;
        let sender = self.outbound.senders.facts(now).await?;
        let regions = batch
            .iter()
            .filter_map(|claimed| claimed.message.to.country_code())
            .map(|code| (code, self.outbound.regions.state(code, now)))
            .collect();
        let backlog = batch
            .iter()
            .map(|claimed| (claimed.message.shard, self.backlog.shard(claimed.message.shard)))
            .collect();
        Ok(BatchFacts {
            contacts,
            sends,
            regions,
            sender,
            backlog,
            degraded_mode: self.degraded.load(std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// Sends recipient by recipient: one recipient's messages one after another, in order;
    /// different recipients at the same time.
    async fn send_all(&self, outgoing: Vec<Outgoing>) -> Vec<Transition> {
        let mut by_recipient: HashMap<PhoneNumber, Vec<Outgoing>> = HashMap::new();
        let mut order = Vec::new();
        for message in outgoing {
            let queue = by_recipient.entry(message.to.clone()).or_default();
            if queue.is_empty() {
                order.push(message.to.clone());
            }
            queue.push(message);
        }
        let groups: Vec<Vec<Outgoing>> = order.into_iter().filter_map(|to| by_recipient.remove(&to)).collect();
        futures::stream::iter(groups)
            .map(|group| self.send_group(group))
            .buffer_unordered(self.config.sends_in_flight_per_worker.max(1))
            .flat_map(futures::stream::iter)
            .collect()
            .await
    }

    async fn send_group(&self, group: Vec<Outgoing>) -> Vec<Transition> {
        let mut results = Vec::with_capacity(group.len());
        let mut held_back: Option<i64> = None;
        for message in group {
            let now = store::now_ms();
            if let Some(due_at_ms) = held_back {
                // An earlier message to this recipient is waiting to be retried: keep the order.
                results.push(Transition {
                    id: message.id,
                    status: Status::Queued,
                    at_ms: now,
                    cause: "held back behind an earlier message to the same recipient".into(),
                    changes: Changes {
                        due_at_ms: Some(due_at_ms),
                        ..Changes::default()
                    },
                });
                continue;
            }
            if message.deadline_ms.is_some_and(|deadline| deadline <= now) {
                results.push(expired(message.id, now));
                continue;
            }
            // Meta's limits (the number's throughput, the pair rate, the tier) are WhatsApp's:
            // an SMS goes through another provider and does not count against them.
            let admission = match message.channel {
                Channel::Whatsapp => self.limits.admit(&message.to, message.priority),
                Channel::Sms => Admission::Now,
            };
            match admission {
                Admission::Now => {}
                Admission::After(wait) => tokio::time::sleep(wait).await,
                Admission::Requeue { due_at_ms, reason } => {
                    held_back = Some(due_at_ms);
                    results.push(Transition {
                        id: message.id,
                        status: Status::Queued,
                        at_ms: now,
                        cause: reason.cause().into(),
                        changes: Changes {
                            due_at_ms: Some(due_at_ms),
                            ..Changes::default()
                        },
                    });
                    continue;
                }
            }
            if !self.cluster.holds(message.shard) {
                // The lease ran out by this node's clock (a pause, a lost database) since the
                // pre-send write: nothing more goes out for the shard from here. This message
                // and the recipient's later ones stay `sending` under their claim; the shard's
                // holder settles them once the claim ends.
                tracing::warn!(message_id = %message.id, shard = message.shard, "shard lease lost before the send: not sent");
                break;
            }
            let started = std::time::Instant::now();
            let channel = match message.channel {
                Channel::Whatsapp => "whatsapp",
                Channel::Sms => "sms",
            };
            // The message id ties this span to the accept log line (which carries the request
            // id); the recipient stays out of it.
            let span =
                tracing::info_span!("upstream_send", message_id = %message.id, channel, attempt = message.attempts + 1);
            let outcome = tracing::Instrument::instrument(self.send_one(&message), span).await;
            crate::telemetry::metrics::upstream(
                channel,
                match &outcome {
                    Ok(_) => "ok",
                    Err(error) => error.class().as_str(),
                },
                started.elapsed(),
            );
            let now = store::now_ms();
            let attempts = message.attempts + 1;
            if message.channel == Channel::Whatsapp {
                let fault = matches!(&outcome, Err(Failure::CloudApi(error)) if upstream_fault(error));
                self.outbound.upstream.record(fault, now);
            }
            if let Some(country) = message.to.country_code() {
                let latency_ms = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
                match &outcome {
                    Ok(_) => self.outbound.regions.observe_latency(country, latency_ms, now),
                    // An upstream that cannot be reached or fails on its side counts against the region.
                    Err(error) if error.class() == ErrorClass::Retry => {
                        self.outbound.regions.record(country, true, Some(latency_ms), now)
                    }
                    Err(_) => {}
                }
            }
            let transition = match outcome {
                Ok(Sent::Whatsapp(wamid)) => Transition {
                    id: message.id,
                    status: Status::Sent,
                    at_ms: now,
                    cause: format!("accepted by the Cloud API as {}", wamid.0),
                    changes: Changes {
                        wamid: Some(wamid),
                        attempts: Some(attempts),
                        // The number it left from, for the receipts by sender.
                        sender: Some(self.outbound.cloud_api.phone_number_id_for(&message.to).to_owned()),
                        ..Changes::default()
                    },
                },
                Ok(Sent::Sms(sid)) => Transition {
                    id: message.id,
                    status: Status::Sent,
                    at_ms: now,
                    cause: format!("accepted by the SMS provider as {sid}"),
                    changes: Changes {
                        attempts: Some(attempts),
                        ..Changes::default()
                    },
                },
                Err(error) => {
                    let class = error.class();
                    if class == ErrorClass::Permanent || attempts >= self.config.max_attempts {
                        let cause = if class == ErrorClass::Permanent {
                            format!("failed: {error}")
                        } else {
                            format!("failed after {attempts} attempts: {error}")
                        };
                        Transition {
                            id: message.id,
                            status: Status::Failed,
                            at_ms: now,
                            cause,
                            changes: Changes {
                                reason: Some(error.to_string()),
                                error_code: error.code(),
                                attempts: Some(attempts),
                                ..Changes::default()
                            },
                        }
                    } else {
                        let backoff_ms = self.backoff_ms(attempts, class);
                        match error.rate_scope() {
                            Some(RateScope::Sender) => self.limits.slow_sender(backoff_ms),
                            Some(RateScope::Recipient) => self.limits.slow_recipient(&message.to, backoff_ms),
                            None => {}
                        }
                        let due_at_ms = now + backoff_ms;
                        held_back = Some(due_at_ms);
                        Transition {
                            id: message.id,
                            status: Status::Queued,
                            at_ms: now,
                            cause: format!("will retry (attempt {attempts}): {error}"),
                            changes: Changes {
                                due_at_ms: Some(due_at_ms),
                                error_code: error.code(),
                                attempts: Some(attempts),
                                ..Changes::default()
                            },
                        }
                    }
                }
            };
            results.push(transition);
        }
        results
    }

    async fn send_one(&self, message: &Outgoing) -> Result<Sent, Failure> {
        match message.channel {
            Channel::Whatsapp => self
                .outbound
                .cloud_api
                .send(
                    &message.to,
                    &message.content,
                    &crate::message::callback_reference(message.id, message.sensitive),
                )
                .await
                .map(Sent::Whatsapp)
                .map_err(Failure::CloudApi),
            Channel::Sms => match &self.outbound.sms {
                Some(sms) => sms
                    .send(&message.to, &message.content)
                    .await
                    .map(Sent::Sms)
                    .map_err(Failure::Sms),
                None => Err(Failure::NoSmsChannel),
            },
        }
    }

    /// Capped exponential backoff with full jitter; rate limits start four times higher.
    fn backoff_ms(&self, attempts: u32, class: ErrorClass) -> i64 {
        let base = self.config.retry_base_ms * if class == ErrorClass::RateLimited { 4 } else { 1 };
        let ceiling = base
            .saturating_mul(1u64 << attempts.min(20).saturating_sub(1))
            .min(self.config.retry_max_ms)
            .max(1);
        let jittered = rand::rng().random_range(ceiling / 2..=ceiling);
        i64::try_from(jittered).unwrap_or(i64::MAX / 2)
    }
}

/// Whether the Cloud API failed on its side (5xx) or was not reached: what the health rule
/// on the upstream 5xx rate counts. Refusals of the message itself (4xx) are not.
fn upstream_fault(error: &SendError) -> bool {
    match error {
        SendError::Rejected { http_status, .. } | SendError::Malformed { http_status, .. } => *http_status >= 500,
        SendError::Transport(_) | SendError::Unreachable(_) => true,
    }
}

/// What a channel answered a send with.
enum Sent {
    Whatsapp(crate::message::Wamid),
    /// The SMS provider's message sid.
    Sms(String),
}

/// Why a send failed, by channel, classified by type.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    CloudApi(SendError),
    #[error(transparent)]
    Sms(crate::channel::SmsError),
    #[error("rerouted to SMS, but no SMS provider is configured (channel.sms)")]
    NoSmsChannel,
}

impl Failure {
    fn class(&self) -> ErrorClass {
        match self {
            Failure::CloudApi(error) => error.class(),
            Failure::Sms(error) => error.class(),
            Failure::NoSmsChannel => ErrorClass::Permanent,
        }
    }

    fn code(&self) -> Option<i64> {
        match self {
            Failure::CloudApi(error) => error.code(),
            Failure::Sms(error) => error.code(),
            Failure::NoSmsChannel => None,
        }
    }

    fn rate_scope(&self) -> Option<RateScope> {
        match self {
            Failure::CloudApi(error) => error.rate_scope(),
            Failure::Sms(_) | Failure::NoSmsChannel => None,
        }
    }
}

/// Contacts (by wa_id) and region health (by country code) for one batch.
struct BatchFacts {
    contacts: HashMap<String, crate::store::Contact>,
    sends: HashMap<String, crate::store::SendCounts>,
    regions: HashMap<u16, crate::regions::RegionState>,
    sender: crate::senders::SenderFacts,
    backlog: HashMap<u16, u32>,
    degraded_mode: bool,
}

fn expired(id: MessageId, now: i64) -> Transition {
    Transition {
        id,
        status: Status::Expired,
        at_ms: now,
        cause: "expired: not sent before its deadline".into(),
        changes: Changes {
            reason: Some("not sent before its deadline".into()),
            ..Changes::default()
        },
    }
}

/// The earlier of the message's own `expires_at` and acceptance plus the TTL (0: none).
fn deadline(message: &PendingMessage, ttl_ms: u64) -> Option<i64> {
    let by_ttl = (ttl_ms > 0).then(|| {
        message
            .created_at_ms
            .saturating_add(i64::try_from(ttl_ms).unwrap_or(i64::MAX))
    });
    match (message.expires_at_ms, by_ttl) {
        (Some(own), Some(ttl)) => Some(own.min(ttl)),
        (own, ttl) => own.or(ttl),
    }
}

/// Runs each claimed message through the chain: on-submit when it is new, then on-dispatch.
/// Returns the state changes to record and the messages that go out now.
fn judge(
    chain: &Chain,
    sender: &str,
    ttl_ms: u64,
    facts: &BatchFacts,
    batch: &[Claimed],
) -> (Vec<Transition>, Vec<Outgoing>) {
    let now = store::now_ms();
    let mut transitions = Vec::with_capacity(batch.len() * 3);
    let mut outgoing = Vec::with_capacity(batch.len());
    for claimed in batch {
        let message = &claimed.message;
        // A sensitive body that cannot be decrypted (its key is gone) is never sent.
        if let Some(error) = &message.unreadable {
            transitions.push(Transition {
                id: message.id,
                status: Status::Failed,
                at_ms: now,
                cause: format!("failed: {error}"),
                changes: Changes {
                    reason: Some(error.clone()),
                    ..Changes::default()
                },
            });
            continue;
        }
        let deadline_ms = deadline(message, ttl_ms);
        if deadline_ms.is_some_and(|deadline| deadline <= now) {
            transitions.push(expired(message.id, now));
            continue;
        }
        let mut envelope = Envelope::from_pending(message, sender);
        let mut rewritten_by = message.rewritten_by.clone();
        let context = crate::facts::context(
            &crate::facts::Known {
                to: Some(&message.to),
                contact: facts.contacts.get(message.to.digits()),
                sends: facts.sends.get(message.to.digits()),
                region: message.to.country_code().and_then(|code| facts.regions.get(&code)),
                sender,
                sender_facts: facts.sender,
                shard: message.shard,
                shard_backlog: facts.backlog.get(&message.shard).copied().unwrap_or(0),
                degraded_mode: facts.degraded_mode,
            },
            now,
        );
        // An opted-out recipient gets no business-initiated message, whatever the plugins say;
        // a service reply inside the customer's own 24-hour window is not business-initiated.
        if context.recipient.opted_out
            && !(message.category == crate::message::Category::Service && context.recipient.service_window_open)
        {
            transitions.push(Transition {
                id: message.id,
                status: Status::Rejected,
                at_ms: now,
                cause: "rejected: the recipient opted out".into(),
                changes: Changes {
                    reason: Some("the recipient opted out of business-initiated messages".into()),
                    ..Changes::default()
                },
            });
            continue;
        }

        if message.status == Status::Accepted {
            let outcome = chain.run(Hook::Submit, &envelope, &context);
            match settle(
                message.id,
                Hook::Submit,
                outcome,
                &mut rewritten_by,
                now,
                &mut transitions,
            ) {
                Some(admitted) => envelope = admitted,
                None => continue,
            }
        }
        let outcome = chain.run(Hook::Dispatch, &envelope, &context);
        let Some(ready) = settle(
            message.id,
            Hook::Dispatch,
            outcome,
            &mut rewritten_by,
            now,
            &mut transitions,
        ) else {
            continue;
        };
        // A message found `sending` was claimed before a crash: whether it left is unknown,
        // so it goes again (at least once), and its history says so.
        let cause = if message.status == Status::Sending {
            format!(
                "resending over {} after an interrupted attempt, such as a crash (attempt {}; the earlier send may have arrived)",
                ready.channel,
                message.attempts + 1
            )
        } else {
            format!("sending over {} (attempt {})", ready.channel, message.attempts + 1)
        };
        transitions.push(Transition {
            id: message.id,
            status: Status::Sending,
            at_ms: now,
            cause,
            changes: Changes {
                content_sent: Some((ready.content.clone(), rewritten_by.clone())),
                priority: (ready.priority != message.priority).then_some(ready.priority),
                ..Changes::default()
            },
        });
        outgoing.push(Outgoing {
            id: message.id,
            to: ready.to,
            channel: ready.channel,
            content: ready.content,
            priority: ready.priority,
            attempts: message.attempts,
            deadline_ms,
            sensitive: message.sensitive,
            shard: message.shard,
        });
    }
    (transitions, outgoing)
}

/// Marks the transitions of sensitive messages, so the store seals the body sent they carry.
/// Costs nothing for a batch without one.
fn mark_sensitive(batch: &[Claimed], transitions: &mut [Transition]) {
    if !batch.iter().any(|claimed| claimed.message.sensitive) {
        return;
    }
    let sensitive: std::collections::HashSet<MessageId> = batch
        .iter()
        .filter(|claimed| claimed.message.sensitive)
        .map(|claimed| claimed.message.id)
        .collect();
    for transition in transitions
        .iter_mut()
        .filter(|transition| sensitive.contains(&transition.id))
    {
        transition.changes.sensitive = true;
    }
}

/// Turns a chain's outcome into history; returns the envelope when the message goes on.
fn settle(
    id: MessageId,
    hook: Hook,
    outcome: ChainOutcome,
    rewritten_by: &mut Vec<String>,
    now: i64,
    transitions: &mut Vec<Transition>,
) -> Option<Envelope> {
    let stage = hook.export_name();
    let rewrote = !outcome.rewritten_by.is_empty();
    for plugin in &outcome.rewritten_by {
        if !rewritten_by.contains(plugin) {
            rewritten_by.push(plugin.clone());
        }
    }
    let content_sent = rewrote.then(|| (outcome.envelope.content.clone(), rewritten_by.clone()));
    match outcome.decision {
        Decision::Reject { reason } => {
            transitions.push(Transition {
                id,
                status: Status::Rejected,
                at_ms: now,
                cause: format!("rejected {stage} by {reason}"),
                changes: Changes {
                    reason: Some(reason),
                    content_sent,
                    ..Changes::default()
                },
            });
            None
        }
        Decision::Defer { until_ms, by } => {
            transitions.push(Transition {
                id,
                status: Status::Deferred,
                at_ms: now,
                cause: format!("deferred {stage} by {by} until {}", crate::api::format_time(until_ms)),
                changes: Changes {
                    due_at_ms: Some(until_ms),
                    content_sent,
                    priority: Some(outcome.envelope.priority),
                    ..Changes::default()
                },
            });
            None
        }
        Decision::Allow => {
            if hook == Hook::Submit {
                let cause = if rewrote {
                    format!("admitted; rewritten by {}", outcome.rewritten_by.join(", "))
                } else {
                    "admitted by the policies".to_owned()
                };
                transitions.push(Transition {
                    id,
                    status: Status::Queued,
                    at_ms: now,
                    cause,
                    changes: Changes {
                        content_sent,
                        priority: Some(outcome.envelope.priority),
                        ..Changes::default()
                    },
                });
            }
            Some(outcome.envelope)
        }
    }
}
