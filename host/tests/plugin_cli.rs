//! The plugin author's commands against real components, offline (no server): `wasp plugin
//! test` on the shipped fixtures, on wrong ones and on hostile plugins; the `wasp plugin build`
//! check; the policy benchmark; and `wasp plugin new` → build → test on a fresh crate. Needs
//! the components `scripts/build-plugins` makes.

use std::path::{Path, PathBuf};

use serde_json::json;
use wasp::cli::{
    bench_policy::{PolicyBenchArgs, run_policy_bench},
    build, fixtures,
    offline::OfflineHost,
    scaffold,
};
use wasp::config::PolicyConfig;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ sits in the workspace")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// A built plugin component, by crate name.
fn plugin(name: &str) -> PathBuf {
    let path = target_dir()
        .join("wasm32-wasip2")
        .join("plugin")
        .join(format!("{}.wasm", name.replace('-', "_")));
    assert!(
        path.exists(),
        "plugin {name} is not built at {}: run scripts/build-plugins",
        path.display()
    );
    path
}

fn write_fixtures(folder: &Path, fixtures: &[(&str, serde_json::Value)]) {
    for (file, fixture) in fixtures {
        let text = serde_json::to_string_pretty(fixture).expect("a JSON value prints");
        std::fs::write(folder.join(file), text).expect("the temporary folder takes a file");
    }
}

fn text_message() -> serde_json::Value {
    json!({"id": "m-1", "to": "+6591234567", "sender": "100200300", "category": "utility",
           "priority": "normal", "channel": "whatsapp",
           "content": {"text": {"body": "Your order has shipped.", "preview_url": false}}})
}

fn buttons_message(count: usize) -> serde_json::Value {
    let buttons: Vec<_> = (1..=count)
        .map(|index| json!({"id": format!("b{index}"), "title": format!("Choice {index}")}))
        .collect();
    json!({"id": "m-2", "to": "+6591234567", "sender": "100200300", "category": "utility",
           "priority": "normal", "channel": "whatsapp",
           "content": {"interactive_buttons": {"body": "Pick one", "buttons": buttons}}})
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shipped_button_limit_fixtures_all_pass_against_the_component() {
    let folder = workspace_root().join("plugins/button-limit/fixtures");
    let report = fixtures::test_component(&plugin("button-limit"), &folder)
        .await
        .unwrap();
    assert_eq!(report.rows.len(), fixtures::fixture_files(&folder).unwrap().len());
    assert_eq!(report.failed(), 0, "{}", report.render());
    let rendered = report.render();
    assert!(rendered.starts_with("FILE "), "{rendered}");
    let dispatch = report
        .rows
        .iter()
        .find(|row| row.file == "rewrite-keeps-the-rest-of-the-message.json")
        .unwrap();
    assert_eq!(
        (dispatch.hook.as_str(), dispatch.got.as_str()),
        ("on-dispatch", "rewrite: interactive_list")
    );
}

/// Every policy we ship passes its own fixtures as the built component, the way
/// `wasp plugin test` runs them.
#[tokio::test(flavor = "multi_thread")]
async fn every_shipped_policy_passes_its_fixtures_against_the_component() {
    for (name, _) in wasp::demo::SHIPPED_POLICIES {
        let folder = workspace_root().join("plugins").join(name).join("fixtures");
        let files = fixtures::fixture_files(&folder).unwrap();
        assert!(!files.is_empty(), "{name} has no fixtures");
        let report = fixtures::test_component(&plugin(name), &folder).await.unwrap();
        assert_eq!(report.rows.len(), files.len(), "{name}");
        assert_eq!(report.failed(), 0, "{name}:\n{}", report.render());
    }
}

/// Template fixtures (`on-template`) take Meta's definition and compare findings in any order;
/// a missing or extra finding fails and says which; a 0.1.0 component has no template hook.
#[tokio::test(flavor = "multi_thread")]
async fn template_fixtures_compare_findings_and_say_why() {
    let folder = tempfile::tempdir().unwrap();
    let template = json!({"name": "order_update", "language": "en_US", "category": "UTILITY",
        "components": [{"type": "HEADER", "format": "TEXT", "text": "H".repeat(61)},
                       {"type": "BODY", "text": "Your order has shipped."},
                       {"type": "FOOTER", "text": "F".repeat(61)}]});
    write_fixtures(
        folder.path(),
        &[
            (
                "a-any-order.json",
                json!({"template": template, "expect": {"findings": [
                    {"check": "body-length", "severity": "error", "field": "components[2].text"},
                    {"check": "body-length", "severity": "error", "field": "components[0].text"}]}}),
            ),
            (
                "b-one-missing.json",
                json!({"template": template, "expect": {"findings": [
                    {"check": "body-length", "severity": "error", "field": "components[0].text"}]}}),
            ),
            (
                "c-not-meta.json",
                json!({"template": {"name": "x"}, "expect": {"findings": []}}),
            ),
        ],
    );
    let report = fixtures::test_component(&plugin("template-lint"), folder.path())
        .await
        .unwrap();
    let outcome: Vec<(&str, &str, bool)> = report
        .rows
        .iter()
        .map(|row| (row.file.as_str(), row.hook.as_str(), row.passed))
        .collect();
    assert_eq!(
        outcome,
        [
            ("a-any-order.json", "on-template", true),
            ("b-one-missing.json", "on-template", false),
            ("c-not-meta.json", "-", false),
        ],
        "{}",
        report.render()
    );
    let rendered = report.render();
    assert!(
        rendered.contains("error body-length at components[2].text"),
        "{rendered}"
    );
    assert!(
        rendered.contains("not a template definition in Meta's format"),
        "{rendered}"
    );

    let legacy = fixtures::test_component(&plugin("legacy-v0-1"), folder.path())
        .await
        .unwrap();
    assert_eq!(legacy.failed(), 3, "{}", legacy.render());
    assert!(
        legacy.render().contains("which this component does not export"),
        "{}",
        legacy.render()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_fixtures_fail_and_say_why() {
    let folder = tempfile::tempdir().unwrap();
    write_fixtures(
        folder.path(),
        &[
            (
                "a-right.json",
                json!({"message": text_message(), "expect": {"verdict": "allow"}}),
            ),
            (
                "b-wrong-verdict.json",
                json!({"message": text_message(), "expect": {"verdict": "reject"}}),
            ),
            (
                "c-wrong-reason.json",
                json!({"message": buttons_message(11), "expect": {"verdict": "reject", "reason": "too many"}}),
            ),
            (
                "d-wrong-label.json",
                json!({"message": buttons_message(4), "expect": {"verdict": "rewrite", "content": {"interactive_list": {
                    "body": "Pick one", "button": "Options", "sections": [{"rows": [
                        {"id": "b1", "title": "Choice 1"}, {"id": "b2", "title": "Choice 2"},
                        {"id": "b3", "title": "Choice 3"}, {"id": "b4", "title": "Choice 4"}]}]}}}}),
            ),
            (
                "e-unknown-key.json",
                json!({"message": text_message(), "context": {"recipient": {"favourite_colour": "red"}},
                       "expect": {"verdict": "allow"}}),
            ),
            (
                "f-refused-config.json",
                json!({"config": {"max_buttons": 9}, "message": text_message(), "expect": {"verdict": "allow"}}),
            ),
            ("g-not-json.json", json!("just a string")),
        ],
    );
    let report = fixtures::test_component(&plugin("button-limit"), folder.path())
        .await
        .unwrap();
    let results: Vec<(&str, bool)> = report.rows.iter().map(|row| (row.file.as_str(), row.passed)).collect();
    assert_eq!(
        results,
        [
            ("a-right.json", true),
            ("b-wrong-verdict.json", false),
            ("c-wrong-reason.json", false),
            ("d-wrong-label.json", false),
            ("e-unknown-key.json", false),
            ("f-refused-config.json", false),
            ("g-not-json.json", false),
        ]
    );
    let got: Vec<&str> = report.rows.iter().map(|row| row.got.as_str()).collect();
    assert_eq!(got[1], "allow");
    assert_eq!(got[2], "reject: \"11 choices exceed the list limit of 10 rows\"");
    assert_eq!(got[3], "rewrite: interactive_list");
    assert!(got[4].contains("context.recipient.favourite_colour"), "{}", got[4]);
    assert!(
        got[5].starts_with("init refused: config field `max_buttons`"),
        "{}",
        got[5]
    );
    let detail = report.rows[3].detail.as_deref().unwrap();
    assert!(
        detail.contains("\"button\":\"Options\"") && detail.contains("\"button\":\"Choose\""),
        "{detail}"
    );
    let rendered = report.render();
    assert!(rendered.ends_with("1 passed, 6 failed, 7 fixtures\n"), "{rendered}");

    let command = fixtures::run(fixtures::TestArgs {
        plugin: plugin("button-limit"),
        fixtures: folder.path().to_path_buf(),
    })
    .await;
    assert_eq!(command.unwrap_err().to_string(), "6 of 7 fixtures failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_plugin_fails_its_fixtures_and_the_next_fixture_gets_a_fresh_instance() {
    let folder = tempfile::tempdir().unwrap();
    let case =
        |mode: &str| json!({"config": {"mode": mode}, "message": text_message(), "expect": {"verdict": "allow"}});
    write_fixtures(
        folder.path(),
        &[
            ("a-loop.json", case("loop")),
            ("b-memory.json", case("memory")),
            ("c-trap.json", case("trap")),
            ("d-allow.json", case("allow")),
            (
                "e-event.json",
                json!({"config": {"mode": "allow"}, "event": {"timer": {"key": "k", "payload": "p", "at_ms": 1}},
                       "expect": {"actions": []}}),
            ),
        ],
    );
    let report = fixtures::test_component(&plugin("hostile"), folder.path())
        .await
        .unwrap();
    let rows: Vec<(&str, bool)> = report.rows.iter().map(|row| (row.got.as_str(), row.passed)).collect();
    assert_eq!(rows[0], ("fault: fuel budget exhausted", false));
    assert!(
        rows[1].0.starts_with("fault: forcing trap when growing memory"),
        "{}",
        rows[1].0
    );
    assert!(rows[2].0.starts_with("fault: wasm trap"), "{}", rows[2].0);
    assert_eq!(rows[3], ("allow", true));
    assert_eq!(rows[4], ("no actions", true));
    assert_eq!(report.rows[4].hook, "on-event");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_build_check_loads_a_component_as_the_host_does() {
    let host = OfflineHost::start(&PolicyConfig::default()).await.unwrap();
    let path = plugin("button-limit");
    let report = build::validate(&host, &path, json!({})).await.unwrap();
    assert_eq!(report.name, "button-limit");
    assert_eq!(report.size_bytes, std::fs::metadata(&path).unwrap().len() as usize);
    assert_eq!(report.sha256.len(), 64);
    assert_eq!(
        report.exports,
        [
            "init(config)",
            "on-submit(message, context)",
            "on-dispatch(message, context)",
            "on-event(event, context)",
            "on-template(template)"
        ]
    );
    assert!(report.imports.iter().any(|import| import == "wasp:policy/host@0.2.0"));
    assert!(report.render().contains("init accepted {}"));

    let refused = build::validate(&host, &path, json!({"max_buttons": 9}))
        .await
        .unwrap_err();
    assert!(format!("{refused:#}").contains("max_buttons"), "{refused:#}");

    let directory = tempfile::tempdir().unwrap();
    let core = directory.path().join("core_module.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let error = build::validate(&host, &core, json!({})).await.unwrap_err();
    assert!(format!("{error:#}").contains("build it for wasm32-wasip2"), "{error:#}");

    // An empty component compiles but exports nothing of the world: the check names the export.
    let empty = directory.path().join("empty.wasm");
    std::fs::write(&empty, b"\0asm\x0d\0\x01\0").unwrap();
    let error = build::validate(&host, &empty, json!({})).await.unwrap_err();
    assert!(format!("{error:#}").contains("does not export `init`"), "{error:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_policy_benchmark_runs_every_case() {
    run_policy_bench(PolicyBenchArgs {
        plugin: plugin("button-limit"),
        calls: 50,
        instantiations: 5,
        hostile: plugin("hostile"),
        json: true,
    })
    .await
    .unwrap();
}

/// `wasp plugin new` → `wasp plugin build` → `wasp plugin test`, as an author would. Compiles
/// the SDK and its dependencies for a fresh crate (about a minute on 2 cores); the crates come
/// from cargo's cache, which the workspace build has filled.
#[tokio::test(flavor = "multi_thread")]
async fn a_scaffolded_crate_builds_and_its_fixtures_pass() {
    let directory = tempfile::tempdir().unwrap();
    let crate_dir = directory.path().join("quiet-hours");
    let sdk = scaffold::SdkSource::Path(workspace_root().join("sdk"));
    scaffold::scaffold(
        "quiet-hours",
        &crate_dir,
        &sdk,
        Some(&workspace_root().join("Cargo.lock")),
    )
    .unwrap();
    let components = build::build_crate(&crate_dir, build::DEFAULT_PROFILE).await.unwrap();
    assert_eq!(components.len(), 1);
    assert!(
        components[0].ends_with("wasm32-wasip2/release/quiet_hours.wasm"),
        "{components:?}"
    );
    let host = OfflineHost::start(&PolicyConfig::default()).await.unwrap();
    build::validate(&host, &components[0], json!({})).await.unwrap();
    let report = fixtures::test_component(&components[0], &crate_dir.join("fixtures"))
        .await
        .unwrap();
    assert_eq!((report.rows.len(), report.failed()), (2, 0), "{}", report.render());
}
