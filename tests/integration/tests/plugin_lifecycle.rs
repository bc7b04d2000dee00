//! The plugin platform over the admin API, black-box: upload and validation, activation,
//! config checked by the plugin's own `init`, shadow runs, rollback, quarantine, and the
//! event path (statuses, durable timers, follow-up sends).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot read what it expects fails loudly

use std::time::Duration;

use serde_json::{Value, json};
use wasp_integration::{ChainEntry, HostOptions, TOKEN, TestHost, buttons_message, plugin, text_message};

const WAIT: Duration = Duration::from_secs(20);

async fn upload(host: &TestHost, name: &str, bytes: Vec<u8>) -> anyhow::Result<(u16, Value)> {
    let response = host
        .client
        .post(format!("{}/v1/plugins/{name}/versions", host.url))
        .bearer_auth(TOKEN)
        .header("content-type", "application/wasm")
        .body(bytes)
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

#[tokio::test]
async fn uploads_are_validated_and_named() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let (status, answer) = upload(&host, "limits", b"hello".to_vec()).await?;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("not_a_component")),
        "{answer}"
    );
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    let (status, answer) = upload(&host, "limits", core_module).await?;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"].as_str().unwrap().contains("wasm32-wasip2"),
        "{answer}"
    );
    // An empty component compiles but exports nothing of the world.
    let (status, answer) = upload(&host, "limits", b"\0asm\x0d\0\x01\0".to_vec()).await?;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("world_mismatch")),
        "{answer}"
    );
    assert!(
        answer["error"]["message"].as_str().unwrap().contains("`init`"),
        "{answer}"
    );
    let (status, answer) = upload(&host, "Bad Name", std::fs::read(plugin("button-limit")?)?).await?;
    assert_eq!(status, 422, "{answer}");

    let bytes = std::fs::read(plugin("button-limit")?)?;
    let (status, answer) = upload(&host, "limits", bytes.clone()).await?;
    assert_eq!(status, 201, "{answer}");
    let version = answer["version"].as_str().unwrap();
    assert_eq!(version.len(), 64);
    assert_eq!(answer["hooks"], json!(["on-submit", "on-dispatch", "on-event"]));
    // The same bytes again: the same version, nothing new.
    let (_, again) = upload(&host, "limits", bytes).await?;
    assert_eq!(again["version"], answer["version"]);
    let (_, view) = host.call(reqwest::Method::GET, "/v1/plugins/limits", None).await?;
    assert_eq!(view["versions"].as_array().unwrap().len(), 1);
    assert_eq!(view["live_version"], Value::Null);
    let (status, _) = host.call(reqwest::Method::GET, "/v1/plugins/nothing", None).await?;
    assert_eq!(status, 404);
    Ok(())
}

#[tokio::test]
async fn activate_configure_shadow_and_roll_back_without_a_restart() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let (_, limits) = upload(&host, "limits", std::fs::read(plugin("button-limit")?)?).await?;
    let limits_version = limits["version"].as_str().unwrap().to_owned();
    let (_, hostile) = upload(&host, "limits", std::fs::read(plugin("hostile")?)?).await?;
    let allow_version = hostile["version"].as_str().unwrap().to_owned();

    let (status, view) = host
        .call(
            reqwest::Method::POST,
            "/v1/plugins/limits/activate",
            Some(json!({"version": limits_version})),
        )
        .await?;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["live_version"], limits_version.as_str());

    // A config the plugin's own init refuses is refused with its reason; the old one stays.
    let (status, refused) = host
        .call(
            reqwest::Method::PUT,
            "/v1/plugins/limits",
            Some(json!({"config": {"max_rows": 11}})),
        )
        .await?;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["field"], "config");
    assert!(
        refused["error"]["message"].as_str().unwrap().contains("max_rows"),
        "{refused}"
    );
    let (status, view) = host
        .call(
            reqwest::Method::PUT,
            "/v1/plugins/limits",
            Some(json!({"config": {"list_button_label": "Options"}, "failure": "closed"})),
        )
        .await?;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["config"]["list_button_label"], "Options");

    let (_, answer) = host.send(&buttons_message("+6591234567", 5, None)).await?;
    let message = host.wait_for(answer["id"].as_str().unwrap(), "read", WAIT).await?;
    assert_eq!(
        message["upstream"]["content"]["interactive"]["action"]["button"],
        "Options"
    );

    // Shadow: another version, with its own config (it allows everything), runs beside the
    // live one on the same messages; its verdicts are recorded, never acted on.
    let (status, view) = host
        .call(
            reqwest::Method::POST,
            "/v1/plugins/limits/shadow",
            Some(json!({"version": allow_version, "config": {"mode": "allow"}})),
        )
        .await?;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["shadow_version"], allow_version.as_str());
    let (_, five) = host.send(&buttons_message("+6591234568", 5, None)).await?;
    let (_, text) = host.send(&text_message("+6591234568", "plain")).await?;
    let message = host.wait_for(five["id"].as_str().unwrap(), "read", WAIT).await?;
    assert_eq!(
        message["upstream"]["content"]["interactive"]["type"], "list",
        "the live verdict is the one acted on"
    );
    host.wait_for(text["id"].as_str().unwrap(), "read", WAIT).await?;
    let report = wait_for_shadow(&host, 4).await?;
    assert!(report["agreed"].as_u64().unwrap() >= 2, "{report}");
    let disagreement = &report["disagreements"][0];
    assert_eq!(disagreement["message_id"], five["id"]);
    assert!(
        disagreement["live"].as_str().unwrap().starts_with("rewrite"),
        "{report}"
    );
    assert_eq!(disagreement["shadow"], "allow");

    // Activate the other version: from now on it judges, with no restart.
    let (status, view) = host
        .call(
            reqwest::Method::POST,
            "/v1/plugins/limits/activate",
            Some(json!({"version": allow_version, "config": {"mode": "allow"}})),
        )
        .await?;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["shadow_version"], Value::Null);
    let (_, unchanged) = host.send(&buttons_message("+6591234569", 5, None)).await?;
    let message = host.wait_for(unchanged["id"].as_str().unwrap(), "failed", WAIT).await?;
    assert_eq!(
        message["error_code"], 131009,
        "five buttons went upstream as they were: {message:#}"
    );

    // Roll back: the earlier version with the config it ran with.
    let (status, view) = host
        .call(reqwest::Method::POST, "/v1/plugins/limits/rollback", None)
        .await?;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["live_version"], limits_version.as_str());
    assert_eq!(view["config"], json!({"list_button_label": "Options"}), "{view:#}");
    let (_, again) = host.send(&buttons_message("+6591234570", 5, None)).await?;
    host.wait_for(again["id"].as_str().unwrap(), "read", WAIT).await?;
    let (status, _) = host
        .call(reqwest::Method::POST, "/v1/plugins/limits/rollback", None)
        .await?;
    assert_eq!(status, 409, "nothing earlier is left");

    let (_, list) = host.call(reqwest::Method::GET, "/v1/plugins", None).await?;
    let listed = &list["plugins"][0];
    assert_eq!(listed["name"], "limits");
    assert!(listed["stats"]["calls"].as_u64().unwrap() >= 2, "{listed}");
    assert!(listed["stats"]["p99_us"].as_u64().unwrap() >= listed["stats"]["p50_us"].as_u64().unwrap());
    assert_eq!(listed["versions"].as_array().unwrap().len(), 2);

    let (status, _) = host.call(reqwest::Method::DELETE, "/v1/plugins/limits", None).await?;
    assert_eq!(status, 204);
    let (_, list) = host.call(reqwest::Method::GET, "/v1/plugins", None).await?;
    assert!(list["plugins"].as_array().unwrap().is_empty());
    Ok(())
}

async fn wait_for_shadow(host: &TestHost, compared: u64) -> anyhow::Result<Value> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (status, report) = host
            .call(reqwest::Method::GET, "/v1/plugins/limits/shadow", None)
            .await?;
        anyhow::ensure!(status == 200, "shadow report: {report}");
        if report["compared"].as_u64().unwrap_or_default() >= compared {
            return Ok(report);
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "shadow compared too little: {report}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_plugin_that_keeps_faulting_is_quarantined_until_activated_again() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions {
        chain: vec![ChainEntry::new("hostile")?.with_config("{ mode = \"trap\" }")],
        policy: "quarantine_after_faults = 3".into(),
        ..HostOptions::default()
    })
    .await?;
    for index in 0..3 {
        let (_, answer) = host
            .send(&text_message("+6591234567", &format!("fault {index}")))
            .await?;
        host.wait_for(answer["id"].as_str().unwrap(), "rejected", WAIT).await?;
    }
    let (_, view) = host.call(reqwest::Method::GET, "/v1/plugins/hostile", None).await?;
    assert_eq!(view["quarantined"], true, "{view}");
    assert_eq!(view["stats"]["faults"], 3);
    // Skipped while quarantined: messages go out.
    let (_, answer) = host.send(&text_message("+6591234567", "after quarantine")).await?;
    host.wait_for(answer["id"].as_str().unwrap(), "read", WAIT).await?;
    // Activating a version (here with a config that behaves) lifts the quarantine.
    let version = view["live_version"].as_str().unwrap().to_owned();
    let (status, view) = host
        .call(
            reqwest::Method::POST,
            "/v1/plugins/hostile/activate",
            Some(json!({"version": version, "config": {"mode": "reject"}})),
        )
        .await?;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["quarantined"], false);
    let (_, answer) = host.send(&text_message("+6591234567", "judged again")).await?;
    let message = host.wait_for(answer["id"].as_str().unwrap(), "rejected", WAIT).await?;
    assert_eq!(message["reason"], "hostile: hostile says no");
    Ok(())
}

#[tokio::test]
async fn delivered_status_sets_a_timer_whose_follow_up_is_sent() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions {
        chain: vec![ChainEntry::new("reminder")?.with_config("{ delay_ms = 100 }")],
        ..HostOptions::default()
    })
    .await?;
    let mut body = text_message("+6591234567", "your appointment is tomorrow");
    body["tags"] = json!(["remind"]);
    let (_, answer) = host.send(&body).await?;
    let id = answer["id"].as_str().unwrap().to_owned();
    host.wait_for(&id, "read", WAIT).await?;
    // The follow-up is a message of its own, sent through the normal path.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let follow_up = host
            .simulator
            .sent()
            .into_iter()
            .find(|sent| sent.body["text"]["body"] == format!("reminder for {id}"));
        if let Some(follow_up) = follow_up {
            assert_eq!(follow_up.body["to"], "6591234567");
            break;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "no follow-up was sent:\n{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The plugin's own counter shows in its view.
    let (_, view) = host.call(reqwest::Method::GET, "/v1/plugins/reminder", None).await?;
    assert_eq!(view["counters"]["reminders_sent"], 1, "{view}");
    // An untagged message sets no timer.
    let (_, plain) = host.send(&text_message("+6591234568", "no reminder")).await?;
    host.wait_for(plain["id"].as_str().unwrap(), "read", WAIT).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(host.simulator.sent().len(), 3);
    Ok(())
}

#[tokio::test]
async fn swapping_versions_under_load_drops_nothing_and_judges_nothing_twice() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let (_, limits) = upload(&host, "limits", std::fs::read(plugin("button-limit")?)?).await?;
    let (_, allow) = upload(&host, "limits", std::fs::read(plugin("hostile")?)?).await?;
    let limits_version = limits["version"].as_str().unwrap().to_owned();
    let allow_version = allow["version"].as_str().unwrap().to_owned();
    host.call(
        reqwest::Method::POST,
        "/v1/plugins/limits/activate",
        Some(json!({"version": limits_version})),
    )
    .await?;

    let mut ids = Vec::new();
    for round in 0..10 {
        for index in 0..10 {
            let (status, answer) = host
                .send(&buttons_message(&format!("+65912{round:02}{index:03}"), 5, None))
                .await?;
            assert_eq!(status, 202);
            ids.push(answer["id"].as_str().unwrap().to_owned());
        }
        let (version, config) = if round % 2 == 0 {
            (&allow_version, json!({"mode": "allow"}))
        } else {
            (&limits_version, json!({}))
        };
        let (status, view) = host
            .call(
                reqwest::Method::POST,
                "/v1/plugins/limits/activate",
                Some(json!({"version": version, "config": config})),
            )
            .await?;
        assert_eq!(status, 200, "{view}");
    }
    let mut upstream = 0;
    for id in &ids {
        let message = wait_final(&host, id).await?;
        // Judged once (one admission) and sent once; a rate-limit wait may add a queued row.
        let causes = wasp_integration::history_field(&message, "cause");
        assert_eq!(
            causes.iter().filter(|cause| cause.starts_with("admitted")).count(),
            1,
            "{message:#}"
        );
        assert_eq!(
            causes
                .iter()
                .filter(|cause| cause.starts_with("accepted by the Cloud API"))
                .count()
                + usize::from(message["status"] == "failed"),
            1,
            "{message:#}"
        );
        match message["status"].as_str().unwrap() {
            // Judged by button-limit: a list went out.
            "read" => assert_eq!(message["upstream"]["content"]["interactive"]["type"], "list"),
            // Judged by the version that allows everything: five buttons went out, Meta refused.
            "failed" => assert_eq!(message["error_code"], 131009),
            other => panic!("message {id} ended {other}"),
        }
        upstream += 1;
    }
    assert_eq!(
        host.simulator.counters().requests,
        upstream,
        "one upstream call per message"
    );
    Ok(())
}

async fn wait_final(host: &TestHost, id: &str) -> anyhow::Result<Value> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let message = host.message(id).await?;
        if matches!(message["status"].as_str(), Some("read" | "failed" | "rejected")) {
            return Ok(message);
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "message {id} is stuck: {message:#}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_timer_set_before_a_crash_fires_after_the_restart() -> anyhow::Result<()> {
    let mut host = TestHost::start(HostOptions {
        chain: vec![ChainEntry::new("reminder")?.with_config("{ delay_ms = 1500 }")],
        ..HostOptions::default()
    })
    .await?;
    let mut body = text_message("+6591234567", "see you tomorrow");
    body["tags"] = json!(["remind"]);
    let (_, answer) = host.send(&body).await?;
    let id = answer["id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, view) = host.call(reqwest::Method::GET, "/v1/plugins/reminder", None).await?;
        if view["pending_timers"] == 1 {
            break;
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "no timer was set: {view}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    host.kill_hard()?;
    host.restart().await?;
    let deadline = std::time::Instant::now() + WAIT;
    while !host
        .simulator
        .sent()
        .iter()
        .any(|sent| sent.body["text"]["body"] == format!("reminder for {id}"))
    {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the timer did not fire after the restart:\n{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, view) = host.call(reqwest::Method::GET, "/v1/plugins/reminder", None).await?;
    assert_eq!(view["pending_timers"], 0);
    Ok(())
}

#[tokio::test]
async fn a_follow_up_over_sms_goes_to_the_sms_provider() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions {
        chain: vec![ChainEntry::new("reminder")?.with_config("{ delay_ms = 50, channel = \"sms\" }")],
        sms: true,
        ..HostOptions::default()
    })
    .await?;
    let mut body = text_message("+6591234567", "your table is booked");
    body["tags"] = json!(["remind"]);
    let (_, answer) = host.send(&body).await?;
    let id = answer["id"].as_str().unwrap().to_owned();
    host.wait_for(&id, "read", WAIT).await?;
    let deadline = std::time::Instant::now() + WAIT;
    let sms = loop {
        if let Some(sms) = host.simulator.sms_sent().into_iter().next() {
            break sms;
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "no SMS was sent:\n{}", host.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(sms.to, "+6591234567");
    assert_eq!(sms.from, wasp_integration::SMS_FROM);
    assert_eq!(sms.body, format!("reminder for {id}"));
    assert_eq!(sms.account_sid, wasp_integration::SMS_ACCOUNT_SID);
    Ok(())
}
