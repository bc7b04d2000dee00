//! wasp: a dispatch platform for the WhatsApp Business Cloud API whose business rules run as
//! sandboxed WebAssembly plugins.
//!
//! Data flows one way: api → store → dispatch → policy → channel → store; webhooks come back
//! api → store. [`app`] wires the parts together; `main.rs` is the CLI.

pub mod api;
pub mod app;
pub mod bench;
pub mod callbacks;
pub mod channel;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod conversations;
pub mod demo;
pub mod dispatch;
pub mod events;
pub mod facts;
pub mod health;
pub mod message;
pub mod policy;
pub mod regions;
pub mod senders;
pub mod store;
pub mod telemetry;
pub mod templates;
