//! The plugin author's commands against a running host, black-box: the built `wasp` binary
//! runs `wasp plugin push|ls|shadow|activate|rollback` against `wasp serve`, and the server's
//! errors come back as the command's message and exit code.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot read what it expects fails loudly

use std::process::Output;

use serde_json::Value;
use wasp_integration::{HostOptions, TOKEN, TestHost, plugin, wasp_binary};

/// Runs `wasp plugin ARGS` against `host`, the URL and token from the environment.
fn wasp_plugin(host: &TestHost, token: &str, args: &[&str]) -> anyhow::Result<Output> {
    Ok(std::process::Command::new(wasp_binary()?)
        .arg("plugin")
        .args(args)
        .env("WASP_URL", &host.url)
        .env("WASP_ADMIN_TOKEN", token)
        .env_remove("RUST_LOG")
        .output()?)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The version a `push` printed: `uploaded NAME version SHA256`.
fn pushed_version(output: &Output) -> String {
    stdout(output)
        .lines()
        .next()
        .and_then(|line| line.rsplit(' ').next())
        .unwrap_or_default()
        .to_owned()
}

async fn view(host: &TestHost, name: &str) -> anyhow::Result<Value> {
    Ok(host
        .client
        .get(format!("{}/v1/plugins/{name}", host.url))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .json()
        .await?)
}

#[tokio::test]
async fn push_shadow_activate_and_roll_back_from_the_command_line() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let first_path = plugin("button-limit")?.display().to_string();
    let second_path = plugin("reminder")?.display().to_string();

    let empty = wasp_plugin(&host, TOKEN, &["ls"])?;
    assert!(empty.status.success(), "{}", stderr(&empty));
    assert_eq!(stdout(&empty), "no plugins; upload one with `wasp plugin push`\n");

    let first = wasp_plugin(&host, TOKEN, &["push", &first_path])?;
    assert!(first.status.success(), "{}", stderr(&first));
    let first_version = pushed_version(&first);
    assert_eq!(first_version.len(), 64, "{}", stdout(&first));
    assert!(
        stdout(&first).starts_with("uploaded button-limit version "),
        "{}",
        stdout(&first)
    );
    let second = wasp_plugin(&host, TOKEN, &["push", &second_path, "--name", "button-limit"])?;
    assert!(second.status.success(), "{}", stderr(&second));
    let second_version = pushed_version(&second);
    assert_ne!(first_version, second_version);

    // Versions may be given by a unique prefix, as the tables show them.
    let activated = wasp_plugin(&host, TOKEN, &["activate", "button-limit", &first_version[..12]])?;
    assert!(activated.status.success(), "{}", stderr(&activated));
    assert_eq!(
        view(&host, "button-limit").await?["live_version"],
        first_version.as_str()
    );

    let shadowed = wasp_plugin(&host, TOKEN, &["shadow", "button-limit", &second_version])?;
    assert!(shadowed.status.success(), "{}", stderr(&shadowed));
    assert_eq!(
        view(&host, "button-limit").await?["shadow_version"],
        second_version.as_str()
    );
    let report = wasp_plugin(&host, TOKEN, &["shadow", "button-limit"])?;
    assert!(report.status.success(), "{}", stderr(&report));
    assert!(
        stdout(&report).contains(&format!("shadow {}", &second_version[..12])),
        "{}",
        stdout(&report)
    );
    assert!(
        stdout(&report).contains("agreed on 0 of 0 compared"),
        "{}",
        stdout(&report)
    );

    let listed = wasp_plugin(&host, TOKEN, &["ls"])?;
    let table = stdout(&listed);
    assert!(table.starts_with("POS  NAME"), "{table}");
    let row = table.lines().nth(1).unwrap_or_default();
    assert!(
        row.contains("button-limit") && row.contains(&first_version[..12]) && row.contains(&second_version[..12]),
        "{table}"
    );
    let detail = stdout(&wasp_plugin(&host, TOKEN, &["ls", "button-limit"])?);
    assert!(detail.contains(&format!("live         {first_version}")), "{detail}");

    let switched = wasp_plugin(&host, TOKEN, &["activate", "button-limit", &second_version])?;
    assert!(switched.status.success(), "{}", stderr(&switched));
    let rolled_back = wasp_plugin(&host, TOKEN, &["rollback", "button-limit"])?;
    assert!(rolled_back.status.success(), "{}", stderr(&rolled_back));
    assert_eq!(
        stdout(&rolled_back),
        format!("button-limit: rolled back; live version is now {first_version}\n")
    );
    assert_eq!(
        view(&host, "button-limit").await?["live_version"],
        first_version.as_str()
    );
    Ok(())
}

#[tokio::test]
async fn server_errors_are_the_commands_message_and_exit_code() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;
    let directory = tempfile::tempdir()?;
    let core_module = directory.path().join("core_module.wasm");
    std::fs::write(&core_module, b"\0asm\x01\0\0\0")?;
    let core_path = core_module.display().to_string();

    let refused = wasp_plugin(&host, TOKEN, &["push", &core_path, "--name", "limits"])?;
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("build it for wasm32-wasip2"),
        "{}",
        stderr(&refused)
    );
    assert!(stderr(&refused).contains("(field `body`)"), "{}", stderr(&refused));

    let unknown = wasp_plugin(&host, TOKEN, &["rollback", "nothing-here"])?;
    assert!(!unknown.status.success());
    assert_eq!(stderr(&unknown), "wasp: no plugin nothing-here\n");

    let unauthorized = wasp_plugin(&host, "wrong-token", &["ls"])?;
    assert!(!unauthorized.status.success());
    assert!(
        stderr(&unauthorized).ends_with("; set --token or WASP_ADMIN_TOKEN\n"),
        "{}",
        stderr(&unauthorized)
    );
    Ok(())
}
