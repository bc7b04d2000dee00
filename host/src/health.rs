//! Health rules: conditions over the node's own signals that act by themselves. Each rule
//! ([`config`]) watches one metric (the upstream 5xx rate, the backlog, each template's read
//! rate against its own baseline); its [`episode`] state machine fires it once per episode,
//! with hysteresis, and resolves it; while it fires its action holds: `scale_out` raises the
//! dispatch concurrency, `degrade` puts the node in degraded mode (bulk stays queued,
//! policies see `degraded-mode`), `flag_template` flags the template for review.
//!
//! The evaluator runs on a tokio interval (`health.evaluate_every_ms`), so paused time drives
//! it in tests. It reads and acts through [`Node`] (the dispatcher, the upstream counters, the
//! store), and reports every firing and resolution once: a log line, an audit row (token
//! `health`), a [`LiveEvent::Rule`], and a POST to the operator's webhook ([`webhook`]).
//! [`Health`] is what the API reads: the rules' state, degraded mode, the review flags.
//! May call the store (through [`Node`]), the live stream and the metrics.

pub mod config;
pub mod episode;
pub mod upstream;
pub mod webhook;

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{Arc, RwLock},
    time::Duration,
};

use self::{
    config::{Action, Metric, Rule},
    episode::{Episode, Step},
    upstream::Window,
    webhook::{Notice, Webhook},
};
use crate::{
    store::AuditEntry,
    telemetry::live::{Live, LiveEvent, RuleEvent},
};

/// The token id of the audit rows the rules write.
pub const AUDIT_TOKEN_ID: &str = "health";
/// How often per-template read rates are read from the store: they move over an hour, and
/// the read spans the baseline's days.
pub const TEMPLATE_SAMPLE_INTERVAL_MS: i64 = 60_000;

/// One template's receipts over a rule's window and over its baseline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateReceipts {
    pub template: String,
    pub delivered: u64,
    pub read: u64,
    pub baseline_delivered: u64,
    pub baseline_read: u64,
}

/// What the evaluator reads from the node and acts on.
pub trait Node: Send + Sync + 'static {
    /// Cloud API calls and faults over the last `window_ms`.
    fn upstream(&self, now_ms: i64, window_ms: u64) -> Window;
    /// Messages waiting on this node now.
    fn backlog(&self) -> u64;
    /// The country calling codes of the regions degraded now, in order.
    fn degraded_regions(&self, now_ms: i64) -> Vec<u16>;
    /// Whether this node runs the cluster's singletons (templates are flagged once).
    fn is_leader(&self) -> bool;
    /// Per template: receipts over `[now - window_ms, now)` and `[now - baseline_ms, now)`.
    fn template_receipts(
        &self,
        now_ms: i64,
        window_ms: u64,
        baseline_ms: u64,
    ) -> impl Future<Output = crate::store::Result<Vec<TemplateReceipts>>> + Send;
    /// Degraded mode on or off.
    fn set_degraded(&self, degraded: bool);
    /// In-flight slots added to the dispatcher's configured number (0: back to it).
    fn set_extra_in_flight(&self, permits: u32);
    fn audit(&self, entries: Vec<AuditEntry>) -> impl Future<Output = crate::store::Result<()>> + Send;
}

/// A template flagged for review by a `flag_template` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewFlag {
    pub rule: String,
    pub since_ms: i64,
    /// Its read rate over the rule's window.
    pub read_rate: f64,
    /// Its own read rate over the rule's baseline.
    pub baseline: f64,
}

/// One subject of a rule per template.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Subject {
    pub episode: Episode,
    pub read_rate: Option<f64>,
    pub baseline: Option<f64>,
}

/// A rule and where it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleState {
    pub rule: Rule,
    /// The rule over the whole node (for a rule per template: its last firing and resolution).
    pub episode: Episode,
    /// A rule per template: the templates pending or firing.
    pub subjects: BTreeMap<String, Subject>,
}

impl RuleState {
    fn new(rule: Rule) -> Self {
        Self {
            rule,
            episode: Episode::default(),
            subjects: BTreeMap::new(),
        }
    }

    pub fn firing(&self) -> bool {
        if self.rule.metric == Metric::TemplateReadRate {
            self.subjects.values().any(|subject| subject.episode.firing())
        } else {
            self.episode.firing()
        }
    }

    /// When the earliest current firing began.
    pub fn since(&self) -> Option<i64> {
        if self.rule.metric == Metric::TemplateReadRate {
            self.subjects
                .values()
                .filter_map(|subject| subject.episode.since())
                .min()
        } else {
            self.episode.since()
        }
    }
}

/// What the API and the dispatcher's neighbours read: the rules' state after the last
/// evaluation, degraded mode, and the templates flagged for review.
#[derive(Debug, Default)]
pub struct Health {
    rules: RwLock<Vec<RuleState>>,
    flags: RwLock<BTreeMap<String, ReviewFlag>>,
    degraded: std::sync::atomic::AtomicBool,
}

impl Health {
    pub fn new(rules: Vec<Rule>) -> Self {
        Self {
            rules: RwLock::new(rules.into_iter().map(RuleState::new).collect()),
            ..Self::default()
        }
    }

    pub fn rules(&self) -> Vec<RuleState> {
        self.rules
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn degraded(&self) -> bool {
        self.degraded.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The review flag of template `name`, if a rule flagged it.
    pub fn review_flag(&self, name: &str) -> Option<ReviewFlag> {
        self.flags
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(name)
            .cloned()
    }

    fn publish(&self, rules: &[RuleState], degraded: bool) {
        let mut flags = BTreeMap::new();
        for state in rules.iter().filter(|state| state.rule.action == Action::FlagTemplate) {
            for (template, subject) in &state.subjects {
                if let Some(since_ms) = subject.episode.since() {
                    flags.entry(template.clone()).or_insert_with(|| ReviewFlag {
                        rule: state.rule.name.clone(),
                        since_ms,
                        read_rate: subject.read_rate.unwrap_or(0.0),
                        baseline: subject.baseline.unwrap_or(0.0),
                    });
                }
            }
        }
        *self.flags.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = flags;
        *self.rules.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = rules.to_vec();
        self.degraded.store(degraded, std::sync::atomic::Ordering::Relaxed);
    }
}

/// One firing or resolution.
#[derive(Debug, Clone, PartialEq)]
struct Change {
    rule: usize,
    subject: Option<String>,
    step: Step,
    value: Option<f64>,
}

/// The evaluator: the rules' state machines, fed from a [`Node`].
pub struct Evaluator<N: Node> {
    node: N,
    health: Arc<Health>,
    live: Live,
    webhook: Option<Webhook>,
    states: Vec<RuleState>,
    /// When template receipts were last read.
    templates_sampled_ms: Option<i64>,
}

impl<N: Node> Evaluator<N> {
    pub fn new(node: N, health: Arc<Health>, live: Live, webhook: Option<Webhook>) -> Self {
        let states = health.rules();
        Self {
            node,
            health,
            live,
            webhook,
            states,
            templates_sampled_ms: None,
        }
    }

    /// Evaluates every `every` until the process ends. Time is tokio's: paused time drives it.
    pub fn spawn(mut self, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let started_ms = crate::store::now_ms();
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let elapsed = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX / 2);
                self.evaluate(started_ms + elapsed).await;
            }
        })
    }

    /// One round at `now_ms`: sample, step every rule, act, report.
    pub async fn evaluate(&mut self, now_ms: i64) {
        let mut changes = Vec::new();
        let sample_templates = self.node.is_leader()
            && self
                .templates_sampled_ms
                .is_none_or(|at| now_ms - at >= TEMPLATE_SAMPLE_INTERVAL_MS);
        if sample_templates {
            self.templates_sampled_ms = Some(now_ms);
        }
        for index in 0..self.states.len() {
            let rule = self.states[index].rule.clone();
            match rule.metric {
                Metric::Upstream5xxRate => {
                    let window = self.node.upstream(now_ms, rule.window_ms);
                    let value = (window.calls >= rule.min_samples.max(1)).then(|| window.rate());
                    self.step_node(index, now_ms, value, None, &mut changes);
                }
                Metric::Backlog => {
                    let value = self.node.backlog() as f64;
                    self.step_node(index, now_ms, Some(value), None, &mut changes);
                }
                Metric::DegradedRegions => {
                    let regions = self.node.degraded_regions(now_ms);
                    // The regions it fired for (none when it resolves): `+62 +65`.
                    let subject = (!regions.is_empty()).then(|| {
                        regions
                            .iter()
                            .map(|code| format!("+{code}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    });
                    self.step_node(index, now_ms, Some(regions.len() as f64), subject, &mut changes);
                }
                Metric::TemplateReadRate if sample_templates => {
                    match self
                        .node
                        .template_receipts(now_ms, rule.window_ms, rule.baseline_ms)
                        .await
                    {
                        Ok(receipts) => self.step_templates(index, now_ms, &receipts, &mut changes),
                        Err(error) => {
                            tracing::warn!(%error, rule = %rule.name, "reading template read rates failed; tried again next round");
                        }
                    }
                }
                Metric::TemplateReadRate => {}
            }
        }
        let degraded = self
            .states
            .iter()
            .any(|state| state.rule.action == Action::Degrade && state.firing());
        let extra: u32 = self
            .states
            .iter()
            .filter(|state| state.rule.action == Action::ScaleOut && state.firing())
            .map(|state| state.rule.step)
            .fold(0, u32::saturating_add);
        self.node.set_degraded(degraded);
        self.node.set_extra_in_flight(extra);
        self.health.publish(&self.states, degraded);
        for state in &self.states {
            crate::telemetry::metrics::health_rule(&state.rule.name, state.firing());
        }
        crate::telemetry::metrics::degraded_mode(degraded);
        self.report(now_ms, changes).await;
    }

    fn step_node(
        &mut self,
        index: usize,
        now_ms: i64,
        value: Option<f64>,
        subject: Option<String>,
        changes: &mut Vec<Change>,
    ) {
        let state = &mut self.states[index];
        let step = state.episode.observe(&state.rule, now_ms, value);
        if step != Step::Unchanged {
            changes.push(Change {
                rule: index,
                subject,
                step,
                value,
            });
        }
    }

    fn step_templates(&mut self, index: usize, now_ms: i64, receipts: &[TemplateReceipts], changes: &mut Vec<Change>) {
        let state = &mut self.states[index];
        let rule = state.rule.clone();
        let mut seen = Vec::with_capacity(receipts.len());
        for template in receipts {
            seen.push(template.template.as_str());
            let rate = |read: u64, delivered: u64| (delivered > 0).then(|| read as f64 / delivered as f64);
            let read_rate = rate(template.read, template.delivered);
            let baseline = rate(template.baseline_read, template.baseline_delivered);
            let enough = template.delivered >= rule.min_samples && template.baseline_delivered >= rule.min_samples;
            let value = match (read_rate, baseline) {
                (Some(read_rate), Some(baseline)) if enough && baseline > 0.0 => Some(read_rate / baseline),
                _ => None,
            };
            let known = state.subjects.contains_key(&template.template);
            if !known && !value.is_some_and(|value| rule.breaches(value)) {
                // Only templates on the bad side are followed.
                continue;
            }
            let subject = state.subjects.entry(template.template.clone()).or_default();
            subject.read_rate = read_rate;
            subject.baseline = baseline;
            let step = subject.episode.observe(&rule, now_ms, value);
            if step != Step::Unchanged {
                changes.push(Change {
                    rule: index,
                    subject: Some(template.template.clone()),
                    step,
                    value,
                });
                match step {
                    Step::Fired => state.episode.last_fired_ms = Some(now_ms),
                    Step::Resolved => state.episode.last_resolved_ms = Some(now_ms),
                    Step::Unchanged => {}
                }
            }
        }
        // A template no longer in the stats has no receipts: no evidence either way.
        for (name, subject) in &mut state.subjects {
            if !seen.contains(&name.as_str()) {
                subject.episode.observe(&rule, now_ms, None);
            }
        }
        state
            .subjects
            .retain(|_, subject| subject.episode.phase != episode::Phase::Ok);
    }

    async fn report(&self, now_ms: i64, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        let mut entries = Vec::with_capacity(changes.len());
        for change in changes {
            let rule = &self.states[change.rule].rule;
            let firing = change.step == Step::Fired;
            let state = if firing { "firing" } else { "resolved" };
            let value = change.value.unwrap_or(f64::NAN);
            if firing {
                tracing::warn!(rule = %rule.name, action = rule.action.as_str(), subject = ?change.subject, value, threshold = rule.threshold, "health rule firing");
            } else {
                tracing::info!(rule = %rule.name, action = rule.action.as_str(), subject = ?change.subject, value, clear = rule.clear, "health rule resolved");
            }
            if firing && rule.action == Action::ScaleOut {
                tracing::warn!(rule = %rule.name, added_in_flight = rule.step, "scale out: add nodes; dispatch concurrency raised meanwhile");
            }
            self.live.publish(LiveEvent::Rule(RuleEvent {
                action: rule.action.as_str().to_owned(),
                at_ms: now_ms,
                name: rule.name.clone(),
                state: state.to_owned(),
                subject: change.subject.clone(),
                threshold: rule.threshold,
                value: change.value.unwrap_or(0.0),
            }));
            entries.push(AuditEntry {
                at_ms: now_ms,
                token_id: AUDIT_TOKEN_ID.to_owned(),
                action: if firing { "health.fire" } else { "health.resolve" }.to_owned(),
                target: Some(match &change.subject {
                    Some(subject) => format!("{}:{subject}", rule.name),
                    None => rule.name.clone(),
                }),
                outcome: "ok".to_owned(),
            });
            if let Some(webhook) = &self.webhook {
                webhook.send(Notice {
                    action: rule.action.as_str(),
                    at: crate::api::format_time(now_ms),
                    metric: rule.metric.as_str(),
                    rule: rule.name.clone(),
                    state,
                    subject: change.subject,
                    threshold: rule.threshold,
                    value: change.value,
                });
            }
        }
        if let Err(error) = self.node.audit(entries).await {
            tracing::error!(%error, "writing the health rules' audit rows failed");
        }
    }
}

/// The running node as the evaluator sees it.
pub struct HostNode {
    pub dispatch: crate::dispatch::DispatchHandle,
    pub upstream: Arc<upstream::UpstreamOutcomes>,
    pub store: crate::store::Store,
    pub cluster: Arc<crate::cluster::Cluster>,
    pub regions: Arc<crate::regions::RegionHealth>,
}

impl Node for HostNode {
    fn upstream(&self, _now_ms: i64, window_ms: u64) -> Window {
        // The workers count on the wall clock.
        self.upstream.window(crate::store::now_ms(), window_ms)
    }

    fn backlog(&self) -> u64 {
        self.dispatch.backlog()
    }

    fn degraded_regions(&self, _now_ms: i64) -> Vec<u16> {
        // The region tracker counts on the wall clock.
        self.regions
            .all(crate::store::now_ms())
            .iter()
            .filter(|region| region.degraded)
            .map(|region| region.country_code)
            .collect()
    }

    fn is_leader(&self) -> bool {
        self.cluster.is_leader()
    }

    async fn template_receipts(
        &self,
        now_ms: i64,
        window_ms: u64,
        baseline_ms: u64,
    ) -> crate::store::Result<Vec<TemplateReceipts>> {
        let since = |ms: u64| now_ms.saturating_sub(i64::try_from(ms).unwrap_or(i64::MAX / 2));
        let window = self
            .store
            .stats(&crate::store::StatsQuery {
                from_ms: since(window_ms),
                to_ms: now_ms,
                by: crate::store::StatsDimension::Template,
            })
            .await?;
        let baseline = self
            .store
            .stats(&crate::store::StatsQuery {
                from_ms: since(baseline_ms),
                to_ms: now_ms,
                by: crate::store::StatsDimension::Template,
            })
            .await?;
        Ok(receipts(&window, &baseline))
    }

    fn set_degraded(&self, degraded: bool) {
        self.dispatch.set_degraded(degraded);
    }

    fn set_extra_in_flight(&self, permits: u32) {
        self.dispatch.set_extra_in_flight(permits);
    }

    async fn audit(&self, entries: Vec<AuditEntry>) -> crate::store::Result<()> {
        self.store.audit(entries).await
    }
}

/// Per template (messages that are not templates left out): receipts over the window beside
/// those over the baseline.
fn receipts(window: &crate::store::StatsReport, baseline: &crate::store::StatsReport) -> Vec<TemplateReceipts> {
    let count = |value: i64| u64::try_from(value).unwrap_or(0);
    let mut baselines: BTreeMap<&str, &crate::store::Counts> = BTreeMap::new();
    for group in &baseline.groups {
        if let crate::store::StatsKey::Template(Some(name)) = &group.key {
            baselines.insert(name.as_str(), &group.figures.counts);
        }
    }
    window
        .groups
        .iter()
        .filter_map(|group| match &group.key {
            crate::store::StatsKey::Template(Some(name)) => {
                let own = baselines.get(name.as_str());
                Some(TemplateReceipts {
                    template: name.clone(),
                    delivered: count(group.figures.counts.delivered),
                    read: count(group.figures.counts.read),
                    baseline_delivered: own.map_or(0, |counts| count(counts.delivered)),
                    baseline_read: own.map_or(0, |counts| count(counts.read)),
                })
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests;
