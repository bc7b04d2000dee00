//! The assignment rule: given a waiting conversation and the agents that could take it now,
//! choose one or keep it waiting. [`SkillsThenLeastLoaded`] is the default; an `on-assign`
//! plugin implements the same trait. The router only offers agents that are available, have
//! a fresh heartbeat and a free slot, and checks the answer again (see `Router`).
//!
//! Calls nothing.

use std::collections::BTreeSet;

use super::router::{AgentId, ConversationId};

/// What a rule sees of the conversation to place.
#[derive(Debug, Clone, Copy)]
pub struct ConversationView<'a> {
    pub id: ConversationId,
    pub contact: &'a str,
    pub language: Option<&'a str>,
    pub skills: &'a BTreeSet<String>,
    pub waiting_since_ms: i64,
    /// The agent who held it last, if any (the router already tried them first).
    pub previous_agent: Option<&'a AgentId>,
}

/// What a rule sees of a candidate agent.
#[derive(Debug, Clone, Copy)]
pub struct AgentView<'a> {
    pub id: &'a AgentId,
    pub skills: &'a BTreeSet<String>,
    pub languages: &'a BTreeSet<String>,
    pub sessions: u32,
    pub max_sessions: u32,
    /// When the agent was last given a conversation; `None` if never.
    pub last_assigned_ms: Option<i64>,
}

impl AgentView<'_> {
    /// Whether the agent has every skill the conversation needs and speaks its language.
    pub fn fits(&self, conversation: &ConversationView<'_>) -> bool {
        conversation.skills.is_subset(self.skills)
            && conversation
                .language
                .is_none_or(|language| self.languages.contains(language))
    }
}

/// A rule's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    Agent(AgentId),
    Wait,
}

/// Chooses an agent for a waiting conversation.
pub trait AssignRule: Send {
    fn choose(&self, conversation: &ConversationView<'_>, candidates: &[AgentView<'_>]) -> Choice;
}

/// The default rule: agents with the conversation's skills and language first, then the
/// least loaded (fewest sessions, then the one given a conversation longest ago). When no
/// candidate fits, the least loaded of all takes it rather than leaving the customer waiting.
#[derive(Debug, Clone, Copy, Default)]
pub struct SkillsThenLeastLoaded;

impl AssignRule for SkillsThenLeastLoaded {
    fn choose(&self, conversation: &ConversationView<'_>, candidates: &[AgentView<'_>]) -> Choice {
        candidates
            .iter()
            .min_by_key(|agent| {
                (
                    !agent.fits(conversation),
                    agent.sessions,
                    // `None` (never assigned) sorts first: the longest idle.
                    agent.last_assigned_ms,
                    agent.id,
                )
            })
            .map_or(Choice::Wait, |agent| Choice::Agent(agent.id.clone()))
    }
}
