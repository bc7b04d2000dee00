//! The simulation of issue 10's proof, on simulated time: 1,000 customers writing in waves to
//! 15 agents of 80 sessions each, agents answering after a random delay, customers reading
//! after a random delay and sometimes writing again, and one agent's client killed mid-run.
//! A seeded RNG and a loop stepping `now_ms` make every run the same; nothing sleeps.
//!
//! Drives only the [`Router`].

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};

use rand::{Rng, SeedableRng, rngs::StdRng};

use super::*;

const CUSTOMERS: usize = 1_000;
const AGENTS: usize = 15;
const MAX_SESSIONS: u32 = 80;
const WAVES: usize = 4;
const WAVE_EVERY_MS: i64 = 10 * 60 * 1000;
/// Customers of one wave write their first message within this span of its start.
const WAVE_SPREAD_MS: i64 = 2 * 60 * 1000;
const STEP_MS: i64 = 1_000;
const HEARTBEAT_EVERY_MS: i64 = 10_000;
const KILLED_AGENT: usize = 0;
const KILLED_AT_MS: i64 = 15 * 60 * 1000;
const RUN_MS: i64 = 80 * 60 * 1000;
const AGENT_REPLY_MS: std::ops::RangeInclusive<i64> = 5_000..=90_000;
const CUSTOMER_READ_MS: std::ops::RangeInclusive<i64> = 3_000..=60_000;
const CUSTOMER_ANSWER_MS: std::ops::RangeInclusive<i64> = 5_000..=120_000;
const ANSWER_CHANCE: f64 = 0.4;
/// Messages a customer writes after the first, at most.
const MAX_FOLLOW_UPS: u32 = 3;

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

/// What one run measured.
#[derive(Debug, Default)]
struct Report {
    assignments: u64,
    released_on_read: u64,
    /// Assignments that went into a slot freed by release on read.
    reused_read_slots: u64,
    heartbeat_requeues: u64,
    /// The most sessions any agent held at the end of a step.
    peak_sessions: usize,
    /// Session-steps held, and those where the agent had answered last (the session only
    /// waited for the customer to read or write).
    held_steps: u64,
    held_after_answer_steps: u64,
}

impl Report {
    fn answered_share(&self) -> f64 {
        self.held_after_answer_steps as f64 / self.held_steps as f64
    }
}

struct Simulation {
    router: Router,
    rng: StdRng,
    agents: Vec<AgentId>,
    contacts: Vec<String>,
    follow_ups: Vec<u32>,
    /// Scheduled actions by time, then by the order they were scheduled.
    schedule: BinaryHeap<Reverse<(i64, u64, Action)>>,
    scheduled: u64,
    /// The holder of each assigned conversation, as the events told it.
    holders: HashMap<ConversationId, AgentId>,
    /// Per agent, slots freed by release on read and not yet given out again.
    read_slots: HashMap<AgentId, u64>,
    killed: bool,
    /// (conversation, time) of each requeue away from the killed agent.
    killed_requeues: Vec<(ConversationId, i64)>,
    report: Report,
}

impl Simulation {
    fn new(release_on_read: bool, seed: u64) -> Self {
        let config = RouterConfig {
            release_on_read,
            max_sessions: MAX_SESSIONS,
            ..RouterConfig::default()
        };
        let mut router = Router::new(config);
        let mut agents = Vec::new();
        for index in 0..AGENTS {
            let mut languages = BTreeSet::from(["en".to_owned()]);
            if index % 4 == 0 {
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
            assert!(router.add_agent(agent, 0).expect("add agent").is_empty());
        }
        let mut simulation = Self {
            router,
            rng: StdRng::seed_from_u64(seed),
            agents,
            contacts: (0..CUSTOMERS)
                .map(|customer| format!("+3460000{customer:04}"))
                .collect(),
            follow_ups: vec![0; CUSTOMERS],
            schedule: BinaryHeap::new(),
            scheduled: 0,
            holders: HashMap::new(),
            read_slots: HashMap::new(),
            killed: false,
            killed_requeues: Vec::new(),
            report: Report::default(),
        };
        for customer in 0..CUSTOMERS {
            let wave = (customer % WAVES) as i64;
            let at = wave * WAVE_EVERY_MS + simulation.rng.random_range(0..WAVE_SPREAD_MS);
            simulation.at(at, Action::CustomerWrites { customer });
        }
        simulation
    }

    fn at(&mut self, at_ms: i64, action: Action) {
        self.scheduled += 1;
        self.schedule.push(Reverse((at_ms, self.scheduled, action)));
    }

    fn killed_agent(&self) -> &AgentId {
        &self.agents[KILLED_AGENT]
    }

    fn run(mut self) -> (Report, Router) {
        let mut now = 0;
        while now <= RUN_MS {
            self.killed = now >= KILLED_AT_MS;
            while let Some(Reverse((at_ms, _, _))) = self.schedule.peek()
                && *at_ms <= now
            {
                let Some(Reverse((_, _, action))) = self.schedule.pop() else {
                    break;
                };
                self.act(action, now);
            }
            if now % HEARTBEAT_EVERY_MS == 0 {
                for index in 0..AGENTS {
                    if index == KILLED_AGENT && self.killed {
                        continue;
                    }
                    let agent = self.agents[index].clone();
                    let events = self.router.heartbeat(&agent, now).expect("heartbeat");
                    self.observe(&events, now);
                }
            }
            let events = self.router.tick(now);
            self.observe(&events, now);
            self.check(now);
            now += STEP_MS;
        }
        self.check_killed_requeues();
        (self.report, self.router)
    }

    fn act(&mut self, action: Action, now: i64) {
        match action {
            Action::CustomerWrites { customer } => {
                let needs = Needs {
                    language: Some(if customer % 10 < 3 { "es" } else { "en" }.to_owned()),
                    skills: BTreeSet::new(),
                };
                let contact = self.contacts[customer].clone();
                let (conversation, events) = self.router.inbound(&contact, needs, now);
                self.observe(&events, now);
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
                if self.killed && agent == *self.killed_agent() {
                    return;
                }
                let entry = self.router.conversation(conversation).expect("conversation");
                if entry.agent.as_ref() != Some(&agent) || entry.last_agent_message.is_some() {
                    return;
                }
                let customer = self
                    .contacts
                    .iter()
                    .position(|contact| *contact == entry.contact)
                    .expect("customer of the conversation");
                let events = self.router.agent_replied(conversation, now).expect("reply");
                self.observe(&events, now);
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
                let events = self.router.customer_read(conversation, sent_ms, now).expect("read");
                self.observe(&events, now);
                if self.follow_ups[customer] < MAX_FOLLOW_UPS && self.rng.random_bool(ANSWER_CHANCE) {
                    self.follow_ups[customer] += 1;
                    let answer_at = now + self.rng.random_range(CUSTOMER_ANSWER_MS);
                    self.at(answer_at, Action::CustomerWrites { customer });
                }
            }
        }
    }

    fn agent_will_reply(&mut self, conversation: ConversationId, agent: AgentId, now: i64) {
        let reply_at = now + self.rng.random_range(AGENT_REPLY_MS);
        self.at(reply_at, Action::AgentReplies { conversation, agent });
    }

    fn observe(&mut self, events: &[SessionEvent], now: i64) {
        for event in events {
            match event {
                SessionEvent::Assigned {
                    conversation, agent, ..
                } => {
                    let before = self.holders.insert(*conversation, agent.clone());
                    assert_eq!(before, None, "{conversation} assigned to {agent} while held at {now}");
                    self.report.assignments += 1;
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
                SessionEvent::Released {
                    conversation,
                    agent,
                    reason,
                } => {
                    assert_eq!(self.holders.remove(conversation).as_ref(), Some(agent));
                    if *reason == ReleaseReason::Read {
                        self.report.released_on_read += 1;
                        *self.read_slots.entry(agent.clone()).or_default() += 1;
                    }
                }
                SessionEvent::Requeued {
                    conversation,
                    agent,
                    reason,
                } => {
                    assert_eq!(self.holders.remove(conversation).as_ref(), Some(agent));
                    assert_eq!(*reason, RequeueReason::HeartbeatLost);
                    assert_eq!(agent, self.killed_agent(), "only the killed agent loses its lease");
                    self.report.heartbeat_requeues += 1;
                    self.killed_requeues.push((*conversation, now));
                }
                SessionEvent::RuleRefused { .. } => panic!("the default rule chose a non-candidate: {event:?}"),
                SessionEvent::Opened { .. } | SessionEvent::Reopened { .. } | SessionEvent::Renewed { .. } => {}
            }
        }
    }

    /// The invariants, after every step.
    fn check(&mut self, now: i64) {
        let mut held = 0;
        for agent in self.router.agents() {
            self.report.peak_sessions = self.report.peak_sessions.max(agent.sessions.len());
            assert!(
                agent.sessions.len() <= MAX_SESSIONS as usize,
                "{} holds {} sessions at {now}",
                agent.id,
                agent.sessions.len()
            );
            for conversation in &agent.sessions {
                let entry = self.router.conversation(*conversation).expect("held conversation");
                assert_eq!(entry.agent.as_ref(), Some(&agent.id), "{conversation} at {now}");
                assert_eq!(entry.state, ConversationState::Assigned);
                assert_eq!(self.holders.get(conversation), Some(&agent.id));
                held += 1;
                self.report.held_steps += 1;
                if entry.last_agent_message.is_some() {
                    self.report.held_after_answer_steps += 1;
                }
            }
        }
        // Every holder the events named is one an agent holds: nobody holds a conversation twice.
        assert_eq!(held, self.holders.len(), "at {now}");

        let killed = self.router.agent(self.killed_agent()).expect("killed agent");
        let config = self.router.config();
        if now - killed.last_heartbeat_ms > config.heartbeat_timeout_ms {
            assert!(killed.sessions.is_empty(), "killed agent still holds sessions at {now}");
        }
    }

    fn check_killed_requeues(&self) {
        let killed = self.router.agent(self.killed_agent()).expect("killed agent");
        let deadline = killed.last_heartbeat_ms + self.router.config().heartbeat_timeout_ms + STEP_MS;
        assert!(killed.last_heartbeat_ms < KILLED_AT_MS);
        assert!(!self.killed_requeues.is_empty(), "the killed agent held nothing");
        for (conversation, requeued_ms) in &self.killed_requeues {
            assert!(
                *requeued_ms <= deadline,
                "{conversation} requeued at {requeued_ms}, after {deadline}"
            );
            let entry = self.router.conversation(*conversation).expect("requeued conversation");
            // Its history is kept, and someone else took it up.
            let taken_over = entry
                .history
                .iter()
                .any(|session| session.agent != killed.id && session.assigned_ms >= *requeued_ms);
            assert!(taken_over, "{conversation} was not taken over: {:?}", entry.history);
        }
    }
}

/// Every conversation that wrote ends assigned or released, or still waits only because no
/// agent can take one.
fn check_nothing_lost(router: &Router) {
    let conversations: Vec<&Conversation> = router.conversations().collect();
    assert_eq!(
        conversations.len(),
        CUSTOMERS,
        "one conversation per customer inside the window"
    );
    let now = RUN_MS;
    let free_live_slot = router.agents().any(|agent| {
        agent.status == AgentStatus::Available
            && now - agent.last_heartbeat_ms <= router.config().heartbeat_timeout_ms
            && agent.sessions.len() < agent.max_sessions as usize
    });
    for conversation in conversations {
        match conversation.state {
            ConversationState::Assigned | ConversationState::Released => {}
            ConversationState::Waiting => assert!(!free_live_slot, "{} waits beside a free slot", conversation.id),
        }
        assert!(!conversation.history.is_empty() || conversation.state == ConversationState::Waiting);
    }
}

#[test]
fn a_thousand_customers_fifteen_agents_one_killed_client() {
    let (with_release, router) = Simulation::new(true, 10).run();
    check_nothing_lost(&router);
    assert_eq!(router.rule_refusals(), 0);
    assert!(with_release.released_on_read > 0);
    assert!(with_release.reused_read_slots > 0, "{with_release:?}");
    assert!(with_release.heartbeat_requeues > 0);
    assert!(with_release.assignments >= CUSTOMERS as u64);

    let (without_release, router) = Simulation::new(false, 10).run();
    check_nothing_lost(&router);
    assert_eq!(without_release.released_on_read, 0);
    assert_eq!(without_release.reused_read_slots, 0);
    // Spanish speakers outnumber the slots of the agents who speak Spanish: the limit binds.
    assert_eq!(without_release.peak_sessions, MAX_SESSIONS as usize);
    assert!(without_release.heartbeat_requeues > 0);

    assert!(
        with_release.answered_share() < without_release.answered_share(),
        "agent-time held after the answer: {:.3} with release on read, {:.3} without",
        with_release.answered_share(),
        without_release.answered_share()
    );
}
