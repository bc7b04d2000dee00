//! The runtime behind [`export_policy!`](crate::export_policy): the per-instance slot that
//! holds the policy built by `init`, the forwarding of each hook to it, and the version
//! stamp the macro writes into the component. Called only from the macro's expansion.

use std::cell::RefCell;
use std::rc::Rc;
use std::thread::LocalKey;

use crate::{
    Action, Context, Event, LintFinding, Message, NOT_INITIALISED, Policy, Severity, TemplateDefinition, Verdict, log,
};

/// The slot holding a plugin instance's policy once `init` has succeeded.
///
/// The policy sits behind an `Rc` so a hook runs without the slot borrowed: a hook is free
/// to do anything, including (in tests) calling `init` again.
pub struct Instance<P> {
    policy: RefCell<Option<Rc<P>>>,
}

impl<P: Policy> Default for Instance<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Policy> Instance<P> {
    /// An empty slot: hooks reject until `init` succeeds.
    pub const fn new() -> Self {
        Self {
            policy: RefCell::new(None),
        }
    }

    /// Builds the policy from `config` and keeps it. A failed `init` leaves the slot
    /// empty, so a refused config never leaves an older policy running.
    pub fn init(&self, config: &str) -> Result<(), String> {
        self.policy.replace(None);
        let policy = P::init(config)?;
        self.policy.replace(Some(Rc::new(policy)));
        Ok(())
    }

    fn current(&self) -> Option<Rc<P>> {
        self.policy.borrow().clone()
    }

    fn current_in(slot: &'static LocalKey<Self>) -> Option<Rc<P>> {
        slot.with(Self::current)
    }

    /// Forwards `on-submit`, or rejects with [`NOT_INITIALISED`].
    pub fn on_submit(slot: &'static LocalKey<Self>, message: Message, context: &Context) -> Verdict {
        match Self::current_in(slot) {
            Some(policy) => policy.on_submit(message, context),
            None => Verdict::Reject(NOT_INITIALISED.to_string()),
        }
    }

    /// Forwards `on-dispatch`, or rejects with [`NOT_INITIALISED`].
    pub fn on_dispatch(slot: &'static LocalKey<Self>, message: Message, context: &Context) -> Verdict {
        match Self::current_in(slot) {
            Some(policy) => policy.on_dispatch(message, context),
            None => Verdict::Reject(NOT_INITIALISED.to_string()),
        }
    }

    /// Forwards `on-event`. An event cannot be rejected, so before `init` the SDK logs
    /// [`NOT_INITIALISED`] at error level and returns no actions.
    pub fn on_event(slot: &'static LocalKey<Self>, event: Event, context: &Context) -> Vec<Action> {
        match Self::current_in(slot) {
            Some(policy) => policy.on_event(event, context),
            None => {
                log::error(NOT_INITIALISED);
                Vec::new()
            }
        }
    }
}

impl<P: Policy> Instance<P> {
    /// Forwards `on-template`. Before `init` the template cannot be judged, so the answer is
    /// one `error` finding (check `sdk`) saying [`NOT_INITIALISED`].
    pub fn on_template(slot: &'static LocalKey<Self>, template: &TemplateDefinition) -> Vec<LintFinding> {
        match Self::current_in(slot) {
            Some(policy) => policy.on_template(template),
            None => vec![LintFinding {
                check: "sdk".to_string(),
                severity: Severity::Error,
                field: String::new(),
                message: NOT_INITIALISED.to_string(),
            }],
        }
    }
}

/// The text of the `wasp-sdk-version` custom section: `wasp-sdk=<version>;wasp:policy=<version>`.
const VERSION_STAMP_TEXT: &str = concat!("wasp-sdk=", env!("CARGO_PKG_VERSION"), ";wasp:policy=", "0.2.0");

/// Length of [`VERSION_STAMP`] in bytes.
pub const VERSION_STAMP_LENGTH: usize = VERSION_STAMP_TEXT.len();

/// The bytes of the `wasp-sdk-version` custom section. A custom section holds plain
/// bytes (no pointers), hence an array rather than a `&str`.
pub const VERSION_STAMP: [u8; VERSION_STAMP_LENGTH] = {
    let text = VERSION_STAMP_TEXT.as_bytes();
    let mut bytes = [0u8; VERSION_STAMP_LENGTH];
    let mut index = 0;
    while index < VERSION_STAMP_LENGTH {
        bytes[index] = text[index];
        index += 1;
    }
    bytes
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Content, TextBody};

    struct Echo {
        reason: String,
    }

    impl Policy for Echo {
        fn init(config: &str) -> Result<Self, String> {
            if config == "refuse" {
                return Err("refused".to_string());
            }
            Ok(Echo {
                reason: config.to_string(),
            })
        }

        fn on_submit(&self, _message: Message, _context: &Context) -> Verdict {
            Verdict::Reject(self.reason.clone())
        }
    }

    thread_local! {
        static SLOT: Instance<Echo> = const { Instance::new() };
    }

    fn message() -> Message {
        Message {
            id: "m-1".to_string(),
            to: "+6591234567".to_string(),
            sender: "100200300".to_string(),
            category: crate::Category::Utility,
            priority: crate::Priority::Normal,
            channel: crate::Channel::Whatsapp,
            content: Content::Text(TextBody {
                body: "hello".to_string(),
                preview_url: false,
            }),
            tags: Vec::new(),
        }
    }

    #[test]
    fn hooks_before_init_reject_clearly() {
        let verdict = Instance::on_submit(&SLOT, message(), &Context::default());
        assert_eq!(verdict, Verdict::Reject(NOT_INITIALISED.to_string()));
        let verdict = Instance::on_dispatch(&SLOT, message(), &Context::default());
        assert_eq!(verdict, Verdict::Reject(NOT_INITIALISED.to_string()));
    }

    #[test]
    fn init_keeps_the_policy_and_a_refused_config_clears_it() {
        SLOT.with(|slot| slot.init("first")).expect("init");
        let verdict = Instance::on_submit(&SLOT, message(), &Context::default());
        assert_eq!(verdict, Verdict::Reject("first".to_string()));
        // Default hooks answer allow.
        let verdict = Instance::on_dispatch(&SLOT, message(), &Context::default());
        assert_eq!(verdict, Verdict::Allow);

        let refused = SLOT.with(|slot| slot.init("refuse"));
        assert_eq!(refused, Err("refused".to_string()));
        let verdict = Instance::on_submit(&SLOT, message(), &Context::default());
        assert_eq!(verdict, Verdict::Reject(NOT_INITIALISED.to_string()));
    }

    thread_local! {
        static UNINITIALISED: Instance<Echo> = const { Instance::new() };
    }

    #[test]
    fn on_template_before_init_is_one_error_finding_and_defaults_to_none_after() {
        let template = TemplateDefinition::from_meta_json(&serde_json::json!({
            "name": "hello", "language": "en", "category": "UTILITY",
            "components": [{"type": "BODY", "text": "Hello there"}]
        }))
        .expect("a valid definition");
        let findings = Instance::on_template(&UNINITIALISED, &template);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].severity, Severity::Error);
        assert_eq!(findings[0].message, NOT_INITIALISED);
        UNINITIALISED.with(|slot| slot.init("ready")).expect("init");
        assert_eq!(Instance::on_template(&UNINITIALISED, &template), Vec::new());
    }

    #[test]
    fn version_stamp_names_both_versions() {
        let text = std::str::from_utf8(&VERSION_STAMP).expect("utf-8");
        assert_eq!(
            text,
            format!("wasp-sdk={};wasp:policy={}", crate::SDK_VERSION, crate::WIT_VERSION)
        );
    }
}
