//! Sensitive messages, black-box: the body reaches the simulator (which keeps only a
//! redacted copy with a digest), never the SQLite file or its WAL in the clear, is purged once
//! read with a history row, each send is audited, a restart with a rotated key still sends a
//! message sealed under the old one, and without a key a sensitive message is a 400.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot read what it expects fails loudly

use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use wasp_integration::{HostOptions, TOKEN, TestHost, history_field, text_message};

const WAIT: Duration = Duration::from_secs(30);

/// Two AES-256 keys, base64: 32 bytes of 1s and of 2s.
const KEY_1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const KEY_2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

fn sensitive_text(to: &str, body: &str) -> Value {
    let mut message = text_message(to, body);
    message["sensitive"] = true.into();
    message
}

/// Puts `lines` at the top of the host's `[store]` section; the host reads them at its next start.
fn set_store_config(host: &TestHost, lines: &str) -> anyhow::Result<()> {
    let path = host.data_dir.path().join("wasp.toml");
    let text = std::fs::read_to_string(&path)?;
    let start = text.find("[store]\n").expect("the test config has a [store] section") + "[store]\n".len();
    let end = text[start..]
        .find("database_url")
        .map_or(start, |offset| start + offset);
    std::fs::write(&path, format!("{}{lines}{}", &text[..start], &text[end..]))?;
    Ok(())
}

/// Whether `needle` occurs in the host's SQLite file or its WAL.
fn in_database(host: &TestHost, needle: &str) -> bool {
    ["wasp.db", "wasp.db-wal"].iter().any(|name| {
        std::fs::read(host.data_dir.path().join(name))
            .unwrap_or_default()
            .windows(needle.len())
            .any(|window| window == needle.as_bytes())
    })
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// What the simulator kept of the send of message `id`.
fn sent_of(host: &TestHost, id: &str) -> Value {
    let sent = host.simulator.sent();
    let found = sent
        .iter()
        .find(|message| {
            message.body["biz_opaque_callback_data"]
                .as_str()
                .is_some_and(|data| data.starts_with(id))
        })
        .unwrap_or_else(|| panic!("the simulator received no send for {id}"));
    found.body.clone()
}

async fn get_json(host: &TestHost, path: &str) -> anyhow::Result<Value> {
    let response = host
        .client
        .get(format!("{}{path}", host.url))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    anyhow::ensure!(response.status().is_success(), "GET {path}: {}", response.status());
    Ok(response.json().await?)
}

/// Waits until the message's history has a row whose cause contains `text`.
async fn wait_for_cause(host: &TestHost, id: &str, text: &str) -> anyhow::Result<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let message = host.message(id).await?;
        if history_field(&message, "cause")
            .iter()
            .any(|cause| cause.contains(text))
        {
            return Ok(message);
        }
        anyhow::ensure!(Instant::now() < deadline, "no history row with {text:?}: {message:#}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_sensitive_message_goes_out_sealed_at_rest_redacted_at_the_simulator_and_purged_once_read()
-> anyhow::Result<()> {
    let mut host = TestHost::start(HostOptions {
        dispatch: "max_attempts = 1000\nretry_base_ms = 100\nretry_max_ms = 200\n".into(),
        ..HostOptions::default()
    })
    .await?;

    // No key configured: refused, naming the field, in a single send and in a batch.
    let (status, answer) = host.send(&sensitive_text("+6591234567", "no key")).await?;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["field"], "sensitive", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no encryption key configured"),
        "{answer}"
    );
    let (status, answer) = host.send_batch(&[sensitive_text("+6591234567", "no key")]).await?;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["results"][0]["error"]["field"], "messages[0].sensitive",
        "{answer}"
    );

    set_store_config(
        &host,
        &format!("encryption_keys = {{ k1 = \"{KEY_1}\" }}\nactive_key_id = \"k1\"\n"),
    )?;
    host.restart().await?;

    // Delivered and read with the right text; the simulator kept a redacted copy.
    let body = "Your one-time code is 731904";
    let (status, answer) = host.send(&sensitive_text("+6591234567", body)).await?;
    assert_eq!(status, 202, "{answer}");
    let id = answer["id"].as_str().unwrap().to_owned();
    host.wait_for(&id, "read", WAIT).await?;
    let message = wait_for_cause(&host, &id, "body purged (sensitive)").await?;
    assert_eq!(message["sensitive"], true, "{message:#}");
    assert_eq!(message["purged"], true, "{message:#}");
    assert_eq!(message["content"], Value::Null, "{message:#}");
    assert_eq!(message["upstream"], Value::Null, "{message:#}");
    assert!(!message.to_string().contains("731904"));

    let sent = sent_of(&host, &id);
    assert_eq!(sent["biz_opaque_callback_data"], format!("{id};sensitive"));
    assert_eq!(sent["redacted"], true, "{sent:#}");
    assert_eq!(sent["text"]["body"], "[redacted]", "{sent:#}");
    assert_eq!(sent["redacted_sha256"], sha256_hex(body), "{sent:#}");
    let over_http: Value = host
        .client
        .get(format!("{}/_sim/sent", host.simulator.base_url()))
        .send()
        .await?
        .json()
        .await?;
    assert!(!over_http.to_string().contains("731904"), "{over_http}");
    assert!(over_http.to_string().contains("[redacted]"), "{over_http}");

    // A plain message is unchanged: kept in full.
    let (_, plain) = host.send(&text_message("+6591234568", "plain body 5151")).await?;
    let plain_id = plain["id"].as_str().unwrap().to_owned();
    host.wait_for(&plain_id, "read", WAIT).await?;
    assert_eq!(sent_of(&host, &plain_id)["text"]["body"], "plain body 5151");
    assert_eq!(host.message(&plain_id).await?["sensitive"], false);

    // Audited, without the body.
    let audit = get_json(&host, "/v1/audit?action=message.sensitive_send").await?;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{audit:#}");
    assert_eq!(entries[0]["target"], id.as_str());
    assert_eq!(entries[0]["token_id"], "bootstrap");

    // A message sealed under k1 waits (the upstream fails) while the host is killed.
    host.simulator.set_config(|config| config.error_rate = 1.0);
    let older = "Your older code is 662288";
    let (status, answer) = host.send(&sensitive_text("+6591234569", older)).await?;
    assert_eq!(status, 202, "{answer}");
    let older_id = answer["id"].as_str().unwrap().to_owned();
    wait_for_cause(&host, &older_id, "will retry").await?;
    host.kill_hard()?;

    assert!(
        !in_database(&host, "731904"),
        "the body is in the database file in the clear"
    );
    assert!(
        !in_database(&host, "662288"),
        "a pending body is in the database file in the clear"
    );
    assert!(
        in_database(&host, "plain body 5151"),
        "the check would miss a body in the clear"
    );
    assert!(!host.log().contains("731904") && !host.log().contains("662288"));

    // Rotated: k2 seals new bodies, k1 is kept for the old ones.
    set_store_config(
        &host,
        &format!("encryption_keys = {{ k1 = \"{KEY_1}\", k2 = \"{KEY_2}\" }}\nactive_key_id = \"k2\"\n"),
    )?;
    host.simulator.set_config(|config| config.error_rate = 0.0);
    host.restart().await?;
    host.wait_for(&older_id, "read", WAIT).await?;
    assert_eq!(sent_of(&host, &older_id)["redacted_sha256"], sha256_hex(older));
    let newer = "Your newer code is 440011";
    let (status, answer) = host.send(&sensitive_text("+6591234560", newer)).await?;
    assert_eq!(status, 202, "{answer}");
    let newer_id = answer["id"].as_str().unwrap().to_owned();
    host.wait_for(&newer_id, "read", WAIT).await?;
    assert_eq!(sent_of(&host, &newer_id)["redacted_sha256"], sha256_hex(newer));
    wait_for_cause(&host, &older_id, "body purged (sensitive)").await?;
    assert!(!in_database(&host, "662288") && !in_database(&host, "440011"));
    assert!(!host.log().contains("440011"));
    Ok(())
}
