//! `GET /metrics`, black-box: after messages went all the way to `read` and webhooks came in,
//! the scrape parses as the Prometheus text format, names follow `wasp_<thing>_<unit>`, the
//! expected series count what happened, no label carries a phone number or an id, the series
//! stay few; and `server.metrics_token` is enforced when set.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot read what it expects fails loudly

use std::{collections::BTreeMap, time::Duration};

use serde_json::json;
use wasp_integration::{APP_SECRET, HostOptions, TOKEN, TestHost, text_message};

const WAIT: Duration = Duration::from_secs(30);
const MESSAGES: usize = 5;

/// One sample line: `name{label="value",...} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A scrape: the declared type of each family, and every sample.
#[derive(Debug, Default)]
struct Scrape {
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Scrape {
    /// The sum of `name`'s samples whose labels include every pair of `with`.
    fn sum(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|sample| sample.name == name)
            .filter(|sample| {
                with.iter()
                    .all(|(key, value)| sample.labels.get(*key).map(String::as_str) == Some(*value))
            })
            .map(|sample| sample.value)
            .sum()
    }

    fn has(&self, name: &str, with: &[(&str, &str)]) -> bool {
        self.samples.iter().any(|sample| {
            sample.name == name
                && with
                    .iter()
                    .all(|(key, value)| sample.labels.get(*key).map(String::as_str) == Some(*value))
        })
    }
}

/// Parses the text exposition format 0.0.4 (the subset an exporter writes: `# HELP`,
/// `# TYPE`, samples with optional labels, no timestamps).
fn parse(text: &str) -> anyhow::Result<Scrape> {
    let mut scrape = Scrape::default();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("# HELP ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind), None) = (parts.next(), parts.next(), parts.next()) else {
                anyhow::bail!("line {}: malformed TYPE: {line}", number + 1);
            };
            anyhow::ensure!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "line {}: unknown type {kind}",
                number + 1
            );
            scrape.types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        anyhow::ensure!(!line.starts_with('#'), "line {}: unknown comment: {line}", number + 1);
        let (name, labels, rest) = match line.find('{') {
            Some(open) => {
                let close = line
                    .rfind('}')
                    .ok_or_else(|| anyhow::anyhow!("line {}: unclosed labels", number + 1))?;
                (&line[..open], parse_labels(&line[open + 1..close])?, &line[close + 1..])
            }
            None => {
                let space = line
                    .find(' ')
                    .ok_or_else(|| anyhow::anyhow!("line {}: no value", number + 1))?;
                (&line[..space], BTreeMap::new(), &line[space..])
            }
        };
        anyhow::ensure!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "line {}: bad metric name {name:?}",
            number + 1
        );
        let value = rest.trim();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            other => other
                .parse()
                .map_err(|error| anyhow::anyhow!("line {}: value {other:?}: {error}", number + 1))?,
        };
        scrape.samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Ok(scrape)
}

/// `key="value",key="value"` with `\"`, `\\` and `\n` escapes in values.
fn parse_labels(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek() == Some(&',') || chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(labels);
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        anyhow::ensure!(chars.next() == Some('"'), "label {key}: value is not quoted");
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => anyhow::bail!("label {key}: dangling escape"),
                },
                Some('"') => break,
                Some(other) => value.push(other),
                None => anyhow::bail!("label {key}: unterminated value"),
            }
        }
        labels.insert(key.trim().to_owned(), value);
    }
}

/// The family a sample belongs to (histogram samples carry a suffix).
fn family<'a>(scrape: &Scrape, name: &'a str) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && scrape.types.contains_key(base)
        {
            return base;
        }
    }
    name
}

fn looks_like_phone_number(value: &str) -> bool {
    let digits = value.strip_prefix('+').unwrap_or(value);
    digits.len() >= 8 && digits.chars().all(|c| c.is_ascii_digit())
}

fn looks_like_uuid(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    parts.len() == 5
        && parts.iter().map(|part| part.len()).eq([8, 4, 4, 4, 12])
        && parts.iter().all(|part| part.chars().all(|c| c.is_ascii_hexdigit()))
}

async fn scrape(host: &TestHost, token: Option<&str>) -> anyhow::Result<(u16, Option<String>, String)> {
    let mut request = host.client.get(format!("{}/metrics", host.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    Ok((status, content_type, response.text().await?))
}

#[tokio::test]
async fn a_scrape_after_traffic_is_well_formed_bounded_and_counts_it() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let mut ids = Vec::new();
    for index in 0..MESSAGES {
        let (status, answer) = host
            .send(&text_message(&format!("+659100{index:04}"), &format!("hello {index}")))
            .await?;
        assert_eq!(status, 202, "{answer}");
        ids.push(answer["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        host.wait_for(id, "read", WAIT).await?;
    }
    // An inbound message and an unknown route and message id, so those series exist too.
    let inbound = serde_json::to_vec(
        &json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "1", "phone_number_id": "100000000000001"},
        "contacts": [{"profile": {"name": "A"}, "wa_id": "6591000000"}],
        "messages": [{"from": "6591000000", "id": "wamid.METRICS", "timestamp": "1900000000", "type": "text", "text": {"body": "hi"}}]}}]}]}),
    )?;
    assert_eq!(host.post_webhook(&inbound, Some(APP_SECRET)).await?, 200);
    let (status, _) = host
        .call(
            reqwest::Method::GET,
            "/v1/messages/0190f1e2-0000-7000-8000-000000000000",
            None,
        )
        .await?;
    assert_eq!(status, 404);
    host.call(reqwest::Method::GET, "/no/such/route/6591000000", None)
        .await?;

    let (status, content_type, text) = scrape(&host, None).await?;
    assert_eq!(status, 200, "{text}");
    assert!(
        content_type
            .as_deref()
            .is_some_and(|kind| kind.starts_with("text/plain; version=0.0.4")),
        "{content_type:?}"
    );
    let scrape = parse(&text)?;
    eprintln!(
        "metrics scrape: {} bytes, {} series, {} families",
        text.len(),
        scrape.samples.len(),
        scrape.types.len()
    );

    // Names: `wasp_` prefix, `_total` counters, `_seconds` durations.
    for (name, kind) in &scrape.types {
        assert!(name.starts_with("wasp_"), "{name} lacks the wasp_ prefix");
        if kind == "counter" {
            assert!(name.ends_with("_total"), "counter {name} does not end in _total");
        }
        if name.contains("duration") {
            assert!(name.ends_with("_seconds"), "duration {name} does not end in _seconds");
        }
    }
    for sample in &scrape.samples {
        let family = family(&scrape, &sample.name);
        assert!(scrape.types.contains_key(family), "{} has no # TYPE", sample.name);
        for (key, value) in &sample.labels {
            assert!(
                !looks_like_phone_number(value) && !looks_like_uuid(value),
                "{}: label {key}={value:?} looks like a phone number or an id",
                sample.name
            );
            assert!(!value.contains("/no/such"), "{}: a raw path is a label", sample.name);
        }
    }
    assert!(scrape.samples.len() < 500, "{} series", scrape.samples.len());

    // What the load did.
    let n = MESSAGES as f64;
    let utility = ("category", "utility");
    assert!(scrape.sum("wasp_messages_accepted_total", &[utility]) >= n, "{text}");
    for status in ["sent", "delivered", "read"] {
        assert!(
            scrape.sum("wasp_messages_total", &[("status", status), utility]) >= n,
            "{status}: {text}"
        );
    }
    assert!(
        scrape.sum(
            "wasp_upstream_request_duration_seconds_count",
            &[("channel", "whatsapp"), ("outcome", "ok")]
        ) >= n
    );
    assert!(scrape.has(
        "wasp_upstream_request_duration_seconds_bucket",
        &[("outcome", "ok"), ("le", "+Inf")]
    ));
    assert!(scrape.sum("wasp_webhook_events_total", &[("kind", "status")]) >= 3.0 * n);
    assert!(scrape.sum("wasp_webhook_events_total", &[("kind", "inbound")]) >= 1.0);
    assert!(scrape.sum("wasp_store_batch_rows_count", &[]) >= 1.0);
    assert!(scrape.sum("wasp_store_commit_duration_seconds_count", &[]) >= 1.0);
    for priority in ["critical", "high", "normal", "bulk"] {
        assert!(scrape.has("wasp_backlog_messages", &[("priority", priority)]), "{text}");
    }
    assert!(
        scrape.sum(
            "wasp_http_requests_total",
            &[("route", "/v1/messages"), ("method", "POST"), ("status", "202")]
        ) >= n
    );
    assert!(scrape.has(
        "wasp_http_requests_total",
        &[("route", "/v1/messages/{id}"), ("status", "404")]
    ));
    assert!(scrape.has("wasp_http_requests_total", &[("route", "unmatched")]));
    Ok(())
}

#[tokio::test]
async fn the_metrics_token_is_required_when_configured() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions {
        server: "metrics_token = \"scrape-secret\"\n".to_owned(),
        ..HostOptions::default()
    })
    .await?;
    for token in [None, Some("wrong"), Some(TOKEN)] {
        let (status, body) = host.call_as(token, reqwest::Method::GET, "/metrics", None).await?;
        assert_eq!(status, 401, "{token:?}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    }
    let (status, content_type, text) = scrape(&host, Some("scrape-secret")).await?;
    assert_eq!(status, 200, "{text}");
    assert!(content_type.is_some_and(|kind| kind.starts_with("text/plain")));
    parse(&text)?;
    // The token is a secret: masked in the logged config.
    assert!(!host.log().contains("scrape-secret"), "the metrics token was logged");
    Ok(())
}

#[tokio::test]
async fn plugin_calls_are_timed_by_plugin_and_hook() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions {
        chain: vec![wasp_integration::ChainEntry::new("button-limit")?],
        ..HostOptions::default()
    })
    .await?;
    let (status, answer) = host
        .send(&wasp_integration::buttons_message("+6591234567", 5, None))
        .await?;
    assert_eq!(status, 202, "{answer}");
    host.wait_for(answer["id"].as_str().unwrap(), "read", WAIT).await?;
    let (_, _, text) = scrape(&host, None).await?;
    let scrape = parse(&text)?;
    assert_eq!(
        scrape
            .types
            .get("wasp_policy_call_duration_seconds")
            .map(String::as_str),
        Some("histogram"),
        "{text}"
    );
    assert!(
        scrape.sum("wasp_policy_call_duration_seconds_count", &[("plugin", "button-limit")]) >= 1.0,
        "{text}"
    );
    for sample in scrape
        .samples
        .iter()
        .filter(|sample| sample.name.starts_with("wasp_policy_call_duration_seconds"))
    {
        let hook = sample.labels.get("hook").map(String::as_str).unwrap_or_default();
        assert!(
            ["on-submit", "on-dispatch", "on-event", "on-template"].contains(&hook),
            "{hook}"
        );
    }
    Ok(())
}
