//! Tokens, scopes and the audit log, black-box: a scoped token does what its scopes allow and
//! nothing else, revoked tokens stop at once, secrets are shown once, every `/v1` route
//! answers 401 without a token and 403 without its scope, and admin actions are audited.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot read what it expects fails loudly

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{Value, json};
use wasp::api::auth::{PUBLIC_ROUTES, ROUTES, Scope};
use wasp_integration::{HostOptions, TOKEN, TestHost, plugin, text_message};

/// Creates a token with the bootstrap token; answers (id, secret).
async fn create_token(host: &TestHost, name: &str, scopes: &[&str]) -> anyhow::Result<(String, String)> {
    let (status, body) = host
        .call_as(
            Some(TOKEN),
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": name, "scopes": scopes})),
        )
        .await?;
    anyhow::ensure!(status == 201, "creating token {name}: {status} {body}");
    Ok((
        body["id"].as_str().unwrap().to_owned(),
        body["token"].as_str().unwrap().to_owned(),
    ))
}

/// A route's path with its parameters filled in.
fn concrete(path: &str) -> String {
    path.replace("{id}", "0190c2a8-0000-7000-8000-000000000000")
        .replace("{name}", "no-such-plugin")
        .replace("{wa_id}", "6591234567")
        .replace("{phone_number}", "6590000000")
        .replace("{language}", "en")
}

fn method(route: &wasp::api::auth::Route) -> Method {
    route.verb.method()
}

#[tokio::test]
async fn a_send_token_sends_and_nothing_else_and_a_revoked_token_stops() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let (id, secret) = create_token(&host, "billing", &["messages:send"]).await?;
    assert!(secret.starts_with("wasp_"), "{secret}");
    assert!(id.starts_with("tok_"), "{id}");

    let (status, body) = host
        .call_as(
            Some(&secret),
            Method::POST,
            "/v1/messages",
            Some(text_message("+6591234567", "hi")),
        )
        .await?;
    assert_eq!(status, 202, "{body}");

    let (status, body) = host.call_as(Some(&secret), Method::GET, "/v1/plugins", None).await?;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("plugins:read"),
        "{body}"
    );
    let (status, body) = host
        .call_as(
            Some(&secret),
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "escalate", "scopes": ["admin"]})),
        )
        .await?;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("admin"), "{body}");

    // Revoked: 401 at once; revoking again is fine, an unknown id is not.
    let (status, _) = host
        .call_as(Some(TOKEN), Method::DELETE, &format!("/v1/tokens/{id}"), None)
        .await?;
    assert_eq!(status, 204);
    let (status, body) = host
        .call_as(
            Some(&secret),
            Method::POST,
            "/v1/messages",
            Some(text_message("+6591234567", "again")),
        )
        .await?;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, _) = host
        .call_as(Some(TOKEN), Method::DELETE, &format!("/v1/tokens/{id}"), None)
        .await?;
    assert_eq!(status, 204, "revoking twice is idempotent");
    let (status, body) = host
        .call_as(Some(TOKEN), Method::DELETE, "/v1/tokens/tok_unknown", None)
        .await?;
    assert_eq!(status, 404, "{body}");

    // Tokens outlive a restart, revocations too; the bootstrap token keeps working.
    let (_, kept) = create_token(&host, "kept", &["plugins:read"]).await?;
    let mut host = host;
    host.restart().await?;
    assert_eq!(
        host.call_as(Some(&kept), Method::GET, "/v1/plugins", None).await?.0,
        200
    );
    assert_eq!(
        host.call_as(Some(&secret), Method::GET, "/v1/plugins", None).await?.0,
        401
    );
    assert_eq!(host.call_as(Some(TOKEN), Method::GET, "/v1/tokens", None).await?.0, 200);
    Ok(())
}

#[tokio::test]
async fn listing_tokens_never_shows_a_secret() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let (id, secret) = create_token(&host, "reader", &["messages:read", "plugins:read"]).await?;
    let (status, body) = host.call_as(Some(TOKEN), Method::GET, "/v1/tokens", None).await?;
    assert_eq!(status, 200);
    let text = body.to_string();
    assert!(!text.contains(&secret), "{text}");
    assert!(!text.contains("wasp_"), "{text}");
    assert!(!text.contains(TOKEN), "{text}");
    let tokens = body["tokens"].as_array().unwrap();
    let listed = tokens.iter().find(|token| token["id"] == id.as_str()).unwrap();
    assert_eq!(listed["name"], "reader");
    assert_eq!(listed["scopes"], json!(["messages:read", "plugins:read"]));
    assert!(listed.get("token").is_none(), "{listed}");
    assert!(listed["created_at"].is_string());

    // Bad requests name their field.
    let (status, body) = host
        .call_as(
            Some(TOKEN),
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "x", "scopes": ["messages:send", "messages:delete"]})),
        )
        .await?;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "scopes[1]");
    let (status, body) = host
        .call_as(
            Some(TOKEN),
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "", "scopes": ["admin"]})),
        )
        .await?;
    assert_eq!((status, body["error"]["field"].clone()), (400, json!("name")));
    let (status, body) = host
        .call_as(
            Some(TOKEN),
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "x", "scopes": []})),
        )
        .await?;
    assert_eq!((status, body["error"]["field"].clone()), (400, json!("scopes")));
    Ok(())
}

/// Every route of the router (the router is built from `wasp::api::auth::ROUTES`, so this is
/// all of them): 401 without a token or with a wrong one, 403 with a token holding every
/// scope but the one it needs, and neither with a token holding just that scope.
#[tokio::test]
async fn every_route_needs_a_token_and_its_scope() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let mut lacking: HashMap<Scope, String> = HashMap::new();
    let mut holding: HashMap<Scope, String> = HashMap::new();
    for route in ROUTES {
        if lacking.contains_key(&route.scope) {
            continue;
        }
        let others: Vec<&str> = Scope::ALL
            .into_iter()
            .filter(|scope| *scope != route.scope && *scope != Scope::Admin)
            .map(Scope::as_str)
            .collect();
        let (_, secret) = create_token(&host, &format!("all but {}", route.scope), &others).await?;
        lacking.insert(route.scope, secret);
        let (_, secret) = create_token(&host, &format!("only {}", route.scope), &[route.scope.as_str()]).await?;
        holding.insert(route.scope, secret);
    }

    let mut checked = 0;
    for route in ROUTES {
        let path = concrete(route.path);
        let label = format!("{} {}", route.verb.as_str(), route.path);
        assert!(route.path.starts_with("/v1/"), "{label}");

        let (status, body) = host.call_as(None, method(route), &path, None).await?;
        assert_eq!(status, 401, "{label} without a token: {body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{label}");
        let (status, _) = host
            .call_as(Some("wasp_not-a-token"), method(route), &path, None)
            .await?;
        assert_eq!(status, 401, "{label} with a wrong token");

        let (status, body) = host
            .call_as(Some(&lacking[&route.scope]), method(route), &path, None)
            .await?;
        assert_eq!(status, 403, "{label} without scope {}: {body}", route.scope);
        assert_eq!(body["error"]["code"], "forbidden", "{label}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(route.scope.as_str()),
            "{label}: {body}"
        );

        let (status, body) = host
            .call_as(Some(&holding[&route.scope]), method(route), &path, None)
            .await?;
        assert!(
            status != 401 && status != 403,
            "{label} with scope {}: {status} {body}",
            route.scope
        );
        checked += 1;
    }
    assert_eq!(checked, ROUTES.len());

    // Health checks need no token (webhooks have their own checks); an unknown /v1 path is a 404.
    for (verb, path) in PUBLIC_ROUTES.iter().filter(|(_, path)| path.ends_with("z")) {
        let (status, _) = host.call_as(None, verb.method(), path, None).await?;
        assert_eq!(status, 200, "{} {path}", verb.as_str());
    }
    assert_eq!(
        host.call_as(Some(TOKEN), Method::GET, "/v1/nothing-here", None)
            .await?
            .0,
        404
    );
    Ok(())
}

async fn audit(host: &TestHost, query: &str) -> anyhow::Result<(u16, Value)> {
    host.call_as(Some(TOKEN), Method::GET, &format!("/v1/audit{query}"), None)
        .await
}

#[tokio::test]
async fn admin_actions_are_audited_with_who_what_and_how_it_ended() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let (operator_id, operator) = create_token(&host, "operator", &["plugins:write", "plugins:read"]).await?;

    let response = host
        .client
        .post(format!("{}/v1/plugins/limits/versions", host.url))
        .bearer_auth(&operator)
        .header("content-type", "application/wasm")
        .body(std::fs::read(plugin("button-limit")?)?)
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 201);
    let version = response.json::<Value>().await?["version"].as_str().unwrap().to_owned();
    let (status, body) = host
        .call_as(
            Some(&operator),
            Method::POST,
            "/v1/plugins/limits/activate",
            Some(json!({"version": version})),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let (status, _) = host
        .call_as(
            Some(&operator),
            Method::POST,
            "/v1/plugins/limits/activate",
            Some(json!({"version": "0".repeat(64)})),
        )
        .await?;
    assert_eq!(status, 404);
    // Refused for want of a scope: audited too.
    let (status, _) = host
        .call_as(
            Some(&operator),
            Method::PUT,
            "/v1/contacts/6591234567",
            Some(json!({"opted_out": true})),
        )
        .await?;
    assert_eq!(status, 403);
    let (status, _) = host
        .call_as(
            Some(TOKEN),
            Method::PUT,
            "/v1/contacts/+6591234567",
            Some(json!({"opted_out": true})),
        )
        .await?;
    assert_eq!(status, 200);
    let (status, _) = host
        .call_as(
            Some(TOKEN),
            Method::PUT,
            "/v1/senders/6590000000",
            Some(json!({"tier_limit": 1000, "quality": "green"})),
        )
        .await?;
    assert_eq!(status, 200);

    let (status, body) = audit(&host, "?action=plugin.activate").await?;
    assert_eq!(status, 200, "{body}");
    let entries = body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{body}");
    assert_eq!(entries[0]["outcome"], "not_found", "newest first");
    assert_eq!(entries[1]["outcome"], "ok");
    for entry in entries {
        assert_eq!(entry["token_id"], operator_id.as_str());
        assert_eq!(entry["target"], "limits");
        assert!(entry["at"].is_string());
    }
    let (_, body) = audit(&host, "?action=token.create").await?;
    let created = &body["entries"][0];
    assert_eq!(created["token_id"], "bootstrap");
    assert_eq!(created["target"], operator_id.as_str());
    assert_eq!(created["outcome"], "ok");

    let (_, body) = audit(&host, &format!("?token_id={operator_id}")).await?;
    let actions: Vec<(&str, &str)> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| (entry["action"].as_str().unwrap(), entry["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("contact.put", "forbidden"),
            ("plugin.activate", "not_found"),
            ("plugin.activate", "ok"),
            ("plugin.upload", "ok"),
        ]
    );
    let (_, body) = audit(&host, "?target=6591234567&action=contact.put").await?;
    let outcomes: Vec<&str> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["ok", "forbidden"]);
    assert!(!body.to_string().contains(&operator), "no secrets in the log");
    let (_, body) = audit(&host, "?action=sender.put").await?;
    assert_eq!(body["entries"][0]["target"], "6590000000");
    assert_eq!(body["entries"][0]["token_id"], "bootstrap");

    // Time filters.
    let (_, body) = audit(&host, "?since=2000-01-01T00:00:00Z&until=2000-01-02T00:00:00Z").await?;
    assert_eq!(body["entries"], json!([]));
    let (_, body) = audit(&host, "?since=2000-01-01T00:00:00Z").await?;
    assert_eq!(body["entries"].as_array().unwrap().len(), 7);

    // Paging: newest first, every row once.
    for index in 0..5 {
        create_token(&host, &format!("page-{index}"), &["messages:read"]).await?;
    }
    let mut seen = Vec::new();
    let mut query = "?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let (status, body) = audit(&host, &query).await?;
        assert_eq!(status, 200, "{body}");
        pages += 1;
        let entries = body["entries"].as_array().unwrap();
        assert!(entries.len() <= 2);
        seen.extend(entries.iter().map(|entry| entry["seq"].as_i64().unwrap()));
        match body["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 12, "{seen:?}");
    assert_eq!(pages, 6);
    assert!(seen.windows(2).all(|pair| pair[0] > pair[1]), "{seen:?}");

    // Bad filters name the field.
    for (query, field) in [
        ("?since=yesterday", "since"),
        ("?until=2026-02-30T00:00:00Z", "until"),
        ("?limit=0", "limit"),
        ("?limit=501", "limit"),
        ("?cursor=abc", "cursor"),
        ("?colour=red", "colour"),
    ] {
        let (status, body) = audit(&host, query).await?;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}");
    }
    Ok(())
}

/// Runs `wasp token ARGS`, the URL and token given as flags.
fn wasp_token(host: &TestHost, token: &str, args: &[&str]) -> anyhow::Result<std::process::Output> {
    Ok(std::process::Command::new(wasp_integration::wasp_binary()?)
        .arg("token")
        .args(args)
        .args(["--url", &host.url, "--token", token])
        .env_remove("WASP_URL")
        .env_remove("WASP_ADMIN_TOKEN")
        .env_remove("RUST_LOG")
        .output()?)
}

#[tokio::test]
async fn the_token_commands_create_list_and_revoke() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let created = wasp_token(
        &host,
        TOKEN,
        &[
            "create",
            "--name",
            "cli",
            "--scope",
            "messages:send",
            "--scope",
            "messages:read",
        ],
    )?;
    let out = String::from_utf8_lossy(&created.stdout).into_owned();
    assert!(
        created.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let secret = out
        .lines()
        .find_map(|line| line.strip_prefix("token  "))
        .unwrap()
        .to_owned();
    let id = out
        .lines()
        .nth(1)
        .and_then(|line| line.split_whitespace().next())
        .unwrap()
        .to_owned();
    assert!(id.starts_with("tok_"), "{out}");
    assert!(out.contains("messages:send,messages:read"), "{out}");

    let listed = wasp_token(&host, TOKEN, &["ls"])?;
    let table = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.status.success());
    assert!(table.starts_with("ID "), "{table}");
    assert!(table.contains(&id) && !table.contains(&secret), "{table}");

    // The new token cannot manage tokens.
    let refused = wasp_token(&host, &secret, &["ls"])?;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("admin"));

    let revoked = wasp_token(&host, TOKEN, &["revoke", &id])?;
    assert!(revoked.status.success(), "{}", String::from_utf8_lossy(&revoked.stderr));
    assert_eq!(
        host.call_as(
            Some(&secret),
            Method::GET,
            "/v1/messages/0190c2a8-0000-7000-8000-000000000000",
            None
        )
        .await?
        .0,
        401
    );
    Ok(())
}
