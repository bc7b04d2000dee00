//! Policy fixtures: a policy case as data (config, state, input, context, expected outcome)
//! in a JSON file, and the native runner that checks a [`Policy`] against it. The host's
//! `wasp plugin test` reads the same files and runs them against the built component.
//!
//! A fixture file:
//!
//! ```json
//! {
//!   "description": "four buttons become a list",
//!   "hook": "on-submit",
//!   "config": {"list_button_label": "Options"},
//!   "message": {"id": "m-1", "to": "+6591234567", "sender": "100200300",
//!               "category": "utility", "priority": "normal", "channel": "whatsapp",
//!               "content": {"text": {"body": "hi", "preview_url": false}}},
//!   "context": {"now_ms": 1709335800000, "recipient": {"utc_offset_minutes": 480}},
//!   "state": {"seen:+6591234567": "1"},
//!   "expect": {"verdict": "allow", "state": {"seen:+6591234567": null}}
//! }
//! ```
//!
//! - `description` (optional): what the case shows.
//! - `hook` (optional): `on-submit`, `on-dispatch`, `on-event` or `on-template`, spelled as
//!   the export. Defaults to `on-submit` with a `message`, `on-event` with an `event`,
//!   `on-template` with a `template`.
//! - `config` (optional): the plugin's config as JSON; passed to `init` as its compact
//!   JSON text, or `""` when left out or `null`.
//! - `message` (for `on-submit`/`on-dispatch`), `event` (for `on-event`) or `template`
//!   (for `on-template`: a definition in Meta's creation format, read as
//!   [`TemplateDefinition::from_meta_json`] does).
//! - `context` (optional, not with `template`): any subset of the context; the rest is
//!   [`Context::default`].
//! - `state` (optional): the plugin's key/value state before the call, as an object of
//!   text values (`{"key": "value"}`), without TTLs. Nothing else is in the state: each
//!   fixture starts from an empty one.
//! - `expect`: for a verdict hook, `verdict` is `allow`, `rewrite`, `defer`, `reroute` or
//!   `reject`, optionally narrowed by `reason` (reject: exact text), `content` (rewrite:
//!   the rewritten content), `message` (rewrite: the whole rewritten message), `until_ms`
//!   (defer) or `channel` (reroute). For `on-event`, `actions` is the exact list of actions.
//!   For `on-template`, `findings` is the list of findings, each `{"check", "severity",
//!   "field"}` (`severity` is `error` or `warning`), compared in any order; the message text
//!   is not compared, so it is not given. `[]` expects none. With any hook, `state` (optional) lists keys the state must hold after the call: a text
//!   value is the exact value, `null` means the key is absent. Keys not listed are not
//!   checked.
//!
//! Natively the SDK's state is a per-thread map ([`crate::state`]), so [`Fixture::check`]
//! runs each fixture on a thread of its own: the map starts empty, is loaded with `state`,
//! and is read back for `expect.state`; nothing leaks into the next fixture or the caller.
//!
//! Records use the shape described in the `json` module: the contract's names in
//! snake_case, variants as `{"case": payload}`, enum cases as strings.

mod json;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{
    Action, Channel, Content, Context, Event, LintFinding, Message, Policy, Severity, TemplateDefinition, Verdict,
};
use json::{ActionJson, ChannelJson, ContentJson, ContextJson, EventJson, MessageJson};

/// One policy case, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Fixture {
    /// The file stem, or the name given to [`Fixture::parse`].
    pub name: String,
    pub description: Option<String>,
    /// The config text `init` receives.
    pub config: String,
    pub call: Call,
    pub context: Context,
    /// The plugin's state before the call (and before `init`).
    pub state: BTreeMap<String, String>,
    pub expectation: Expectation,
    /// State keys checked after the call: `Some(value)` must hold exactly that value,
    /// `None` must be absent.
    pub expected_state: BTreeMap<String, Option<String>>,
}

/// The hook a fixture calls, with its input.
#[derive(Clone, Debug, PartialEq)]
pub enum Call {
    OnSubmit(Message),
    OnDispatch(Message),
    OnEvent(Event),
    OnTemplate(TemplateDefinition),
}

/// A finding a template fixture expects: everything but the message text.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExpectedFinding {
    pub check: String,
    /// `error` or `warning`.
    pub severity: String,
    pub field: String,
}

impl ExpectedFinding {
    fn of(finding: &LintFinding) -> ExpectedFinding {
        ExpectedFinding {
            check: finding.check.clone(),
            severity: match finding.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            }
            .to_string(),
            field: finding.field.clone(),
        }
    }
}

impl fmt::Display for ExpectedFinding {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} {} at {:?}", self.severity, self.check, self.field)
    }
}

/// What a fixture expects back. `None` fields are not checked.
#[derive(Clone, Debug, PartialEq)]
// Built once per fixture; boxing would only make fixtures harder to write. (`allow`, not
// `expect`: on 32-bit wasm the variants are small enough and the lint does not fire.)
#[allow(clippy::large_enum_variant)]
pub enum Expectation {
    Allow,
    Rewrite {
        content: Option<Content>,
        message: Option<Message>,
    },
    Defer {
        until_ms: Option<i64>,
    },
    Reroute {
        channel: Option<Channel>,
    },
    Reject {
        reason: Option<String>,
    },
    Actions(Vec<Action>),
    /// The findings of `on-template`, in any order.
    Findings(Vec<ExpectedFinding>),
}

/// Why a fixture could not be read or did not hold.
#[derive(Debug)]
pub enum FixtureError {
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    Parse {
        name: String,
        source: serde_json::Error,
    },
    Invalid {
        name: String,
        reason: String,
    },
    InitRefused {
        name: String,
        reason: String,
    },
    Mismatch {
        name: String,
        expected: String,
        actual: String,
    },
    /// Several fixtures of a folder failed; each is listed.
    Failed(Vec<FixtureError>),
}

impl fmt::Display for FixtureError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FixtureError::Read { path, source } => {
                write!(formatter, "reading fixture {}: {source}", path.display())
            }
            FixtureError::Parse { name, source } => {
                write!(formatter, "fixture {name}: not a valid fixture: {source}")
            }
            FixtureError::Invalid { name, reason } => write!(formatter, "fixture {name}: {reason}"),
            FixtureError::InitRefused { name, reason } => {
                write!(formatter, "fixture {name}: init refused the config: {reason}")
            }
            FixtureError::Mismatch { name, expected, actual } => {
                write!(formatter, "fixture {name}: expected {expected}, got {actual}")
            }
            FixtureError::Failed(failures) => {
                write!(formatter, "{} fixture(s) failed", failures.len())?;
                for failure in failures {
                    write!(formatter, "\n  {failure}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for FixtureError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FixtureError::Read { source, .. } => Some(source),
            FixtureError::Parse { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureJson {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    hook: Option<HookJson>,
    #[serde(default)]
    config: Option<serde_json::Value>,
    #[serde(default)]
    message: Option<MessageJson>,
    #[serde(default)]
    event: Option<EventJson>,
    #[serde(default)]
    template: Option<serde_json::Value>,
    #[serde(default)]
    context: Option<ContextJson>,
    #[serde(default)]
    state: BTreeMap<String, String>,
    expect: ExpectJson,
}

/// A hook, spelled as the contract's export.
#[derive(Clone, Copy, Deserialize)]
enum HookJson {
    #[serde(rename = "on-submit")]
    Submit,
    #[serde(rename = "on-dispatch")]
    Dispatch,
    #[serde(rename = "on-event")]
    Event,
    #[serde(rename = "on-template")]
    Template,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum VerdictKindJson {
    Allow,
    Rewrite,
    Defer,
    Reroute,
    Reject,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectJson {
    #[serde(default)]
    verdict: Option<VerdictKindJson>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    content: Option<ContentJson>,
    #[serde(default)]
    message: Option<MessageJson>,
    #[serde(default)]
    until_ms: Option<i64>,
    #[serde(default)]
    channel: Option<ChannelJson>,
    #[serde(default)]
    actions: Option<Vec<ActionJson>>,
    #[serde(default)]
    findings: Option<Vec<FindingJson>>,
    #[serde(default)]
    state: BTreeMap<String, Option<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FindingJson {
    check: String,
    severity: SeverityJson,
    field: String,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SeverityJson {
    Error,
    Warning,
}

impl Fixture {
    /// Reads and parses a fixture file; its name is the file stem.
    pub fn load(path: impl AsRef<Path>) -> Result<Fixture, FixtureError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| FixtureError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let name = path
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Fixture::parse(&name, &text)
    }

    /// Parses a fixture from its JSON text.
    pub fn parse(name: &str, text: &str) -> Result<Fixture, FixtureError> {
        let parsed: FixtureJson = serde_json::from_str(text).map_err(|source| FixtureError::Parse {
            name: name.to_string(),
            source,
        })?;
        let invalid = |reason: &str| FixtureError::Invalid {
            name: name.to_string(),
            reason: reason.to_string(),
        };

        let hook = match (parsed.hook, &parsed.message, &parsed.event, &parsed.template) {
            (Some(hook), _, _, _) => hook,
            (None, Some(_), None, None) => HookJson::Submit,
            (None, None, Some(_), None) => HookJson::Event,
            (None, None, None, Some(_)) => HookJson::Template,
            (None, _, _, _) => return Err(invalid("give one of `message`, `event` or `template`")),
        };
        let call = match (hook, parsed.message, parsed.event, parsed.template) {
            (HookJson::Submit, Some(message), None, None) => Call::OnSubmit(message.into()),
            (HookJson::Dispatch, Some(message), None, None) => Call::OnDispatch(message.into()),
            (HookJson::Event, None, Some(event), None) => Call::OnEvent(event.into()),
            (HookJson::Template, None, None, Some(template)) => {
                if parsed.context.is_some() {
                    return Err(invalid("hook `on-template` takes no `context`"));
                }
                Call::OnTemplate(
                    TemplateDefinition::from_meta_json(&template)
                        .map_err(|reason| invalid(&format!("`template` is {reason}")))?,
                )
            }
            (HookJson::Event, _, _, _) => {
                return Err(invalid(
                    "hook `on-event` takes an `event` and no `message` or `template`",
                ));
            }
            (HookJson::Template, _, _, _) => {
                return Err(invalid(
                    "hook `on-template` takes a `template` and no `message` or `event`",
                ));
            }
            (_, _, _, _) => {
                return Err(invalid(
                    "hooks `on-submit` and `on-dispatch` take a `message` and no `event` or `template`",
                ));
            }
        };
        let mut expect = parsed.expect;
        let expected_state = std::mem::take(&mut expect.state);
        let expectation = expectation(expect, hook).map_err(|reason| invalid(&reason))?;
        let config = match parsed.config {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(value) => value.to_string(),
        };
        Ok(Fixture {
            name: name.to_string(),
            description: parsed.description,
            config,
            call,
            context: parsed.context.unwrap_or_default().into(),
            state: parsed.state,
            expectation,
            expected_state,
        })
    }

    /// Loads the fixture's state, builds `P` from its config, makes the call, and compares
    /// the outcome and the state after it.
    ///
    /// Natively this runs on a thread of its own, so the SDK's per-thread state starts empty
    /// and is dropped afterwards; a panic in the policy is passed on to the caller. On wasm
    /// the state is the host's and is used as it is.
    pub fn check<P: Policy>(&self) -> Result<(), FixtureError> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            std::thread::scope(|scope| {
                let thread = std::thread::Builder::new()
                    .name(format!("fixture {}", self.name))
                    .spawn_scoped(scope, || self.check_here::<P>())
                    .map_err(|error| FixtureError::Invalid {
                        name: self.name.clone(),
                        reason: format!("cannot start a thread to run it on: {error}"),
                    })?;
                match thread.join() {
                    Ok(result) => result,
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            })
        }
        #[cfg(target_arch = "wasm32")]
        {
            self.check_here::<P>()
        }
    }

    /// [`Fixture::check`] on the calling thread, with whatever state it already holds.
    fn check_here<P: Policy>(&self) -> Result<(), FixtureError> {
        for (key, value) in &self.state {
            crate::state::set(key, value, None);
        }
        let policy = P::init(&self.config).map_err(|reason| FixtureError::InitRefused {
            name: self.name.clone(),
            reason,
        })?;
        let mismatch = |actual: String| FixtureError::Mismatch {
            name: self.name.clone(),
            expected: self.expectation.describe(),
            actual,
        };
        let verdict = match &self.call {
            Call::OnSubmit(message) => policy.on_submit(message.clone(), &self.context),
            Call::OnDispatch(message) => policy.on_dispatch(message.clone(), &self.context),
            Call::OnEvent(event) => {
                let actions = policy.on_event(event.clone(), &self.context);
                return match &self.expectation {
                    Expectation::Actions(expected) if *expected == actions => self.check_state(),
                    _ => Err(mismatch(format!("actions {actions:?}"))),
                };
            }
            Call::OnTemplate(template) => {
                let findings = policy.on_template(template);
                let mut got: Vec<ExpectedFinding> = findings.iter().map(ExpectedFinding::of).collect();
                got.sort();
                return match &self.expectation {
                    Expectation::Findings(expected) if *expected == got => self.check_state(),
                    _ => Err(mismatch(describe_findings(&got))),
                };
            }
        };
        if !self.expectation.matches(&verdict) {
            return Err(mismatch(format!("{verdict:?}")));
        }
        self.check_state()
    }

    /// Compares the keys of `expected_state` with the state as the plugin would read it now.
    fn check_state(&self) -> Result<(), FixtureError> {
        let wrong: Vec<(&String, &Option<String>, Option<String>)> = self
            .expected_state
            .iter()
            .filter_map(|(key, expected)| {
                let actual = crate::state::get(key);
                (actual != *expected).then_some((key, expected, actual))
            })
            .collect();
        if wrong.is_empty() {
            return Ok(());
        }
        let list = |entries: Vec<String>| format!("state {}", entries.join(", "));
        Err(FixtureError::Mismatch {
            name: self.name.clone(),
            expected: list(
                wrong
                    .iter()
                    .map(|(key, expected, _)| state_entry(key, expected.as_deref()))
                    .collect(),
            ),
            actual: list(
                wrong
                    .iter()
                    .map(|(key, _, actual)| state_entry(key, actual.as_deref()))
                    .collect(),
            ),
        })
    }
}

/// One state key and its value, or that it is absent, for a mismatch report.
fn state_entry(key: &str, value: Option<&str>) -> String {
    match value {
        Some(value) => format!("{key:?} = {value:?}"),
        None => format!("{key:?} absent"),
    }
}

impl Expectation {
    fn matches(&self, verdict: &Verdict) -> bool {
        match (self, verdict) {
            (Expectation::Allow, Verdict::Allow) => true,
            (Expectation::Rewrite { content, message }, Verdict::Rewrite(actual)) => {
                content.as_ref().is_none_or(|content| *content == actual.content)
                    && message.as_ref().is_none_or(|message| message == actual)
            }
            (Expectation::Defer { until_ms }, Verdict::Defer(actual)) => {
                until_ms.is_none_or(|until_ms| until_ms == *actual)
            }
            (Expectation::Reroute { channel }, Verdict::Reroute(actual)) => {
                channel.is_none_or(|channel| channel == *actual)
            }
            (Expectation::Reject { reason }, Verdict::Reject(actual)) => {
                reason.as_ref().is_none_or(|reason| reason == actual)
            }
            _ => false,
        }
    }

    fn describe(&self) -> String {
        match self {
            Expectation::Allow => "allow".to_string(),
            Expectation::Rewrite {
                content: None,
                message: None,
            } => "rewrite".to_string(),
            Expectation::Rewrite { content, message } => {
                format!("rewrite (content {content:?}, message {message:?})")
            }
            Expectation::Defer { until_ms: None } => "defer".to_string(),
            Expectation::Defer {
                until_ms: Some(until_ms),
            } => format!("defer until {until_ms}"),
            Expectation::Reroute { channel: None } => "reroute".to_string(),
            Expectation::Reroute { channel: Some(channel) } => format!("reroute to {channel:?}"),
            Expectation::Reject { reason: None } => "reject".to_string(),
            Expectation::Reject { reason: Some(reason) } => format!("reject {reason:?}"),
            Expectation::Actions(actions) => format!("actions {actions:?}"),
            Expectation::Findings(findings) => describe_findings(findings),
        }
    }
}

fn describe_findings(findings: &[ExpectedFinding]) -> String {
    if findings.is_empty() {
        return "no findings".to_string();
    }
    let listed: Vec<String> = findings.iter().map(ToString::to_string).collect();
    format!("findings [{}]", listed.join("; "))
}

fn expectation(expect: ExpectJson, hook: HookJson) -> Result<Expectation, String> {
    let ExpectJson {
        verdict,
        reason,
        content,
        message,
        until_ms,
        channel,
        actions,
        findings,
        state: _,
    } = expect;
    if let HookJson::Template = hook {
        let others = verdict.is_some()
            || actions.is_some()
            || reason.is_some()
            || content.is_some()
            || message.is_some()
            || until_ms.is_some()
            || channel.is_some();
        return match findings {
            Some(findings) if !others => {
                let mut expected: Vec<ExpectedFinding> = findings
                    .into_iter()
                    .map(|finding| ExpectedFinding {
                        check: finding.check,
                        severity: match finding.severity {
                            SeverityJson::Error => "error",
                            SeverityJson::Warning => "warning",
                        }
                        .to_string(),
                        field: finding.field,
                    })
                    .collect();
                expected.sort();
                Ok(Expectation::Findings(expected))
            }
            _ => Err("`on-template` expects `findings` (and `state`), nothing else".to_string()),
        };
    }
    if findings.is_some() {
        return Err("`findings` belongs to `on-template` fixtures".to_string());
    }
    if let HookJson::Event = hook {
        return match (verdict, actions) {
            (None, Some(actions)) => Ok(Expectation::Actions(json::convert_all(actions))),
            _ => Err("`on-event` expects `actions` and no `verdict`".to_string()),
        };
    }
    let Some(verdict) = verdict else {
        return Err("`expect` needs a `verdict`".to_string());
    };
    if actions.is_some() {
        return Err("`actions` belongs to `on-event` fixtures".to_string());
    }
    let stray = |present: bool, key: &str, verdict: &str| {
        if present {
            Err(format!("`{key}` does not go with verdict `{verdict}`"))
        } else {
            Ok(())
        }
    };
    match verdict {
        VerdictKindJson::Allow => {
            stray(
                reason.is_some() || content.is_some() || message.is_some() || until_ms.is_some() || channel.is_some(),
                "reason/content/message/until_ms/channel",
                "allow",
            )?;
            Ok(Expectation::Allow)
        }
        VerdictKindJson::Rewrite => {
            stray(
                reason.is_some() || until_ms.is_some() || channel.is_some(),
                "reason/until_ms/channel",
                "rewrite",
            )?;
            Ok(Expectation::Rewrite {
                content: content.map(Into::into),
                message: message.map(Into::into),
            })
        }
        VerdictKindJson::Defer => {
            stray(
                reason.is_some() || content.is_some() || message.is_some() || channel.is_some(),
                "reason/content/message/channel",
                "defer",
            )?;
            Ok(Expectation::Defer { until_ms })
        }
        VerdictKindJson::Reroute => {
            stray(
                reason.is_some() || content.is_some() || message.is_some() || until_ms.is_some(),
                "reason/content/message/until_ms",
                "reroute",
            )?;
            Ok(Expectation::Reroute {
                channel: channel.map(Into::into),
            })
        }
        VerdictKindJson::Reject => {
            stray(
                content.is_some() || message.is_some() || until_ms.is_some() || channel.is_some(),
                "content/message/until_ms/channel",
                "reject",
            )?;
            Ok(Expectation::Reject { reason })
        }
    }
}

/// Loads every `*.json` file of `folder`, in file-name order.
pub fn load_folder(folder: impl AsRef<Path>) -> Result<Vec<Fixture>, FixtureError> {
    let folder = folder.as_ref();
    let read_error = |source| FixtureError::Read {
        path: folder.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        if path.extension().is_some_and(|extension| extension == "json") {
            paths.push(path);
        }
    }
    paths.sort();
    paths.iter().map(Fixture::load).collect()
}

/// Checks `P` against every fixture of `folder` and returns how many held. Every failure
/// is reported, not just the first; an empty folder is an error.
pub fn check_folder<P: Policy>(folder: impl AsRef<Path>) -> Result<usize, FixtureError> {
    let folder = folder.as_ref();
    let fixtures = load_folder(folder)?;
    if fixtures.is_empty() {
        return Err(FixtureError::Invalid {
            name: folder.display().to_string(),
            reason: "no *.json fixtures in this folder".to_string(),
        });
    }
    let failures: Vec<FixtureError> = fixtures
        .iter()
        .filter_map(|fixture| fixture.check::<P>().err())
        .collect();
    if failures.is_empty() {
        Ok(fixtures.len())
    } else {
        Err(FixtureError::Failed(failures))
    }
}

#[cfg(test)]
mod tests;
