//! Message templates over HTTP: creation and its refusals, the delayed review and each
//! rejection rule, the status webhooks (key for key against Meta's examples), listing
//! with filters and cursors, reading one, deleting, forcing a status through the control
//! surface, and `enforce_templates` on sends.

#[path = "support/receiver.rs"]
mod support;

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Receiver, eventually, simulator};
use wasp_simulator::templates::TemplateStatus;
use wasp_simulator::{RunningSimulator, SimulatorConfig};

const TOKEN: &str = "EAAtest-token";
const SECRET: &str = "test_app_secret";
const WABA_ID: &str = "102290129340398";
const PHONE_NUMBER_ID: &str = "106540352242922";
const APPROVED_SAMPLE: &str = include_str!("fixtures/pywa--template-status-update--approved.json");
const REJECTED_SAMPLE: &str = include_str!("fixtures/pywa--template-status-update--rejected.json");

struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    fn new(sim: &RunningSimulator) -> Self {
        Self {
            client: reqwest::Client::new(),
            base: sim.base_url(),
        }
    }

    fn templates_url(&self) -> String {
        format!("{}/v21.0/{WABA_ID}/message_templates", self.base)
    }

    async fn answer(response: reqwest::Response) -> anyhow::Result<(StatusCode, Value)> {
        let status = response.status();
        let raw = response.bytes().await?;
        assert!(raw.is_ascii(), "Graph answers are ASCII");
        Ok((status, serde_json::from_slice(&raw)?))
    }

    async fn create(&self, body: &Value) -> anyhow::Result<(StatusCode, Value)> {
        Self::answer(
            self.client
                .post(self.templates_url())
                .bearer_auth(TOKEN)
                .json(body)
                .send()
                .await?,
        )
        .await
    }

    async fn get(&self, url: &str) -> anyhow::Result<(StatusCode, Value)> {
        Self::answer(self.client.get(url).bearer_auth(TOKEN).send().await?).await
    }

    async fn list(&self, query: &str) -> anyhow::Result<(StatusCode, Value)> {
        self.get(&format!("{}?{query}", self.templates_url())).await
    }

    async fn delete(&self, query: &str) -> anyhow::Result<(StatusCode, Value)> {
        Self::answer(
            self.client
                .delete(format!("{}?{query}", self.templates_url()))
                .bearer_auth(TOKEN)
                .send()
                .await?,
        )
        .await
    }

    async fn force(&self, id: &str, body: &Value) -> anyhow::Result<(StatusCode, Value)> {
        Self::answer(
            self.client
                .post(format!("{}/_sim/templates/{id}/status", self.base))
                .json(body)
                .send()
                .await?,
        )
        .await
    }

    async fn send_template(&self, name: &str, language: &str) -> anyhow::Result<(StatusCode, Value)> {
        let body = json!({"messaging_product": "whatsapp", "to": "15550101234", "type": "template",
            "template": {"name": name, "language": {"code": language}}});
        Self::answer(
            self.client
                .post(format!("{}/v21.0/{PHONE_NUMBER_ID}/messages", self.base))
                .bearer_auth(TOKEN)
                .json(&body)
                .send()
                .await?,
        )
        .await
    }
}

fn config(webhook_url: Option<String>, review_ms: u64) -> SimulatorConfig {
    SimulatorConfig {
        access_token: Some(TOKEN.into()),
        app_secret: SECRET.into(),
        webhook_url,
        template_review_ms: review_ms,
        ..SimulatorConfig::default()
    }
}

fn utility(name: &str, language: &str, body: &str) -> Value {
    json!({"name": name, "language": language, "category": "UTILITY",
           "components": [{"type": "BODY", "text": body}]})
}

/// Every path in a JSON value with the kind of value found there.
fn shape(value: &Value, path: &str, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => map
            .iter()
            .for_each(|(key, child)| shape(child, &format!("{path}.{key}"), out)),
        Value::Array(items) => items.iter().for_each(|item| shape(item, &format!("{path}[]"), out)),
        Value::String(_) => {
            out.insert(format!("{path}:string"));
        }
        Value::Number(_) => {
            out.insert(format!("{path}:number"));
        }
        Value::Bool(_) => {
            out.insert(format!("{path}:bool"));
        }
        Value::Null => {
            out.insert(format!("{path}:null"));
        }
    }
}

fn shape_of(value: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    shape(value, "", &mut out);
    out
}

/// The template status webhooks received, in order: (template id, whole body).
fn template_updates(receiver: &Receiver) -> Vec<(u64, Value)> {
    receiver
        .posts()
        .into_iter()
        .filter(|post| post.body["entry"][0]["changes"][0]["field"] == "message_template_status_update")
        .map(|post| {
            let id = post.body["entry"][0]["changes"][0]["value"]["message_template_id"]
                .as_u64()
                .unwrap_or_default();
            (id, post.body)
        })
        .collect()
}

fn update_for(receiver: &Receiver, id: &str) -> Option<Value> {
    let id: u64 = id.parse().ok()?;
    template_updates(receiver)
        .into_iter()
        .rev()
        .find(|(update_id, _)| *update_id == id)
        .map(|(_, body)| body)
}

fn error_without_trace(mut body: Value) -> Value {
    let trace = body["error"]
        .as_object_mut()
        .and_then(|error| error.remove("fbtrace_id"));
    assert!(
        trace.as_ref().and_then(Value::as_str).is_some_and(|t| !t.is_empty()),
        "fbtrace_id present"
    );
    body
}

#[tokio::test]
async fn create_answers_pending_then_the_review_approves_after_the_delay() -> anyhow::Result<()> {
    let receiver = Receiver::start(SECRET).await?;
    let sim = simulator(config(Some(receiver.url.clone()), 800)).await?;
    let api = Api::new(&sim);

    let (status, created) = api
        .create(&utility(
            "order_confirmation",
            "en_US",
            "Your order {{1}} is confirmed.",
        ))
        .await?;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    assert!(id.len() >= 15 && id.bytes().all(|b| b.is_ascii_digit()), "{id}");
    assert_eq!(created, json!({"id": id, "status": "PENDING", "category": "UTILITY"}));

    let (status, one) = api.get(&format!("{}/v21.0/{id}", sim.base_url())).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        one,
        json!({"name": "order_confirmation", "parameter_format": "POSITIONAL",
               "components": [{"type": "BODY", "text": "Your order {{1}} is confirmed."}],
               "language": "en_US", "status": "PENDING", "category": "UTILITY", "id": id})
    );
    assert!(template_updates(&receiver).is_empty(), "no webhook while pending");

    eventually("the approval webhook", || update_for(&receiver, &id).is_some()).await?;
    let (_, one) = api.get(&format!("{}/v21.0/{id}", sim.base_url())).await?;
    assert_eq!(one["status"], "APPROVED");

    let body = update_for(&receiver, &id).unwrap_or_default();
    let sample: Value = serde_json::from_str(APPROVED_SAMPLE)?;
    assert_eq!(shape_of(&body), shape_of(&sample), "key for key as Meta's example");
    let value = &body["entry"][0]["changes"][0]["value"];
    assert_eq!(
        *value,
        json!({"event": "APPROVED", "message_template_id": id.parse::<u64>()?,
               "message_template_name": "order_confirmation", "message_template_language": "en_US",
               "reason": "NONE", "message_template_category": "UTILITY"})
    );
    assert_eq!(body["entry"][0]["id"], WABA_ID);
    let time = body["entry"][0]["time"].as_u64().unwrap_or_default();
    assert!(time > 1_700_000_000 && time < 10_000_000_000, "seconds: {time}");
    assert_eq!(receiver.bad_signatures(), 0, "signed like every webhook");
    let posts = receiver.posts();
    assert_eq!(
        posts.last().map(|post| post.user_agent.as_str()),
        Some("facebookexternalua")
    );
    assert_eq!(sim.counters().webhook_template_updates, 1);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn refusals_answer_metas_error_shapes() -> anyhow::Result<()> {
    let sim = simulator(config(None, 60_000)).await?;
    let api = Api::new(&sim);

    let (status, body) = api
        .create(&json!({"language": "en", "category": "UTILITY", "components": []}))
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error_without_trace(body),
        json!({"error": {"message": "(#100) The parameter name is required.", "type": "OAuthException", "code": 100}})
    );
    let (_, body) = api
        .create(&json!({"name": "a", "category": "UTILITY", "components": [{"type": "BODY", "text": "x"}]}))
        .await?;
    assert_eq!(body["error"]["message"], "(#100) The parameter language is required.");

    let (status, body) = api
        .create(&json!({"name": "no_body", "language": "en", "category": "MARKETING",
                        "components": [{"type": "HEADER", "format": "TEXT", "text": "Hi"}]}))
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error = &body["error"];
    assert_eq!(error["code"], 100);
    assert_eq!(error["error_subcode"], 2_388_043);
    assert_eq!(error["is_transient"], false);
    assert!(
        error["error_user_title"]
            .as_str()
            .is_some_and(|t| t.contains("components"))
    );
    assert!(error["error_user_msg"].as_str().is_some_and(|t| t.contains("BODY")));

    let (status, body) = api.create(&utility("Order-Update", "en", "Hi {{1}}.")).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error_without_trace(body),
        json!({"error": {"message": "Invalid parameter", "type": "OAuthException", "code": 100,
            "error_data": {"blame_field_specs": [["name"]]}, "error_subcode": 2_388_046, "is_transient": false,
            "error_user_title": "Name Format is Incorrect",
            "error_user_msg": "The message template name can only have lowercase letters and underscores."}})
    );

    let (status, _) = api.create(&utility("welcome", "en", "Welcome, {{1}}.")).await?;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api.create(&utility("welcome", "en", "Hello again, {{1}}.")).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error_without_trace(body),
        json!({"error": {"message": "Invalid parameter", "type": "OAuthException", "code": 100,
            "error_subcode": 2_388_024, "is_transient": false,
            "error_user_title": "Content in This Language Already Exists",
            "error_user_msg": "There is already English content for this template. You can create a new template and try again."}})
    );
    let (status, _) = api.create(&utility("welcome", "es", "Bienvenido, {{1}}.")).await?;
    assert_eq!(status, StatusCode::OK, "another language is new content");

    let (status, body) = Api::answer(
        reqwest::Client::new()
            .post(api.templates_url())
            .json(&utility("no_token", "en", "x"))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], 190);
    let (status, body) = api.get(&format!("{}/v21.0/999", sim.base_url())).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["error_subcode"], 33);
    assert_eq!(sim.templates().len(), 2);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn each_rejection_rule_rejects_with_its_reason() -> anyhow::Result<()> {
    let receiver = Receiver::start(SECRET).await?;
    let sim = simulator(config(Some(receiver.url.clone()), 30)).await?;
    let api = Api::new(&sim);
    let cases = [
        (
            json!({"name": "abandoned_cart", "language": "en", "category": "MARKETING",
                   "components": [{"type": "BODY", "text": "Hi {{1}}{{2}}, you left items behind."}]}),
            "INVALID_FORMAT",
        ),
        (
            json!({"name": "lucky_winner", "language": "en", "category": "MARKETING",
                   "components": [{"type": "BODY", "text": "Claim your free money now, {{1}}."}]}),
            "SCAM",
        ),
        (
            json!({"name": "track_parcel", "language": "en", "category": "UTILITY",
                   "components": [{"type": "BODY", "text": "Parcel {{1}} is on its way."},
                       {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Track", "url": "https://bit.ly/{{1}}"}]}]}),
            "ABUSIVE_CONTENT",
        ),
        (
            utility("order_shipped", "en", "Order {{1}} shipped. Enjoy 20% off next time!"),
            "INCORRECT_CATEGORY",
        ),
        (
            json!({"name": "login_code", "language": "en", "category": "AUTHENTICATION",
                   "components": [{"type": "BODY", "text": "Code {{1}}. Special discount inside."}]}),
            "INCORRECT_CATEGORY",
        ),
        (
            json!({"name": "summer_sale", "language": "en", "category": "MARKETING",
                   "components": [{"type": "BODY", "text": "Summer sale: 20% off for you, {{1}}."}]}),
            "NONE",
        ),
    ];
    let mut ids = Vec::new();
    for (body, _) in &cases {
        let (status, created) = api.create(body).await?;
        assert_eq!(status, StatusCode::OK, "{created}");
        ids.push(created["id"].as_str().unwrap_or_default().to_owned());
    }
    eventually("every review webhook", || {
        template_updates(&receiver).len() >= cases.len()
    })
    .await?;

    let approved_sample: Value = serde_json::from_str(APPROVED_SAMPLE)?;
    let rejected_sample: Value = serde_json::from_str(REJECTED_SAMPLE)?;
    for ((body, reason), id) in cases.iter().zip(&ids) {
        let update = update_for(&receiver, id).unwrap_or_default();
        let value = &update["entry"][0]["changes"][0]["value"];
        assert_eq!(value["reason"], *reason, "{}", body["name"]);
        let expected_event = if *reason == "NONE" { "APPROVED" } else { "REJECTED" };
        assert_eq!(value["event"], expected_event);
        assert_eq!(value["message_template_category"], body["category"]);
        let sample = if *reason == "INVALID_FORMAT" {
            &rejected_sample
        } else {
            &approved_sample
        };
        assert_eq!(shape_of(&update), shape_of(sample), "{reason} key for key");
    }
    let invalid = update_for(&receiver, &ids[0]).unwrap_or_default();
    assert_eq!(
        invalid["entry"][0]["changes"][0]["value"]["rejection_info"],
        rejected_sample["entry"][0]["changes"][0]["value"]["rejection_info"]
    );

    let (_, listed) = api.list("status=REJECTED").await?;
    let reasons: Vec<&str> = listed["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|template| template["rejected_reason"].as_str())
        .collect();
    assert_eq!(
        reasons,
        [
            "INVALID_FORMAT",
            "SCAM",
            "ABUSIVE_CONTENT",
            "INCORRECT_CATEGORY",
            "INCORRECT_CATEGORY"
        ]
    );
    let (_, approved) = api.list("status=APPROVED").await?;
    assert_eq!(approved["data"][0]["name"], "summer_sale");
    assert!(approved["data"][0].get("rejected_reason").is_none());
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn listing_filters_and_pages_with_cursors() -> anyhow::Result<()> {
    let sim = simulator(config(None, 60_000)).await?;
    let api = Api::new(&sim);
    let mut names = Vec::new();
    for index in 0..5 {
        let name = format!("reminder_{index}");
        api.create(&utility(&name, "en", "Reminder {{1}}.")).await?;
        names.push(name);
    }
    api.create(&utility("reminder_0", "pt_BR", "Lembrete {{1}}.")).await?;

    let (status, first) = api.list("limit=2").await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["data"].as_array().map(Vec::len), Some(2));
    let entry = &first["data"][0];
    let keys: BTreeSet<&str> = entry
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "name",
            "parameter_format",
            "components",
            "language",
            "status",
            "category",
            "id"
        ])
    );
    assert!(first["paging"]["cursors"]["before"].is_string());
    assert!(first["paging"]["cursors"]["after"].is_string());

    let mut seen: Vec<String> = Vec::new();
    let mut page = first;
    loop {
        for template in page["data"].as_array().into_iter().flatten() {
            seen.push(format!(
                "{}/{}",
                template["name"].as_str().unwrap_or_default(),
                template["language"].as_str().unwrap_or_default()
            ));
        }
        let Some(next) = page["paging"]["next"].as_str() else {
            break;
        };
        assert!(next.contains("limit=2") && next.contains("after="), "{next}");
        page = api.get(next).await?.1;
    }
    let mut expected: Vec<String> = names.iter().map(|name| format!("{name}/en")).collect();
    expected.push("reminder_0/pt_BR".into());
    assert_eq!(seen, expected, "every template once, oldest first");

    let (_, one) = api.list("limit=1").await?;
    let cursor = one["paging"]["cursors"]["after"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (_, by_cursor) = api.list(&format!("limit=100&after={cursor}")).await?;
    assert_eq!(by_cursor["data"].as_array().map(Vec::len), Some(5));
    assert!(by_cursor["paging"].get("next").is_none(), "no next on the last page");

    let (_, exact) = api.list("name=reminder_3").await?;
    assert_eq!(exact["data"].as_array().map(Vec::len), Some(1));
    let (_, partial) = api.list("name=reminder").await?;
    assert_eq!(
        partial["data"].as_array().map(Vec::len),
        Some(6),
        "part of a name matches"
    );
    let (_, portuguese) = api.list("language=pt_BR").await?;
    assert_eq!(portuguese["data"][0]["components"][0]["text"], "Lembrete {{1}}.");
    let (_, none) = api.list("status=APPROVED").await?;
    assert_eq!(none, json!({"data": []}));
    let (status, bad) = api.list("status=WAITING").await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(bad["error"]["code"], 100);
    let (status, _) = api.list("after=garbage").await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, other_waba) = api
        .get(&format!("{}/v21.0/999999/message_templates", sim.base_url()))
        .await?;
    assert_eq!(other_waba, json!({"data": []}));
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn delete_takes_every_language_or_one_hsm_id() -> anyhow::Result<()> {
    let sim = simulator(config(None, 60_000)).await?;
    let api = Api::new(&sim);
    let mut ids = Vec::new();
    for language in ["en", "es", "fr"] {
        let (_, created) = api.create(&utility("spring_notice", language, "Notice {{1}}.")).await?;
        ids.push(created["id"].as_str().unwrap_or_default().to_owned());
    }
    api.create(&utility("keep_me", "en", "Kept {{1}}.")).await?;

    let (status, body) = api.delete(&format!("name=spring_notice&hsm_id={}", ids[1])).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"success": true}));
    let (_, left) = api.list("name=spring_notice").await?;
    let languages: Vec<&str> = left["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["language"].as_str())
        .collect();
    assert_eq!(languages, ["en", "fr"]);

    let (status, body) = api.delete("name=spring_notice").await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"success": true}));
    let remaining: Vec<String> = sim.templates().into_iter().map(|t| t.name).collect();
    assert_eq!(remaining, ["keep_me"]);

    let (status, body) = api.delete("name=spring_notice").await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], 100);
    let (status, body) = api.delete("hsm_id=1").await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["message"], "(#100) The parameter name is required.");
    let (status, _) = api.get(&format!("{}/v21.0/{}", sim.base_url(), ids[0])).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a deleted template is gone");
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn control_forces_a_status_and_posts_the_webhook() -> anyhow::Result<()> {
    let receiver = Receiver::start(SECRET).await?;
    let sim = simulator(config(Some(receiver.url.clone()), 60_000)).await?;
    let api = Api::new(&sim);
    let (_, created) = api
        .create(&utility("delivery_window", "en", "Delivery {{1}} today."))
        .await?;
    let id = created["id"].as_str().unwrap_or_default().to_owned();

    let (status, forced) = api.force(&id, &json!({"status": "PAUSED"})).await?;
    assert_eq!(status, StatusCode::OK, "{forced}");
    assert_eq!(forced["status"], "PAUSED");
    assert_eq!(forced["reason"], "NONE");
    assert_eq!(forced["waba_id"], WABA_ID);
    let update = update_for(&receiver, &id).unwrap_or_default();
    let value = &update["entry"][0]["changes"][0]["value"];
    assert_eq!(value["event"], "PAUSED");
    assert_eq!(value["other_info"]["title"], "FIRST_PAUSE");

    let (_, forced) = api
        .force(&id, &json!({"status": "rejected", "reason": "INVALID_FORMAT"}))
        .await?;
    assert_eq!(forced["status"], "REJECTED");
    let update = update_for(&receiver, &id).unwrap_or_default();
    let rejected_sample: Value = serde_json::from_str(REJECTED_SAMPLE)?;
    assert_eq!(shape_of(&update), shape_of(&rejected_sample));

    let (_, forced) = api.force(&id, &json!({"status": "DISABLED"})).await?;
    assert_eq!(forced["status"], "DISABLED");
    let update = update_for(&receiver, &id).unwrap_or_default();
    assert!(update["entry"][0]["changes"][0]["value"]["disable_info"]["disable_date"].is_string());
    assert_eq!(template_updates(&receiver).len(), 3, "one webhook per change");

    let listed: Value = reqwest::get(format!("{}/_sim/templates", sim.base_url()))
        .await?
        .json()
        .await?;
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["status"], "DISABLED");
    assert_eq!(sim.templates()[0].status, TemplateStatus::Disabled);

    let (status, body) = api.force(&id, &json!({"status": "PENDING"})).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "status");
    let (status, body) = api.force(&id, &json!({"status": "PAUSED", "reason": "not ok"})).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "reason");
    let (status, body) = api.force("123", &json!({"status": "APPROVED"})).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn enforce_templates_refuses_what_is_not_approved() -> anyhow::Result<()> {
    let sim = simulator(config(None, 60_000)).await?;
    let api = Api::new(&sim);
    let (status, _) = api.send_template("never_created", "en_US").await?;
    assert_eq!(status, StatusCode::OK, "off by default: any template is accepted");

    sim.set_config(|config| config.enforce_templates = true);
    let (status, body) = api.send_template("never_created", "en_US").await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        error_without_trace(body),
        json!({"error": {"message": "(#132001) Template name does not exist in the translation",
            "type": "OAuthException", "code": 132_001,
            "error_data": {"messaging_product": "whatsapp",
                "details": "template name (never_created) does not exist in en_US"}}})
    );

    let (_, created) = api
        .create(&utility("pickup_ready", "en_US", "Pickup {{1}} is ready."))
        .await?;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let (status, body) = api.send_template("pickup_ready", "en_US").await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "pending is not approved");
    assert_eq!(body["error"]["code"], 132_001);

    api.force(&id, &json!({"status": "APPROVED"})).await?;
    let (status, body) = api.send_template("pickup_ready", "en_US").await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["messages"][0]["message_status"], "accepted");
    let (status, _) = api.send_template("pickup_ready", "pt_BR").await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "another language does not exist");

    api.force(&id, &json!({"status": "PAUSED"})).await?;
    let (status, body) = api.send_template("pickup_ready", "en_US").await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], 132_015);
    assert_eq!(body["error"]["message"], "(#132015) Template is Paused");

    api.force(&id, &json!({"status": "DISABLED"})).await?;
    let (status, body) = api.send_template("pickup_ready", "en_US").await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], 132_016);

    api.force(&id, &json!({"status": "REJECTED", "reason": "SCAM"})).await?;
    let (status, body) = api.send_template("pickup_ready", "en_US").await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], 132_001);

    let counters = sim.counters();
    assert_eq!(counters.accepted, 2);
    assert_eq!(counters.rejected.get(&132_001), Some(&4));
    assert_eq!(counters.rejected.get(&132_015), Some(&1));
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn review_delay_is_a_runtime_knob() -> anyhow::Result<()> {
    let receiver = Receiver::start(SECRET).await?;
    let sim = simulator(config(Some(receiver.url.clone()), 60_000)).await?;
    let api = Api::new(&sim);
    let response = reqwest::Client::new()
        .put(format!("{}/_sim/config", sim.base_url()))
        .json(&json!({"template_review_ms": 20, "enforce_templates": true}))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    let shown: Value = response.json().await?;
    assert_eq!(shown["template_review_ms"], 20);
    assert_eq!(shown["enforce_templates"], true);

    let (_, created) = api.create(&utility("quick_review", "en", "Done {{1}}.")).await?;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    eventually("the quick review", || update_for(&receiver, &id).is_some()).await?;
    let (status, _) = api.send_template("quick_review", "en").await?;
    assert_eq!(status, StatusCode::OK);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_edit_puts_the_template_back_under_review() -> anyhow::Result<()> {
    let receiver = Receiver::start(SECRET).await?;
    let sim = simulator(config(Some(receiver.url.clone()), 100)).await?;
    let api = Api::new(&sim);
    let (_, created) = api
        .create(&utility("order_update", "en", "Order {{1}} is confirmed."))
        .await?;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let url = format!("{}/v21.0/{id}", sim.base_url());
    eventually("the approval", || update_for(&receiver, &id).is_some()).await?;

    // Promotional words in a UTILITY edit: pending again, then rejected as Meta would.
    let edit = json!({"components": [{"type": "BODY", "text": "Order {{1}}: big sale, 20% off!"}]});
    let (status, answer) = Api::answer(api.client.post(&url).bearer_auth(TOKEN).json(&edit).send().await?).await?;
    assert_eq!((status, answer), (StatusCode::OK, json!({"success": true})));
    let (_, one) = api.get(&url).await?;
    assert_eq!(one["status"], "PENDING");
    assert_eq!(one["components"][0]["text"], "Order {{1}}: big sale, 20% off!");
    eventually("the rejection", || {
        update_for(&receiver, &id).is_some_and(|body| body["entry"][0]["changes"][0]["value"]["event"] == "REJECTED")
    })
    .await?;

    // Neither components nor category: nothing to edit. An unknown id: Meta's unknown object.
    let (status, refused) =
        Api::answer(api.client.post(&url).bearer_auth(TOKEN).json(&json!({})).send().await?).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let unknown = format!("{}/v21.0/999999999999999", sim.base_url());
    let (status, _) = Api::answer(api.client.post(&unknown).bearer_auth(TOKEN).json(&edit).send().await?).await?;
    assert!(status.is_client_error());
    sim.shutdown().await;
    Ok(())
}
