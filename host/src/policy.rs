//! Policies: the chain of plugins a message runs through, and the runtime that keeps it.
//!
//! Chain rules: plugins run in their configured order; the first reject ends the chain; a
//! rewrite is what the next plugin sees; defers take the latest time. A faulting plugin
//! rejects the message (fail closed) or is skipped (fail open), as its binding says; a
//! quarantined plugin is skipped. A shadow version runs beside the live one on the same
//! input; its verdict is recorded, never acted on. Template checks (`on-template`, contract
//! 0.2.0) run on every live plugin of the chain that has them; see [`Chain::lint_template`].
//! May call the store (plugin versions, bindings, state, timers, shadow verdicts).

pub mod bindings;
mod plugin;
mod runtime;

use std::sync::Arc;

use tokio::sync::mpsc;

pub use bindings::{Contract, Envelope, wit};
pub use plugin::{Fault, Limits, LoadedPlugin, StatsSnapshot};
pub use plugin::{InstanceState, describe_trap};
pub use runtime::{PluginStatus, PolicyRuntime, SettingsPatch, Uploaded};

use crate::{
    config::FailurePolicy,
    message::Channel,
    store::{self, ShadowRecord},
};

/// The `check` of the finding a plugin that faulted in `on-template` leaves.
pub const FAULT_CHECK: &str = "plugin-fault";
/// The `check` of the finding that says a quarantined plugin's template checks did not run.
pub const QUARANTINED_CHECK: &str = "plugin-quarantined";

/// How often the epoch advances; call deadlines are counted in these ticks.
pub const EPOCH_TICK_MS: u64 = 2;
/// Largest plugin component accepted.
pub const MAX_COMPONENT_BYTES: usize = 32 * 1024 * 1024;
/// The message and event hooks every contract version has: what a binding may call (a
/// template check is not bound: it runs on every plugin whose contract has it).
pub const HOOKS: &[&str] = &["on-submit", "on-dispatch", "on-event"];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("policy engine: {0}")]
    Engine(String),
    #[error("plugin {name}: reading {path}: {source}")]
    Read {
        name: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("plugins dir {path}: {source}")]
    Directory {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("plugin {name}: {size} bytes is over the limit of {limit}")]
    TooLarge { name: String, size: usize, limit: usize },
    #[error("plugin {name}: not a component: {reason}")]
    NotComponent { name: String, reason: String },
    #[error("plugin {name}: does not compile: {reason}")]
    DoesNotCompile { name: String, reason: String },
    #[error("plugin {name}: does not implement a wasp:policy world this host speaks (0.1.0, 0.2.0): {reason}")]
    WorldMismatch { name: String, reason: String },
    #[error("plugin {name}: init refused the config: {reason}")]
    ConfigRefused { name: String, reason: String },
    #[error("plugin {name}: {reason}")]
    Invalid { name: String, reason: String },
    #[error("no plugin {0}")]
    UnknownPlugin(String),
    #[error("plugin {name} has no version {version}")]
    UnknownVersion { name: String, version: String },
    #[error("plugin {0} has no earlier version to roll back to")]
    NothingToRollBack(String),
    #[error("plugin {name}: {source}")]
    Store {
        name: String,
        #[source]
        source: store::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a chain decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Allow,
    /// Not before this time (ms since the epoch).
    Defer {
        until_ms: i64,
        by: String,
    },
    Reject {
        reason: String,
    },
}

#[derive(Debug, Clone)]
pub struct ChainOutcome {
    pub decision: Decision,
    /// The message as the last plugin left it.
    pub envelope: Envelope,
    /// Plugins that changed the message, in order.
    pub rewritten_by: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Submit,
    Dispatch,
    Event,
}

impl Hook {
    pub fn export_name(self) -> &'static str {
        match self {
            Hook::Submit => "on-submit",
            Hook::Dispatch => "on-dispatch",
            Hook::Event => "on-event",
        }
    }
}

/// One plugin's place in the chain.
pub struct ChainEntry {
    pub live: Arc<LoadedPlugin>,
    pub shadow: Option<Arc<LoadedPlugin>>,
    /// Exports this binding calls (a subset of [`HOOKS`]).
    pub hooks: Vec<String>,
}

impl ChainEntry {
    fn binds(&self, hook: Hook) -> bool {
        self.hooks.iter().any(|bound| bound == hook.export_name())
    }
}

/// The plugins in chain order: an immutable snapshot, so each message is judged wholly by one chain.
#[derive(Default)]
pub struct Chain {
    pub entries: Vec<ChainEntry>,
    shadow_sink: Option<mpsc::UnboundedSender<ShadowRecord>>,
}

impl Chain {
    pub fn plugins(&self) -> impl Iterator<Item = &Arc<LoadedPlugin>> {
        self.entries.iter().map(|entry| &entry.live)
    }

    pub fn run(&self, hook: Hook, envelope: &Envelope, context: &wit::Context) -> ChainOutcome {
        let mut current = envelope.clone();
        let mut rewritten_by = Vec::new();
        let mut defer: Option<(i64, String)> = None;
        for entry in &self.entries {
            let plugin = &entry.live;
            if !entry.binds(hook) || plugin.is_quarantined() {
                continue;
            }
            let message = current.to_wit();
            let verdict = call_verdict(plugin, hook, &message, context);
            if let Some(shadow) = &entry.shadow {
                self.compare_shadow(plugin, shadow, hook, &message, context, &verdict, envelope);
            }
            let verdict = match verdict {
                Ok(verdict) => verdict,
                Err(fault) => match fault_verdict(plugin, &fault) {
                    Some(decision) => {
                        return ChainOutcome {
                            decision,
                            envelope: current,
                            rewritten_by,
                        };
                    }
                    None => continue,
                },
            };
            match verdict {
                wit::Verdict::Allow => {}
                wit::Verdict::Rewrite(rewritten) => match current.apply_rewrite(rewritten) {
                    Ok(next) => {
                        if next != current {
                            current = next;
                            rewritten_by.push(plugin.name.to_string());
                        }
                    }
                    Err(reason) => {
                        let fault = Fault::Malformed(reason);
                        plugin.record_fault(&fault);
                        if let Some(decision) = fault_verdict(plugin, &fault) {
                            return ChainOutcome {
                                decision,
                                envelope: current,
                                rewritten_by,
                            };
                        }
                    }
                },
                wit::Verdict::Defer(until_ms) => {
                    if defer.as_ref().is_none_or(|(latest, _)| until_ms > *latest) {
                        defer = Some((until_ms, plugin.name.to_string()));
                    }
                }
                wit::Verdict::Reroute(channel) => {
                    let channel = Channel::from(channel);
                    if channel != current.channel {
                        current.channel = channel;
                        rewritten_by.push(plugin.name.to_string());
                    }
                }
                wit::Verdict::Reject(reason) => {
                    return ChainOutcome {
                        decision: Decision::Reject {
                            reason: format!("{}: {reason}", plugin.name),
                        },
                        envelope: current,
                        rewritten_by,
                    };
                }
            }
        }
        let decision = match defer {
            Some((until_ms, by)) if until_ms > context.now_ms => Decision::Defer { until_ms, by },
            _ => Decision::Allow,
        };
        ChainOutcome {
            decision,
            envelope: current,
            rewritten_by,
        }
    }

    /// Runs `on-event` on every plugin that binds it (or only on `only`, for its own timers),
    /// returning each plugin's actions. Faults are counted and logged; an event has no message
    /// to reject.
    pub fn on_event(
        &self,
        event: &wit::Event,
        context: &wit::Context,
        only: Option<&str>,
    ) -> Vec<(Arc<str>, Vec<wit::Action>)> {
        let mut all = Vec::new();
        for entry in &self.entries {
            let plugin = &entry.live;
            if !entry.binds(Hook::Event) || plugin.is_quarantined() {
                continue;
            }
            if only.is_some_and(|name| name != &*plugin.name) {
                continue;
            }
            if let Ok(actions) = plugin.call("on-event", |bindings, store| {
                bindings.call_on_event(store, event, context)
            }) && !actions.is_empty()
            {
                all.push((plugin.name.clone(), actions));
            }
            if let Some(shadow) = &entry.shadow {
                // A shadow's actions are never carried out; the call keeps its stats honest.
                if shadow
                    .call("on-event", |bindings, store| {
                        bindings.call_on_event(store, event, context)
                    })
                    .is_err()
                {
                    tracing::debug!(plugin = %shadow.name, "shadow on-event faulted");
                }
            }
        }
        all
    }

    /// Runs `on-template` on every live plugin of the chain whose contract has it (0.2.0 and
    /// later; older plugins are skipped), in chain order, under the same sandbox as every
    /// other hook. Each finding names its plugin. A plugin that faults gives one finding
    /// (`check` [`FAULT_CHECK`], naming the plugin and the fault): an `error` when the plugin
    /// fails closed, a `warning` when it fails open. A quarantined plugin is not called; a
    /// `warning` ([`QUARANTINED_CHECK`]) says its checks did not run. Shadow versions are not
    /// asked: a lint has no verdict to compare.
    pub fn lint_template(
        &self,
        definition: &crate::templates::TemplateDefinition,
    ) -> Vec<crate::templates::LintFinding> {
        use crate::templates::{LintFinding, Severity};
        let template = bindings::template_to_wit(definition);
        let mut findings = Vec::new();
        for entry in &self.entries {
            let plugin = &entry.live;
            if !plugin.contract().has_templates() {
                continue;
            }
            let version = &plugin.version[..plugin.version.len().min(12)];
            if plugin.is_quarantined() {
                findings.push(LintFinding {
                    plugin: plugin.name.to_string(),
                    check: QUARANTINED_CHECK.to_owned(),
                    severity: Severity::Warning,
                    field: String::new(),
                    message: format!(
                        "plugin {}@{version} is quarantined; its template checks did not run",
                        plugin.name
                    ),
                });
                continue;
            }
            let outcome = plugin.call("on-template", |bindings, store| {
                bindings
                    .call_on_template(store, &template)
                    .unwrap_or_else(|| Ok(Vec::new()))
            });
            match outcome {
                Ok(found) => findings.extend(
                    found
                        .into_iter()
                        .map(|finding| bindings::finding_from_wit(&plugin.name, finding)),
                ),
                Err(fault) => findings.push(LintFinding {
                    plugin: plugin.name.to_string(),
                    check: FAULT_CHECK.to_owned(),
                    severity: match plugin.failure {
                        FailurePolicy::Closed => Severity::Error,
                        FailurePolicy::Open => Severity::Warning,
                    },
                    field: String::new(),
                    message: format!("plugin {}@{version} faulted in on-template: {fault}", plugin.name),
                }),
            }
        }
        findings
    }

    #[allow(clippy::too_many_arguments)]
    fn compare_shadow(
        &self,
        live: &LoadedPlugin,
        shadow: &LoadedPlugin,
        hook: Hook,
        message: &wit::Message,
        context: &wit::Context,
        live_verdict: &Result<wit::Verdict, Fault>,
        envelope: &Envelope,
    ) {
        let shadow_verdict = call_verdict(shadow, hook, message, context);
        let agreed = match (live_verdict, &shadow_verdict) {
            (Ok(live), Ok(shadow)) => live == shadow,
            (Err(_), Err(_)) => true,
            _ => false,
        };
        let Some(sink) = &self.shadow_sink else { return };
        let record = ShadowRecord {
            plugin: live.name.to_string(),
            shadow_version: shadow.version.clone(),
            live_version: live.version.clone(),
            message_id: envelope.id,
            hook: hook.export_name().to_owned(),
            live_verdict: describe_verdict(live_verdict),
            shadow_verdict: describe_verdict(&shadow_verdict),
            agreed,
            at_ms: context.now_ms,
        };
        if sink.send(record).is_err() {
            tracing::debug!("shadow verdict writer has stopped");
        }
    }
}

fn call_verdict(
    plugin: &LoadedPlugin,
    hook: Hook,
    message: &wit::Message,
    context: &wit::Context,
) -> Result<wit::Verdict, Fault> {
    plugin.call(hook.export_name(), |bindings, store| match hook {
        Hook::Submit => bindings.call_on_submit(store, message, context),
        Hook::Dispatch | Hook::Event => bindings.call_on_dispatch(store, message, context),
    })
}

/// A verdict in a few words for the shadow report (rewrites by what they produce).
fn describe_verdict(verdict: &Result<wit::Verdict, Fault>) -> String {
    match verdict {
        Ok(wit::Verdict::Allow) => "allow".into(),
        Ok(wit::Verdict::Rewrite(message)) => {
            let content = crate::policy::bindings::content_from_wit(message.content.clone());
            format!(
                "rewrite to {}",
                serde_json::to_string(&content).unwrap_or_else(|_| content.kind().to_owned())
            )
        }
        Ok(wit::Verdict::Defer(until_ms)) => format!("defer until {}", crate::api::format_time(*until_ms)),
        Ok(wit::Verdict::Reroute(channel)) => format!("reroute to {}", Channel::from(*channel)),
        Ok(wit::Verdict::Reject(reason)) => format!("reject: {reason}"),
        Err(fault) => format!("fault: {fault}"),
    }
}

/// Fail closed: reject naming the plugin, its version and the fault. Fail open: skip it.
fn fault_verdict(plugin: &LoadedPlugin, fault: &Fault) -> Option<Decision> {
    match plugin.failure {
        FailurePolicy::Closed => Some(Decision::Reject {
            reason: format!(
                "plugin {}@{} faulted: {fault}",
                plugin.name,
                &plugin.version[..plugin.version.len().min(12)]
            ),
        }),
        FailurePolicy::Open => None,
    }
}
