//! Channels: the clients that hand a message to the outside world and say what came back.
//! The Cloud API channel sends WhatsApp messages; the SMS channel (Twilio-compatible) sends
//! fallbacks. A channel classifies every failure
//! by type (retry, slow down, or final) so the dispatcher never decides by message text.
//! May call nothing else in wasp.

pub mod cloud_api;
pub mod sms;

pub use cloud_api::{CloudApi, ErrorClass, FailoverStats, RateScope, SendError};
pub use sms::{SmsChannel, SmsError};
