//! Conversations and agent sessions: who answers which customer, and for how long.
//!
//! This part owns the decisions only, as a pure synchronous engine ([`Router`]): the 24-hour
//! customer-service window of each conversation, the queue of conversations waiting for an
//! agent, the assignment of a conversation to an agent with a free slot (through an
//! [`AssignRule`], the place an `on-assign` plugin plugs in), the session lease renewed by
//! heartbeats and activity, release on read, idle expiry and requeueing. Time comes in as a
//! parameter (`now_ms`, `at_ms`) and every input answers with the [`SessionEvent`]s it caused,
//! so the store, the event stream and the metrics can record them.
//!
//! It calls nothing: no store, no clock, no I/O. The API and the store drive it and persist
//! what it answers. Beside it, [`simulation`] drives it through issue 10's seeded simulation,
//! timing its calls with the wall clock (the proof's test, and what the benchmark measures),
//! and [`bench`] is `wasp bench conversations`, which runs that and prints the figures.

pub mod bench;
mod router;
mod rule;
pub mod simulation;

#[cfg(test)]
mod tests;

pub use router::{
    Agent, AgentId, AgentMessage, AgentStatus, AgentUpdate, Assignment, Conversation, ConversationId,
    ConversationState, DEFAULT_HEARTBEAT_TIMEOUT_MS, DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_MAX_SESSIONS,
    DEFAULT_RELEASE_GRACE_MS, DEFAULT_RELEASE_ON_READ, Error, Needs, NewAgent, ReleaseReason, RequeueReason, Result,
    Router, RouterConfig, SERVICE_WINDOW_MS, SessionEnd, SessionEvent,
};
pub use rule::{AgentView, AssignRule, Choice, ConversationView, SkillsThenLeastLoaded};
