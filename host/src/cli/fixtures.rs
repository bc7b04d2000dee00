//! `wasp plugin test PLUGIN.wasm --fixtures DIR` (or `wasp plugin test CRATE_DIR`): runs a
//! built component offline against the JSON fixtures of `sdk/README.md` and prints a
//! pass/fail table.
//!
//! The component is first validated exactly as an upload to the server is. Each fixture then
//! gets a fresh instance in the host's sandbox (fuel, memory cap, deadline, WASI with nothing
//! granted, the host's imports) with empty plugin state, the fixture's `state` preloaded,
//! `init` with the fixture's config, and one call of its hook; `expect.state` is then read
//! back from the instance's state. Inputs and expectations are converted by the component's
//! own export types (see [`super::values`]), so the runner follows the contract rather than
//! a copy of it. The exception is `on-template` (contract 0.2.0): its `template` is a
//! definition in Meta's creation format, read and converted as the server does
//! ([`crate::templates::TemplateDefinition`], [`bindings::template_to_wit`]), and its
//! `expect.findings` lists `{"check", "severity", "field"}` in any order (messages are not
//! compared). Given a plugin crate's folder, the newest component cargo built for it is
//! tested (found with `cargo metadata`; nothing is built).
//! May call the offline host, the policy runtime's sandbox helpers, and `cargo metadata`.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Stdio,
    time::SystemTime,
};

use anyhow::Context as _;
use clap::Args;
use serde::Deserialize;
use serde_json::{Map, Value};
use wasmtime::component::{Component, InstancePre, Type, Val, types::ComponentItem};

use super::{
    build,
    offline::OfflineHost,
    table::{Table, truncate},
    values::{self, Absent, snake},
};
use crate::{
    config::PolicyConfig,
    policy::{
        InstanceState, PolicyRuntime,
        bindings::{self, PolicyBindingsPre, template_wit},
        describe_trap,
    },
};

/// Run a plugin component offline against JSON fixtures and print a pass/fail table.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// The plugin component, as `wasp plugin build` or cargo made it; or a plugin crate's
    /// folder, to test the newest component built from it.
    pub plugin: PathBuf,
    /// Folder of fixture files (`*.json`), as described in sdk/README.md. Required with a
    /// component; with a crate's folder, its `fixtures/` unless given.
    #[arg(long, default_value = "", hide_default_value = true, value_parser = fixtures_folder)]
    pub fixtures: PathBuf,
}

/// `--fixtures` as given; empty (the default) means "not given", which clap's own path
/// parser refuses.
fn fixtures_folder(value: &str) -> Result<PathBuf, std::convert::Infallible> {
    Ok(PathBuf::from(value))
}

/// The hook a fixture calls when it names none, by the input it gives.
const DEFAULT_HOOKS: &[(&str, &str)] = &[("message", "on-submit"), ("event", "on-event"), (TEMPLATE, ON_TEMPLATE)];
/// The template hook, whose fixtures give a definition in Meta's format and expect findings.
const ON_TEMPLATE: &str = bindings::ON_TEMPLATE;
/// The fixture key of the template definition.
const TEMPLATE: &str = "template";
/// The export that builds the policy from its config; every other function export is a hook.
const INIT: &str = "init";
/// The parameter every field of which may be left out.
const CONTEXT_PARAMETER: &str = "context";
/// The fixture key (and `expect` key) of the plugin's state before (and after) the call.
const STATE: &str = "state";
/// The fixture keys that are not hook parameters.
const FIXTURE_KEYS: &[&str] = &["description", "hook", "config", STATE, "expect"];
/// A plugin crate's fixtures folder, when `wasp plugin test` is given the crate.
pub const DEFAULT_FIXTURES_DIR: &str = "fixtures";
/// Keys of `expect` narrowing a verdict case: (case, key, field of the payload it checks, if
/// not the whole payload).
const NARROWING: &[(&str, &str, Option<&str>)] = &[
    ("reject", "reason", None),
    ("defer", "until_ms", None),
    ("reroute", "channel", None),
    ("rewrite", "message", None),
    ("rewrite", "content", Some("content")),
];
/// Cells longer than this are cut in the table (the details below it are whole).
const CELL_CHARS: usize = 44;

pub async fn run(args: TestArgs) -> anyhow::Result<()> {
    let (plugin, fixtures) = resolve(&args).await?;
    let report = test_component(&plugin, &fixtures).await?;
    print!("{}", report.render());
    let failed = report.failed();
    anyhow::ensure!(failed == 0, "{failed} of {} fixtures failed", report.rows.len());
    Ok(())
}

/// One fixture's line in the table, and the details of a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub file: String,
    pub hook: String,
    pub expected: String,
    pub got: String,
    pub passed: bool,
    pub detail: Option<String>,
}

/// Every fixture's row, in file-name order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub rows: Vec<Row>,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.rows.iter().filter(|row| !row.passed).count()
    }

    /// The table, then each failure's details, then a summary line.
    pub fn render(&self) -> String {
        let mut table = Table::new(&["FILE", "HOOK", "EXPECTED", "GOT", "RESULT"]);
        for row in &self.rows {
            table.row(vec![
                row.file.clone(),
                row.hook.clone(),
                truncate(&row.expected, CELL_CHARS),
                truncate(&row.got, CELL_CHARS),
                if row.passed { "PASS" } else { "FAIL" }.to_owned(),
            ]);
        }
        let mut out = table.render();
        for row in self.rows.iter().filter(|row| !row.passed) {
            out.push_str(&format!("\nFAIL {}\n", row.file));
            let detail = row
                .detail
                .clone()
                .unwrap_or_else(|| format!("expected {}, got {}", row.expected, row.got));
            for line in detail.lines() {
                out.push_str(&format!("  {line}\n"));
            }
        }
        let failed = self.failed();
        out.push_str(&format!(
            "\n{} passed, {failed} failed, {} fixtures\n",
            self.rows.len() - failed,
            self.rows.len()
        ));
        out
    }
}

/// Validates `plugin` as the server would, then runs every fixture of `folder` against it.
pub async fn test_component(plugin: &Path, folder: &Path) -> anyhow::Result<Report> {
    let bytes = std::fs::read(plugin).with_context(|| format!("reading {}", plugin.display()))?;
    let files = fixture_files(folder)?;
    let host = OfflineHost::start(&PolicyConfig::default()).await?;
    let name = super::plugin_name(plugin);
    host.runtime
        .upload(&name, bytes.clone())
        .await
        .with_context(|| format!("{} is not a plugin this host accepts", plugin.display()))?;
    let runtime = host.runtime.clone();
    let report = tokio::task::spawn_blocking(move || run_fixtures(&runtime, &name, &bytes, &files))
        .await
        .context("the fixture runner stopped")??;
    drop(host);
    Ok(report)
}

/// The `*.json` files of `folder`, by name.
pub fn fixture_files(folder: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries =
        std::fs::read_dir(folder).with_context(|| format!("reading the fixtures folder {}", folder.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("reading the fixtures folder {}", folder.display()))?
            .path();
        if path.extension().is_some_and(|extension| extension == "json") {
            files.push(path);
        }
    }
    files.sort();
    anyhow::ensure!(!files.is_empty(), "no *.json fixtures in {}", folder.display());
    Ok(files)
}

/// An export's signature, from the component's own types.
#[derive(Debug, Clone)]
struct Signature {
    parameters: Vec<(String, Type)>,
    result: Option<Type>,
}

fn run_fixtures(runtime: &PolicyRuntime, name: &str, bytes: &[u8], files: &[PathBuf]) -> anyhow::Result<Report> {
    let engine = runtime.engine();
    // Compiled already by the upload; this is a cache hit.
    let component = Component::new(engine, bytes)
        .map_err(super::wasm_error)
        .context("compiling the component")?;
    let pre = runtime
        .linker()
        .instantiate_pre(&component)
        .map_err(super::wasm_error)
        .context("the component does not fit the host's imports")?;
    let signatures: BTreeMap<String, Signature> = component
        .component_type()
        .exports(engine)
        .filter_map(|(export, item)| match item.ty {
            ComponentItem::ComponentFunc(function) => Some((
                export.to_owned(),
                Signature {
                    parameters: function.params().map(|(name, ty)| (name.to_owned(), ty)).collect(),
                    result: function.results().next(),
                },
            )),
            _ => None,
        })
        .collect();
    let rows = files
        .iter()
        .map(|path| run_fixture(runtime, &pre, &signatures, name, path))
        .collect();
    Ok(Report { rows })
}

fn run_fixture(
    runtime: &PolicyRuntime,
    pre: &InstancePre<InstanceState>,
    signatures: &BTreeMap<String, Signature>,
    name: &str,
    path: &Path,
) -> Row {
    let file = path.file_name().map_or_else(
        || path.display().to_string(),
        |file| file.to_string_lossy().into_owned(),
    );
    let fixture = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read it: {error}"))
        .and_then(|text| Fixture::parse(&text, signatures));
    match fixture {
        Ok(fixture) => {
            let outcome = call(runtime, pre, name, &fixture);
            fixture.judge(file, outcome)
        }
        Err(reason) => Row {
            file,
            hook: "-".to_owned(),
            expected: "-".to_owned(),
            got: format!("invalid fixture: {reason}"),
            passed: false,
            detail: Some(format!("invalid fixture: {reason}")),
        },
    }
}

/// One parsed fixture: the call to make and what should come back.
#[derive(Debug, Clone)]
struct Fixture {
    description: Option<String>,
    hook: String,
    config: String,
    arguments: Vec<Val>,
    /// For `on-template`: the definition, converted as the server converts it.
    template: Option<template_wit::TemplateDefinition>,
    /// The plugin's state before the call.
    state: Vec<(String, String)>,
    expectation: Expectation,
    /// State keys checked after the call: a value, or `None` for absent.
    expected_state: Vec<(String, Option<String>)>,
}

#[derive(Debug, Clone)]
enum Expectation {
    /// A verdict of this case (the contract's name), its payload narrowed by the checks.
    Verdict { case: String, checks: Vec<Check> },
    /// The exact list of actions.
    Actions(Val),
    /// The findings of `on-template`, sorted: compared in any order.
    Findings(Vec<FindingKey>),
}

/// A finding as a fixture checks it: check, severity, field (the message is not compared).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct FindingKey {
    check: String,
    severity: String,
    field: String,
}

impl FindingKey {
    fn of(finding: &template_wit::LintFinding) -> FindingKey {
        FindingKey {
            check: finding.check.clone(),
            severity: match finding.severity {
                template_wit::Severity::Error => "error",
                template_wit::Severity::Warning => "warning",
            }
            .to_owned(),
            field: finding.field.clone(),
        }
    }
}

fn describe_findings(findings: &[FindingKey]) -> String {
    if findings.is_empty() {
        return "no findings".to_owned();
    }
    let listed: Vec<String> = findings
        .iter()
        .map(|finding| format!("{} {} at {}", finding.severity, finding.check, finding.field))
        .collect();
    format!("findings: {}", listed.join(", "))
}

#[derive(Debug, Clone)]
struct Check {
    /// The `expect` key (`reason`, `content`, ...).
    key: &'static str,
    /// The payload's field it compares, or the whole payload.
    field: Option<&'static str>,
    expected: Val,
}

/// What the call produced.
#[derive(Debug, Clone)]
enum Outcome {
    /// The hook's result, and the value of each `expect.state` key after the call.
    Returned {
        value: Val,
        state: Vec<(String, Option<String>)>,
    },
    /// The findings of `on-template` (sorted), and the state as for `Returned`.
    Findings {
        findings: Vec<FindingKey>,
        state: Vec<(String, Option<String>)>,
    },
    InitRefused(String),
    Fault(String),
}

impl Fixture {
    fn parse(text: &str, signatures: &BTreeMap<String, Signature>) -> Result<Fixture, String> {
        let value: Value = serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))?;
        let Value::Object(object) = value else {
            return Err("a fixture is a JSON object".to_owned());
        };
        let parameter_keys: Vec<String> = signatures
            .iter()
            .filter(|(export, _)| export.as_str() != INIT)
            .flat_map(|(_, signature)| signature.parameters.iter().map(|(name, _)| snake(name)))
            .collect();
        if let Some(unknown) = object
            .keys()
            .find(|key| !FIXTURE_KEYS.contains(&key.as_str()) && !parameter_keys.contains(key))
        {
            if unknown == TEMPLATE {
                return Err(format!(
                    "`{TEMPLATE}` is the input of `{ON_TEMPLATE}`, which this component does not export \
                     (it was built for wasp:policy@0.1.0, which has no template checks)"
                ));
            }
            return Err(format!("unknown key `{unknown}`"));
        }
        let description = match object.get("description") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(_) => return Err("`description` is text".to_owned()),
        };
        let hook = match object.get("hook") {
            Some(Value::String(hook)) => hook.clone(),
            Some(_) => return Err("`hook` is the name of an export, such as \"on-submit\"".to_owned()),
            None => {
                let given: Vec<&str> = DEFAULT_HOOKS
                    .iter()
                    .filter(|(input, _)| object.contains_key(*input))
                    .map(|(_, hook)| *hook)
                    .collect();
                match given.as_slice() {
                    [hook] => (*hook).to_owned(),
                    _ => return Err("give one of `message`, `event` or `template` (or name the `hook`)".to_owned()),
                }
            }
        };
        let signature = signatures
            .get(&hook)
            .filter(|_| hook != INIT)
            .ok_or_else(|| format!("the component has no hook `{hook}` to call"))?;
        let mut arguments = Vec::with_capacity(signature.parameters.len());
        let mut template = None;
        for (parameter, ty) in &signature.parameters {
            let key = snake(parameter);
            if hook == ON_TEMPLATE && key == TEMPLATE {
                let value = object
                    .get(&key)
                    .ok_or_else(|| format!("hook `{hook}` takes a `{key}`"))?;
                let definition: crate::templates::TemplateDefinition = serde_json::from_value(value.clone())
                    .map_err(|error| format!("`{key}` is not a template definition in Meta's format: {error}"))?;
                template = Some(bindings::template_to_wit(&definition));
                continue;
            }
            let argument = match (object.get(&key), key == CONTEXT_PARAMETER) {
                (Some(value), context) => {
                    let absent = if context { Absent::Neutral } else { Absent::Refused };
                    values::from_json(value, ty, &key, absent).map_err(|error| error.to_string())?
                }
                (None, true) => values::neutral(ty, &key).map_err(|error| error.to_string())?,
                (None, false) => return Err(format!("hook `{hook}` takes a `{key}`")),
            };
            arguments.push(argument);
        }
        if let Some(stray) = parameter_keys.iter().find(|key| {
            object.contains_key(key.as_str()) && !signature.parameters.iter().any(|(name, _)| snake(name) == **key)
        }) {
            return Err(format!("hook `{hook}` takes no `{stray}`"));
        }
        let config = match object.get("config") {
            None | Some(Value::Null) => String::new(),
            Some(value) => value.to_string(),
        };
        let expect = match object.get("expect") {
            Some(Value::Object(expect)) => expect,
            Some(_) => return Err("`expect` is an object".to_owned()),
            None => return Err("`expect` is required".to_owned()),
        };
        let expectation = if hook == ON_TEMPLATE {
            Expectation::parse_findings(expect)?
        } else {
            Expectation::parse(expect, signature.result.as_ref(), &hook)?
        };
        Ok(Fixture {
            description,
            hook,
            config,
            arguments,
            template,
            state: parse_state(object.get(STATE))?,
            expectation,
            expected_state: parse_expected_state(expect.get(STATE))?,
        })
    }

    fn judge(&self, file: String, outcome: Outcome) -> Row {
        let mut expected = self.expectation.describe();
        if !self.expected_state.is_empty() {
            expected.push_str(" + state");
        }
        let (got, failure) = match outcome {
            Outcome::Returned { value, state } => {
                let wrong_state = state_mismatch(&self.expected_state, &state);
                let mut got = summary(&value);
                if !self.expected_state.is_empty() {
                    got.push_str(if wrong_state.is_some() {
                        " + other state"
                    } else {
                        " + state"
                    });
                }
                let failures: Vec<String> = [self.expectation.mismatch(&value), wrong_state]
                    .into_iter()
                    .flatten()
                    .collect();
                (got, (!failures.is_empty()).then(|| failures.join("\n")))
            }
            Outcome::Findings { findings, state } => {
                let wrong_state = state_mismatch(&self.expected_state, &state);
                let mut got = describe_findings(&findings);
                if !self.expected_state.is_empty() {
                    got.push_str(if wrong_state.is_some() {
                        " + other state"
                    } else {
                        " + state"
                    });
                }
                let wrong_findings = match &self.expectation {
                    Expectation::Findings(expected) if *expected == findings => None,
                    other => Some(format!(
                        "expected {}
     got {}",
                        other.describe(),
                        describe_findings(&findings)
                    )),
                };
                let failures: Vec<String> = [wrong_findings, wrong_state].into_iter().flatten().collect();
                (got, (!failures.is_empty()).then(|| failures.join("\n")))
            }
            Outcome::InitRefused(reason) => (
                format!("init refused: {reason}"),
                Some(format!("init refused the config {:?}: {reason}", self.config)),
            ),
            Outcome::Fault(fault) => (
                format!("fault: {}", fault_gist(&fault)),
                Some(format!("the plugin faulted: {fault}")),
            ),
        };
        let detail = failure.map(|failure| match &self.description {
            Some(description) => format!("{description}\n{failure}"),
            None => failure,
        });
        Row {
            file,
            hook: self.hook.clone(),
            expected,
            got,
            passed: detail.is_none(),
            detail,
        }
    }
}

impl Expectation {
    /// `expect.findings` of an `on-template` fixture: `[{"check", "severity", "field"}]`.
    fn parse_findings(expect: &Map<String, Value>) -> Result<Expectation, String> {
        if let Some(stray) = expect
            .keys()
            .find(|key| key.as_str() != "findings" && key.as_str() != STATE)
        {
            return Err(format!(
                "`{ON_TEMPLATE}` expects `findings` (and `state`), not `{stray}`"
            ));
        }
        let Some(Value::Array(listed)) = expect.get("findings") else {
            return Err(format!(
                "`{ON_TEMPLATE}` expects `findings`, a list of {{\"check\", \"severity\", \"field\"}} (`[]` for none)"
            ));
        };
        let mut findings = Vec::with_capacity(listed.len());
        for (index, finding) in listed.iter().enumerate() {
            let Value::Object(finding) = finding else {
                return Err(format!("`expect.findings[{index}]` is an object"));
            };
            if let Some(stray) = finding
                .keys()
                .find(|key| !["check", "severity", "field"].contains(&key.as_str()))
            {
                return Err(format!(
                    "`expect.findings[{index}].{stray}` is not checked; give only check, severity and field"
                ));
            }
            let text = |key: &str| match finding.get(key) {
                Some(Value::String(text)) => Ok(text.clone()),
                _ => Err(format!("`expect.findings[{index}].{key}` is required text")),
            };
            let severity = text("severity")?;
            if severity != "error" && severity != "warning" {
                return Err(format!(
                    "`expect.findings[{index}].severity` is {severity:?}; expected error or warning"
                ));
            }
            findings.push(FindingKey {
                check: text("check")?,
                severity,
                field: text("field")?,
            });
        }
        findings.sort();
        Ok(Expectation::Findings(findings))
    }

    fn parse(expect: &Map<String, Value>, result: Option<&Type>, hook: &str) -> Result<Expectation, String> {
        match result {
            Some(Type::Variant(variant)) => {
                if expect.contains_key("actions") {
                    return Err(format!(
                        "`expect.actions` belongs to `on-event`; `{hook}` returns a verdict"
                    ));
                }
                let case = match expect.get("verdict") {
                    Some(Value::String(case)) => case.as_str(),
                    _ => {
                        return Err("`expect.verdict` is required: allow, rewrite, defer, reroute or reject".to_owned());
                    }
                };
                let cases: Vec<(String, Option<Type>)> =
                    variant.cases().map(|case| (case.name.to_owned(), case.ty)).collect();
                let Some((name, payload)) = cases.iter().find(|(name, _)| snake(name) == case) else {
                    let names: Vec<String> = cases.iter().map(|(name, _)| snake(name)).collect();
                    return Err(format!(
                        "unknown verdict {case:?}; expected one of: {}",
                        names.join(", ")
                    ));
                };
                let mut checks = Vec::new();
                for key in expect
                    .keys()
                    .filter(|key| key.as_str() != "verdict" && key.as_str() != STATE)
                {
                    let Some((_, key, field)) = NARROWING
                        .iter()
                        .find(|(narrowed, narrowing, _)| *narrowed == case && narrowing == key)
                    else {
                        return Err(format!("`expect.{key}` does not go with verdict `{case}`"));
                    };
                    let Some(payload) = payload else {
                        return Err(format!("verdict `{case}` has no payload to check"));
                    };
                    let ty = match field {
                        None => payload.clone(),
                        Some(field) => field_type(payload, field)
                            .ok_or_else(|| format!("the `{case}` payload has no field `{field}`"))?,
                    };
                    let value = expect.get(*key).unwrap_or(&Value::Null);
                    let expected = values::from_json(value, &ty, &format!("expect.{key}"), Absent::Refused)
                        .map_err(|error| error.to_string())?;
                    checks.push(Check {
                        key,
                        field: *field,
                        expected,
                    });
                }
                Ok(Expectation::Verdict {
                    case: name.clone(),
                    checks,
                })
            }
            Some(list @ Type::List(_)) => {
                if let Some(stray) = expect
                    .keys()
                    .find(|key| key.as_str() != "actions" && key.as_str() != STATE)
                {
                    return Err(format!("`{hook}` expects `actions` (and `state`), not `{stray}`"));
                }
                let actions = expect
                    .get("actions")
                    .ok_or_else(|| format!("`{hook}` expects `actions`, the exact list (`[]` for none)"))?;
                values::from_json(actions, list, "expect.actions", Absent::Refused)
                    .map(Expectation::Actions)
                    .map_err(|error| error.to_string())
            }
            _ => Err(format!("`{hook}` returns nothing a fixture can check")),
        }
    }

    fn describe(&self) -> String {
        match self {
            Expectation::Verdict { case, checks } => match checks.as_slice() {
                [] => snake(case),
                [check, ..] => format!("{}: {}", snake(case), short(&check.expected)),
            },
            Expectation::Actions(actions) => summary(actions),
            Expectation::Findings(findings) => describe_findings(findings),
        }
    }

    /// Why `value` does not meet the expectation, or `None` when it does.
    fn mismatch(&self, value: &Val) -> Option<String> {
        match self {
            Expectation::Verdict { case, checks } => {
                let Val::Variant(got, payload) = value else {
                    return Some(format!("expected a verdict, got {}", values::to_json(value)));
                };
                if got != case {
                    return Some(format!(
                        "expected verdict `{}`, got `{}`\ngot: {}",
                        snake(case),
                        snake(got),
                        values::to_json(value)
                    ));
                }
                let failures: Vec<String> = checks
                    .iter()
                    .filter_map(|check| {
                        let actual = match (payload.as_deref(), check.field) {
                            (Some(payload), None) => Some(payload),
                            (Some(payload), Some(field)) => field_value(payload, field),
                            (None, _) => None,
                        };
                        if actual == Some(&check.expected) {
                            return None;
                        }
                        Some(format!(
                            "expected {}: {}\n     got {}: {}",
                            check.key,
                            values::to_json(&check.expected),
                            check.key,
                            actual.map_or(Value::Null, values::to_json)
                        ))
                    })
                    .collect();
                (!failures.is_empty()).then(|| failures.join("\n"))
            }
            Expectation::Actions(expected) => (expected != value).then(|| {
                format!(
                    "expected actions: {}\n     got actions: {}",
                    values::to_json(expected),
                    values::to_json(value)
                )
            }),
            Expectation::Findings(_) => Some(format!("expected findings, got {}", values::to_json(value))),
        }
    }
}

/// The cause of a fault without the wasm backtrace wasmtime puts before it.
fn fault_gist(fault: &str) -> &str {
    let last = fault
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or(fault);
    match last.rfind(">: ") {
        Some(index) if fault.contains("wasm backtrace") => &last[index + 3..],
        _ => last.trim(),
    }
}

/// The type of `record`'s field `field` (by its snake_case name).
fn field_type(record: &Type, field: &str) -> Option<Type> {
    match record {
        Type::Record(record) => record
            .fields()
            .find(|candidate| snake(candidate.name) == field)
            .map(|candidate| candidate.ty),
        _ => None,
    }
}

fn field_value<'a>(record: &'a Val, field: &str) -> Option<&'a Val> {
    match record {
        Val::Record(fields) => fields
            .iter()
            .find(|(name, _)| snake(name) == field)
            .map(|(_, value)| value),
        _ => None,
    }
}

/// A returned value in a few words: the verdict case and the gist of its payload, or the
/// cases of a list of actions.
fn summary(value: &Val) -> String {
    match value {
        Val::Variant(case, None) => snake(case),
        Val::Variant(case, Some(payload)) => format!("{}: {}", snake(case), short(payload)),
        Val::List(items) if items.is_empty() => "no actions".to_owned(),
        Val::List(items) => format!(
            "actions: {}",
            items
                .iter()
                .map(|item| match item {
                    Val::Variant(case, _) => snake(case),
                    other => short(other),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => short(other),
    }
}

/// The gist of a payload: text quoted, numbers and cases as they are, a message or content by
/// its content's case.
fn short(value: &Val) -> String {
    match value {
        Val::String(text) => format!("{text:?}"),
        Val::Enum(case) | Val::Variant(case, _) => snake(case),
        Val::Record(_) => match field_value(value, "content") {
            Some(content) => short(content),
            None => "{…}".to_owned(),
        },
        Val::Option(None) => "none".to_owned(),
        Val::Option(Some(inner)) => short(inner),
        other => values::to_json(other).to_string(),
    }
}

/// A fresh instance in the host's sandbox, `init` with the fixture's config, then the hook.
fn call(runtime: &PolicyRuntime, pre: &InstancePre<InstanceState>, name: &str, fixture: &Fixture) -> Outcome {
    if let Some(template) = &fixture.template {
        return call_template(runtime, pre, name, fixture, template);
    }
    let mut store = match runtime.detached_store(name) {
        Ok(store) => store,
        Err(fault) => return Outcome::Fault(fault.to_string()),
    };
    // Before instantiation and `init`, as a plugin's stored state would be.
    for (key, value) in &fixture.state {
        store.data().preload_state(key, value);
    }
    let instance = match pre.instantiate(&mut store) {
        Ok(instance) => instance,
        Err(error) => return Outcome::Fault(format!("instantiation failed: {}", describe_trap(&error))),
    };
    let Some(init) = instance.get_func(&mut store, INIT) else {
        return Outcome::Fault("the component has no `init` export".to_owned());
    };
    let mut answer = [Val::Bool(false)];
    if let Err(fault) = runtime.arm(&mut store) {
        return Outcome::Fault(fault.to_string());
    }
    if let Err(error) = init.call(&mut store, &[Val::String(fixture.config.clone())], &mut answer) {
        return Outcome::Fault(format!("in init: {}", describe_trap(&error)));
    }
    match &answer[0] {
        Val::Result(Ok(_)) => {}
        Val::Result(Err(reason)) => {
            let reason = match reason.as_deref() {
                Some(Val::String(reason)) => reason.clone(),
                Some(other) => values::to_json(other).to_string(),
                None => String::new(),
            };
            return Outcome::InitRefused(reason);
        }
        other => return Outcome::Fault(format!("init returned {}", values::to_json(other))),
    }
    let Some(hook) = instance.get_func(&mut store, fixture.hook.as_str()) else {
        return Outcome::Fault(format!("the component has no `{}` export", fixture.hook));
    };
    let mut results = vec![Val::Bool(false); hook.ty(&store).results().len()];
    if let Err(fault) = runtime.arm(&mut store) {
        return Outcome::Fault(fault.to_string());
    }
    if let Err(error) = hook.call(&mut store, &fixture.arguments, &mut results) {
        return Outcome::Fault(describe_trap(&error));
    }
    let state = fixture
        .expected_state
        .iter()
        .map(|(key, _)| (key.clone(), store.data().state_value(key)))
        .collect();
    match results.into_iter().next() {
        Some(value) => Outcome::Returned { value, state },
        None => Outcome::Fault(format!("`{}` returned nothing", fixture.hook)),
    }
}

/// [`call`] for `on-template`, through the typed bindings of the component's contract.
fn call_template(
    runtime: &PolicyRuntime,
    pre: &InstancePre<InstanceState>,
    name: &str,
    fixture: &Fixture,
    template: &template_wit::TemplateDefinition,
) -> Outcome {
    let bindings_pre = match PolicyBindingsPre::new(pre.clone()) {
        Ok(bindings_pre) => bindings_pre,
        Err(reason) => return Outcome::Fault(reason),
    };
    let mut store = match runtime.detached_store(name) {
        Ok(store) => store,
        Err(fault) => return Outcome::Fault(fault.to_string()),
    };
    for (key, value) in &fixture.state {
        store.data().preload_state(key, value);
    }
    let instance = match bindings_pre.instantiate(&mut store) {
        Ok(instance) => instance,
        Err(error) => return Outcome::Fault(format!("instantiation failed: {}", describe_trap(&error))),
    };
    if let Err(fault) = runtime.arm(&mut store) {
        return Outcome::Fault(fault.to_string());
    }
    match instance.call_init(&mut store, &fixture.config) {
        Ok(Ok(())) => {}
        Ok(Err(reason)) => return Outcome::InitRefused(reason),
        Err(error) => return Outcome::Fault(format!("in init: {}", describe_trap(&error))),
    }
    if let Err(fault) = runtime.arm(&mut store) {
        return Outcome::Fault(fault.to_string());
    }
    let findings = match instance.call_on_template(&mut store, template) {
        Some(Ok(findings)) => findings,
        Some(Err(error)) => return Outcome::Fault(describe_trap(&error)),
        None => {
            return Outcome::Fault(format!(
                "the component implements {}, which has no `{ON_TEMPLATE}`",
                instance.contract()
            ));
        }
    };
    let mut findings: Vec<FindingKey> = findings.iter().map(FindingKey::of).collect();
    findings.sort();
    let state = fixture
        .expected_state
        .iter()
        .map(|(key, _)| (key.clone(), store.data().state_value(key)))
        .collect();
    Outcome::Findings { findings, state }
}

/// A fixture's `state`: an object of text values (left out or `null`: empty).
fn parse_state(value: Option<&Value>) -> Result<Vec<(String, String)>, String> {
    state_object(value, "state")?
        .iter()
        .map(|(key, value)| match value {
            Value::String(text) => Ok((key.clone(), text.clone())),
            other => Err(format!("`state.{key}` is {}; state values are text", json_kind(other))),
        })
        .collect()
}

/// A fixture's `expect.state`: an object of text values or `null` (absent).
fn parse_expected_state(value: Option<&Value>) -> Result<Vec<(String, Option<String>)>, String> {
    state_object(value, "expect.state")?
        .iter()
        .map(|(key, value)| match value {
            Value::String(text) => Ok((key.clone(), Some(text.clone()))),
            Value::Null => Ok((key.clone(), None)),
            other => Err(format!(
                "`expect.state.{key}` is {}; expected text, or null for absent",
                json_kind(other)
            )),
        })
        .collect()
}

fn state_object(value: Option<&Value>, path: &str) -> Result<Map<String, Value>, String> {
    match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(object)) => Ok(object.clone()),
        Some(other) => Err(format!(
            "`{path}` is {}; it is an object of keys and values",
            json_kind(other)
        )),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Each expected state key whose value after the call differs, in the failure's words, or
/// `None` when they all hold.
fn state_mismatch(expected: &[(String, Option<String>)], actual: &[(String, Option<String>)]) -> Option<String> {
    let as_json = |value: Option<&String>| value.map_or(Value::Null, |text| Value::String(text.clone()));
    let failures: Vec<String> = expected
        .iter()
        .filter_map(|(key, wanted)| {
            let got = actual
                .iter()
                .find(|(candidate, _)| candidate == key)
                .and_then(|(_, value)| value.as_ref());
            if got == wanted.as_ref() {
                return None;
            }
            let key = Value::String(key.clone());
            Some(format!(
                "expected state[{key}]: {}\n     got state[{key}]: {}",
                as_json(wanted.as_ref()),
                as_json(got)
            ))
        })
        .collect();
    (!failures.is_empty()).then(|| failures.join("\n"))
}

/// The component and fixtures folder `args` name: a component with `--fixtures`, or a plugin
/// crate's folder with its newest built component and (unless `--fixtures` says otherwise)
/// its `fixtures/`.
async fn resolve(args: &TestArgs) -> anyhow::Result<(PathBuf, PathBuf)> {
    let fixtures_given = !args.fixtures.as_os_str().is_empty();
    if !args.plugin.is_dir() {
        anyhow::ensure!(
            fixtures_given,
            "give the fixtures folder: wasp plugin test {} --fixtures DIR",
            args.plugin.display()
        );
        return Ok((args.plugin.clone(), args.fixtures.clone()));
    }
    let component = built_component(&args.plugin).await?;
    let fixtures = if fixtures_given {
        args.fixtures.clone()
    } else {
        args.plugin.join(DEFAULT_FIXTURES_DIR)
    };
    Ok((component, fixtures))
}

#[derive(Deserialize)]
struct Metadata {
    target_directory: PathBuf,
    packages: Vec<MetadataPackage>,
}

#[derive(Deserialize)]
struct MetadataPackage {
    name: String,
    manifest_path: PathBuf,
    targets: Vec<MetadataTarget>,
}

#[derive(Deserialize)]
struct MetadataTarget {
    name: String,
    #[serde(default)]
    crate_types: Vec<String>,
}

/// Where cargo puts the components of the crate at `manifest`, from `cargo metadata`'s answer:
/// the target's folder for [`build::TARGET`] and the component's file name.
fn component_location(metadata: &[u8], manifest: &Path) -> anyhow::Result<(PathBuf, String)> {
    let metadata: Metadata = serde_json::from_slice(metadata).context("reading cargo metadata's answer")?;
    let package = metadata
        .packages
        .iter()
        .find(|package| package.manifest_path == manifest)
        .with_context(|| format!("cargo metadata does not list the package of {}", manifest.display()))?;
    let library = package
        .targets
        .iter()
        .find(|target| target.crate_types.iter().any(|kind| kind == "cdylib"))
        .with_context(|| {
            format!(
                "package {} builds no component: it needs `crate-type = [\"cdylib\"]` under [lib]",
                package.name
            )
        })?;
    Ok((
        metadata.target_directory.join(build::TARGET),
        format!("{}.wasm", library.name.replace('-', "_")),
    ))
}

/// The most recently built `file` among the profile folders (`release`, `plugin`, ...) of
/// `folder`, with its modification time.
fn newest_component(folder: &Path, file: &str) -> anyhow::Result<(PathBuf, SystemTime)> {
    let entries = std::fs::read_dir(folder)
        .with_context(|| format!("nothing is built for {} in {}", build::TARGET, folder.display()))?;
    let mut newest: Option<(PathBuf, SystemTime)> = None;
    for entry in entries.flatten() {
        let candidate = entry.path().join(file);
        let Ok(modified) = std::fs::metadata(&candidate).and_then(|metadata| metadata.modified()) else {
            continue;
        };
        if newest.as_ref().is_none_or(|(_, time)| modified > *time) {
            newest = Some((candidate, modified));
        }
    }
    newest.with_context(|| format!("no {file} is built under {}", folder.display()))
}

/// The newest modification time of the crate's manifest and of any file under its `src/`.
fn newest_source(dir: &Path) -> Option<SystemTime> {
    let mut newest = std::fs::metadata(dir.join("Cargo.toml"))
        .and_then(|metadata| metadata.modified())
        .ok();
    let mut folders = vec![dir.join("src")];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(metadata) = entry.metadata() else { continue };
            if metadata.is_dir() {
                folders.push(entry.path());
            } else if let Ok(modified) = metadata.modified() {
                newest = newest.max(Some(modified));
            }
        }
    }
    newest
}

/// The newest component cargo built from the crate in `dir`, in any profile. Says on
/// standard error which one it is, and warns when the crate's sources are newer.
async fn built_component(dir: &Path) -> anyhow::Result<PathBuf> {
    let manifest = dir.join("Cargo.toml");
    anyhow::ensure!(
        manifest.is_file(),
        "{} has no Cargo.toml: give a component (.wasm) with --fixtures, or a plugin crate's folder",
        dir.display()
    );
    let output = tokio::process::Command::new("cargo")
        .args(["metadata", "--no-deps", "--format-version", "1", "--manifest-path"])
        .arg(&manifest)
        .stderr(Stdio::inherit())
        .output()
        .await
        .context("running cargo metadata (is cargo installed and on PATH?)")?;
    anyhow::ensure!(
        output.status.success(),
        "cargo metadata failed ({}); its errors are above",
        output.status
    );
    let canonical = std::fs::canonicalize(&manifest).unwrap_or(manifest);
    let (folder, file) = component_location(&output.stdout, &canonical)?;
    let (component, built) = newest_component(&folder, &file).with_context(|| {
        format!(
            "build the plugin first (`wasp plugin build {}`, or scripts/build-plugins in this repository)",
            dir.display()
        )
    })?;
    eprintln!("testing {}, the newest build of {}", component.display(), dir.display());
    if newest_source(dir).is_some_and(|source| source > built) {
        eprintln!(
            "warning: {} is older than the crate's sources; rebuild it to test the current code",
            component.display()
        );
    }
    Ok(component)
}

#[cfg(test)]
mod tests;
