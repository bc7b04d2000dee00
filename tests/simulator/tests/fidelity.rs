//! Fidelity: a third-party Cloud API client library, unchanged, works against the
//! simulator through its ordinary `base_url` setting, and its own webhook helpers accept
//! what the simulator posts.
//!
//! The library is kapso-whatsapp-cloud-api 0.3.0 from PyPI (see README.md for why). The
//! test installs it with pip into a `--target` folder under Cargo's test tmp dir (reused
//! across runs) and drives it with `python3`. When Python or the install is missing the
//! test is skipped locally, and fails when `CI=true`.

#[path = "support/receiver.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;
use support::{Receiver, simulator};
use tokio::process::Command;
use wasp_simulator::SimulatorConfig;

const PACKAGE: &str = "kapso-whatsapp-cloud-api==0.3.0";
const INSTALL_DIR: &str = "fidelity-kapso-whatsapp-cloud-api-0.3.0";
const INSTALL_LIMIT: Duration = Duration::from_secs(180);
const RUN_LIMIT: Duration = Duration::from_secs(60);
const TOKEN: &str = "EAAfidelity";
const SECRET: &str = "fidelity-app-secret";
const PHONE_NUMBER_ID: &str = "106540352242922";

fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

/// Where the library is installed, installing it first if needed; `None` to skip.
async fn client_library() -> anyhow::Result<Option<PathBuf>> {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let target = tmp.join(INSTALL_DIR);
    if target.join(".installed").exists() {
        return Ok(Some(target));
    }
    let staging = tempfile::Builder::new().prefix("kapso-install-").tempdir_in(tmp)?;
    let install = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
        .args(["--no-input", "--no-warn-script-location", "--target"])
        .arg(staging.path())
        .arg(PACKAGE)
        .stdin(Stdio::null())
        .output();
    let problem = match tokio::time::timeout(INSTALL_LIMIT, install).await {
        Ok(Ok(output)) if output.status.success() => None,
        Ok(Ok(output)) => Some(format!(
            "pip install {PACKAGE} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )),
        Ok(Err(error)) => Some(format!("python3 could not be started: {error}")),
        Err(_) => Some(format!("pip install {PACKAGE} took over {INSTALL_LIMIT:?}")),
    };
    if let Some(problem) = problem {
        if on_ci() {
            bail!("{problem}");
        }
        eprintln!("skipping the fidelity test: {problem}");
        return Ok(None);
    }
    std::fs::write(staging.path().join(".installed"), PACKAGE)?;
    if target.exists() {
        std::fs::remove_dir_all(&target)?;
    }
    std::fs::rename(staging.keep(), &target)?;
    Ok(Some(target))
}

async fn run_script(library: &Path, mode: &str, env: &[(&str, &str)]) -> anyhow::Result<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fidelity/kapso_client.py");
    let run = Command::new("python3")
        .arg(&script)
        .arg(mode)
        .env("PYTHONPATH", library)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output();
    let output = tokio::time::timeout(RUN_LIMIT, run)
        .await
        .context("the client script timed out")??;
    if !output.status.success() {
        bail!(
            "client script `{mode}` failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "client script printed no JSON: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[tokio::test]
async fn a_third_party_client_works_unchanged() -> anyhow::Result<()> {
    let Some(library) = client_library().await? else {
        return Ok(());
    };
    let receiver = Receiver::start(SECRET).await?;
    let sim = simulator(SimulatorConfig {
        access_token: Some(TOKEN.into()),
        app_secret: SECRET.into(),
        webhook_url: Some(receiver.url.clone()),
        sent_after_ms: 5,
        delivered_after_ms: 10,
        read_after_ms: 10,
        read_ratio: 1.0,
        webhook_flush_ms: 5,
        ..SimulatorConfig::default()
    })
    .await?;
    let base_url = sim.base_url();

    let report = run_script(
        &library,
        "send",
        &[
            ("SIM_BASE_URL", base_url.as_str()),
            ("SIM_TOKEN", TOKEN),
            ("SIM_PHONE_NUMBER_ID", PHONE_NUMBER_ID),
        ],
    )
    .await?;

    let mut wamids = Vec::new();
    for kind in ["text", "template", "image", "buttons", "list"] {
        let answer = &report[kind];
        assert_eq!(answer["messaging_product"], "whatsapp", "{kind}: {answer}");
        assert_eq!(answer["contacts"][0]["input"], "+1 650-555-1234", "{kind}");
        assert_eq!(answer["contacts"][0]["wa_id"], "16505551234", "{kind}");
        let wamid = answer["messages"][0]["id"].as_str().unwrap_or_default();
        assert!(wamid.starts_with("wamid."), "{kind}: {answer}");
        let status = &answer["messages"][0]["message_status"];
        if kind == "template" {
            assert_eq!(status, "accepted");
        } else {
            assert!(status.is_null(), "{kind}: {answer}");
        }
        wamids.push(wamid.to_owned());
    }
    assert_eq!(report["mark_read"], serde_json::json!({"success": true}));

    let four = &report["four_buttons"];
    assert_eq!(four["class"], "ValidationError", "{four}");
    assert_eq!(four["status_code"], 400);
    assert_eq!(four["error_code"], 131009);
    assert_eq!(four["retryable"], false);
    let wrong = &report["wrong_token"];
    assert_eq!(wrong["class"], "AuthenticationError", "{wrong}");
    assert_eq!(wrong["status_code"], 401);
    assert_eq!(wrong["error_code"], 190);

    let sent = sim.sent();
    assert_eq!(sent.len(), 5);
    assert_eq!(sent[2].body["image"]["link"], "https://example.com/receipt.jpg");

    // Five messages, each sent, delivered and read.
    receiver.wait_for_statuses(15).await?;
    let posts = receiver.posts();
    let folder = tempfile::tempdir()?;
    for (index, post) in posts.iter().enumerate() {
        std::fs::write(folder.path().join(format!("{index:04}.body")), &post.raw)?;
        std::fs::write(folder.path().join(format!("{index:04}.signature")), &post.signature)?;
    }
    let webhook_dir = folder.path().to_string_lossy().into_owned();
    let checked = run_script(
        &library,
        "verify",
        &[("SIM_APP_SECRET", SECRET), ("SIM_WEBHOOK_DIR", webhook_dir.as_str())],
    )
    .await?;
    assert_eq!(checked["posts"], posts.len());
    assert_eq!(checked["verified"], posts.len(), "signatures accepted: {checked}");
    assert_eq!(checked["tampered_rejected"], posts.len());
    let statuses = checked["statuses"].as_array().context("statuses")?;
    assert_eq!(statuses.len(), 15);
    for wamid in &wamids {
        let seen: Vec<&str> = statuses
            .iter()
            .filter(|status| status["id"] == wamid.as_str())
            .filter_map(|status| status["status"].as_str())
            .collect();
        assert_eq!(seen, ["sent", "delivered", "read"], "{wamid}");
    }
    assert!(
        statuses
            .iter()
            .all(|status| status["recipient_id"] == "16505551234" && status["has_pricing"] == true)
    );
    sim.shutdown().await;
    Ok(())
}
