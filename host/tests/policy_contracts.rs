//! The host speaks every released contract version: a 0.1.0 component (built straight
//! against `sdk/wit/v0.1.0`, no SDK) loads and runs beside 0.2.0 ones in one chain, and
//! template checks (`on-template`, 0.2.0) run on the plugins that have them, with a faulting
//! plugin turned into a finding. Needs the components `scripts/build-plugins` makes.

use std::path::{Path, PathBuf};

use serde_json::json;
use wasp::cli::offline::OfflineHost;
use wasp::config::PolicyConfig;
use wasp::message::{Category, Channel, MessageId, PhoneNumber, Priority};
use wasp::policy::{Contract, Decision, Envelope, FAULT_CHECK, Hook};
use wasp::templates::{LintFinding, Severity, TemplateDefinition};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ sits in the workspace")
        .to_path_buf()
}

/// A built component's bytes, by crate name.
fn component(name: &str) -> Vec<u8> {
    let path = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("wasm32-wasip2")
        .join("plugin")
        .join(format!("{}.wasm", name.replace('-', "_")));
    std::fs::read(&path).unwrap_or_else(|error| {
        panic!(
            "{name} is not built at {} ({error}): run scripts/build-plugins",
            path.display()
        )
    })
}

fn envelope(tags: &[&str]) -> Envelope {
    Envelope {
        id: MessageId::new(),
        to: PhoneNumber::parse("+6591234567").expect("a valid number"),
        sender: "100200300".into(),
        category: Category::Utility,
        priority: Priority::Normal,
        channel: Channel::Whatsapp,
        content: serde_json::from_value(json!({"type": "text", "text": {"body": "Your parcel is on its way."}}))
            .expect("valid content"),
        tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
    }
}

fn context() -> wasp::policy::wit::Context {
    let to = PhoneNumber::parse("+6591234567").ok();
    wasp::facts::context(
        &wasp::facts::Known {
            to: to.as_ref(),
            sender: "100200300",
            ..wasp::facts::Known::default()
        },
        1_709_335_800_000,
    )
}

/// Quick replies split around a URL button, a body over 1024 characters, and `{{1}}` with no
/// example: one finding from each of three checks.
fn bad_definition() -> TemplateDefinition {
    serde_json::from_value(json!({
        "name": "order_update", "language": "en_US", "category": "UTILITY",
        "components": [
            {"type": "BODY", "text": format!("Hello {{{{1}}}}, your order ships {}", "x".repeat(1010))},
            {"type": "BUTTONS", "buttons": [
                {"type": "QUICK_REPLY", "text": "Yes"},
                {"type": "URL", "text": "Details", "url": "https://example.com"},
                {"type": "QUICK_REPLY", "text": "No"}]}
        ]
    }))
    .expect("a valid definition")
}

fn keys(findings: &[LintFinding]) -> Vec<(&str, &str, &str, Severity)> {
    let mut keys: Vec<_> = findings
        .iter()
        .map(|finding| {
            (
                finding.plugin.as_str(),
                finding.check.as_str(),
                finding.field.as_str(),
                finding.severity,
            )
        })
        .collect();
    keys.sort_by_key(|(plugin, check, field, _)| (*plugin, *check, *field));
    keys
}

#[tokio::test(flavor = "multi_thread")]
async fn the_contract_version_is_read_from_the_component() {
    let host = OfflineHost::start(&PolicyConfig::default()).await.unwrap();
    let engine = host.runtime.engine();
    for (name, contract) in [
        ("legacy-v0-1", Contract::V0_1),
        ("template-lint", Contract::V0_2),
        ("button-limit", Contract::V0_2),
    ] {
        let compiled = wasmtime::component::Component::new(engine, component(name)).unwrap();
        assert_eq!(Contract::of(engine, &compiled), Ok(contract), "{name}");
    }
    let legacy = host
        .install("legacy-v0-1", component("legacy-v0-1"), json!({}))
        .await
        .unwrap();
    assert_eq!(legacy.plugin.contract(), Contract::V0_1);
    assert_eq!(legacy.uploaded.hooks, ["on-submit", "on-dispatch", "on-event"]);
    let lint = host
        .install("template-lint", component("template-lint"), json!({}))
        .await
        .unwrap();
    assert_eq!(lint.plugin.contract(), Contract::V0_2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_0_1_0_plugin_and_0_2_0_plugins_run_in_one_chain() {
    let host = OfflineHost::start(&PolicyConfig::default()).await.unwrap();
    host.install("legacy-v0-1", component("legacy-v0-1"), json!({}))
        .await
        .unwrap();
    host.install("template-lint", component("template-lint"), json!({}))
        .await
        .unwrap();
    host.install("button-limit", component("button-limit"), json!({}))
        .await
        .unwrap();
    let chain = host.runtime.chain();
    let names: Vec<&str> = chain.plugins().map(|plugin| &*plugin.name).collect();
    assert_eq!(names, ["legacy-v0-1", "template-lint", "button-limit"]);

    for hook in [Hook::Submit, Hook::Dispatch] {
        let outcome = chain.run(hook, &envelope(&[]), &context());
        assert_eq!(outcome.decision, Decision::Allow, "{hook:?}");
    }
    let outcome = chain.run(Hook::Submit, &envelope(&["legacy:reject"]), &context());
    assert_eq!(
        outcome.decision,
        Decision::Reject {
            reason: "legacy-v0-1: legacy v0.1.0 says no".into()
        }
    );
    for plugin in chain.plugins() {
        assert_eq!(plugin.stats.snapshot().faults, 0, "{}", plugin.name);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn lint_template_asks_the_0_2_0_plugins_and_skips_the_0_1_0_one() {
    let host = OfflineHost::start(&PolicyConfig::default()).await.unwrap();
    host.install("legacy-v0-1", component("legacy-v0-1"), json!({}))
        .await
        .unwrap();
    host.install("template-lint", component("template-lint"), json!({}))
        .await
        .unwrap();
    let runtime = host.runtime.clone();
    let (bad, good) = tokio::task::spawn_blocking(move || {
        let good: TemplateDefinition = serde_json::from_value(json!({
            "name": "order_update", "language": "en_US", "category": "UTILITY",
            "components": [
                {"type": "BODY", "text": "Hello {{1}}, your order has shipped and arrives soon.",
                 "example": {"body_text": [["Ada"]]}},
                {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Track it"}]}
            ]
        }))
        .unwrap();
        (
            runtime.lint_template(&bad_definition()).unwrap(),
            runtime.lint_template(&good).unwrap(),
        )
    })
    .await
    .unwrap();
    assert_eq!(good, Vec::new());
    assert_eq!(
        keys(&bad),
        [
            ("template-lint", "body-length", "components[0].text", Severity::Error),
            (
                "template-lint",
                "button-count",
                "components[1].buttons[2]",
                Severity::Error
            ),
            (
                "template-lint",
                "parameter-count",
                "components[0].example",
                Severity::Error
            ),
        ]
    );
    assert!(bad.iter().all(|finding| !finding.message.is_empty()));
    // The 0.1.0 plugin was never called for the template.
    let legacy = host
        .runtime
        .chain()
        .plugins()
        .find(|plugin| &*plugin.name == "legacy-v0-1")
        .cloned()
        .unwrap();
    assert_eq!(legacy.stats.snapshot().calls, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_that_traps_in_on_template_leaves_an_error_finding() {
    let host = OfflineHost::start(&PolicyConfig::default()).await.unwrap();
    host.install("template-lint", component("template-lint"), json!({}))
        .await
        .unwrap();
    host.install(
        "hostile",
        component("hostile"),
        json!({"mode": "trap", "hook": "on-template"}),
    )
    .await
    .unwrap();
    host.install(
        "slow",
        component("hostile"),
        json!({"mode": "loop", "hook": "on-template"}),
    )
    .await
    .unwrap();
    let runtime = host.runtime.clone();
    let findings = tokio::task::spawn_blocking(move || runtime.lint_template(&bad_definition()).unwrap())
        .await
        .unwrap();
    let faults: Vec<&LintFinding> = findings.iter().filter(|finding| finding.check == FAULT_CHECK).collect();
    assert_eq!(faults.len(), 2, "{findings:#?}");
    for (fault, plugin, cause) in [(faults[0], "hostile", "unreachable"), (faults[1], "slow", "")] {
        assert_eq!(fault.plugin, plugin);
        assert_eq!(fault.severity, Severity::Error);
        assert_eq!(fault.field, "");
        assert!(
            fault.message.starts_with(&format!("plugin {plugin}@")),
            "{}",
            fault.message
        );
        assert!(fault.message.contains(cause), "{}", fault.message);
        if plugin == "slow" {
            assert!(
                fault.message.contains("fuel budget exhausted")
                    || fault.message.contains("wall-clock deadline exceeded"),
                "{}",
                fault.message
            );
        }
    }
    // The other plugin's findings are still there, and messages still pass the chain.
    assert!(findings.iter().any(|finding| finding.plugin == "template-lint"));
    let outcome = host.runtime.chain().run(Hook::Submit, &envelope(&[]), &context());
    assert_eq!(outcome.decision, Decision::Allow);
}
