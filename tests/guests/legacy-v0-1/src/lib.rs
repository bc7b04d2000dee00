//! A test guest built as a plugin was built before contract 0.2.0: raw `wit-bindgen` against
//! the frozen `sdk/wit/v0.1.0`, no SDK. It owns nothing and calls only the 0.1.0 host imports.
//! The host must keep loading it beside 0.2.0 plugins, run its hooks, and skip it when it
//! runs template checks (0.1.0 has no `on-template`).
//!
//! Behaviour: `init` takes any config and logs once; `on-submit` rejects a message tagged
//! [`REJECT_TAG`] with [`REJECT_REASON`] and allows everything else; `on-dispatch` allows;
//! `on-event` does nothing.

wit_bindgen::generate!({
    path: "../../../sdk/wit/v0.1.0",
    world: "policy",
});

use wasp::policy::host::{LogLevel, log};

/// Messages with this tag are rejected by `on-submit`.
pub const REJECT_TAG: &str = "legacy:reject";
/// The reason given when they are.
pub const REJECT_REASON: &str = "legacy v0.1.0 says no";

struct Legacy;

impl Guest for Legacy {
    fn init(_config: String) -> Result<(), String> {
        log(LogLevel::Debug, "legacy 0.1.0 guest ready");
        Ok(())
    }

    fn on_submit(message: Message, _context: Context) -> Verdict {
        if message.tags.iter().any(|tag| tag == REJECT_TAG) {
            Verdict::Reject(REJECT_REASON.to_string())
        } else {
            Verdict::Allow
        }
    }

    fn on_dispatch(_message: Message, _context: Context) -> Verdict {
        Verdict::Allow
    }

    fn on_event(_event: Event, _context: Context) -> Vec<Action> {
        Vec::new()
    }
}

export!(Legacy);
