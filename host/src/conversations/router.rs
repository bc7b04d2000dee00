//! The routing engine: agents, conversations, the waiting queue and every rule that moves a
//! conversation between waiting, assigned and released. Pure and synchronous; the caller
//! passes the time in and records the [`SessionEvent`]s each input returns.
//!
//! Calls only the [`AssignRule`] it was given.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use super::rule::{AgentView, AssignRule, Choice, ConversationView, SkillsThenLeastLoaded};

/// The customer-service window an inbound message opens: free-form replies are allowed for
/// 24 hours after the customer's last message.
pub const SERVICE_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;
/// An agent whose client has not sent a heartbeat (or replied) for this long loses its sessions.
pub const DEFAULT_HEARTBEAT_TIMEOUT_MS: i64 = 30_000;
pub const DEFAULT_RELEASE_ON_READ: bool = true;
/// How long after the customer read the agent's last message the session is released.
pub const DEFAULT_RELEASE_GRACE_MS: i64 = 0;
/// A session with no message either way for this long is released.
pub const DEFAULT_IDLE_TIMEOUT_MS: i64 = 30 * 60 * 1000;
pub const DEFAULT_MAX_SESSIONS: u32 = 80;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterConfig {
    pub heartbeat_timeout_ms: i64,
    pub release_on_read: bool,
    pub release_grace_ms: i64,
    pub idle_timeout_ms: i64,
    /// For agents added without their own `max_sessions`.
    pub max_sessions: u32,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            heartbeat_timeout_ms: DEFAULT_HEARTBEAT_TIMEOUT_MS,
            release_on_read: DEFAULT_RELEASE_ON_READ,
            release_grace_ms: DEFAULT_RELEASE_GRACE_MS,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            max_sessions: DEFAULT_MAX_SESSIONS,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgentId(pub String);

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConversationId(pub u64);

impl fmt::Display for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    #[error("agent {0} is not known")]
    UnknownAgent(AgentId),
    #[error("agent {0} already exists")]
    AgentExists(AgentId),
    #[error("agent {0}: max_sessions must be at least 1")]
    NoSessions(AgentId),
    #[error("conversation {0} is not known")]
    UnknownConversation(ConversationId),
    #[error("conversation {conversation} is {state:?}, not assigned to an agent")]
    NotAssigned {
        conversation: ConversationId,
        state: ConversationState,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentStatus {
    Available,
    Away,
}

#[derive(Debug, Clone, Default)]
pub struct NewAgent {
    pub id: String,
    pub name: String,
    pub skills: BTreeSet<String>,
    pub languages: BTreeSet<String>,
    /// `None` takes [`RouterConfig::max_sessions`].
    pub max_sessions: Option<u32>,
}

/// Changes to an agent; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct AgentUpdate {
    pub name: Option<String>,
    pub skills: Option<BTreeSet<String>>,
    pub languages: Option<BTreeSet<String>>,
    pub max_sessions: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Agent {
    pub id: AgentId,
    pub name: String,
    pub skills: BTreeSet<String>,
    pub languages: BTreeSet<String>,
    pub max_sessions: u32,
    pub status: AgentStatus,
    pub last_heartbeat_ms: i64,
    pub last_assigned_ms: Option<i64>,
    pub sessions: BTreeSet<ConversationId>,
}

/// What a conversation needs of its agent, known when it opens.
#[derive(Debug, Clone, Default)]
pub struct Needs {
    pub language: Option<String>,
    pub skills: BTreeSet<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationState {
    Waiting,
    Assigned,
    Released,
}

/// The agent's last message, kept until the customer writes again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentMessage {
    pub sent_ms: i64,
    pub read_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseReason {
    /// The customer read the agent's last message and did not write for the grace period.
    Read,
    /// No message either way for the idle timeout.
    Idle,
    /// The agent went away with nothing left to answer.
    AgentAway,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequeueReason {
    HeartbeatLost,
    /// The agent went away while the customer was waiting for an answer.
    AgentAway,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    Released(ReleaseReason),
    Requeued(RequeueReason),
}

/// One session of a conversation with one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub agent: AgentId,
    pub assigned_ms: i64,
    pub ended: Option<(i64, SessionEnd)>,
}

#[derive(Debug, Clone)]
pub struct Conversation {
    pub id: ConversationId,
    pub contact: String,
    pub language: Option<String>,
    pub skills: BTreeSet<String>,
    pub state: ConversationState,
    pub opened_ms: i64,
    pub last_inbound_ms: i64,
    /// Free-form replies are allowed until then.
    pub window_expires_ms: i64,
    /// The last inbound message or agent reply; the idle timeout counts from here.
    pub last_activity_ms: i64,
    /// Set while the conversation is in the queue.
    pub waiting_since_ms: Option<i64>,
    pub agent: Option<AgentId>,
    /// The agent who held it last; tried first when it waits again.
    pub previous_agent: Option<AgentId>,
    pub last_agent_message: Option<AgentMessage>,
    pub history: Vec<Assignment>,
}

/// What an input caused, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    Opened {
        conversation: ConversationId,
    },
    /// A released conversation written to again within its window waits again.
    Reopened {
        conversation: ConversationId,
    },
    Assigned {
        conversation: ConversationId,
        agent: AgentId,
        waited_ms: i64,
    },
    /// Activity on the session: an agent reply or a customer message.
    Renewed {
        conversation: ConversationId,
        agent: AgentId,
    },
    Released {
        conversation: ConversationId,
        agent: AgentId,
        reason: ReleaseReason,
    },
    Requeued {
        conversation: ConversationId,
        agent: AgentId,
        reason: RequeueReason,
    },
    /// The assignment rule chose an agent that was not among the candidates; the
    /// conversation keeps waiting.
    RuleRefused {
        conversation: ConversationId,
        agent: AgentId,
    },
}

pub struct Router {
    config: RouterConfig,
    rule: Box<dyn AssignRule>,
    agents: BTreeMap<AgentId, Agent>,
    conversations: HashMap<ConversationId, Conversation>,
    /// The contact's latest conversation.
    by_contact: HashMap<String, ConversationId>,
    /// Waiting conversations, first come first served.
    queue: BTreeSet<(i64, ConversationId)>,
    next_conversation: u64,
    rule_refusals: u64,
}

impl Router {
    pub fn new(config: RouterConfig) -> Self {
        Self::with_rule(config, Box::new(SkillsThenLeastLoaded))
    }

    pub fn with_rule(config: RouterConfig, rule: Box<dyn AssignRule>) -> Self {
        Self {
            config,
            rule,
            agents: BTreeMap::new(),
            conversations: HashMap::new(),
            by_contact: HashMap::new(),
            queue: BTreeSet::new(),
            next_conversation: 1,
            rule_refusals: 0,
        }
    }

    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    pub fn agent(&self, id: &AgentId) -> Option<&Agent> {
        self.agents.get(id)
    }

    pub fn agents(&self) -> impl Iterator<Item = &Agent> {
        self.agents.values()
    }

    pub fn conversation(&self, id: ConversationId) -> Option<&Conversation> {
        self.conversations.get(&id)
    }

    pub fn conversations(&self) -> impl Iterator<Item = &Conversation> {
        self.conversations.values()
    }

    /// The contact's latest conversation.
    pub fn conversation_of(&self, contact: &str) -> Option<&Conversation> {
        self.by_contact.get(contact).and_then(|id| self.conversations.get(id))
    }

    /// Waiting conversations in the order they will be offered.
    pub fn queue(&self) -> impl Iterator<Item = ConversationId> + '_ {
        self.queue.iter().map(|&(_, id)| id)
    }

    /// How many times the rule chose an agent the router could not give the conversation to.
    pub fn rule_refusals(&self) -> u64 {
        self.rule_refusals
    }

    /// Whether a free-form reply is allowed in the conversation at `now_ms`.
    pub fn window_open(&self, conversation: ConversationId, now_ms: i64) -> Result<bool> {
        let conversation = self.get(conversation)?;
        Ok(now_ms < conversation.window_expires_ms)
    }

    /// Adds an agent, available, with its heartbeat counted from `at_ms`.
    pub fn add_agent(&mut self, agent: NewAgent, at_ms: i64) -> Result<Vec<SessionEvent>> {
        let id = AgentId(agent.id);
        if self.agents.contains_key(&id) {
            return Err(Error::AgentExists(id));
        }
        let max_sessions = agent.max_sessions.unwrap_or(self.config.max_sessions);
        if max_sessions == 0 {
            return Err(Error::NoSessions(id));
        }
        self.agents.insert(
            id.clone(),
            Agent {
                id,
                name: agent.name,
                skills: agent.skills,
                languages: agent.languages,
                max_sessions,
                status: AgentStatus::Available,
                last_heartbeat_ms: at_ms,
                last_assigned_ms: None,
                sessions: BTreeSet::new(),
            },
        );
        let mut events = Vec::new();
        self.assign_waiting(at_ms, &mut events);
        Ok(events)
    }

    /// Changes an agent. Lowering `max_sessions` below the sessions held keeps them; the agent
    /// gets no new one until it is under the limit.
    pub fn update_agent(&mut self, id: &AgentId, update: AgentUpdate, at_ms: i64) -> Result<Vec<SessionEvent>> {
        if update.max_sessions == Some(0) {
            return Err(Error::NoSessions(id.clone()));
        }
        let agent = self.agent_mut(id)?;
        if let Some(name) = update.name {
            agent.name = name;
        }
        if let Some(skills) = update.skills {
            agent.skills = skills;
        }
        if let Some(languages) = update.languages {
            agent.languages = languages;
        }
        if let Some(max_sessions) = update.max_sessions {
            agent.max_sessions = max_sessions;
        }
        let mut events = Vec::new();
        self.assign_waiting(at_ms, &mut events);
        Ok(events)
    }

    /// A message from the contact: continues its conversation, reopens it if released within
    /// the window, or opens a new one. Either way the window now runs 24 h from `at_ms`.
    /// `needs` applies to a conversation that opens here.
    pub fn inbound(&mut self, contact: &str, needs: Needs, at_ms: i64) -> (ConversationId, Vec<SessionEvent>) {
        let mut events = Vec::new();
        let current = self
            .by_contact
            .get(contact)
            .and_then(|id| self.conversations.get_mut(id))
            .filter(|conversation| {
                conversation.state != ConversationState::Released || at_ms < conversation.window_expires_ms
            });
        let id = match current {
            Some(conversation) => {
                conversation.last_inbound_ms = at_ms;
                conversation.window_expires_ms = at_ms + SERVICE_WINDOW_MS;
                conversation.last_activity_ms = at_ms;
                // The customer wrote last: the session waits for the agent, not for a read.
                conversation.last_agent_message = None;
                let id = conversation.id;
                match conversation.state {
                    ConversationState::Assigned => {
                        if let Some(agent) = conversation.agent.clone() {
                            events.push(SessionEvent::Renewed {
                                conversation: id,
                                agent,
                            });
                        }
                    }
                    ConversationState::Waiting => {}
                    ConversationState::Released => {
                        conversation.state = ConversationState::Waiting;
                        conversation.waiting_since_ms = Some(at_ms);
                        self.queue.insert((at_ms, id));
                        events.push(SessionEvent::Reopened { conversation: id });
                    }
                }
                id
            }
            None => {
                let id = ConversationId(self.next_conversation);
                self.next_conversation += 1;
                self.conversations.insert(
                    id,
                    Conversation {
                        id,
                        contact: contact.to_owned(),
                        language: needs.language,
                        skills: needs.skills,
                        state: ConversationState::Waiting,
                        opened_ms: at_ms,
                        last_inbound_ms: at_ms,
                        window_expires_ms: at_ms + SERVICE_WINDOW_MS,
                        last_activity_ms: at_ms,
                        waiting_since_ms: Some(at_ms),
                        agent: None,
                        previous_agent: None,
                        last_agent_message: None,
                        history: Vec::new(),
                    },
                );
                self.by_contact.insert(contact.to_owned(), id);
                self.queue.insert((at_ms, id));
                events.push(SessionEvent::Opened { conversation: id });
                id
            }
        };
        self.assign_waiting(at_ms, &mut events);
        (id, events)
    }

    /// The assigned agent replied: renews the session and the agent's lease; the reply is
    /// unread until [`Router::customer_read`].
    pub fn agent_replied(&mut self, conversation: ConversationId, at_ms: i64) -> Result<Vec<SessionEvent>> {
        let entry = self.get_mut(conversation)?;
        let Some(agent) = entry.agent.clone() else {
            return Err(Error::NotAssigned {
                conversation,
                state: entry.state,
            });
        };
        entry.last_activity_ms = at_ms;
        entry.last_agent_message = Some(AgentMessage {
            sent_ms: at_ms,
            read_ms: None,
        });
        if let Some(holder) = self.agents.get_mut(&agent) {
            holder.last_heartbeat_ms = holder.last_heartbeat_ms.max(at_ms);
        }
        Ok(vec![SessionEvent::Renewed { conversation, agent }])
    }

    /// The customer read an agent message sent at `sent_ms`. Reading the last one (or a later
    /// one) may release the session at once when the grace period is zero.
    pub fn customer_read(
        &mut self,
        conversation: ConversationId,
        sent_ms: i64,
        at_ms: i64,
    ) -> Result<Vec<SessionEvent>> {
        let entry = self.get_mut(conversation)?;
        if let Some(message) = entry.last_agent_message.as_mut()
            && sent_ms >= message.sent_ms
            && message.read_ms.is_none()
        {
            message.read_ms = Some(at_ms);
        }
        let mut events = Vec::new();
        if self.read_and_quiet(conversation, at_ms) {
            self.release(conversation, ReleaseReason::Read, at_ms, &mut events);
            self.assign_waiting(at_ms, &mut events);
        }
        Ok(events)
    }

    pub fn heartbeat(&mut self, agent: &AgentId, at_ms: i64) -> Result<Vec<SessionEvent>> {
        let timeout_ms = self.config.heartbeat_timeout_ms;
        let entry = self.agent_mut(agent)?;
        let was_stale = at_ms - entry.last_heartbeat_ms > timeout_ms;
        entry.last_heartbeat_ms = entry.last_heartbeat_ms.max(at_ms);
        let mut events = Vec::new();
        if was_stale {
            self.assign_waiting(at_ms, &mut events);
        }
        Ok(events)
    }

    /// Going away gives up every session: those where the customer is waiting for an answer
    /// go back to the queue, the others are released (a new message reopens them).
    pub fn set_status(&mut self, agent: &AgentId, status: AgentStatus, at_ms: i64) -> Result<Vec<SessionEvent>> {
        let entry = self.agent_mut(agent)?;
        entry.status = status;
        let sessions: Vec<ConversationId> = match status {
            AgentStatus::Away => entry.sessions.iter().copied().collect(),
            AgentStatus::Available => Vec::new(),
        };
        let mut events = Vec::new();
        for conversation in sessions {
            let answered = self
                .conversations
                .get(&conversation)
                .is_some_and(|entry| entry.last_agent_message.is_some());
            if answered {
                self.release(conversation, ReleaseReason::AgentAway, at_ms, &mut events);
            } else {
                self.requeue(conversation, RequeueReason::AgentAway, at_ms, &mut events);
            }
        }
        self.assign_waiting(at_ms, &mut events);
        Ok(events)
    }

    /// Applies the clock: requeues the sessions of agents whose heartbeat is stale, releases
    /// read and idle sessions, then assigns waiting conversations.
    pub fn tick(&mut self, now_ms: i64) -> Vec<SessionEvent> {
        let mut events = Vec::new();
        let stale: Vec<ConversationId> = self
            .agents
            .values()
            .filter(|agent| now_ms - agent.last_heartbeat_ms > self.config.heartbeat_timeout_ms)
            .flat_map(|agent| agent.sessions.iter().copied())
            .collect();
        for conversation in stale {
            self.requeue(conversation, RequeueReason::HeartbeatLost, now_ms, &mut events);
        }
        let held: Vec<ConversationId> = self
            .agents
            .values()
            .flat_map(|agent| agent.sessions.iter().copied())
            .collect();
        for conversation in held {
            if self.read_and_quiet(conversation, now_ms) {
                self.release(conversation, ReleaseReason::Read, now_ms, &mut events);
            } else if self
                .conversations
                .get(&conversation)
                .is_some_and(|entry| now_ms - entry.last_activity_ms >= self.config.idle_timeout_ms)
            {
                self.release(conversation, ReleaseReason::Idle, now_ms, &mut events);
            }
        }
        self.assign_waiting(now_ms, &mut events);
        events
    }

    fn get(&self, id: ConversationId) -> Result<&Conversation> {
        self.conversations.get(&id).ok_or(Error::UnknownConversation(id))
    }

    fn get_mut(&mut self, id: ConversationId) -> Result<&mut Conversation> {
        self.conversations.get_mut(&id).ok_or(Error::UnknownConversation(id))
    }

    fn agent_mut(&mut self, id: &AgentId) -> Result<&mut Agent> {
        self.agents.get_mut(id).ok_or_else(|| Error::UnknownAgent(id.clone()))
    }

    /// Whether an assigned session's last message is the agent's, read at least the grace
    /// period ago (the customer has not written since, or the message would be cleared).
    fn read_and_quiet(&self, conversation: ConversationId, now_ms: i64) -> bool {
        self.config.release_on_read
            && self.conversations.get(&conversation).is_some_and(|entry| {
                entry.state == ConversationState::Assigned
                    && entry
                        .last_agent_message
                        .and_then(|message| message.read_ms)
                        .is_some_and(|read_ms| now_ms - read_ms >= self.config.release_grace_ms)
            })
    }

    fn can_take(&self, agent: &Agent, now_ms: i64) -> bool {
        agent.status == AgentStatus::Available
            && now_ms - agent.last_heartbeat_ms <= self.config.heartbeat_timeout_ms
            && (agent.sessions.len() as u64) < u64::from(agent.max_sessions)
    }

    /// Ends the conversation's session and returns the agent who held it.
    fn end_session(
        &mut self,
        conversation: ConversationId,
        end: SessionEnd,
        at_ms: i64,
    ) -> Option<(&mut Conversation, AgentId)> {
        let entry = self.conversations.get_mut(&conversation)?;
        let agent = entry.agent.take()?;
        if let Some(holder) = self.agents.get_mut(&agent) {
            holder.sessions.remove(&conversation);
        }
        if let Some(session) = entry.history.last_mut()
            && session.ended.is_none()
        {
            session.ended = Some((at_ms, end));
        }
        entry.previous_agent = Some(agent.clone());
        Some((entry, agent))
    }

    fn release(
        &mut self,
        conversation: ConversationId,
        reason: ReleaseReason,
        at_ms: i64,
        events: &mut Vec<SessionEvent>,
    ) {
        if let Some((entry, agent)) = self.end_session(conversation, SessionEnd::Released(reason), at_ms) {
            entry.state = ConversationState::Released;
            events.push(SessionEvent::Released {
                conversation,
                agent,
                reason,
            });
        }
    }

    fn requeue(
        &mut self,
        conversation: ConversationId,
        reason: RequeueReason,
        at_ms: i64,
        events: &mut Vec<SessionEvent>,
    ) {
        if let Some((entry, agent)) = self.end_session(conversation, SessionEnd::Requeued(reason), at_ms) {
            entry.state = ConversationState::Waiting;
            entry.waiting_since_ms = Some(at_ms);
            self.queue.insert((at_ms, conversation));
            events.push(SessionEvent::Requeued {
                conversation,
                agent,
                reason,
            });
        }
    }

    /// Offers each waiting conversation, oldest first, to the agents that can take one now:
    /// its previous agent first, else the rule's choice, checked against the candidates.
    fn assign_waiting(&mut self, now_ms: i64, events: &mut Vec<SessionEvent>) {
        let waiting: Vec<ConversationId> = self.queue.iter().map(|&(_, id)| id).collect();
        for conversation in waiting {
            let candidates: Vec<AgentView<'_>> = self
                .agents
                .values()
                .filter(|agent| self.can_take(agent, now_ms))
                .map(|agent| AgentView {
                    id: &agent.id,
                    skills: &agent.skills,
                    languages: &agent.languages,
                    sessions: u32::try_from(agent.sessions.len()).unwrap_or(u32::MAX),
                    max_sessions: agent.max_sessions,
                    last_assigned_ms: agent.last_assigned_ms,
                })
                .collect();
            if candidates.is_empty() {
                return;
            }
            let Some(entry) = self.conversations.get(&conversation) else {
                continue;
            };
            let previous = entry
                .previous_agent
                .as_ref()
                .filter(|previous| candidates.iter().any(|agent| agent.id == *previous));
            let choice = match previous {
                Some(previous) => Choice::Agent(previous.clone()),
                None => {
                    let view = ConversationView {
                        id: conversation,
                        contact: &entry.contact,
                        language: entry.language.as_deref(),
                        skills: &entry.skills,
                        waiting_since_ms: entry.waiting_since_ms.unwrap_or(now_ms),
                        previous_agent: entry.previous_agent.as_ref(),
                    };
                    self.rule.choose(&view, &candidates)
                }
            };
            let chosen = match choice {
                Choice::Wait => None,
                Choice::Agent(agent) if candidates.iter().any(|candidate| *candidate.id == agent) => Some(agent),
                Choice::Agent(agent) => {
                    self.rule_refusals += 1;
                    events.push(SessionEvent::RuleRefused { conversation, agent });
                    None
                }
            };
            if let Some(agent) = chosen {
                self.assign(conversation, agent, now_ms, events);
            }
        }
    }

    fn assign(&mut self, conversation: ConversationId, agent: AgentId, now_ms: i64, events: &mut Vec<SessionEvent>) {
        let (Some(entry), Some(holder)) = (self.conversations.get_mut(&conversation), self.agents.get_mut(&agent))
        else {
            return;
        };
        let waiting_since_ms = entry.waiting_since_ms.take().unwrap_or(now_ms);
        self.queue.remove(&(waiting_since_ms, conversation));
        holder.sessions.insert(conversation);
        holder.last_assigned_ms = Some(now_ms);
        entry.state = ConversationState::Assigned;
        entry.agent = Some(agent.clone());
        entry.last_activity_ms = entry.last_activity_ms.max(now_ms);
        entry.history.push(Assignment {
            agent: agent.clone(),
            assigned_ms: now_ms,
            ended: None,
        });
        events.push(SessionEvent::Assigned {
            conversation,
            agent,
            waited_ms: now_ms - waiting_since_ms,
        });
    }
}
