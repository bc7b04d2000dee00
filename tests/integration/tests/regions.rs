//! Region health, black-box: a country whose messages fail turns degraded and shows so at
//! `GET /v1/regions`; a healthy one stays healthy.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot read what it expects fails loudly

use std::time::Duration;

use serde_json::Value;
use wasp_integration::{HostOptions, TOKEN, TestHost, text_message};
use wasp_simulator::SimulatorConfig;

#[tokio::test]
async fn a_failing_country_turns_degraded() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions {
        simulator: SimulatorConfig {
            failing_prefixes: vec!["62".into()],
            sent_after_ms: 5,
            delivered_after_ms: 5,
            read_after_ms: 5,
            read_ratio: 1.0,
            webhook_flush_ms: 5,
            ..SimulatorConfig::default()
        },
        extra_config: "[regions]\nmin_samples = 5\ndegrade_error_rate = 0.5\ndegrade_after_ms = 0\n".into(),
        ..HostOptions::default()
    })
    .await?;
    for index in 0..8 {
        host.send(&text_message(&format!("+6281234567{index:02}"), "parcel update"))
            .await?;
        host.send(&text_message(&format!("+6591234{index:03}"), "parcel update"))
            .await?;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let regions: Value = host
            .client
            .get(format!("{}/v1/regions", host.url))
            .bearer_auth(TOKEN)
            .send()
            .await?
            .json()
            .await?;
        let region = |code: u64| {
            regions["regions"]
                .as_array()
                .and_then(|all| all.iter().find(|region| region["country_code"] == code))
                .cloned()
        };
        if let (Some(indonesia), Some(singapore)) = (region(62), region(65))
            && indonesia["samples"].as_u64() == Some(8)
            && singapore["samples"].as_u64() == Some(8)
        {
            assert_eq!(indonesia["degraded"], true, "{regions}");
            assert_eq!(indonesia["error_rate"], 1.0);
            assert_eq!(singapore["degraded"], false, "{regions}");
            assert_eq!(singapore["error_rate"], 0.0);
            return Ok(());
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "regions never settled: {regions}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
