//! The Graph API side over real HTTP: answers and error bodies as the Cloud API gives
//! them, the token check, faults and the log of accepted messages.

#[path = "support/receiver.rs"]
mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{simulator, text_body};
use wasp_simulator::SimulatorConfig;

const TOKEN: &str = "EAAtest-token";
const PHONE_NUMBER_ID: &str = "106540352242922";

struct Api {
    client: reqwest::Client,
    url: String,
}

impl Api {
    fn new(base_url: &str) -> Self {
        Self {
            client: reqwest::Client::new(),
            url: format!("{base_url}/v21.0/{PHONE_NUMBER_ID}/messages"),
        }
    }

    async fn send(&self, body: &Value) -> anyhow::Result<(StatusCode, Value)> {
        let response = self.client.post(&self.url).bearer_auth(TOKEN).json(body).send().await?;
        let status = response.status();
        let raw = response.bytes().await?;
        assert!(raw.is_ascii(), "Graph answers are ASCII");
        Ok((status, serde_json::from_slice(&raw)?))
    }
}

fn config() -> SimulatorConfig {
    SimulatorConfig {
        access_token: Some(TOKEN.into()),
        ..SimulatorConfig::default()
    }
}

/// The error object without its random trace id (checked to be there).
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
async fn every_supported_type_is_accepted_with_metas_answer() -> anyhow::Result<()> {
    let sim = simulator(config()).await?;
    let api = Api::new(&sim.base_url());
    let bodies = [
        text_body("+1 (555) 010-1234", "Your parcel left the depot"),
        json!({"messaging_product": "whatsapp", "to": "15550101234", "type": "template",
               "template": {"name": "order_update", "language": {"code": "en_US"},
                            "components": [{"type": "BODY", "parameters": [{"type": "text", "text": "A1"}]}]}}),
        json!({"messaging_product": "whatsapp", "to": "15550101234", "type": "image",
               "image": {"link": "https://example.com/a.jpg", "caption": "receipt"}}),
        json!({"messaging_product": "whatsapp", "to": "15550101234", "type": "document",
               "document": {"id": "1013859600285441", "filename": "invoice.pdf"}}),
        json!({"messaging_product": "whatsapp", "to": "15550101234", "type": "video",
               "video": {"id": "1166846181421424"}}),
        json!({"messaging_product": "whatsapp", "to": "15550101234", "type": "audio",
               "audio": {"link": "https://example.com/a.ogg"}}),
        json!({"messaging_product": "whatsapp", "to": "15550101234", "type": "interactive",
               "interactive": {"type": "button", "body": {"text": "Confirm?"}, "action": {"buttons": [
                   {"type": "reply", "reply": {"id": "yes", "title": "Yes"}},
                   {"type": "reply", "reply": {"id": "no", "title": "No"}}]}}}),
        json!({"messaging_product": "whatsapp", "to": "15550101234", "type": "interactive",
               "interactive": {"type": "list", "body": {"text": "Pick a slot"}, "action": {
                   "button": "Slots", "sections": [{"title": "Today", "rows": [
                       {"id": "am", "title": "Morning", "description": "9 to 12"}]}]}}}),
    ];
    let mut wamids = Vec::new();
    for body in &bodies {
        let (status, answer) = api.send(body).await?;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let wamid = answer["messages"][0]["id"].as_str().unwrap_or_default().to_owned();
        assert!(wamid.starts_with("wamid.HBg"), "{wamid}");
        let mut expected_message = json!({"id": wamid});
        if body["type"] == "template" {
            expected_message["message_status"] = json!("accepted");
        }
        assert_eq!(
            answer,
            json!({
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": "15550101234"}],
                "messages": [expected_message],
            })
        );
        wamids.push(wamid);
    }

    let sent = sim.sent();
    assert_eq!(sent.len(), bodies.len());
    for ((entry, body), wamid) in sent.iter().zip(&bodies).zip(&wamids) {
        assert_eq!(&entry.body, body);
        assert_eq!(&entry.wamid, wamid);
        assert_eq!(entry.phone_number_id, PHONE_NUMBER_ID);
        assert_eq!(Some(entry.to.as_str()), body["to"].as_str());
    }
    let counters = sim.counters();
    assert_eq!(counters.accepted, bodies.len() as u64);
    assert_eq!(counters.requests, bodies.len() as u64);
    assert_eq!(counters.rejected_total(), 0);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn four_buttons_get_metas_exact_error() -> anyhow::Result<()> {
    let sim = simulator(config()).await?;
    let api = Api::new(&sim.base_url());
    let buttons: Vec<Value> = (0..4)
        .map(|i| json!({"type": "reply", "reply": {"id": format!("b{i}"), "title": format!("Option {i}")}}))
        .collect();
    let (status, answer) = api
        .send(
            &json!({"messaging_product": "whatsapp", "to": "15550101234", "type": "interactive",
                      "interactive": {"type": "button", "body": {"text": "Pick"}, "action": {"buttons": buttons}}}),
        )
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error_without_trace(answer),
        json!({"error": {
            "message": "(#131009) Parameter value is not valid",
            "type": "OAuthException",
            "code": 131009,
            "error_data": {
                "messaging_product": "whatsapp",
                "details": "Invalid buttons count. Min allowed buttons: 1, Max allowed buttons: 3"
            }
        }})
    );
    assert_eq!(sim.counters().rejected.get(&131009), Some(&1));
    assert!(sim.sent().is_empty());
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn eleven_list_rows_get_the_row_count_error() -> anyhow::Result<()> {
    let sim = simulator(config()).await?;
    let api = Api::new(&sim.base_url());
    let rows: Vec<Value> = (0..11)
        .map(|i| json!({"id": format!("r{i}"), "title": format!("Row {i}")}))
        .collect();
    let (status, answer) = api
        .send(
            &json!({"messaging_product": "whatsapp", "to": "15550101234", "type": "interactive",
                      "interactive": {"type": "list", "body": {"text": "Pick"},
                                      "action": {"button": "Rows", "sections": [{"title": "All", "rows": rows}]}}}),
        )
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"]["code"], 131009);
    assert_eq!(
        answer["error"]["error_data"]["details"],
        "Total row count exceed max allowed count: 10"
    );
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn oversized_text_and_missing_fields_are_refused() -> anyhow::Result<()> {
    let sim = simulator(config()).await?;
    let api = Api::new(&sim.base_url());
    let (status, answer) = api.send(&text_body("15550101234", &"x".repeat(4_097))).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"]["code"], 100);
    let (status, answer) = api
        .send(&json!({"to": "15550101234", "type": "text", "text": {"body": "hi"}}))
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer["error"]["message"],
        "(#100) The parameter messaging_product is required."
    );
    let (status, answer) = api
        .send(&json!({"messaging_product": "whatsapp", "to": "15550101234", "type": "sticker", "sticker": {"id": "1"}}))
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"]["code"], 131051);
    let response = api
        .client
        .post(&api.url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let answer: Value = response.json().await?;
    assert_eq!(answer["error"]["code"], 100);
    let counters = sim.counters();
    assert_eq!(counters.rejected.get(&100), Some(&3));
    assert_eq!(counters.rejected.get(&131051), Some(&1));
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_missing_or_wrong_token_gets_190() -> anyhow::Result<()> {
    let sim = simulator(config()).await?;
    let api = Api::new(&sim.base_url());
    let body = text_body("15550101234", "hi");
    for token in [None, Some("wrong")] {
        let mut request = api.client.post(&api.url).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let answer: Value = response.json().await?;
        assert_eq!(answer["error"]["code"], 190);
        assert_eq!(answer["error"]["type"], "OAuthException");
    }
    let response = api
        .client
        .post(format!("{}?access_token={TOKEN}", api.url))
        .json(&body)
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK, "token as a query parameter");
    assert_eq!(sim.counters().rejected.get(&190), Some(&2));

    sim.set_config(|config| config.access_token = None);
    let response = api.client.post(&api.url).json(&body).send().await?;
    assert_eq!(response.status(), StatusCode::OK, "no token configured, none needed");
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn error_rate_one_answers_every_send_with_131000() -> anyhow::Result<()> {
    let sim = simulator(config()).await?;
    let api = Api::new(&sim.base_url());
    sim.set_config(|config| config.error_rate = 1.0);
    for _ in 0..3 {
        let (status, answer) = api.send(&text_body("15550101234", "hi")).await?;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            error_without_trace(answer),
            json!({"error": {
                "message": "(#131000) Something went wrong",
                "type": "OAuthException",
                "code": 131000,
                "error_data": {"messaging_product": "whatsapp", "details": "Something went wrong"}
            }})
        );
    }
    sim.set_config(|config| config.error_rate = 0.0);
    let (status, _) = api.send(&text_body("15550101234", "hi")).await?;
    assert_eq!(status, StatusCode::OK);
    let counters = sim.counters();
    assert_eq!(counters.rejected.get(&131000), Some(&3));
    assert_eq!(counters.accepted, 1);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn mark_as_read_answers_success() -> anyhow::Result<()> {
    let sim = simulator(config()).await?;
    let api = Api::new(&sim.base_url());
    let (status, answer) = api
        .send(&json!({"messaging_product": "whatsapp", "status": "read",
                      "message_id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUQ0N0VFMDA2MTQ0RkJFNkNDNAA="}))
        .await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, json!({"success": true}));
    let counters = sim.counters();
    assert_eq!(counters.marked_read, 1);
    assert_eq!(counters.accepted, 0);
    assert!(sim.sent().is_empty());
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn unknown_objects_and_paths_get_graph_errors() -> anyhow::Result<()> {
    let sim = simulator(SimulatorConfig::default()).await?;
    let client = reqwest::Client::new();
    let base = sim.base_url();
    let response = client
        .post(format!("{base}/v21.0/not-a-number/messages"))
        .json(&text_body("15550101234", "hi"))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let answer: Value = response.json().await?;
    assert_eq!(answer["error"]["code"], 100);
    assert_eq!(answer["error"]["error_subcode"], 33);

    let response = client
        .get(format!("{base}/v21.0/{PHONE_NUMBER_ID}/messages"))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let answer: Value = response.json().await?;
    assert_eq!(answer["error"]["error_subcode"], 33);

    let response = client.get(format!("{base}/nowhere")).send().await?;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let answer: Value = response.json().await?;
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("/nowhere"))
    );
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn latency_is_added_before_answering() -> anyhow::Result<()> {
    let sim = simulator(SimulatorConfig {
        latency_ms: 60,
        ..config()
    })
    .await?;
    let api = Api::new(&sim.base_url());
    let started = Instant::now();
    let (status, _) = api.send(&text_body("15550101234", "hi")).await?;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(60));
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn wamids_are_unique() -> anyhow::Result<()> {
    let sim = simulator(config()).await?;
    let api = Api::new(&sim.base_url());
    let mut seen = HashSet::new();
    for index in 0..200 {
        let (status, answer) = api.send(&text_body(&format!("1555{:07}", index % 3), "hi")).await?;
        assert_eq!(status, StatusCode::OK);
        let wamid = answer["messages"][0]["id"].as_str().unwrap_or_default().to_owned();
        assert!(seen.insert(wamid), "duplicate wamid");
    }
    sim.shutdown().await;
    Ok(())
}
