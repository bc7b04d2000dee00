//! The dashboard in a real browser: a host with every plugin we ship and a simulator that reads
//! each message quickly, driven by `tests/browser/dashboard.mjs` (node, playwright-core and
//! Debian's chromium). It gives the token, waits for the live stream, sends a message and sees
//! it read and the counters move; the screenshot it takes is left in
//! `target/artifacts/dashboard.png`. A missing node, chromium or npm package fails the test
//! with how to install it (scripts/test installs them).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot read what it expects fails loudly

use std::{path::Path, time::Duration};

use reqwest::Method;
use wasp::demo::SHIPPED_POLICIES;
use wasp_integration::{ChainEntry, HostOptions, TOKEN, TestHost, workspace_root};

/// Longest the browser script may run.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(120);

/// Where chromium is unless `CHROMIUM` says otherwise.
const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

/// What the browser test needs, or how to install what is missing.
fn browser_prerequisites(browser_dir: &Path) -> Result<(), String> {
    let mut missing = Vec::new();
    let node = std::process::Command::new("node").arg("--version").output();
    if !node.is_ok_and(|output| output.status.success()) {
        missing.push("node (20 or later): `apt-get install nodejs npm`".to_owned());
    }
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| DEFAULT_CHROMIUM.to_owned());
    if !Path::new(&chromium).exists() {
        missing.push(format!(
            "chromium at {chromium}: `apt-get install chromium` (or set CHROMIUM)"
        ));
    }
    if !browser_dir.join("node_modules").join("playwright-core").is_dir() {
        missing.push(
            "the npm packages of tests/browser: `PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix tests/browser`"
                .to_owned(),
        );
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the browser test needs: {}; scripts/test installs them",
            missing.join("; ")
        ))
    }
}

/// The chain `wasp demo` runs: every policy we ship; send-window open at any hour, so the
/// message goes now whatever the time of day.
fn shipped_chain() -> anyhow::Result<Vec<ChainEntry>> {
    SHIPPED_POLICIES
        .iter()
        .map(|(name, _)| {
            let entry = ChainEntry::new(name)?;
            Ok(if *name == "send-window" {
                entry.with_config("{ windows = { utility = \"any\" } }")
            } else {
                entry
            })
        })
        .collect()
}

#[tokio::test]
async fn the_dashboard_shows_a_message_read_and_its_counters_move() -> anyhow::Result<()> {
    let root = workspace_root();
    let browser_dir = root.join("tests").join("browser");
    if let Err(missing) = browser_prerequisites(&browser_dir) {
        panic!("{missing}");
    }
    let host = TestHost::start(HostOptions {
        chain: shipped_chain()?,
        ..HostOptions::default()
    })
    .await?;
    let (status, plugins) = host.call(Method::GET, "/v1/plugins", None).await?;
    assert_eq!(status, 200, "{plugins}");
    assert_eq!(plugins["plugins"].as_array().unwrap().len(), SHIPPED_POLICIES.len());

    let screenshot = root.join("target").join("artifacts").join("dashboard.png");
    if screenshot.exists() {
        std::fs::remove_file(&screenshot)?;
    }
    let run = tokio::process::Command::new("node")
        .arg(browser_dir.join("dashboard.mjs"))
        .args(["--url", &host.url, "--token", TOKEN, "--screenshot"])
        .arg(&screenshot)
        .current_dir(&root)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(BROWSER_TIMEOUT, run)
        .await
        .map_err(|_| anyhow::anyhow!("the browser test did not end within {BROWSER_TIMEOUT:?}"))??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser test failed:\n{stdout}{stderr}\nhost log:\n{}",
        host.log()
    );
    assert!(stdout.contains("dashboard test: passed"), "{stdout}");
    let size = std::fs::metadata(&screenshot)
        .map_err(|error| anyhow::anyhow!("no screenshot at {}: {error}", screenshot.display()))?
        .len();
    assert!(size > 10_000, "the screenshot is {size} bytes");
    Ok(())
}
