//! Validation cases: each rule of the Cloud API, the body that breaks it and the answer.

use serde_json::{Value, json};

use super::*;
use crate::graph::error::{
    CODE_INVALID_PARAMETER, CODE_PARAMETER_MISSING, CODE_PARAMETER_NOT_VALID, CODE_UNSUPPORTED_TYPE,
};

fn rejected(body: Value) -> GraphError {
    validate(&body).expect_err("body should be refused")
}

fn accepted(body: &Value) -> Request<'_> {
    match validate(body) {
        Ok(request) => request,
        Err(error) => panic!("body refused: {error:?}"),
    }
}

fn send(to: &str, message_type: &str, key: &str, content: Value) -> Value {
    json!({"messaging_product": "whatsapp", "to": to, "type": message_type, key: content})
}

fn buttons(count: usize) -> Value {
    let buttons: Vec<Value> = (0..count)
        .map(|index| json!({"type": "reply", "reply": {"id": format!("b{index}"), "title": format!("Option {index}")}}))
        .collect();
    send(
        "15551234567",
        "interactive",
        "interactive",
        json!({"type": "button", "body": {"text": "Pick one"}, "action": {"buttons": buttons}}),
    )
}

fn list(rows_per_section: &[usize]) -> Value {
    let sections: Vec<Value> = rows_per_section
        .iter()
        .enumerate()
        .map(|(section, rows)| {
            let rows: Vec<Value> = (0..*rows)
                .map(|row| json!({"id": format!("s{section}r{row}"), "title": format!("Row {row}"), "description": "A row"}))
                .collect();
            json!({"title": format!("Section {section}"), "rows": rows})
        })
        .collect();
    send(
        "15551234567",
        "interactive",
        "interactive",
        json!({"type": "list", "body": {"text": "Pick"}, "action": {"button": "Choose", "sections": sections}}),
    )
}

#[test]
fn text_is_accepted_and_to_is_kept_as_sent() {
    let body = send("+1 (555) 123-4567", "text", "text", json!({"body": "hello"}));
    assert_eq!(
        accepted(&body),
        Request::Send {
            to: "+1 (555) 123-4567",
            kind: MessageKind::Text
        }
    );
}

#[test]
fn type_defaults_to_text() {
    let body = json!({"messaging_product": "whatsapp", "to": "15551234567", "text": {"body": "hi"}});
    assert!(matches!(
        accepted(&body),
        Request::Send {
            kind: MessageKind::Text,
            ..
        }
    ));
}

#[test]
fn messaging_product_is_required_and_must_be_whatsapp() {
    let error = rejected(json!({"to": "1555", "type": "text", "text": {"body": "hi"}}));
    assert_eq!(error.code(), CODE_INVALID_PARAMETER);
    assert_eq!(error.message(), "(#100) The parameter messaging_product is required.");
    let error = rejected(json!({"messaging_product": "sms", "to": "1555", "text": {"body": "hi"}}));
    assert_eq!(error.code(), CODE_INVALID_PARAMETER);
}

#[test]
fn to_is_required() {
    let error = rejected(json!({"messaging_product": "whatsapp", "type": "text", "text": {"body": "hi"}}));
    assert_eq!(error.message(), "(#100) The parameter to is required.");
    let error = rejected(send("", "text", "text", json!({"body": "hi"})));
    assert_eq!(error.code(), CODE_INVALID_PARAMETER);
    let error = rejected(send("not a number", "text", "text", json!({"body": "hi"})));
    assert_eq!(error.code(), CODE_INVALID_PARAMETER);
}

#[test]
fn text_body_is_1_to_4096_characters() {
    let at_limit = "é".repeat(TEXT_BODY_MAX_CHARS);
    accepted(&send("15551234567", "text", "text", json!({"body": at_limit})));
    let error = rejected(send(
        "15551234567",
        "text",
        "text",
        json!({"body": "x".repeat(TEXT_BODY_MAX_CHARS + 1)}),
    ));
    assert_eq!(error.code(), CODE_INVALID_PARAMETER);
    assert_eq!(
        error.details(),
        Some("Param text['body'] must be at most 4096 characters long.")
    );
    let error = rejected(send("15551234567", "text", "text", json!({"body": ""})));
    assert_eq!(error.code(), CODE_INVALID_PARAMETER);
    let error = rejected(send("15551234567", "text", "text", json!({})));
    assert_eq!(error.code(), CODE_PARAMETER_MISSING);
    let error = rejected(json!({"messaging_product": "whatsapp", "to": "1555", "type": "text"}));
    assert_eq!(error.code(), CODE_PARAMETER_MISSING);
}

#[test]
fn one_to_three_buttons_are_accepted() {
    for count in 1..=3 {
        let body = buttons(count);
        assert!(matches!(
            accepted(&body),
            Request::Send {
                kind: MessageKind::Interactive,
                ..
            }
        ));
    }
}

#[test]
fn four_buttons_get_metas_exact_131009() {
    let error = rejected(buttons(4));
    assert_eq!(error.code(), CODE_PARAMETER_NOT_VALID);
    assert_eq!(error.status().as_u16(), 400);
    assert_eq!(error.message(), "(#131009) Parameter value is not valid");
    assert_eq!(
        error.details(),
        Some("Invalid buttons count. Min allowed buttons: 1, Max allowed buttons: 3")
    );
    let error = rejected(buttons(0));
    assert_eq!(error.code(), CODE_PARAMETER_NOT_VALID);
}

#[test]
fn button_titles_are_at_most_20_characters() {
    let mut body = buttons(2);
    body["interactive"]["action"]["buttons"][1]["reply"]["title"] = json!("x".repeat(21));
    let error = rejected(body);
    assert_eq!(error.code(), CODE_PARAMETER_NOT_VALID);
    let mut body = buttons(2);
    body["interactive"]["action"]["buttons"][1]["reply"]["title"] = json!("ü".repeat(20));
    accepted(&body);
}

#[test]
fn button_ids_are_unique() {
    let mut body = buttons(2);
    body["interactive"]["action"]["buttons"][1]["reply"]["id"] = json!("b0");
    assert_eq!(rejected(body).code(), CODE_PARAMETER_NOT_VALID);
}

#[test]
fn interactive_body_text_is_required_for_buttons() {
    let mut body = buttons(1);
    body["interactive"]
        .as_object_mut()
        .map(|interactive| interactive.remove("body"));
    assert_eq!(rejected(body).code(), CODE_PARAMETER_MISSING);
}

#[test]
fn ten_rows_over_sections_are_accepted() {
    accepted(&list(&[10]));
    accepted(&list(&[3, 3, 4]));
    accepted(&list(&[1; 10]));
}

#[test]
fn eleven_rows_get_the_row_count_error() {
    for shape in [&[11][..], &[5, 6][..]] {
        let error = rejected(list(shape));
        assert_eq!(error.code(), CODE_PARAMETER_NOT_VALID);
        assert_eq!(error.details(), Some("Total row count exceed max allowed count: 10"));
    }
}

#[test]
fn more_than_ten_sections_are_refused() {
    let error = rejected(list(&[0; 11]));
    assert_eq!(error.code(), CODE_PARAMETER_NOT_VALID);
    assert!(error.details().is_some_and(|details| details.contains("sections")));
}

#[test]
fn row_title_and_description_limits() {
    let mut body = list(&[2]);
    body["interactive"]["action"]["sections"][0]["rows"][0]["title"] = json!("x".repeat(25));
    assert_eq!(rejected(body).code(), CODE_PARAMETER_NOT_VALID);
    let mut body = list(&[2]);
    body["interactive"]["action"]["sections"][0]["rows"][0]["title"] = json!("x".repeat(24));
    body["interactive"]["action"]["sections"][0]["rows"][0]["description"] = json!("x".repeat(72));
    accepted(&body);
    body["interactive"]["action"]["sections"][0]["rows"][0]["description"] = json!("x".repeat(73));
    assert_eq!(rejected(body).code(), CODE_PARAMETER_NOT_VALID);
}

#[test]
fn list_button_label_is_required() {
    let mut body = list(&[2]);
    body["interactive"]["action"]
        .as_object_mut()
        .map(|action| action.remove("button"));
    let error = rejected(body);
    assert_eq!(error.code(), CODE_PARAMETER_MISSING);
    assert!(error.details().is_some_and(|details| details.contains("['button']")));
}

#[test]
fn several_sections_need_titles() {
    let mut body = list(&[2, 2]);
    body["interactive"]["action"]["sections"][1]
        .as_object_mut()
        .map(|section| section.remove("title"));
    assert_eq!(rejected(body).code(), CODE_PARAMETER_MISSING);
    let mut body = list(&[2]);
    body["interactive"]["action"]["sections"][0]
        .as_object_mut()
        .map(|section| section.remove("title"));
    accepted(&body);
}

#[test]
fn template_needs_name_and_language_code() {
    let body = send(
        "15551234567",
        "template",
        "template",
        json!({"name": "hello_world", "language": {"code": "en_US"}}),
    );
    assert!(matches!(
        accepted(&body),
        Request::Send {
            kind: MessageKind::Template,
            ..
        }
    ));
    let error = rejected(send(
        "15551234567",
        "template",
        "template",
        json!({"language": {"code": "en_US"}}),
    ));
    assert_eq!(error.code(), CODE_PARAMETER_MISSING);
    let error = rejected(send(
        "15551234567",
        "template",
        "template",
        json!({"name": "hello_world", "language": "en_US"}),
    ));
    assert_eq!(error.code(), CODE_PARAMETER_MISSING);
}

#[test]
fn template_component_types_match_in_either_case() {
    for component_type in ["BODY", "body", "Header", "button"] {
        let body = send(
            "15551234567",
            "template",
            "template",
            json!({"name": "order", "language": {"code": "en"}, "components": [
                {"type": component_type, "parameters": [{"type": "text", "text": "A"}]}
            ]}),
        );
        accepted(&body);
    }
    let error = rejected(send(
        "15551234567",
        "template",
        "template",
        json!({"name": "order", "language": {"code": "en"}, "components": [{"type": "bodyy"}]}),
    ));
    assert_eq!(error.code(), CODE_INVALID_PARAMETER);
}

#[test]
fn media_goes_by_id_or_link() {
    for media_type in ["image", "document", "video", "audio"] {
        accepted(&send("15551234567", media_type, media_type, json!({"id": "1234"})));
        accepted(&send(
            "15551234567",
            media_type,
            media_type,
            json!({"link": "https://example.com/a.bin", "caption": "x"}),
        ));
        let error = rejected(send("15551234567", media_type, media_type, json!({"caption": "x"})));
        assert_eq!(error.code(), CODE_PARAMETER_MISSING);
    }
}

#[test]
fn unknown_and_unsimulated_types() {
    let error = rejected(send("15551234567", "hologram", "hologram", json!({})));
    assert_eq!(error.code(), CODE_INVALID_PARAMETER);
    let error = rejected(send("15551234567", "sticker", "sticker", json!({"id": "1"})));
    assert_eq!(error.code(), CODE_UNSUPPORTED_TYPE);
}

#[test]
fn mark_as_read_needs_a_message_id() {
    let body = json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.ABC="});
    assert_eq!(
        accepted(&body),
        Request::MarkRead {
            message_id: "wamid.ABC="
        }
    );
    let error = rejected(json!({"messaging_product": "whatsapp", "status": "read"}));
    assert_eq!(error.code(), CODE_INVALID_PARAMETER);
    let error = rejected(json!({"messaging_product": "whatsapp", "status": "deleted", "message_id": "x"}));
    assert_eq!(error.code(), CODE_INVALID_PARAMETER);
}

#[test]
fn body_must_be_an_object() {
    assert_eq!(rejected(json!([1, 2])).code(), CODE_INVALID_PARAMETER);
}
