//! Hostile input against the API, black-box: each case answers a 4xx with the JSON error
//! shape (never a 5xx, never a crash), and what was accepted before is still there after.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot read what it expects fails loudly

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use wasp_integration::{HostOptions, TOKEN, TestHost, text_message};

/// Sends raw bytes; answers the status and the body as JSON (Null when it is not JSON).
async fn raw(
    host: &TestHost,
    method: Method,
    path: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> anyhow::Result<(u16, Value)> {
    let mut request = host.client.request(method, format!("{}{path}", host.url)).body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

fn assert_error_shape(case: &str, status: u16, body: &Value) {
    assert!((400..500).contains(&status), "{case}: answered {status} {body}");
    assert!(
        body["error"]["code"].as_str().is_some_and(|code| !code.is_empty())
            && body["error"]["message"].as_str().is_some(),
        "{case}: answered {status} without the error shape: {body}"
    );
}

const AUTH: &str = "Bearer test-admin-token";

#[tokio::test]
async fn malformed_bodies_are_refused_and_nothing_breaks() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    // Something accepted first, to check it survives the rest.
    let (code, accepted) = host.send(&text_message("+6591234567", "before")).await?;
    assert_eq!(code, 202);
    let id = accepted["id"].as_str().unwrap().to_owned();

    let json_headers = [("authorization", AUTH), ("content-type", "application/json")];
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_content = format!(
        r#"{{"to": "+6591234567", "category": "utility", "content": {}{}}}"#,
        "{\"a\":".repeat(5_000),
        "1}".repeat(5_000)
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("nesting 100,000 deep", deep.into_bytes()),
        ("nested content", deep_content.into_bytes()),
        ("invalid UTF-8", b"{\"to\": \"+65\xff\xfe\", \"category\": \"utility\"}".to_vec()),
        (
            "a duplicate key",
            br#"{"to": "+6591234567", "to": "+6591234568", "category": "utility", "content": {"type": "text", "text": {"body": "x"}}}"#.to_vec(),
        ),
        (
            "a number where a string goes",
            br#"{"to": 6591234567, "category": "utility", "content": {"type": "text", "text": {"body": "x"}}}"#.to_vec(),
        ),
        (
            "a huge integer",
            br#"{"to": "+6591234567", "category": "utility", "expires_in_ms": 1e400, "content": {"type": "text", "text": {"body": "x"}}}"#.to_vec(),
        ),
        ("an empty body", Vec::new()),
        (
            "an array where the content object goes",
            br#"{"to": "+6591234567", "category": "utility", "content": ["text", {"body": "x"}]}"#.to_vec(),
        ),
        ("a whole request as an array", br#"["+6591234567", "utility"]"#.to_vec()),
        (
            "trailing bytes after the JSON",
            br#"{"to": "+6591234567", "category": "utility", "content": {"type": "text", "text": {"body": "x"}}} {"to": "+1"}"#.to_vec(),
        ),
        ("a JSON string instead of an object", br#""hello""#.to_vec()),
        (
            "a phone number with a NUL byte",
            "{\"to\": \"+6591234567\\u0000\", \"category\": \"utility\", \"content\": {\"type\": \"text\", \"text\": {\"body\": \"x\"}}}".as_bytes().to_vec(),
        ),
        (
            "a number with letters in it",
            br#"{"to": "+65912abc67", "category": "utility", "content": {"type": "text", "text": {"body": "x"}}}"#.to_vec(),
        ),
        (
            "a number too long for E.164",
            br#"{"to": "+6591234567123456789", "category": "utility", "content": {"type": "text", "text": {"body": "x"}}}"#.to_vec(),
        ),
    ];
    for (case, body) in cases {
        let (status, answer) = raw(&host, Method::POST, "/v1/messages", body, &json_headers).await?;
        assert_error_shape(case, status, &answer);
    }

    let (status, answer) = raw(
        &host,
        Method::POST,
        "/v1/messages/batch",
        serde_json::to_vec(&json!({"messages": vec![text_message("+6591234567", "x"); 10_001]}))?,
        &json_headers,
    )
    .await?;
    assert_error_shape("a batch over the limit", status, &answer);

    // Attributes given positionally, as an array, are refused naming the field.
    let (status, answer) = raw(
        &host,
        Method::PUT,
        "/v1/contacts/6591234567",
        br#"{"attributes": ["Asia/Singapore", "en", [], []]}"#.to_vec(),
        &json_headers,
    )
    .await?;
    assert_error_shape("attributes as an array", status, &answer);
    assert_eq!(answer["error"]["field"], "attributes", "{answer}");

    // The message accepted before is intact, and the host still serves.
    let message = host.message(&id).await?;
    assert_eq!(message["to"], "+6591234567", "{message}");
    let (code, _) = host.send(&text_message("+6591234567", "after")).await?;
    assert_eq!(code, 202);
    Ok(())
}

#[tokio::test]
async fn tokens_are_taken_only_from_the_authorization_header() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let json = ("content-type", "application/json");
    let body = || serde_json::to_vec(&text_message("+6591234567", "x")).unwrap();
    // (what is tried, path, headers)
    type Case<'a> = (&'a str, String, Vec<(&'a str, String)>);
    let cases: Vec<Case> = vec![
        (
            "a token in the query string",
            format!("/v1/messages?access_token={TOKEN}"),
            vec![],
        ),
        (
            "a lower-case scheme",
            "/v1/messages".into(),
            vec![("authorization", format!("bearer {TOKEN}"))],
        ),
        (
            "basic auth",
            "/v1/messages".into(),
            vec![("authorization", format!("Basic {TOKEN}"))],
        ),
        (
            "a token with a space inside",
            "/v1/messages".into(),
            vec![("authorization", format!("Bearer {} {}", &TOKEN[..4], &TOKEN[4..]))],
        ),
        (
            "a prefix of the token",
            "/v1/messages".into(),
            vec![("authorization", format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]))],
        ),
        (
            "the token twice",
            "/v1/messages".into(),
            vec![("authorization", format!("Bearer {TOKEN}{TOKEN}"))],
        ),
        (
            "an empty token",
            "/v1/messages".into(),
            vec![("authorization", "Bearer ".into())],
        ),
    ];
    for (case, path, headers) in cases {
        let mut all: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
        all.push(json);
        let (status, answer) = raw(&host, Method::POST, &path, body(), &all).await?;
        assert_eq!(status, 401, "{case}: {answer}");
        assert_error_shape(case, status, &answer);
    }
    assert!(host.simulator.sent().is_empty());
    Ok(())
}

#[tokio::test]
async fn paths_filters_and_urls_cannot_reach_outside_their_purpose() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let auth = [("authorization", AUTH)];
    let get_cases = [
        ("a traversing plugin name", "/v1/plugins/..%2F..%2Fetc%2Fpasswd"),
        ("SQL in a status filter", "/v1/messages?status=sent'%20OR%201=1%20--"),
        (
            "SQL in a recipient filter",
            "/v1/messages?to=%2B65'%3B%20DROP%20TABLE%20messages%3B--",
        ),
        (
            "a page limit past the maximum",
            "/v1/messages?limit=100000000000000000000",
        ),
        ("a negative page limit", "/v1/audit?limit=-1"),
        ("a cursor that is no cursor", "/v1/messages?cursor=%00%00%00"),
        ("an unknown query key", "/v1/messages?statuss=sent"),
        ("a template listing past the maximum", "/v1/templates?limit=501"),
        ("an unknown template filter", "/v1/templates?colour=red"),
        ("a template limit that is no number", "/v1/templates?limit=many"),
        ("a message id that is no id", "/v1/messages/1%20OR%201=1"),
        ("a template name that is not UTF-8", "/v1/templates/%FF"),
        ("a plugin name that is not UTF-8", "/v1/plugins/%FF%FE"),
        ("a contact that is not UTF-8", "/v1/contacts/%C0%AF"),
    ];
    for (case, path) in get_cases {
        let (status, answer) = raw(&host, Method::GET, path, Vec::new(), &auth).await?;
        assert!(
            status != 200 || answer["messages"] == json!([]),
            "{case}: {status} {answer}"
        );
        if status != 200 {
            assert_error_shape(case, status, &answer);
        }
    }
    // The messages table is still there and answers.
    let (code, _) = host.send(&text_message("+6591234567", "still here")).await?;
    assert_eq!(code, 202);
    let (code, page) = host.call(Method::GET, "/v1/messages?limit=10", None).await?;
    assert_eq!(code, 200);
    assert_eq!(page["messages"].as_array().map(Vec::len), Some(1), "{page}");

    // Callbacks go nowhere a token holder should not reach.
    for (case, url) in [
        ("cloud metadata", "https://169.254.169.254/latest/meta-data"),
        ("plain http to another host", "http://10.0.0.5/hook"),
        ("a file URL", "file:///etc/passwd"),
        ("credentials in the URL", "https://user:secret@hooks.example.com/"),
        ("a header smuggled in", "https://hooks.example.com/\r\nX-Evil: 1"),
    ] {
        let mut message = text_message("+6591234567", "x");
        message["callback_url"] = json!(url);
        let (status, answer) = host.send(&message).await?;
        assert_eq!(status, 400, "{case}: {answer}");
        assert_eq!(answer["error"]["field"], "callback_url", "{case}: {answer}");
    }
    Ok(())
}

#[tokio::test]
async fn wrong_methods_and_unknown_routes_answer_the_error_shape() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let auth = [("authorization", AUTH)];
    for (case, method, path) in [
        ("a method the route does not serve", Method::PATCH, "/v1/messages"),
        ("DELETE on the message collection", Method::DELETE, "/v1/messages"),
        ("an unknown route", Method::GET, "/v1/nothing-here"),
        ("a very long path", Method::GET, &format!("/v1/{}", "a/".repeat(2_000))),
    ] {
        let (status, answer) = raw(&host, method, path, Vec::new(), &auth).await?;
        assert_error_shape(case, status, &answer);
    }
    // A webhook with no signature, or another body's signature, changes nothing.
    let body = br#"{"object":"whatsapp_business_account","entry":[]}"#.to_vec();
    let (status, answer) = raw(&host, Method::POST, "/webhooks/whatsapp", body.clone(), &[]).await?;
    assert_eq!(status, 401, "{answer}");
    let signature = wasp_integration::sign(wasp_integration::APP_SECRET, b"{}");
    let (status, _) = raw(
        &host,
        Method::POST,
        "/webhooks/whatsapp",
        body,
        &[("x-hub-signature-256", signature.as_str())],
    )
    .await?;
    assert_eq!(status, 401);
    // A slow client does not hold the host: others are served meanwhile.
    let stream = tokio::net::TcpStream::connect(host.url.trim_start_matches("http://")).await?;
    let (code, _) = host.call(Method::GET, "/v1/regions", None).await?;
    assert_eq!(code, 200);
    drop(stream);
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}
