//! The evaluator on paused tokio time, against a fake node: each default rule fires once after
//! its `for_ms`, holds while the value sits between `clear` and the threshold, and resolves
//! after `clear_for_ms` past `clear`, acting and reporting once each way.

use std::sync::{Arc, Mutex};

use tokio::{sync::broadcast::error::TryRecvError, time::Duration};

use super::{config::HealthConfig, *};

#[derive(Default)]
struct FakeState {
    window: Window,
    backlog: u64,
    regions: Vec<u16>,
    leader: bool,
    receipts: Vec<TemplateReceipts>,
    degraded: bool,
    extra: u32,
    audit: Vec<AuditEntry>,
}

#[derive(Clone, Default)]
struct FakeNode(Arc<Mutex<FakeState>>);

impl FakeNode {
    fn with<T>(&self, change: impl FnOnce(&mut FakeState) -> T) -> T {
        change(&mut self.0.lock().unwrap())
    }
}

impl Node for FakeNode {
    fn upstream(&self, _now_ms: i64, _window_ms: u64) -> Window {
        self.with(|state| state.window)
    }

    fn backlog(&self) -> u64 {
        self.with(|state| state.backlog)
    }

    fn degraded_regions(&self, _now_ms: i64) -> Vec<u16> {
        self.with(|state| state.regions.clone())
    }

    fn is_leader(&self) -> bool {
        self.with(|state| state.leader)
    }

    async fn template_receipts(
        &self,
        _now_ms: i64,
        _window_ms: u64,
        _baseline_ms: u64,
    ) -> crate::store::Result<Vec<TemplateReceipts>> {
        Ok(self.with(|state| state.receipts.clone()))
    }

    fn set_degraded(&self, degraded: bool) {
        self.with(|state| state.degraded = degraded);
    }

    fn set_extra_in_flight(&self, permits: u32) {
        self.with(|state| state.extra = permits);
    }

    async fn audit(&self, entries: Vec<AuditEntry>) -> crate::store::Result<()> {
        self.with(|state| state.audit.extend(entries));
        Ok(())
    }
}

struct Running {
    node: FakeNode,
    health: Arc<Health>,
    events: tokio::sync::broadcast::Receiver<Arc<LiveEvent>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The default rules, evaluated every 5 s on a fake node.
fn start() -> Running {
    let node = FakeNode::default();
    let health = Arc::new(Health::new(HealthConfig::default().rules().unwrap()));
    let live = Live::new();
    let events = live.subscribe();
    let task = Evaluator::new(node.clone(), health.clone(), live, None).spawn(Duration::from_secs(5));
    Running {
        node,
        health,
        events,
        task,
    }
}

impl Running {
    /// The rule events published since the last call, as (name, subject, state).
    fn rule_events(&mut self) -> Vec<(String, Option<String>, String)> {
        let mut seen = Vec::new();
        loop {
            match self.events.try_recv() {
                Ok(event) => {
                    if let LiveEvent::Rule(rule) = &*event {
                        seen.push((rule.name.clone(), rule.subject.clone(), rule.state.clone()));
                    }
                }
                Err(TryRecvError::Empty) => return seen,
                Err(error) => panic!("{error}"),
            }
        }
    }

    fn audit(&self) -> Vec<(String, Option<String>, String)> {
        self.node.with(|state| {
            state
                .audit
                .iter()
                .map(|entry| (entry.action.clone(), entry.target.clone(), entry.token_id.clone()))
                .collect()
        })
    }

    fn rule(&self, name: &str) -> RuleState {
        self.health
            .rules()
            .into_iter()
            .find(|state| state.rule.name == name)
            .unwrap()
    }
}

fn event(name: &str, subject: Option<&str>, state: &str) -> (String, Option<String>, String) {
    (name.to_owned(), subject.map(str::to_owned), state.to_owned())
}

fn audit(action: &str, target: &str) -> (String, Option<String>, String) {
    (action.to_owned(), Some(target.to_owned()), AUDIT_TOKEN_ID.to_owned())
}

async fn pass(duration: Duration) {
    tokio::time::sleep(duration).await;
}

#[tokio::test(start_paused = true)]
async fn the_backlog_rule_degrades_the_node_and_recovers() {
    let mut running = start();
    running.node.with(|state| state.backlog = 6_000);
    // Fires after 10 s above 5,000, not before.
    pass(Duration::from_secs(7)).await;
    assert!(!running.rule("backlog").firing());
    assert!(!running.node.with(|state| state.degraded));
    pass(Duration::from_secs(10)).await;
    assert!(running.rule("backlog").firing());
    assert!(running.health.degraded());
    assert!(running.node.with(|state| state.degraded));
    assert_eq!(running.rule_events(), vec![event("backlog", None, "firing")]);
    assert_eq!(running.audit(), vec![audit("health.fire", "backlog")]);
    // Between clear (4,000) and the threshold: neither resolves nor fires again.
    running.node.with(|state| state.backlog = 4_500);
    pass(Duration::from_secs(600)).await;
    assert!(running.rule("backlog").firing());
    assert!(running.rule_events().is_empty());
    // Below clear: resolves after 30 s there.
    running.node.with(|state| state.backlog = 100);
    pass(Duration::from_secs(20)).await;
    assert!(running.rule("backlog").firing());
    pass(Duration::from_secs(15)).await;
    let state = running.rule("backlog");
    assert!(!state.firing());
    assert!(state.episode.last_resolved_ms.is_some());
    assert!(!running.health.degraded());
    assert!(!running.node.with(|state| state.degraded));
    assert_eq!(running.rule_events(), vec![event("backlog", None, "resolved")]);
    assert_eq!(
        running.audit(),
        vec![audit("health.fire", "backlog"), audit("health.resolve", "backlog")]
    );
}

#[tokio::test(start_paused = true)]
async fn a_degraded_region_is_told_once_and_its_recovery_once() {
    let mut running = start();
    pass(Duration::from_secs(6)).await;
    assert!(running.rule_events().is_empty());
    running.node.with(|state| state.regions = vec![62]);
    pass(Duration::from_secs(5)).await;
    assert!(running.rule("regions_degraded").firing());
    assert_eq!(
        running.rule_events(),
        vec![event("regions_degraded", Some("+62"), "firing")]
    );
    // A second region while the first still is: the same episode, nothing new told.
    running.node.with(|state| state.regions = vec![62, 65]);
    pass(Duration::from_secs(60)).await;
    assert!(running.rule_events().is_empty());
    // Only the action's own effects: neither degraded mode nor extra slots.
    assert!(!running.node.with(|state| state.degraded));
    assert_eq!(running.node.with(|state| state.extra), 0);
    running.node.with(|state| state.regions.clear());
    pass(Duration::from_secs(5)).await;
    assert!(!running.rule("regions_degraded").firing());
    assert_eq!(running.rule_events(), vec![event("regions_degraded", None, "resolved")]);
    assert_eq!(
        running.audit(),
        vec![
            audit("health.fire", "regions_degraded:+62"),
            audit("health.resolve", "regions_degraded")
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_upstream_5xx_rule_scales_out_and_back() {
    let mut running = start();
    // 0.5% of 1,000 calls fail: above 0.1%.
    running.node.with(|state| {
        state.window = Window {
            calls: 1_000,
            faults: 5,
        }
    });
    pass(Duration::from_secs(170)).await;
    assert_eq!(running.node.with(|state| state.extra), 0, "not before three minutes");
    pass(Duration::from_secs(15)).await;
    assert!(running.rule("upstream_5xx").firing());
    assert_eq!(running.node.with(|state| state.extra), config::DEFAULT_SCALE_OUT_STEP);
    assert_eq!(running.rule_events(), vec![event("upstream_5xx", None, "firing")]);
    // Too few calls to count: the rule holds.
    running
        .node
        .with(|state| state.window = Window { calls: 10, faults: 0 });
    pass(Duration::from_secs(600)).await;
    assert!(running.rule("upstream_5xx").firing());
    assert_eq!(running.rule("upstream_5xx").episode.value, None);
    // Clean traffic: resolves three minutes later, and the slots go back.
    running.node.with(|state| {
        state.window = Window {
            calls: 1_000,
            faults: 0,
        }
    });
    pass(Duration::from_secs(170)).await;
    assert!(running.rule("upstream_5xx").firing());
    pass(Duration::from_secs(20)).await;
    assert!(!running.rule("upstream_5xx").firing());
    assert_eq!(running.node.with(|state| state.extra), 0);
    assert_eq!(running.rule_events(), vec![event("upstream_5xx", None, "resolved")]);
    assert_eq!(
        running.audit(),
        vec![
            audit("health.fire", "upstream_5xx"),
            audit("health.resolve", "upstream_5xx")
        ]
    );
}

fn receipts(template: &str, delivered: u64, read: u64) -> TemplateReceipts {
    TemplateReceipts {
        template: template.to_owned(),
        delivered,
        read,
        baseline_delivered: 10_000,
        baseline_read: 6_000,
    }
}

#[tokio::test(start_paused = true)]
async fn the_template_rule_flags_a_template_on_the_leader_and_clears_it() {
    let mut running = start();
    // 20% read against its own 60%; the other template reads as usual.
    running.node.with(|state| {
        state.receipts = vec![receipts("promo", 500, 100), receipts("receipt", 500, 310)];
    });
    pass(Duration::from_secs(1_200)).await;
    assert!(running.rule_events().is_empty(), "only the leader flags templates");
    running.node.with(|state| state.leader = true);
    pass(Duration::from_secs(850)).await;
    assert_eq!(running.health.review_flag("promo"), None, "not before for_ms");
    pass(Duration::from_secs(120)).await;
    let flag = running.health.review_flag("promo").expect("flagged");
    assert_eq!(flag.rule, "template_read_rate");
    assert!((flag.read_rate - 0.2).abs() < 1e-9 && (flag.baseline - 0.6).abs() < 1e-9);
    assert_eq!(running.health.review_flag("receipt"), None);
    let state = running.rule("template_read_rate");
    assert!(state.firing());
    assert_eq!(state.subjects.keys().collect::<Vec<_>>(), vec!["promo"]);
    assert_eq!(
        running.rule_events(),
        vec![event("template_read_rate", Some("promo"), "firing")]
    );
    assert!(!running.health.degraded(), "flagging degrades nothing");
    // 51% against 60% is 0.85: between 0.8 and the clear mark 0.9, the flag stays.
    running
        .node
        .with(|state| state.receipts = vec![receipts("promo", 500, 255)]);
    pass(Duration::from_secs(3_600)).await;
    assert!(running.health.review_flag("promo").is_some());
    assert!(running.rule_events().is_empty());
    // Back to its average: cleared after 15 minutes.
    running
        .node
        .with(|state| state.receipts = vec![receipts("promo", 500, 300)]);
    pass(Duration::from_secs(1_000)).await;
    assert_eq!(running.health.review_flag("promo"), None);
    assert!(!running.rule("template_read_rate").firing());
    assert_eq!(
        running.rule_events(),
        vec![event("template_read_rate", Some("promo"), "resolved")]
    );
    assert_eq!(
        running.audit(),
        vec![
            audit("health.fire", "template_read_rate:promo"),
            audit("health.resolve", "template_read_rate:promo")
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn few_delivered_messages_flag_nothing() {
    let mut running = start();
    running.node.with(|state| {
        state.leader = true;
        state.receipts = vec![receipts("rare", 20, 0)];
    });
    pass(Duration::from_secs(7_200)).await;
    assert!(running.rule_events().is_empty());
    assert_eq!(running.health.review_flag("rare"), None);
}
