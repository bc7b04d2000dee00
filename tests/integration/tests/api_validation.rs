//! Bad input gets a 4xx with a JSON error naming the field, and nothing is stored.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot read what it expects fails loudly

use serde_json::{Value, json};
use wasp_integration::{HostOptions, TOKEN, TestHost, text_message};

async fn post_raw(
    host: &TestHost,
    body: Vec<u8>,
    token: Option<&str>,
    content_type: &str,
) -> anyhow::Result<(u16, Value)> {
    let mut request = host
        .client
        .post(format!("{}/v1/messages", host.url))
        .header("content-type", content_type)
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

#[tokio::test]
async fn invalid_requests_name_the_field() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let text = json!({"type": "text", "text": {"body": "hi"}});
    let cases = [
        (json!({"category": "utility", "content": text}), "to"),
        (
            json!({"to": "6591234567", "category": "utility", "content": text}),
            "to",
        ),
        (
            json!({"to": "+65 9123 4567", "category": "utility", "content": text}),
            "to",
        ),
        (
            json!({"to": "+6591234567", "category": "newsletter", "content": text}),
            "category",
        ),
        (
            json!({"to": "+6591234567", "category": "utility", "priority": "urgent", "content": text}),
            "priority",
        ),
        (json!({"to": "+6591234567", "category": "utility"}), "content"),
        (
            json!({"to": "+6591234567", "category": "utility", "content": {"type": "sticker", "sticker": {"id": "1"}}}),
            "content.type",
        ),
        (
            json!({"to": "+6591234567", "category": "utility", "content": {"type": "text", "text": {"body": ""}}}),
            "content.text.body",
        ),
        (
            json!({"to": "+6591234567", "category": "utility", "content": {"type": "text", "text": {"body": 5}}}),
            "content.text.body",
        ),
        (
            json!({"to": "+6591234567", "category": "utility", "content": text, "colour": "red"}),
            "colour",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = host.send(&body).await?;
        assert_eq!(status, 400, "{body} answered {answer}");
        assert_eq!(answer["error"]["field"], field, "{body} answered {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|message| !message.is_empty())
        );
    }
    Ok(())
}

#[tokio::test]
async fn malformed_oversized_unauthenticated_and_unknown_are_refused() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let (status, answer) = post_raw(&host, b"{not json".to_vec(), Some(TOKEN), "application/json").await?;
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["code"], "invalid_json");

    let huge = serde_json::to_vec(&text_message("+6591234567", &"x".repeat(400_000)))?;
    let (status, answer) = post_raw(&host, huge, Some(TOKEN), "application/json").await?;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["error"]["code"], "payload_too_large");

    let body = serde_json::to_vec(&text_message("+6591234567", "hi"))?;
    let (status, answer) = post_raw(&host, body.clone(), None, "application/json").await?;
    assert_eq!(status, 401);
    assert_eq!(answer["error"]["code"], "unauthorized");
    let (status, _) = post_raw(&host, body.clone(), Some("wrong-token"), "application/json").await?;
    assert_eq!(status, 401);
    let (status, _) = post_raw(&host, body, Some(TOKEN), "text/plain").await?;
    assert_eq!(status, 415);

    let missing = host
        .client
        .get(format!("{}/v1/messages/0196f1c2-0000-7000-8000-000000000000", host.url))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    assert_eq!(missing.status(), 404);
    let bad_id = host
        .client
        .get(format!("{}/v1/messages/nope", host.url))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    assert_eq!(bad_id.status(), 400);
    assert_eq!(bad_id.json::<Value>().await?["error"]["field"], "id");

    // Nothing of the above was sent upstream.
    assert!(host.simulator.sent().is_empty());
    Ok(())
}
