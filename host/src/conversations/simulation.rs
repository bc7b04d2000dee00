//! The simulation of issue 10's proof, on simulated time: customers writing in waves to agents
//! of `max_sessions` each, agents answering after a random delay, customers reading after a
//! random delay and sometimes writing again, and one agent's client killed mid-run. A seeded
//! RNG and a loop stepping `now_ms` make every run the same; nothing sleeps.
//!
//! [`simulate`] is what `wasp bench conversations` measures: besides the counts, it times the
//! [`Router`]'s own calls with the wall clock (the driver's bookkeeping is left out), so
//! assignments per second are the engine's throughput. The invariants of the proof are the
//! test's, watching the same run from inside.
//!
//! Drives only the [`Router`].

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng, rngs::StdRng};

use super::*;

const WAVE_EVERY_MS: i64 = 10 * 60 * 1000;
/// Customers of one wave write their first message within this span of its start.
const WAVE_SPREAD_MS: i64 = 2 * 60 * 1000;
const HEARTBEAT_EVERY_MS: i64 = 10_000;
/// The agent whose client is killed: the first one.
const KILLED_AGENT: usize = 0;
const AGENT_REPLY_MS: std::ops::RangeInclusive<i64> = 5_000..=90_000;
const CUSTOMER_READ_MS: std::ops::RangeInclusive<i64> = 3_000..=60_000;
const CUSTOMER_ANSWER_MS: std::ops::RangeInclusive<i64> = 5_000..=120_000;
const ANSWER_CHANCE: f64 = 0.4;
/// Messages a customer writes after the first, at most.
const MAX_FOLLOW_UPS: u32 = 3;
/// Every tenth customer `n` with `n % 10` below this writes in Spanish.
const SPANISH_IN_TEN: usize = 3;
/// Every agent whose index is a multiple of this also speaks Spanish.
const SPANISH_AGENT_EVERY: usize = 4;

/// One run of the simulation. The default is issue 10's: 1,000 customers in 4 waves ten
/// minutes apart, 15 agents of 80 sessions, the first agent's client killed at minute 15,
/// 80 simulated minutes in steps of one second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulationConfig {
    pub customers: usize,
    pub waves: usize,
    pub agents: usize,
    pub max_sessions: u32,
    pub release_on_read: bool,
    /// When the first agent's client stops heartbeating and answering; `None` keeps it alive.
    pub kill_agent_at_ms: Option<i64>,
    /// Simulated time between two looks at the clock; must be positive.
    pub step_ms: i64,
    /// Simulated time the run lasts.
    pub run_ms: i64,
    pub seed: u64,
}

impl Default for SimulationConfig {
    fn default() -> Self {
        Self {
            customers: 1_000,
            waves: 4,
            agents: 15,
            max_sessions: 80,
            release_on_read: true,
            kill_agent_at_ms: Some(15 * 60 * 1000),
            step_ms: 1_000,
            run_ms: 80 * 60 * 1000,
            seed: 10,
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct SimulationReport {
    pub assignments: u64,
    pub released_on_read: u64,
    /// Assignments that went into a slot freed by release on read.
    pub reused_read_slots: u64,
    /// Sessions sent back to the queue because their agent's heartbeat stopped.
    pub heartbeat_requeues: u64,
    /// The most sessions any agent held at the end of a step.
    pub peak_sessions: usize,
    /// Agent-time held by sessions, summed over sessions, in simulated ms.
    pub held_ms: u64,
    /// Of that, the time after the agent's last answer (until the customer read it and, while
    /// still held, after): the session only waited for a read receipt or the customer.
    pub held_for_read_ms: u64,
    /// How long each assignment waited in the queue, in simulated ms, in the order assigned.
    pub queue_waits_ms: Vec<i64>,
    /// Wall-clock time spent inside the router's calls.
    pub engine_time: Duration,
}

impl SimulationReport {
    /// The share of held agent-time spent only waiting for a read receipt (0 when nothing
    /// was held).
    pub fn held_for_read_share(&self) -> f64 {
        if self.held_ms == 0 {
            return 0.0;
        }
        self.held_for_read_ms as f64 / self.held_ms as f64
    }

    /// Assignments per second of the router's own time.
    pub fn assignments_per_second(&self) -> f64 {
        let seconds = self.engine_time.as_secs_f64();
        if seconds == 0.0 {
            return 0.0;
        }
        self.assignments as f64 / seconds
    }

    /// The queue wait at `share` (0.5 for the median), nearest rank; 0 with no assignment.
    pub fn queue_wait_ms(&self, share: f64) -> i64 {
        let mut waits = self.queue_waits_ms.clone();
        waits.sort_unstable();
        let Some(last) = waits.len().checked_sub(1) else {
            return 0;
        };
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let rank = ((waits.len() as f64 * share).ceil() as usize).saturating_sub(1);
        waits[rank.min(last)]
    }
}

/// Runs the simulation `config` describes.
///
/// # Panics
///
/// When `config.step_ms` is not positive.
pub fn simulate(config: &SimulationConfig) -> Result<SimulationReport> {
    Ok(Simulation::new(config)?.run(&mut ())?.0)
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    CustomerWrites {
        customer: usize,
    },
    AgentReplies {
        conversation: ConversationId,
        agent: AgentId,
    },
    CustomerReads {
        conversation: ConversationId,
        customer: usize,
        sent_ms: i64,
    },
}

/// Looks at a run from inside: every answer of the router, and the router after each step.
trait Watcher {
    fn events(&mut self, router: &Router, events: &[SessionEvent], now_ms: i64);
    fn step(&mut self, router: &Router, now_ms: i64);
}

/// The benchmark watches nothing.
impl Watcher for () {
    fn events(&mut self, _: &Router, _: &[SessionEvent], _: i64) {}
    fn step(&mut self, _: &Router, _: i64) {}
}

struct Simulation {
    config: SimulationConfig,
    router: Router,
    rng: StdRng,
    agents: Vec<AgentId>,
    contacts: Vec<String>,
    customers: HashMap<String, usize>,
    follow_ups: Vec<u32>,
    /// Scheduled actions by time, then by the order they were scheduled.
    schedule: BinaryHeap<Reverse<(i64, u64, Action)>>,
    scheduled: u64,
    /// Per agent, slots freed by release on read and not yet given out again.
    read_slots: HashMap<AgentId, u64>,
    killed: bool,
    report: SimulationReport,
}

impl Simulation {
    fn new(config: &SimulationConfig) -> Result<Self> {
        assert!(config.step_ms > 0, "the simulation's step_ms must be positive");
        let mut router = Router::new(RouterConfig {
            release_on_read: config.release_on_read,
            max_sessions: config.max_sessions,
            ..RouterConfig::default()
        });
        let mut report = SimulationReport::default();
        let mut agents = Vec::new();
        for index in 0..config.agents {
            let mut languages = BTreeSet::from(["en".to_owned()]);
            if index % SPANISH_AGENT_EVERY == 0 {
                languages.insert("es".to_owned());
            }
            let agent = NewAgent {
                id: format!("agent-{index:02}"),
                name: format!("Agent {index}"),
                skills: BTreeSet::new(),
                languages,
                max_sessions: None,
            };
            agents.push(AgentId(agent.id.clone()));
            let started = Instant::now();
            router.add_agent(agent, 0)?;
            report.engine_time += started.elapsed();
        }
        let contacts: Vec<String> = (0..config.customers)
            .map(|customer| format!("+3460000{customer:04}"))
            .collect();
        let mut simulation = Self {
            config: config.clone(),
            router,
            rng: StdRng::seed_from_u64(config.seed),
            agents,
            customers: contacts
                .iter()
                .enumerate()
                .map(|(customer, contact)| (contact.clone(), customer))
                .collect(),
            contacts,
            follow_ups: vec![0; config.customers],
            schedule: BinaryHeap::new(),
            scheduled: 0,
            read_slots: HashMap::new(),
            killed: false,
            report,
        };
        let waves = config.waves.max(1);
        for customer in 0..config.customers {
            let wave = (customer % waves) as i64;
            let at = wave * WAVE_EVERY_MS + simulation.rng.random_range(0..WAVE_SPREAD_MS);
            simulation.at(at, Action::CustomerWrites { customer });
        }
        Ok(simulation)
    }

    fn at(&mut self, at_ms: i64, action: Action) {
        self.scheduled += 1;
        self.schedule.push(Reverse((at_ms, self.scheduled, action)));
    }

    fn is_killed(&self, agent: &AgentId) -> bool {
        self.killed && self.agents.get(KILLED_AGENT) == Some(agent)
    }

    /// Calls the router, counting the time spent inside it.
    fn timed<T>(&mut self, call: impl FnOnce(&mut Router) -> T) -> T {
        let started = Instant::now();
        let answer = call(&mut self.router);
        self.report.engine_time += started.elapsed();
        answer
    }

    fn run(mut self, watcher: &mut impl Watcher) -> Result<(SimulationReport, Router)> {
        let mut now = 0;
        while now <= self.config.run_ms {
            self.killed = self.config.kill_agent_at_ms.is_some_and(|at_ms| now >= at_ms);
            while let Some(Reverse((at_ms, _, _))) = self.schedule.peek()
                && *at_ms <= now
            {
                let Some(Reverse((_, _, action))) = self.schedule.pop() else {
                    break;
                };
                self.act(action, now, watcher)?;
            }
            if now % HEARTBEAT_EVERY_MS == 0 {
                for index in 0..self.agents.len() {
                    let agent = self.agents[index].clone();
                    if self.is_killed(&agent) {
                        continue;
                    }
                    let events = self.timed(|router| router.heartbeat(&agent, now))?;
                    self.observe(&events, now, watcher);
                }
            }
            let events = self.timed(|router| router.tick(now));
            self.observe(&events, now, watcher);
            self.count_held();
            watcher.step(&self.router, now);
            now += self.config.step_ms;
        }
        Ok((self.report, self.router))
    }

    fn act(&mut self, action: Action, now: i64, watcher: &mut impl Watcher) -> Result<()> {
        match action {
            Action::CustomerWrites { customer } => {
                let needs = Needs {
                    language: Some(if customer % 10 < SPANISH_IN_TEN { "es" } else { "en" }.to_owned()),
                    skills: BTreeSet::new(),
                };
                let contact = self.contacts[customer].clone();
                let (conversation, events) = self.timed(|router| router.inbound(&contact, needs, now));
                self.observe(&events, now, watcher);
                // Already held: its agent owes an answer to the new message.
                let holder = self
                    .router
                    .conversation(conversation)
                    .and_then(|entry| entry.agent.clone());
                if let Some(agent) = holder
                    && !events
                        .iter()
                        .any(|event| matches!(event, SessionEvent::Assigned { .. }))
                {
                    self.agent_will_reply(conversation, agent, now);
                }
            }
            Action::AgentReplies { conversation, agent } => {
                if self.is_killed(&agent) {
                    return Ok(());
                }
                let Some(entry) = self.router.conversation(conversation) else {
                    return Err(Error::UnknownConversation(conversation));
                };
                if entry.agent.as_ref() != Some(&agent) || entry.last_agent_message.is_some() {
                    return Ok(());
                }
                let customer = self.customers[&entry.contact];
                let events = self.timed(|router| router.agent_replied(conversation, now))?;
                self.observe(&events, now, watcher);
                let read_at = now + self.rng.random_range(CUSTOMER_READ_MS);
                self.at(
                    read_at,
                    Action::CustomerReads {
                        conversation,
                        customer,
                        sent_ms: now,
                    },
                );
            }
            Action::CustomerReads {
                conversation,
                customer,
                sent_ms,
            } => {
                let events = self.timed(|router| router.customer_read(conversation, sent_ms, now))?;
                self.observe(&events, now, watcher);
                if self.follow_ups[customer] < MAX_FOLLOW_UPS && self.rng.random_bool(ANSWER_CHANCE) {
                    self.follow_ups[customer] += 1;
                    let answer_at = now + self.rng.random_range(CUSTOMER_ANSWER_MS);
                    self.at(answer_at, Action::CustomerWrites { customer });
                }
            }
        }
        Ok(())
    }

    fn agent_will_reply(&mut self, conversation: ConversationId, agent: AgentId, now: i64) {
        let reply_at = now + self.rng.random_range(AGENT_REPLY_MS);
        self.at(reply_at, Action::AgentReplies { conversation, agent });
    }

    fn observe(&mut self, events: &[SessionEvent], now: i64, watcher: &mut impl Watcher) {
        watcher.events(&self.router, events, now);
        for event in events {
            match event {
                SessionEvent::Assigned {
                    conversation,
                    agent,
                    waited_ms,
                } => {
                    self.report.assignments += 1;
                    self.report.queue_waits_ms.push(*waited_ms);
                    if let Some(free) = self.read_slots.get_mut(agent)
                        && *free > 0
                    {
                        *free -= 1;
                        self.report.reused_read_slots += 1;
                    }
                    let answered = self
                        .router
                        .conversation(*conversation)
                        .is_some_and(|entry| entry.last_agent_message.is_some());
                    if !answered {
                        self.agent_will_reply(*conversation, agent.clone(), now);
                    }
                }
                SessionEvent::Released { agent, reason, .. } => {
                    if *reason == ReleaseReason::Read {
                        self.report.released_on_read += 1;
                        *self.read_slots.entry(agent.clone()).or_default() += 1;
                    }
                }
                SessionEvent::Requeued { reason, .. } => {
                    if *reason == RequeueReason::HeartbeatLost {
                        self.report.heartbeat_requeues += 1;
                    }
                }
                SessionEvent::Opened { .. }
                | SessionEvent::Reopened { .. }
                | SessionEvent::Renewed { .. }
                | SessionEvent::RuleRefused { .. } => {}
            }
        }
    }

    /// Adds one step of agent-time for every held session.
    fn count_held(&mut self) {
        let step_ms = self.config.step_ms as u64;
        for agent in self.router.agents() {
            self.report.peak_sessions = self.report.peak_sessions.max(agent.sessions.len());
            for conversation in &agent.sessions {
                self.report.held_ms += step_ms;
                if self
                    .router
                    .conversation(*conversation)
                    .is_some_and(|entry| entry.last_agent_message.is_some())
                {
                    self.report.held_for_read_ms += step_ms;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The proof's invariants, checked on every answer of the router and after every step.
    struct Invariants {
        config: SimulationConfig,
        killed_agent: AgentId,
        /// The holder of each assigned conversation, as the events told it.
        holders: HashMap<ConversationId, AgentId>,
        /// (conversation, time) of each requeue away from the killed agent.
        killed_requeues: Vec<(ConversationId, i64)>,
    }

    impl Invariants {
        fn new(config: &SimulationConfig) -> Self {
            Self {
                config: config.clone(),
                killed_agent: AgentId(format!("agent-{KILLED_AGENT:02}")),
                holders: HashMap::new(),
                killed_requeues: Vec::new(),
            }
        }

        fn check_killed_requeues(&self, router: &Router) {
            let killed_at_ms = self.config.kill_agent_at_ms.expect("a killed agent");
            let killed = router.agent(&self.killed_agent).expect("killed agent");
            let deadline = killed.last_heartbeat_ms + router.config().heartbeat_timeout_ms + self.config.step_ms;
            assert!(killed.last_heartbeat_ms < killed_at_ms);
            assert!(!self.killed_requeues.is_empty(), "the killed agent held nothing");
            for (conversation, requeued_ms) in &self.killed_requeues {
                assert!(
                    *requeued_ms <= deadline,
                    "{conversation} requeued at {requeued_ms}, after {deadline}"
                );
                let entry = router.conversation(*conversation).expect("requeued conversation");
                // Its history is kept, and someone else took it up.
                let taken_over = entry
                    .history
                    .iter()
                    .any(|session| session.agent != killed.id && session.assigned_ms >= *requeued_ms);
                assert!(taken_over, "{conversation} was not taken over: {:?}", entry.history);
            }
        }

        /// Every conversation that wrote ends assigned or released, or still waits only
        /// because no agent can take one.
        fn check_nothing_lost(&self, router: &Router) {
            let conversations: Vec<&Conversation> = router.conversations().collect();
            assert_eq!(
                conversations.len(),
                self.config.customers,
                "one conversation per customer inside the window"
            );
            let now = self.config.run_ms;
            let free_live_slot = router.agents().any(|agent| {
                agent.status == AgentStatus::Available
                    && now - agent.last_heartbeat_ms <= router.config().heartbeat_timeout_ms
                    && agent.sessions.len() < agent.max_sessions as usize
            });
            for conversation in conversations {
                match conversation.state {
                    ConversationState::Assigned | ConversationState::Released => {}
                    ConversationState::Waiting => {
                        assert!(!free_live_slot, "{} waits beside a free slot", conversation.id)
                    }
                }
                assert!(!conversation.history.is_empty() || conversation.state == ConversationState::Waiting);
            }
        }
    }

    impl Watcher for Invariants {
        fn events(&mut self, _: &Router, events: &[SessionEvent], now: i64) {
            for event in events {
                match event {
                    SessionEvent::Assigned {
                        conversation, agent, ..
                    } => {
                        let before = self.holders.insert(*conversation, agent.clone());
                        assert_eq!(before, None, "{conversation} assigned to {agent} while held at {now}");
                    }
                    SessionEvent::Released {
                        conversation, agent, ..
                    } => {
                        assert_eq!(self.holders.remove(conversation).as_ref(), Some(agent));
                    }
                    SessionEvent::Requeued {
                        conversation,
                        agent,
                        reason,
                    } => {
                        assert_eq!(self.holders.remove(conversation).as_ref(), Some(agent));
                        assert_eq!(*reason, RequeueReason::HeartbeatLost);
                        assert_eq!(*agent, self.killed_agent, "only the killed agent loses its lease");
                        self.killed_requeues.push((*conversation, now));
                    }
                    SessionEvent::RuleRefused { .. } => {
                        panic!("the default rule chose a non-candidate: {event:?}")
                    }
                    SessionEvent::Opened { .. } | SessionEvent::Reopened { .. } | SessionEvent::Renewed { .. } => {}
                }
            }
        }

        fn step(&mut self, router: &Router, now: i64) {
            let mut held = 0;
            for agent in router.agents() {
                assert!(
                    agent.sessions.len() <= self.config.max_sessions as usize,
                    "{} holds {} sessions at {now}",
                    agent.id,
                    agent.sessions.len()
                );
                for conversation in &agent.sessions {
                    let entry = router.conversation(*conversation).expect("held conversation");
                    assert_eq!(entry.agent.as_ref(), Some(&agent.id), "{conversation} at {now}");
                    assert_eq!(entry.state, ConversationState::Assigned);
                    assert_eq!(self.holders.get(conversation), Some(&agent.id));
                    held += 1;
                }
            }
            // Every holder the events named is one an agent holds: nobody holds a conversation
            // twice.
            assert_eq!(held, self.holders.len(), "at {now}");

            let killed = router.agent(&self.killed_agent).expect("killed agent");
            if now - killed.last_heartbeat_ms > router.config().heartbeat_timeout_ms {
                assert!(killed.sessions.is_empty(), "killed agent still holds sessions at {now}");
            }
        }
    }

    /// Runs `config` under the invariants, then checks what only the end can show.
    fn checked_run(config: &SimulationConfig) -> (SimulationReport, Router) {
        let mut invariants = Invariants::new(config);
        let (report, router) = Simulation::new(config)
            .expect("simulation")
            .run(&mut invariants)
            .expect("run");
        invariants.check_nothing_lost(&router);
        invariants.check_killed_requeues(&router);
        (report, router)
    }

    #[test]
    fn a_thousand_customers_fifteen_agents_one_killed_client() {
        let config = SimulationConfig::default();
        assert_eq!((config.customers, config.agents, config.max_sessions), (1_000, 15, 80));

        let (with_release, router) = checked_run(&config);
        assert_eq!(router.rule_refusals(), 0);
        assert!(with_release.released_on_read > 0);
        assert!(with_release.reused_read_slots > 0, "{with_release:?}");
        assert!(with_release.heartbeat_requeues > 0);
        assert!(with_release.assignments >= config.customers as u64);

        let (without_release, _) = checked_run(&SimulationConfig {
            release_on_read: false,
            ..config.clone()
        });
        assert_eq!(without_release.released_on_read, 0);
        assert_eq!(without_release.reused_read_slots, 0);
        // Spanish speakers outnumber the slots of the agents who speak Spanish: the limit binds.
        assert_eq!(without_release.peak_sessions, config.max_sessions as usize);
        assert!(without_release.heartbeat_requeues > 0);

        assert!(
            with_release.held_for_read_share() < without_release.held_for_read_share(),
            "agent-time held after the answer: {:.3} with release on read, {:.3} without",
            with_release.held_for_read_share(),
            without_release.held_for_read_share()
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_run() {
        let config = SimulationConfig {
            customers: 200,
            agents: 4,
            max_sessions: 20,
            run_ms: 30 * 60 * 1000,
            ..SimulationConfig::default()
        };
        let first = simulate(&config).expect("first run");
        let second = simulate(&config).expect("second run");
        assert!(first.assignments > 0);
        assert_eq!(first.assignments, second.assignments);
        assert_eq!(first.queue_waits_ms, second.queue_waits_ms);
        assert_eq!(
            (first.held_ms, first.held_for_read_ms),
            (second.held_ms, second.held_for_read_ms)
        );
        let other = simulate(&SimulationConfig { seed: 11, ..config }).expect("other seed");
        assert_ne!(first.queue_waits_ms, other.queue_waits_ms);
    }

    #[test]
    fn queue_wait_percentiles_take_the_nearest_rank() {
        let report = SimulationReport {
            queue_waits_ms: (1..=100).rev().collect(),
            ..SimulationReport::default()
        };
        assert_eq!(report.queue_wait_ms(0.5), 50);
        assert_eq!(report.queue_wait_ms(0.99), 99);
        assert_eq!(report.queue_wait_ms(1.0), 100);
        assert_eq!(SimulationReport::default().queue_wait_ms(0.5), 0);
        assert_eq!(SimulationReport::default().held_for_read_share(), 0.0);
    }
}
