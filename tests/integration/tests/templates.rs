//! Templates, black-box: versions linted by the template-lint plugin, submitted to the
//! simulator's template endpoints, Meta's verdicts (by webhook and by sync) brought back,
//! manual review, and messages naming a template that is not approved refused at submit.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot read what it expects fails loudly

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use wasp_integration::{APP_SECRET, ChainEntry, HostOptions, TestHost, meta_webhooks_dir};

const BUSINESS_ACCOUNT: &str = "102290129340398";

fn options(review: &str) -> anyhow::Result<HostOptions> {
    let mut options = HostOptions {
        chain: vec![ChainEntry::new("template-lint")?],
        cloud_api: format!("business_account_id = \"{BUSINESS_ACCOUNT}\"\n"),
        extra_config: format!(
            "[templates]\nreview = \"{review}\"\nsync_interval_ms = 100\nfull_sync_interval_ms = 300\n"
        ),
        ..HostOptions::default()
    };
    options.simulator.template_review_ms = 200;
    options.simulator.enforce_templates = true;
    Ok(options)
}

fn shipped(language: &str) -> Value {
    json!({
        "name": "order_shipped",
        "language": language,
        "category": "UTILITY",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Your order"},
            {"type": "BODY", "text": "Hi {{1}}, order {{2}} has shipped.",
             "example": {"body_text": [["Ada", "A-42"]]}},
            {"type": "FOOTER", "text": "Reply STOP to opt out"},
            {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Track it"}]}
        ]
    })
}

fn template_message(name: &str, language: &str) -> Value {
    json!({
        "to": "+6591234567",
        "category": "utility",
        "content": {"type": "template", "template": {"name": name, "language": {"code": language},
            "components": [{"type": "body", "parameters": [
                {"type": "text", "text": "Ada"}, {"type": "text", "text": "A-42"}]}]}}
    })
}

/// Waits until the listing shows (name, language) in `status`.
async fn wait_status(host: &TestHost, name: &str, language: &str, status: &str) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, page) = host
            .call(
                Method::GET,
                &format!("/v1/templates?name={name}&language={language}"),
                None,
            )
            .await?;
        anyhow::ensure!(code == 200, "listing templates: {code} {page}");
        if let Some(summary) = page["templates"].get(0)
            && summary["status"] == status
        {
            return Ok(summary.clone());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{name}/{language} never became {status}: {page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_lint_clean_template_is_approved_and_only_then_sendable_in_its_language() -> anyhow::Result<()> {
    let host = TestHost::start(options("meta")?).await?;
    let (code, created) = host.call(Method::POST, "/v1/templates", Some(shipped("en"))).await?;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["version"], 1);
    assert!(
        matches!(created["status"].as_str(), Some("SUBMITTING" | "PENDING")),
        "{created}"
    );

    // Until Meta approves it, a message naming it is refused with the reason.
    let (code, refused) = host.send(&template_message("order_shipped", "en")).await?;
    assert_eq!(code, 422, "{refused}");
    assert_eq!(refused["error"]["code"], "template_not_approved");
    assert_eq!(refused["error"]["field"], "content.template.language.code");

    let summary = wait_status(&host, "order_shipped", "en", "APPROVED").await?;
    assert_eq!(summary["sendable"], true);
    assert!(
        summary["meta_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{summary}"
    );

    let (code, accepted) = host.send(&template_message("order_shipped", "en")).await?;
    assert_eq!(code, 202, "{accepted}");
    host.wait_for(accepted["id"].as_str().unwrap(), "read", Duration::from_secs(10))
        .await?;
    // The approved version takes two body parameters: one is refused before the queue.
    let mut short = template_message("order_shipped", "en");
    short["content"]["template"]["components"][0]["parameters"] = json!([{"type": "text", "text": "Ada"}]);
    let (code, refused) = host.send(&short).await?;
    assert_eq!(code, 422, "{refused}");
    assert_eq!(refused["error"]["field"], "content.template.components");

    // Another language is its own template version.
    let (code, refused) = host.send(&template_message("order_shipped", "de")).await?;
    assert_eq!(code, 422);
    assert!(
        refused["error"]["message"].as_str().unwrap().contains("it has: en"),
        "{refused}"
    );
    let (code, refused) = host.send(&template_message("no_such_template", "en")).await?;
    assert_eq!(code, 422);
    assert_eq!(refused["error"]["field"], "content.template.name");

    // The same definition again answers the version it made; a changed one is version 2.
    let (code, again) = host.call(Method::POST, "/v1/templates", Some(shipped("en"))).await?;
    assert_eq!((code, again["version"].clone()), (200, json!(1)), "{again}");
    let mut edited = shipped("en");
    edited["components"][1]["text"] = json!("Hello {{1}}, your order {{2}} is on its way.");
    let (code, second) = host.call(Method::POST, "/v1/templates", Some(edited)).await?;
    assert_eq!((code, second["version"].clone()), (201, json!(2)), "{second}");
    // The edit goes back under Meta's review, then is approved again.
    let summary = wait_status(&host, "order_shipped", "en", "APPROVED").await?;
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut summary = summary;
    while summary["live_version"] != 2 {
        anyhow::ensure!(Instant::now() < deadline, "the edit never went live: {summary}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        summary = wait_status(&host, "order_shipped", "en", "APPROVED").await?;
    }

    let (code, view) = host.call(Method::GET, "/v1/templates/order_shipped", None).await?;
    assert_eq!(code, 200, "{view}");
    let english = &view["languages"][0];
    assert_eq!(english["summary"]["language"], "en");
    assert_eq!(english["versions"].as_array().unwrap().len(), 2);
    assert_eq!(english["versions"][0]["definition"]["components"][0]["type"], "HEADER");
    Ok(())
}

#[tokio::test]
async fn lint_errors_refuse_the_version_naming_field_and_check() -> anyhow::Result<()> {
    let host = TestHost::start(options("meta")?).await?;
    let mut bad = shipped("en");
    bad["components"][1]["text"] = json!("{{1}}{{2}} shipped");
    let (code, report) = host.call(Method::POST, "/v1/templates/lint", Some(bad.clone())).await?;
    assert_eq!(code, 200, "{report}");
    assert_eq!(report["clean"], false);
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|finding| finding["check"] == "placeholder-syntax" && finding["plugin"] == "template-lint"),
        "{report}"
    );

    let (code, refused) = host.call(Method::POST, "/v1/templates", Some(bad)).await?;
    assert_eq!(code, 422, "{refused}");
    assert_eq!(refused["error"]["code"], "lint_failed");
    assert!(
        refused["error"]["field"].as_str().unwrap().starts_with("components[1]"),
        "{refused}"
    );

    let mut many_buttons = shipped("en");
    many_buttons["components"][3]["buttons"] = Value::Array(
        (0..11)
            .map(|index| json!({"type": "QUICK_REPLY", "text": format!("Option {index}")}))
            .collect(),
    );
    let (code, refused) = host.call(Method::POST, "/v1/templates", Some(many_buttons)).await?;
    assert_eq!(code, 422, "{refused}");
    assert!(
        refused["error"]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|finding| finding["check"] == "button-count"),
        "{refused}"
    );

    // Nothing was stored for the refused definitions.
    let (code, _) = host.call(Method::GET, "/v1/templates/order_shipped", None).await?;
    assert_eq!(code, 404);

    // What the Cloud API would refuse outright is named before the plugins run.
    let mut bad_name = shipped("en");
    bad_name["name"] = json!("Order Shipped");
    let (code, refused) = host.call(Method::POST, "/v1/templates", Some(bad_name)).await?;
    assert_eq!((code, refused["error"]["field"].clone()), (400, json!("name")));
    let mut unknown_field = shipped("en");
    unknown_field["colour"] = json!("blue");
    let (code, refused) = host.call(Method::POST, "/v1/templates", Some(unknown_field)).await?;
    assert_eq!(code, 400, "{refused}");
    Ok(())
}

#[tokio::test]
async fn meta_rejections_and_pauses_reach_wasp_and_stop_sends() -> anyhow::Result<()> {
    let host = TestHost::start(options("meta")?).await?;
    // Promotional words in a UTILITY template: the simulator rejects it, as Meta would.
    let mut promo = shipped("en");
    promo["name"] = json!("order_update");
    promo["components"][1]["text"] = json!("Hi {{1}}, big sale today: 50% off order {{2}} now!");
    let (code, created) = host.call(Method::POST, "/v1/templates", Some(promo)).await?;
    assert_eq!(code, 201, "{created}");
    let rejected = wait_status(&host, "order_update", "en", "REJECTED").await?;
    assert!(
        rejected["reason"].as_str().unwrap().contains("INCORRECT_CATEGORY"),
        "{rejected}"
    );
    let (code, refused) = host.send(&template_message("order_update", "en")).await?;
    assert_eq!(code, 422);
    assert!(
        refused["error"]["message"].as_str().unwrap().contains("REJECTED"),
        "{refused}"
    );

    // An approved template Meta pauses stops being sendable at once.
    let (code, _) = host.call(Method::POST, "/v1/templates", Some(shipped("en"))).await?;
    assert_eq!(code, 201);
    let approved = wait_status(&host, "order_shipped", "en", "APPROVED").await?;
    let meta_id = approved["meta_id"].as_str().unwrap().to_owned();
    let paused = host
        .client
        .post(format!("{}/_sim/templates/{meta_id}/status", host.simulator.base_url()))
        .json(&json!({"status": "PAUSED", "reason": "LOW_QUALITY"}))
        .send()
        .await?;
    assert!(paused.status().is_success(), "{}", paused.text().await?);
    wait_status(&host, "order_shipped", "en", "PAUSED").await?;
    let (code, refused) = host.send(&template_message("order_shipped", "en")).await?;
    assert_eq!(code, 422, "{refused}");
    assert!(
        refused["error"]["message"].as_str().unwrap().contains("PAUSED"),
        "{refused}"
    );
    // Reinstated by Meta, it is sendable again.
    let reinstated = host
        .client
        .post(format!("{}/_sim/templates/{meta_id}/status", host.simulator.base_url()))
        .json(&json!({"status": "APPROVED"}))
        .send()
        .await?;
    assert!(reinstated.status().is_success());
    wait_status(&host, "order_shipped", "en", "APPROVED").await?;
    let (code, accepted) = host.send(&template_message("order_shipped", "en")).await?;
    assert_eq!(code, 202, "{accepted}");
    Ok(())
}

#[tokio::test]
async fn manual_review_gates_submission_and_is_audited() -> anyhow::Result<()> {
    let host = TestHost::start(options("manual")?).await?;
    let (code, created) = host.call(Method::POST, "/v1/templates", Some(shipped("en"))).await?;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["status"], "AWAITING_REVIEW");
    // Nothing reaches the Cloud API before a person approves.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, page) = host.call(Method::GET, "/v1/templates", None).await?;
    assert_eq!(page["templates"][0]["status"], "AWAITING_REVIEW", "{page}");

    let review = "/v1/templates/order_shipped/en/review";
    let (code, refused) = host
        .call(Method::POST, review, Some(json!({"decision": "reject"})))
        .await?;
    assert_eq!((code, refused["error"]["field"].clone()), (400, json!("reason")));
    let (code, refused) = host
        .call(Method::POST, review, Some(json!({"decision": "maybe"})))
        .await?;
    assert_eq!(code, 400, "{refused}");

    let (code, approved) = host
        .call(Method::POST, review, Some(json!({"decision": "approve"})))
        .await?;
    assert_eq!(code, 200, "{approved}");
    assert_eq!(approved["status"], "SUBMITTING");
    let (code, again) = host
        .call(Method::POST, review, Some(json!({"decision": "approve"})))
        .await?;
    assert_eq!(
        (code, again["error"]["code"].clone()),
        (409, json!("not_awaiting_review"))
    );
    wait_status(&host, "order_shipped", "en", "APPROVED").await?;

    // A rejected version keeps the reviewer's reason and never reaches Meta.
    let (code, _) = host.call(Method::POST, "/v1/templates", Some(shipped("fr"))).await?;
    assert_eq!(code, 201);
    let (code, rejected) = host
        .call(
            Method::POST,
            "/v1/templates/order_shipped/fr/review",
            Some(json!({"decision": "reject", "reason": "wrong tone"})),
        )
        .await?;
    assert_eq!(code, 200, "{rejected}");
    assert_eq!(rejected["status"], "REJECTED");
    assert_eq!(rejected["reason"], "rejected in review: wrong tone");
    assert_eq!(rejected["meta_id"], Value::Null);

    let (code, audit) = host.call(Method::GET, "/v1/audit?limit=50", None).await?;
    assert_eq!(code, 200);
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|entry| entry["action"].as_str())
        .collect();
    for action in ["template.create", "template.approve", "template.reject"] {
        assert!(actions.contains(&action), "{action} missing from {actions:?}");
    }
    Ok(())
}

#[tokio::test]
async fn templates_made_in_meta_tools_are_imported_by_the_sync() -> anyhow::Result<()> {
    let host = TestHost::start(options("meta")?).await?;
    // Created straight at the Cloud API, not through wasp.
    let made = host
        .client
        .post(format!(
            "{}/v23.0/{BUSINESS_ACCOUNT}/message_templates",
            host.simulator.base_url()
        ))
        .bearer_auth("test-cloud-token")
        .json(&json!({"name": "welcome", "language": "pt_BR", "category": "MARKETING",
            "components": [{"type": "BODY", "text": "Bem-vindo, {{1}}!", "example": {"body_text": [["Ana"]]}}]}))
        .send()
        .await?;
    assert!(made.status().is_success(), "{}", made.text().await?);
    let imported = wait_status(&host, "welcome", "pt_BR", "APPROVED").await?;
    assert_eq!(imported["category"], "MARKETING");
    let (_, view) = host.call(Method::GET, "/v1/templates/welcome", None).await?;
    assert_eq!(view["languages"][0]["versions"][0]["created_by"], "meta", "{view}");
    Ok(())
}

#[tokio::test]
async fn real_template_webhooks_are_accepted_and_templates_off_without_an_account() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    for file in [
        "pywa--template-status-update--approved.json",
        "pywa--template-status-update--rejected.json",
        "meta-docs--template-quality-update.json",
        "meta-docs--template-category-update.json",
    ] {
        let body = std::fs::read(meta_webhooks_dir()?.join(file))?;
        assert_eq!(host.post_webhook(&body, Some(APP_SECRET)).await?, 200, "{file}");
    }
    // Without a business account templates are not managed, and sends are not checked.
    let (code, refused) = host.call(Method::POST, "/v1/templates", Some(shipped("en"))).await?;
    assert_eq!(
        (code, refused["error"]["code"].clone()),
        (409, json!("templates_not_configured"))
    );
    let (code, accepted) = host.send(&template_message("anything", "en")).await?;
    assert_eq!(code, 202, "{accepted}");
    Ok(())
}

#[tokio::test]
async fn the_webhook_alone_brings_the_verdict_between_sync_rounds() -> anyhow::Result<()> {
    let mut options = options("meta")?;
    // Rounds a minute apart: only the wake-up on create and Meta's webhook can move it.
    options.extra_config = "[templates]\nsync_interval_ms = 60000\nfull_sync_interval_ms = 60000\n".into();
    let host = TestHost::start(options).await?;
    // Past the first round (at start), so the next one is a minute away.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, created) = host.call(Method::POST, "/v1/templates", Some(shipped("en"))).await?;
    assert_eq!(code, 201, "{created}");
    let approved = wait_status(&host, "order_shipped", "en", "APPROVED").await?;
    assert!(approved["meta_id"].is_string(), "{approved}");
    Ok(())
}
