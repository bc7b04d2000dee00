//! Unit tests of the router's rules, one behaviour each, on explicit times.

use std::collections::BTreeSet;

use super::*;

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

fn new_agent(id: &str, skills: &[&str], languages: &[&str]) -> NewAgent {
    NewAgent {
        id: id.to_owned(),
        name: format!("Agent {id}"),
        skills: set(skills),
        languages: set(languages),
        max_sessions: None,
    }
}

fn id(agent: &str) -> AgentId {
    AgentId(agent.to_owned())
}

fn router_with(config: RouterConfig, agents: &[NewAgent]) -> Router {
    let mut router = Router::new(config);
    for agent in agents {
        router.add_agent(agent.clone(), 0).expect("add agent");
    }
    router
}

fn assigned_to(events: &[SessionEvent], conversation: ConversationId) -> Option<AgentId> {
    events.iter().find_map(|event| match event {
        SessionEvent::Assigned {
            conversation: assigned,
            agent,
            ..
        } if *assigned == conversation => Some(agent.clone()),
        _ => None,
    })
}

fn agent_of(router: &Router, conversation: ConversationId) -> Option<AgentId> {
    router.conversation(conversation).and_then(|entry| entry.agent.clone())
}

#[test]
fn defaults_are_the_documented_ones() {
    let config = RouterConfig::default();
    assert_eq!(config.heartbeat_timeout_ms, 30_000);
    assert!(config.release_on_read);
    assert_eq!(config.release_grace_ms, 0);
    assert_eq!(config.idle_timeout_ms, 30 * 60 * 1000);
    assert_eq!(config.max_sessions, 80);
    let router = router_with(config, &[new_agent("a", &[], &[])]);
    assert_eq!(router.agent(&id("a")).map(|agent| agent.max_sessions), Some(80));
}

#[test]
fn skills_and_language_come_before_load() {
    let mut router = router_with(
        RouterConfig::default(),
        &[new_agent("a", &[], &["en"]), new_agent("b", &["billing"], &["es"])],
    );
    let billing_es = Needs {
        language: Some("es".into()),
        skills: set(&["billing"]),
    };
    let (first, events) = router.inbound("+1000", billing_es.clone(), 1);
    assert_eq!(assigned_to(&events, first), Some(id("b")));
    // b is now busier than a, yet still the only one who fits.
    let (second, events) = router.inbound("+1001", billing_es, 2);
    assert_eq!(assigned_to(&events, second), Some(id("b")));
    // Nobody fits Japanese: the least loaded takes it rather than leaving it waiting.
    let japanese = Needs {
        language: Some("ja".into()),
        skills: BTreeSet::new(),
    };
    let (third, events) = router.inbound("+1002", japanese, 3);
    assert_eq!(assigned_to(&events, third), Some(id("a")));
}

#[test]
fn among_fitting_agents_the_least_loaded_then_longest_idle_wins() {
    let mut router = router_with(
        RouterConfig::default(),
        &[
            new_agent("a", &[], &[]),
            new_agent("b", &[], &[]),
            new_agent("c", &[], &[]),
        ],
    );
    let mut order = Vec::new();
    for (at, contact) in ["+1", "+2", "+3", "+4"].iter().enumerate() {
        let (conversation, _) = router.inbound(contact, Needs::default(), at as i64 + 1);
        order.push(agent_of(&router, conversation).expect("assigned"));
    }
    // a, b, c each get one; a has been idle longest for the fourth.
    assert_eq!(order, vec![id("a"), id("b"), id("c"), id("a")]);
}

#[test]
fn a_full_agent_gets_nothing_more_and_the_queue_waits() {
    let mut agent = new_agent("a", &[], &[]);
    agent.max_sessions = Some(2);
    let mut router = router_with(RouterConfig::default(), &[agent]);
    let (first, _) = router.inbound("+1", Needs::default(), 1);
    let (_, _) = router.inbound("+2", Needs::default(), 2);
    let (third, events) = router.inbound("+3", Needs::default(), 3);
    assert_eq!(assigned_to(&events, third), None);
    assert_eq!(
        router.conversation(third).map(|c| c.state),
        Some(ConversationState::Waiting)
    );
    assert_eq!(router.agent(&id("a")).map(|agent| agent.sessions.len()), Some(2));
    assert_eq!(router.queue().collect::<Vec<_>>(), vec![third]);

    router.agent_replied(first, 4).expect("reply");
    let events = router.customer_read(first, 4, 5).expect("read");
    assert_eq!(assigned_to(&events, third), Some(id("a")));
    assert_eq!(router.agent(&id("a")).map(|agent| agent.sessions.len()), Some(2));
}

#[test]
fn the_queue_is_first_come_first_served() {
    let mut agent = new_agent("a", &[], &[]);
    agent.max_sessions = Some(1);
    let mut router = router_with(RouterConfig::default(), &[agent]);
    let (first, _) = router.inbound("+1", Needs::default(), 1);
    let (second, _) = router.inbound("+2", Needs::default(), 2);
    let (third, _) = router.inbound("+3", Needs::default(), 3);
    assert_eq!(router.queue().collect::<Vec<_>>(), vec![second, third]);
    router.agent_replied(first, 4).expect("reply");
    let events = router.customer_read(first, 4, 5).expect("read");
    assert_eq!(assigned_to(&events, second), Some(id("a")));
    assert!(matches!(
        events
            .iter()
            .find(|event| matches!(event, SessionEvent::Assigned { .. })),
        Some(SessionEvent::Assigned { waited_ms: 3, .. })
    ));
}

#[test]
fn a_lost_heartbeat_requeues_the_sessions_with_their_history() {
    let mut router = router_with(RouterConfig::default(), &[new_agent("a", &[], &[])]);
    let (conversation, _) = router.inbound("+1", Needs::default(), 1_000);
    assert_eq!(agent_of(&router, conversation), Some(id("a")));
    router.add_agent(new_agent("b", &[], &[]), 20_000).expect("add b");

    // a's last sign of life was at 0: exactly at the timeout it still holds the session.
    assert!(router.tick(30_000).is_empty());
    router.heartbeat(&id("b"), 30_000).expect("heartbeat b");
    let events = router.tick(30_001);
    assert_eq!(
        events.first(),
        Some(&SessionEvent::Requeued {
            conversation,
            agent: id("a"),
            reason: RequeueReason::HeartbeatLost,
        })
    );
    assert_eq!(assigned_to(&events, conversation), Some(id("b")));
    let history = &router.conversation(conversation).expect("conversation").history;
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].agent, id("a"));
    assert_eq!(
        history[0].ended,
        Some((30_001, SessionEnd::Requeued(RequeueReason::HeartbeatLost)))
    );
    assert_eq!(history[1].agent, id("b"));
    assert_eq!(history[1].ended, None);
    assert!(router.agent(&id("a")).expect("a").sessions.is_empty());
}

#[test]
fn a_stale_agent_gets_nothing_until_it_heartbeats_again() {
    let mut router = router_with(RouterConfig::default(), &[new_agent("a", &[], &[])]);
    let (conversation, events) = router.inbound("+1", Needs::default(), 40_000);
    assert_eq!(assigned_to(&events, conversation), None);
    let events = router.heartbeat(&id("a"), 41_000).expect("heartbeat");
    assert_eq!(assigned_to(&events, conversation), Some(id("a")));
}

#[test]
fn agent_activity_renews_the_lease() {
    let mut router = router_with(RouterConfig::default(), &[new_agent("a", &[], &[])]);
    let (conversation, _) = router.inbound("+1", Needs::default(), 1);
    let events = router.agent_replied(conversation, 25_000).expect("reply");
    assert_eq!(
        events,
        vec![SessionEvent::Renewed {
            conversation,
            agent: id("a")
        }]
    );
    // Without the reply the lease would have run out at 30_000.
    router
        .customer_read(conversation, 0, 25_001)
        .expect("read of an older message");
    let events = router.tick(50_000);
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, SessionEvent::Requeued { .. }))
    );
}

#[test]
fn release_on_read_frees_the_slot_at_once_and_the_slot_is_reused() {
    let mut agent = new_agent("a", &[], &[]);
    agent.max_sessions = Some(1);
    let mut router = router_with(RouterConfig::default(), &[agent]);
    let (first, _) = router.inbound("+1", Needs::default(), 1);
    let (second, _) = router.inbound("+2", Needs::default(), 2);
    router.agent_replied(first, 10).expect("reply");
    // Reading an older message than the last one changes nothing.
    assert!(router.customer_read(first, 9, 11).expect("read").is_empty());
    let events = router.customer_read(first, 10, 12).expect("read");
    assert_eq!(
        events,
        vec![
            SessionEvent::Released {
                conversation: first,
                agent: id("a"),
                reason: ReleaseReason::Read
            },
            SessionEvent::Assigned {
                conversation: second,
                agent: id("a"),
                waited_ms: 10
            },
        ]
    );
    assert_eq!(
        router.conversation(first).map(|c| c.state),
        Some(ConversationState::Released)
    );
}

#[test]
fn without_release_on_read_a_read_session_stays() {
    let config = RouterConfig {
        release_on_read: false,
        ..RouterConfig::default()
    };
    let mut router = router_with(config, &[new_agent("a", &[], &[])]);
    let (conversation, _) = router.inbound("+1", Needs::default(), 1);
    router.agent_replied(conversation, 10).expect("reply");
    assert!(router.customer_read(conversation, 10, 12).expect("read").is_empty());
    router.heartbeat(&id("a"), 20_000).expect("heartbeat");
    assert!(router.tick(20_000).is_empty());
    assert_eq!(agent_of(&router, conversation), Some(id("a")));
}

#[test]
fn the_grace_period_holds_the_session_and_a_new_message_cancels_the_release() {
    let config = RouterConfig {
        release_grace_ms: 5_000,
        ..RouterConfig::default()
    };
    let mut router = router_with(config, &[new_agent("a", &[], &[])]);
    let (conversation, _) = router.inbound("+1", Needs::default(), 1);
    router.agent_replied(conversation, 1_000).expect("reply");
    assert!(
        router
            .customer_read(conversation, 1_000, 2_000)
            .expect("read")
            .is_empty()
    );
    assert!(router.tick(6_999).is_empty());
    assert_eq!(
        router.tick(7_000),
        vec![SessionEvent::Released {
            conversation,
            agent: id("a"),
            reason: ReleaseReason::Read
        }]
    );

    let (other, _) = router.inbound("+2", Needs::default(), 8_000);
    router.agent_replied(other, 9_000).expect("reply");
    router.customer_read(other, 9_000, 10_000).expect("read");
    let (_, events) = router.inbound("+2", Needs::default(), 12_000);
    assert_eq!(
        events,
        vec![SessionEvent::Renewed {
            conversation: other,
            agent: id("a")
        }]
    );
    router.heartbeat(&id("a"), 20_000).expect("heartbeat");
    assert!(router.tick(20_000).is_empty());
    assert_eq!(agent_of(&router, other), Some(id("a")));
}

#[test]
fn a_reopened_conversation_prefers_its_previous_agent() {
    let mut router = router_with(
        RouterConfig::default(),
        &[new_agent("a", &[], &[]), new_agent("b", &[], &[])],
    );
    let (first, _) = router.inbound("+1", Needs::default(), 1);
    let (_, _) = router.inbound("+2", Needs::default(), 2);
    let (_, _) = router.inbound("+3", Needs::default(), 3);
    assert_eq!(agent_of(&router, first), Some(id("a")));
    router.agent_replied(first, 10).expect("reply");
    router.customer_read(first, 10, 11).expect("read");
    // a and b now hold one each and b was given one longest ago: the rule alone would pick b.
    let (reopened, events) = router.inbound("+1", Needs::default(), 20);
    assert_eq!(reopened, first);
    assert_eq!(events.first(), Some(&SessionEvent::Reopened { conversation: first }));
    assert_eq!(assigned_to(&events, first), Some(id("a")));
    assert_eq!(router.conversation(first).expect("conversation").history.len(), 2);
}

#[test]
fn a_reopened_conversation_goes_elsewhere_when_its_agent_is_full() {
    let mut a = new_agent("a", &[], &[]);
    a.max_sessions = Some(1);
    let mut router = router_with(RouterConfig::default(), &[a]);
    let (first, _) = router.inbound("+1", Needs::default(), 1);
    router.agent_replied(first, 2).expect("reply");
    router.customer_read(first, 2, 3).expect("read");
    let (other, _) = router.inbound("+2", Needs::default(), 4);
    assert_eq!(agent_of(&router, other), Some(id("a")));
    router.add_agent(new_agent("b", &[], &[]), 5).expect("add b");
    let (_, events) = router.inbound("+1", Needs::default(), 6);
    assert_eq!(assigned_to(&events, first), Some(id("b")));
}

#[test]
fn a_message_after_the_window_opens_a_new_conversation() {
    let mut router = router_with(RouterConfig::default(), &[new_agent("a", &[], &[])]);
    let (first, _) = router.inbound("+1", Needs::default(), 0);
    assert_eq!(router.window_open(first, SERVICE_WINDOW_MS - 1), Ok(true));
    assert_eq!(router.window_open(first, SERVICE_WINDOW_MS), Ok(false));
    router.agent_replied(first, 10).expect("reply");
    router.customer_read(first, 10, 11).expect("read");
    let later = SERVICE_WINDOW_MS + 1;
    router.heartbeat(&id("a"), later).expect("heartbeat");
    let (second, events) = router.inbound("+1", Needs::default(), later);
    assert_ne!(second, first);
    assert_eq!(events.first(), Some(&SessionEvent::Opened { conversation: second }));
    assert_eq!(router.window_open(second, later + SERVICE_WINDOW_MS - 1), Ok(true));
    assert_eq!(router.conversation_of("+1").map(|c| c.id), Some(second));
}

#[test]
fn an_idle_session_expires() {
    let config = RouterConfig {
        idle_timeout_ms: 60_000,
        heartbeat_timeout_ms: 120_000,
        ..RouterConfig::default()
    };
    let mut router = router_with(config, &[new_agent("a", &[], &[])]);
    let (conversation, _) = router.inbound("+1", Needs::default(), 0);
    router.agent_replied(conversation, 10_000).expect("reply");
    assert!(router.tick(69_999).is_empty());
    assert_eq!(
        router.tick(70_000),
        vec![SessionEvent::Released {
            conversation,
            agent: id("a"),
            reason: ReleaseReason::Idle
        }]
    );
    let history = &router.conversation(conversation).expect("conversation").history;
    assert_eq!(
        history[0].ended,
        Some((70_000, SessionEnd::Released(ReleaseReason::Idle)))
    );
}

#[test]
fn an_away_agent_gives_up_its_sessions_and_gets_no_new_one() {
    let mut router = router_with(
        RouterConfig::default(),
        &[new_agent("a", &[], &[]), new_agent("b", &["vip"], &[])],
    );
    let (answered, _) = router.inbound("+1", Needs::default(), 1);
    let (unanswered, _) = router.inbound(
        "+2",
        Needs {
            language: None,
            skills: set(&["vip"]),
        },
        2,
    );
    let (waiting_on_a, _) = router.inbound("+3", Needs::default(), 3);
    assert_eq!(agent_of(&router, answered), Some(id("a")));
    assert_eq!(agent_of(&router, unanswered), Some(id("b")));
    assert_eq!(agent_of(&router, waiting_on_a), Some(id("a")));
    router.agent_replied(answered, 4).expect("reply");

    let events = router.set_status(&id("a"), AgentStatus::Away, 5).expect("away");
    assert!(events.contains(&SessionEvent::Released {
        conversation: answered,
        agent: id("a"),
        reason: ReleaseReason::AgentAway,
    }));
    assert!(events.contains(&SessionEvent::Requeued {
        conversation: waiting_on_a,
        agent: id("a"),
        reason: RequeueReason::AgentAway,
    }));
    assert_eq!(assigned_to(&events, waiting_on_a), Some(id("b")));
    let (fresh, events) = router.inbound("+4", Needs::default(), 6);
    assert_eq!(assigned_to(&events, fresh), Some(id("b")));

    router.set_status(&id("a"), AgentStatus::Available, 7).expect("back");
    let (next, events) = router.inbound("+5", Needs::default(), 8);
    assert_eq!(assigned_to(&events, next), Some(id("a")));
}

struct Fixed(&'static str);

impl AssignRule for Fixed {
    fn choose(&self, _: &ConversationView<'_>, _: &[AgentView<'_>]) -> Choice {
        Choice::Agent(AgentId(self.0.to_owned()))
    }
}

#[test]
fn a_rule_choosing_an_unknown_or_full_agent_is_made_to_wait_and_counted() {
    let mut router = Router::with_rule(RouterConfig::default(), Box::new(Fixed("ghost")));
    router.add_agent(new_agent("a", &[], &[]), 0).expect("add");
    let (conversation, events) = router.inbound("+1", Needs::default(), 1);
    assert_eq!(
        events,
        vec![
            SessionEvent::Opened { conversation },
            SessionEvent::RuleRefused {
                conversation,
                agent: id("ghost")
            },
        ]
    );
    assert_eq!(router.rule_refusals(), 1);

    let mut full = new_agent("full", &[], &[]);
    full.max_sessions = Some(1);
    let mut router = Router::with_rule(RouterConfig::default(), Box::new(Fixed("full")));
    router.add_agent(full, 0).expect("add");
    router.add_agent(new_agent("spare", &[], &[]), 0).expect("add");
    let (first, _) = router.inbound("+1", Needs::default(), 1);
    assert_eq!(agent_of(&router, first), Some(id("full")));
    let (second, _) = router.inbound("+2", Needs::default(), 2);
    assert_eq!(
        router.conversation(second).map(|c| c.state),
        Some(ConversationState::Waiting)
    );
    assert_eq!(router.rule_refusals(), 1);
    assert_eq!(router.agent(&id("full")).map(|agent| agent.sessions.len()), Some(1));
}

#[test]
fn inputs_naming_unknown_things_are_errors() {
    let mut router = router_with(RouterConfig::default(), &[new_agent("a", &[], &[])]);
    assert_eq!(
        router.add_agent(new_agent("a", &[], &[]), 0),
        Err(Error::AgentExists(id("a")))
    );
    let mut empty = new_agent("z", &[], &[]);
    empty.max_sessions = Some(0);
    assert_eq!(router.add_agent(empty, 0), Err(Error::NoSessions(id("z"))));
    assert_eq!(router.heartbeat(&id("x"), 0), Err(Error::UnknownAgent(id("x"))));
    assert_eq!(
        router.agent_replied(ConversationId(99), 0),
        Err(Error::UnknownConversation(ConversationId(99)))
    );
    router.set_status(&id("a"), AgentStatus::Away, 0).expect("away");
    let (conversation, _) = router.inbound("+1", Needs::default(), 1);
    assert_eq!(
        router.agent_replied(conversation, 2),
        Err(Error::NotAssigned {
            conversation,
            state: ConversationState::Waiting
        })
    );
}

#[test]
fn raising_max_sessions_assigns_the_waiting() {
    let mut agent = new_agent("a", &[], &[]);
    agent.max_sessions = Some(1);
    let mut router = router_with(RouterConfig::default(), &[agent]);
    router.inbound("+1", Needs::default(), 1);
    let (second, _) = router.inbound("+2", Needs::default(), 2);
    let update = AgentUpdate {
        max_sessions: Some(2),
        ..AgentUpdate::default()
    };
    let events = router.update_agent(&id("a"), update, 3).expect("update");
    assert_eq!(assigned_to(&events, second), Some(id("a")));
}
