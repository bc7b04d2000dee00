//! Bodies checked against Meta's own samples (copied into `tests/fixtures/`): byte for
//! byte where a wire-encoded sample exists, value for value otherwise.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::templates::Category;
use crate::webhook::schedule::Tracked;

const WIRE_FAILED_131049: &[u8] = include_bytes!("../../../tests/fixtures/wire--status-failed-131049.json");
const DOCS_SENT_PMP: &str = include_str!("../../../tests/fixtures/meta-docs--status-sent-pmp.json");
const DOCS_BUTTON_REPLY: &str = include_str!("../../../tests/fixtures/meta-docs--interactive-button-reply.json");
const DOCS_LIST_REPLY: &str = include_str!("../../../tests/fixtures/meta-docs--interactive-list-reply.json");
const DOCS_TEXT: &str = include_str!("../../../tests/fixtures/meta-docs--text.json");

fn docs_config() -> SimulatorConfig {
    SimulatorConfig {
        display_phone_number: "15550783881".into(),
        waba_id: "102290129340398".into(),
        ..SimulatorConfig::default()
    }
}

fn update(
    wamid: &str,
    phone_number_id: &str,
    status: StatusKind,
    failure: Option<&'static StatusError>,
) -> StatusUpdate {
    StatusUpdate {
        message: Arc::new(Tracked {
            callback_data: None,
            wamid: wamid.into(),
            phone_number_id: phone_number_id.into(),
            recipient: "16505551234".into(),
            failure,
        }),
        status,
        timestamp: 1_751_142_888,
        duplicate: false,
    }
}

fn parse(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("valid json")
}

/// Every path in a JSON value with the kind of value found there.
fn shape(value: &Value, path: String, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                shape(child, format!("{path}.{key}"), out);
            }
        }
        Value::Array(items) => {
            for item in items {
                shape(item, format!("{path}[]"), out);
            }
        }
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
    shape(value, String::new(), &mut out);
    out
}

#[test]
fn failed_status_reproduces_metas_wire_bytes() {
    let body = statuses_body(
        &docs_config(),
        &[update(
            "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA",
            "106540352242922",
            StatusKind::Failed,
            Some(&ECOSYSTEM_ENGAGEMENT),
        )],
    )
    .expect("encodes");
    assert_eq!(
        String::from_utf8_lossy(&body),
        String::from_utf8_lossy(WIRE_FAILED_131049)
    );
}

#[test]
fn undeliverable_error_has_every_field() {
    let body = statuses_body(
        &docs_config(),
        &[update("wamid.A", "1", StatusKind::Failed, Some(&UNDELIVERABLE))],
    )
    .expect("encodes");
    let status = &parse(&body)["entry"][0]["changes"][0]["value"]["statuses"][0];
    assert_eq!(status["status"], "failed");
    assert!(status.get("pricing").is_none());
    assert_eq!(
        status["errors"],
        json!([{
            "code": 131026,
            "title": "Message undeliverable",
            "message": "Message undeliverable",
            "error_data": {"details": "Message Undeliverable."},
            "href": ERROR_CODES_HREF
        }])
    );
}

#[test]
fn sent_status_has_the_shape_of_metas_sample() {
    let mut sample: Value = serde_json::from_str(DOCS_SENT_PMP).expect("sample parses");
    // From v24 on Meta leaves `conversation` out; the simulator follows v24.
    sample["entry"][0]["changes"][0]["value"]["statuses"][0]
        .as_object_mut()
        .map(|status| status.remove("conversation"));
    let body = statuses_body(
        &docs_config(),
        &[update(
            "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
            "106540352242922",
            StatusKind::Sent,
            None,
        )],
    )
    .expect("encodes");
    let ours = parse(&body);
    assert_eq!(shape_of(&ours), shape_of(&sample));
    assert_eq!(
        ours["entry"][0]["changes"][0]["value"]["statuses"][0]["pricing"],
        json!({"billable": true, "pricing_model": "PMP", "type": "regular", "category": "utility"})
    );
}

#[test]
fn statuses_are_grouped_by_phone_number_id() {
    let body = statuses_body(
        &docs_config(),
        &[
            update("wamid.1", "111", StatusKind::Sent, None),
            update("wamid.2", "222", StatusKind::Sent, None),
            update("wamid.1", "111", StatusKind::Delivered, None),
            update("wamid.3", "222", StatusKind::Read, None),
        ],
    )
    .expect("encodes");
    let value = parse(&body);
    let entries = value["entry"].as_array().expect("entries");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["id"], "102290129340398");
    let changes = entries[0]["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 2);
    let summary: Vec<(String, Vec<(String, String)>)> = changes
        .iter()
        .map(|change| {
            let value = &change["value"];
            let statuses = value["statuses"]
                .as_array()
                .expect("statuses")
                .iter()
                .map(|status| {
                    (
                        status["id"].as_str().unwrap_or_default().to_owned(),
                        status["status"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            (
                value["metadata"]["phone_number_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                statuses,
            )
        })
        .collect();
    let pair = |id: &str, status: &str| (id.to_owned(), status.to_owned());
    assert_eq!(
        summary,
        vec![
            (
                "111".to_owned(),
                vec![pair("wamid.1", "sent"), pair("wamid.1", "delivered")]
            ),
            ("222".to_owned(), vec![pair("wamid.2", "sent"), pair("wamid.3", "read")]),
        ]
    );
    assert!(changes.iter().all(|change| change["field"] == "messages"));
}

#[test]
fn button_reply_matches_metas_sample() {
    let sample: Value = serde_json::from_str(DOCS_BUTTON_REPLY).expect("sample parses");
    let inbound = Inbound::button_reply(
        "106540352242922",
        "16505551234",
        "wamid.HBgLMTY0NjcwNDM1OTUVAgARGBJBM0Y4RUU0RUNFQkFDMjYzQUMA",
        "change-button",
        "Change",
    )
    .with_profile_name("Pablo Morales");
    let body = inbound_body(
        &docs_config(),
        &inbound,
        "16505551234",
        "wamid.HBgLMTY0NjcwNDM1OTUVAgASGBQzQThBREYwNzc2RDc2QjA1QTIwMgA=",
        1_714_510_003,
    )
    .expect("encodes");
    assert_eq!(parse(&body), sample);
}

#[test]
fn list_reply_matches_metas_sample() {
    let sample: Value = serde_json::from_str(DOCS_LIST_REPLY).expect("sample parses");
    let inbound = Inbound::list_reply(
        "106540352242922",
        "16505551234",
        "wamid.HBgLMTY0NjcwNDM1OTUVAgARGBIwMjg0RkMxOEMyMkNEQUFFRDgA",
        "priority_express",
        "Priority Mail Express",
        Some("Next Day to 2 Days".to_owned()),
    )
    .with_profile_name("Pablo Morales");
    let body = inbound_body(
        &docs_config(),
        &inbound,
        "16505551234",
        "wamid.HBgLMTY0NjcwNDM1OTUVAgASGBQzQTZDMzFGRUFBQjlDMzIzMzlEQwA=",
        1_712_595_443,
    )
    .expect("encodes");
    assert_eq!(parse(&body), sample);
}

#[test]
fn text_matches_metas_sample_without_the_ad_referral() {
    let mut sample: Value = serde_json::from_str(DOCS_TEXT).expect("sample parses");
    sample["entry"][0]["changes"][0]["value"]["messages"][0]
        .as_object_mut()
        .map(|message| message.remove("referral"));
    let inbound = Inbound::text("106540352242922", "16505551234", "Can I get more info about this?")
        .with_profile_name("Sheena Nelson");
    let body = inbound_body(
        &docs_config(),
        &inbound,
        "16505551234",
        "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUQ0N0VFMDA2MTQ0RkJFNkNDNAA=",
        1_750_275_992,
    )
    .expect("encodes");
    assert_eq!(parse(&body), sample);
}

#[test]
fn inbound_text_is_ascii_on_the_wire() {
    let inbound = Inbound::text("1", "2", "Olá 😮 a/b").with_profile_name("Zoë");
    let body = inbound_body(&docs_config(), &inbound, "2", "wamid.X", 1).expect("encodes");
    assert!(body.is_ascii());
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains(r#""body":"Ol\u00e1 \ud83d\ude2e a\/b""#), "{text}");
    assert!(text.contains(r#""name":"Zo\u00eb""#), "{text}");
}

#[test]
fn every_failure_code_has_an_error() {
    for code in FAILURE_CODES {
        let error = status_error(code).expect("listed codes are known");
        assert_eq!(error.code, code);
        assert_eq!(error.title, error.message, "Meta repeats the title");
    }
    assert_eq!(status_error(131026), Some(&UNDELIVERABLE));
    assert_eq!(status_error(42), None);
}

const PYWA_TEMPLATE_APPROVED: &str =
    include_str!("../../../tests/fixtures/pywa--template-status-update--approved.json");
const PYWA_TEMPLATE_REJECTED: &str =
    include_str!("../../../tests/fixtures/pywa--template-status-update--rejected.json");

fn sample_template(
    id: &str,
    name: &str,
    language: &str,
    category: Category,
    status: TemplateStatus,
    reason: &str,
) -> Template {
    Template {
        id: id.into(),
        waba_id: "102290129340398".into(),
        name: name.into(),
        language: language.into(),
        category,
        parameter_format: crate::templates::ParameterFormat::Positional,
        components: json!([{"type": "BODY", "text": "x"}]),
        status,
        reason: reason.into(),
    }
}

#[test]
fn template_approved_reproduces_the_sample_value_for_value() {
    let template = sample_template(
        "1689556908129832",
        "order_confirmation",
        "en_US",
        Category::Utility,
        TemplateStatus::Approved,
        "NONE",
    );
    let body = template_status_body(&template, 1_751_247_548).expect("encodes");
    let expected: Value = serde_json::from_str(PYWA_TEMPLATE_APPROVED).expect("fixture");
    assert_eq!(parse(&body), expected);
    assert!(
        body.starts_with(
            br#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","time":1751247548,"#
        )
    );
}

#[test]
fn template_rejected_for_format_reproduces_the_sample_value_for_value() {
    let template = sample_template(
        "1689556908129835",
        "abandoned_cart",
        "en",
        Category::Marketing,
        TemplateStatus::Rejected,
        "INVALID_FORMAT",
    );
    let body = template_status_body(&template, 1_751_247_548).expect("encodes");
    let expected: Value = serde_json::from_str(PYWA_TEMPLATE_REJECTED).expect("fixture");
    assert_eq!(parse(&body), expected);
}

#[test]
fn other_rejections_paused_and_disabled_add_only_their_blocks() {
    let approved: Value = serde_json::from_str(PYWA_TEMPLATE_APPROVED).expect("fixture");
    let scam = sample_template("1", "a", "en", Category::Marketing, TemplateStatus::Rejected, "SCAM");
    let value = parse(&template_status_body(&scam, 1).expect("encodes"));
    assert_eq!(
        shape_of(&value),
        shape_of(&approved),
        "no rejection_info outside INVALID_FORMAT"
    );
    let paused = sample_template("2", "a", "en", Category::Marketing, TemplateStatus::Paused, "NONE");
    let value = parse(&template_status_body(&paused, 1).expect("encodes"));
    let change = &value["entry"][0]["changes"][0]["value"];
    assert_eq!(change["event"], "PAUSED");
    assert_eq!(change["other_info"]["title"], "FIRST_PAUSE");
    let disabled = sample_template("3", "a", "en", Category::Marketing, TemplateStatus::Disabled, "NONE");
    let value = parse(&template_status_body(&disabled, 7).expect("encodes"));
    assert_eq!(
        value["entry"][0]["changes"][0]["value"]["disable_info"]["disable_date"],
        "7"
    );
}
