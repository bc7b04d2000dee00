//! A test guest for the sandbox tests: a policy that misbehaves in one hook, in the way its
//! config asks, and answers neutrally in the others. It owns nothing else and calls only
//! `wasp-sdk`.
//!
//! Config: `{"mode": "<mode>", "hook": "on-submit" | "on-dispatch" | "on-event" | "on-template",
//! "slow_ms": 200, "output_bytes": 52428800}`. `hook` defaults to `on-submit`; `slow_ms`
//! and `output_bytes` only matter to their modes. Modes:
//!
//! - `allow`: well-behaved (allow; no actions).
//! - `loop`: loops forever.
//! - `trap`: executes `unreachable`.
//! - `panic`: panics (a trap, after the panic message).
//! - `memory`: allocates and touches 1 MiB blocks until allocation fails (a trap).
//! - `recursion`: recurses without bound until the stack is exhausted (a trap).
//! - `huge-output`: returns `output_bytes` (50 MiB by default) of text: a rewrite in a
//!   verdict hook, a follow-up send in `on-event`, a finding's message in `on-template`.
//! - `slow`: busy-loops for roughly `slow_ms` milliseconds, counted in iterations (no
//!   clock), then behaves as `allow`.
//! - `reject`: rejects with the reason "hostile says no" (verdict hooks only).
//!
//! A well-behaved `on-template` finds nothing.
//!
//! An unknown mode or hook refuses the config ("bad mode: X", "bad hook: X").

use std::hint::black_box;

use serde::Deserialize;
use wasp_sdk::{
    Action, Category, Channel, Content, Context, Event, FollowUp, LintFinding, Message, Policy, Priority,
    TemplateDefinition, Verdict,
};

/// Reason given by the `reject` mode.
pub const REJECT_REASON: &str = "hostile says no";
/// Default `slow_ms`.
pub const DEFAULT_SLOW_MS: u64 = 200;
/// Default `output_bytes`: 50 MiB.
pub const DEFAULT_OUTPUT_BYTES: usize = 50 * 1024 * 1024;
/// Busy-loop iterations taken as one millisecond by the `slow` mode. Rough: one iteration
/// is a few instructions, so this is the right order of magnitude for compiled wasm, and
/// the fuel it burns is what a fuel budget sees.
pub const ITERATIONS_PER_MILLISECOND: u64 = 600_000;
/// Block size the `memory` mode allocates at a time.
const MEMORY_BLOCK_BYTES: usize = 1024 * 1024;

/// How the guest misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Allow,
    Loop,
    Trap,
    Panic,
    Memory,
    Recursion,
    HugeOutput,
    Slow,
    Reject,
}

impl Mode {
    fn parse(name: &str) -> Result<Mode, String> {
        Ok(match name {
            "allow" => Mode::Allow,
            "loop" => Mode::Loop,
            "trap" => Mode::Trap,
            "panic" => Mode::Panic,
            "memory" => Mode::Memory,
            "recursion" => Mode::Recursion,
            "huge-output" => Mode::HugeOutput,
            "slow" => Mode::Slow,
            "reject" => Mode::Reject,
            other => return Err(format!("bad mode: {other}")),
        })
    }
}

/// The hook that misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    OnSubmit,
    OnDispatch,
    OnEvent,
    OnTemplate,
}

impl Hook {
    fn parse(name: &str) -> Result<Hook, String> {
        Ok(match name {
            "on-submit" => Hook::OnSubmit,
            "on-dispatch" => Hook::OnDispatch,
            "on-event" => Hook::OnEvent,
            "on-template" => Hook::OnTemplate,
            other => return Err(format!("bad hook: {other}")),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigJson {
    mode: String,
    #[serde(default)]
    hook: Option<String>,
    #[serde(default)]
    slow_ms: Option<u64>,
    #[serde(default)]
    output_bytes: Option<usize>,
}

/// The parsed config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hostile {
    pub mode: Mode,
    pub hook: Hook,
    pub slow_ms: u64,
    pub output_bytes: usize,
}

impl Hostile {
    /// Parses the config; `mode` is required.
    pub fn parse(config: &str) -> Result<Hostile, String> {
        let parsed: ConfigJson = serde_json::from_str(config).map_err(|error| format!("config: {error}"))?;
        let mode = Mode::parse(&parsed.mode)?;
        let hook = Hook::parse(parsed.hook.as_deref().unwrap_or("on-submit"))?;
        if mode == Mode::Reject && matches!(hook, Hook::OnEvent | Hook::OnTemplate) {
            return Err("bad mode: reject has no meaning in on-event or on-template".to_string());
        }
        Ok(Hostile {
            mode,
            hook,
            slow_ms: parsed.slow_ms.unwrap_or(DEFAULT_SLOW_MS),
            output_bytes: parsed.output_bytes.unwrap_or(DEFAULT_OUTPUT_BYTES),
        })
    }

    /// Runs the misbehaviour if `hook` is the chosen one; returns the huge text for
    /// `huge-output`, or whether to reject.
    fn misbehave(&self, hook: Hook) -> Outcome {
        if hook != self.hook {
            return Outcome::Neutral;
        }
        match self.mode {
            Mode::Allow => Outcome::Neutral,
            Mode::Loop => spin_forever(),
            Mode::Trap => trap(),
            Mode::Panic => panic!("hostile panics in {hook:?}"),
            Mode::Memory => exhaust_memory(),
            Mode::Recursion => {
                black_box(recurse(0));
                Outcome::Neutral
            }
            Mode::HugeOutput => Outcome::Huge("x".repeat(self.output_bytes)),
            Mode::Slow => {
                busy_loop(self.slow_ms.saturating_mul(ITERATIONS_PER_MILLISECOND));
                Outcome::Neutral
            }
            Mode::Reject => Outcome::Reject,
        }
    }

    fn verdict(&self, hook: Hook, message: Message) -> Verdict {
        match self.misbehave(hook) {
            Outcome::Neutral => Verdict::Allow,
            Outcome::Reject => Verdict::Reject(REJECT_REASON.to_string()),
            Outcome::Huge(text) => Verdict::Rewrite(message.with_content(Content::text(text))),
        }
    }
}

enum Outcome {
    Neutral,
    Reject,
    Huge(String),
}

fn spin_forever() -> ! {
    let mut counter = 0u64;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

fn busy_loop(iterations: u64) {
    let mut counter = 0u64;
    while black_box(counter) < iterations {
        counter += 1;
    }
}

#[cfg(target_arch = "wasm32")]
fn trap() -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(not(target_arch = "wasm32"))]
fn trap() -> ! {
    std::process::abort()
}

fn exhaust_memory() -> ! {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        // `vec![1; n]` writes every byte, so each block is really touched.
        blocks.push(black_box(vec![1u8; MEMORY_BLOCK_BYTES]));
        black_box(&blocks);
    }
}

/// Recurses until the stack runs out; the frame keeps a buffer so each call really uses
/// stack, and the `black_box` condition keeps the compiler from proving it never ends.
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 32]);
    if black_box(depth) == u64::MAX {
        return frame[0];
    }
    recurse(depth + 1).wrapping_add(frame[31])
}

impl Policy for Hostile {
    fn init(config: &str) -> Result<Self, String> {
        Hostile::parse(config)
    }

    fn on_submit(&self, message: Message, _context: &Context) -> Verdict {
        self.verdict(Hook::OnSubmit, message)
    }

    fn on_dispatch(&self, message: Message, _context: &Context) -> Verdict {
        self.verdict(Hook::OnDispatch, message)
    }

    fn on_event(&self, event: Event, _context: &Context) -> Vec<Action> {
        match self.misbehave(Hook::OnEvent) {
            Outcome::Neutral | Outcome::Reject => Vec::new(),
            Outcome::Huge(text) => {
                let to = match event {
                    Event::Status(status) => status.message.to,
                    Event::Inbound(inbound) => inbound.from,
                    Event::Timer(timer) => timer.payload,
                };
                vec![Action::Send(FollowUp {
                    to,
                    channel: Channel::Sms,
                    category: Category::Utility,
                    priority: Priority::Normal,
                    content: Content::text(text),
                    tags: Vec::new(),
                })]
            }
        }
    }

    fn on_template(&self, template: &TemplateDefinition) -> Vec<LintFinding> {
        self.template_findings(template)
    }
}

impl Hostile {
    fn template_findings(&self, template: &TemplateDefinition) -> Vec<LintFinding> {
        match self.misbehave(Hook::OnTemplate) {
            Outcome::Neutral | Outcome::Reject => Vec::new(),
            Outcome::Huge(text) => vec![LintFinding::error("huge", template.body_field(), text)],
        }
    }
}

wasp_sdk::export_policy!(Hostile);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_parse_and_unknown_modes_are_refused() {
        let parsed = Hostile::parse(r#"{"mode": "slow", "hook": "on-dispatch", "slow_ms": 5}"#).expect("valid");
        assert_eq!(parsed.mode, Mode::Slow);
        assert_eq!(parsed.hook, Hook::OnDispatch);
        assert_eq!(parsed.slow_ms, 5);
        assert_eq!(
            Hostile::parse(r#"{"mode": "explode"}"#),
            Err("bad mode: explode".to_string())
        );
        assert_eq!(
            Hostile::parse(r#"{"mode": "trap", "hook": "on-start"}"#),
            Err("bad hook: on-start".to_string())
        );
    }

    #[test]
    fn well_behaved_modes_answer() {
        let message = Message::new("m-1", "+6591234567", "100200300", Content::text("hi"));
        let reject = Hostile::parse(r#"{"mode": "reject"}"#).expect("valid");
        assert_eq!(
            reject.on_submit(message.clone(), &Context::default()),
            Verdict::Reject(REJECT_REASON.to_string())
        );
        // Other hooks stay neutral.
        assert_eq!(reject.on_dispatch(message.clone(), &Context::default()), Verdict::Allow);

        let huge = Hostile::parse(r#"{"mode": "huge-output", "output_bytes": 16}"#).expect("valid");
        let Verdict::Rewrite(rewritten) = huge.on_submit(message, &Context::default()) else {
            panic!("expected a rewrite");
        };
        assert_eq!(rewritten.content, Content::text("x".repeat(16)));
    }
}
