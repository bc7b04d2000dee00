//! Hostile plugins are contained: the host keeps serving, and the message is rejected with the
//! fault named (the chain fails closed).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot read what it expects fails loudly

use std::time::Duration;

use wasp_integration::{ChainEntry, HostOptions, TestHost, text_message};

const WAIT: Duration = Duration::from_secs(30);

async fn contained(mode: &str, expected_fault: &str) -> anyhow::Result<TestHost> {
    let mut host = TestHost::start(HostOptions {
        chain: vec![ChainEntry::new("hostile")?.with_config(&format!("{{ mode = \"{mode}\", hook = \"on-submit\" }}"))],
        ..HostOptions::default()
    })
    .await?;
    for round in 0..3 {
        let (status, answer) = host
            .send(&text_message("+6591234567", &format!("round {round}")))
            .await?;
        assert_eq!(status, 202, "{answer}");
        let message = host.wait_for(answer["id"].as_str().unwrap(), "rejected", WAIT).await?;
        let reason = message["reason"].as_str().unwrap();
        assert!(reason.contains("plugin hostile@"), "{reason}");
        assert!(reason.contains(expected_fault), "{mode}: {reason}");
    }
    assert!(host.is_running(), "the host died:\n{}", host.log());
    let health = host.client.get(format!("{}/healthz", host.url)).send().await?;
    assert_eq!(health.status(), 200);
    assert!(host.simulator.sent().is_empty());
    Ok(host)
}

#[tokio::test]
async fn an_endless_loop_is_stopped() -> anyhow::Result<()> {
    // Fuel or the wall-clock deadline, whichever runs out first.
    contained("loop", "faulted:").await.map(drop)
}

#[tokio::test]
async fn a_trap_is_contained() -> anyhow::Result<()> {
    contained("trap", "trap").await.map(drop)
}

#[tokio::test]
async fn a_panic_is_contained_and_its_message_reaches_the_log_tagged_with_the_plugin() -> anyhow::Result<()> {
    let host = contained("panic", "trap").await?;
    let log = host.log();
    let line = log
        .lines()
        .find(|line| line.contains("hostile panics"))
        .ok_or_else(|| anyhow::anyhow!("the panic message is not in the log:\n{log}"))?;
    assert!(line.contains("plugin=hostile") && line.contains("stderr"), "{line}");
    Ok(())
}

#[tokio::test]
async fn a_memory_bomb_is_contained() -> anyhow::Result<()> {
    contained("memory", "faulted:").await.map(drop)
}

#[tokio::test]
async fn a_huge_output_is_contained() -> anyhow::Result<()> {
    // 50 MB of text is over the memory cap, or over the Cloud API's text limit if it fits.
    contained("huge-output", "faulted:").await.map(drop)
}

#[tokio::test]
async fn a_slow_plugin_is_stopped_at_its_budget() -> anyhow::Result<()> {
    contained("slow", "faulted:").await.map(drop)
}

#[tokio::test]
async fn runaway_recursion_is_contained() -> anyhow::Result<()> {
    contained("recursion", "faulted:").await.map(drop)
}

#[tokio::test]
async fn a_well_behaved_plugin_beside_a_failing_open_one_lets_messages_through() -> anyhow::Result<()> {
    let mut failing = ChainEntry::new("hostile")?.with_config("{ mode = \"trap\", hook = \"on-submit\" }");
    failing.failure = "open";
    let host = TestHost::start(HostOptions {
        chain: vec![failing, ChainEntry::new("button-limit")?],
        ..HostOptions::default()
    })
    .await?;
    let (_, answer) = host.send(&text_message("+6591234567", "still goes")).await?;
    host.wait_for(answer["id"].as_str().unwrap(), "read", WAIT).await?;
    Ok(())
}
