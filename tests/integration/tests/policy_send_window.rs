//! The send-window policy end to end: the built `wasp` binary with the plugin in its chain,
//! against the Cloud API simulator. A message outside its window ends `deferred` with the
//! next opening in its history; one inside its window is sent.
//!
//! The host's clock cannot be set, so each test reads the clock and configures windows
//! relative to it. Zones without daylight saving (Singapore, Tokyo) give exact local times
//! from the clock alone. In the United States daylight saving may or may not be in force
//! when the test runs, so there the test accepts either offset, and checks that the two
//! zones' possible openings never coincide.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot read what it expects fails loudly

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use wasp_integration::{ChainEntry, HostOptions, TOKEN, TestHost, history_field};

const WAIT: Duration = Duration::from_secs(20);
const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Singapore is UTC+8 all year.
const SINGAPORE_OFFSET_MINUTES: i64 = 8 * 60;
/// Pacific standard time, UTC-8 (daylight time is UTC-7).
const PACIFIC_STANDARD_OFFSET_MINUTES: i64 = -8 * 60;
/// What the host writes before the instant in the history row of a deferral.
const DEFERRED_BY_SEND_WINDOW: &str = "deferred on-dispatch by send-window until ";

/// The start of the current minute, in milliseconds since the epoch.
fn this_minute_ms() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    let now_ms = i64::try_from(now.as_millis()).expect("in range");
    now_ms - now_ms.rem_euclid(MINUTE_MS)
}

/// The wall clock (`HH:MM`) at `at_ms` in a zone `offset_minutes` from UTC.
fn wall_clock(at_ms: i64, offset_minutes: i64) -> String {
    let minute_of_day = (at_ms + offset_minutes * MINUTE_MS).rem_euclid(DAY_MS) / MINUTE_MS;
    format!("{:02}:{:02}", minute_of_day / 60, minute_of_day % 60)
}

/// `at_ms` as the host writes instants: RFC 3339 in UTC, `2026-03-08T13:00:00Z` (whole
/// seconds carry no fraction).
fn rfc3339(at_ms: i64) -> String {
    let days = at_ms.div_euclid(DAY_MS);
    let second_of_day = at_ms.rem_euclid(DAY_MS) / 1_000;
    // Civil date from days since 1970-01-01 (Howard Hinnant's `civil_from_days`).
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3_600,
        second_of_day % 3_600 / 60,
        second_of_day % 60
    )
}

/// The instant send-window deferred a message to, from its history.
fn deferred_until(message: &Value) -> Option<String> {
    history_field(message, "cause")
        .iter()
        .find_map(|cause| cause.strip_prefix(DEFERRED_BY_SEND_WINDOW).map(str::to_owned))
}

fn text(to: &str, category: &str, body: &str) -> Value {
    json!({"to": to, "category": category, "content": {"type": "text", "text": {"body": body}}})
}

/// A TOML inline table of one window.
fn window(start: &str, end: &str) -> String {
    format!("{{ start = \"{start}\", end = \"{end}\" }}")
}

async fn start_host(config: String) -> anyhow::Result<TestHost> {
    TestHost::start(HostOptions {
        chain: vec![ChainEntry::new("send-window")?.with_config(&config)],
        ..HostOptions::default()
    })
    .await
}

async fn send(host: &TestHost, body: &Value) -> anyhow::Result<String> {
    let (status, answer) = host.send(body).await?;
    anyhow::ensure!(status == 202, "send answered {status}: {answer}");
    Ok(answer["id"].as_str().unwrap().to_owned())
}

#[test]
fn the_rfc3339_helper_writes_what_the_host_writes() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(1_772_974_800_000), "2026-03-08T13:00:00Z");
    assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    assert_eq!(wall_clock(1_772_974_800_000, -4 * 60), "09:00");
    assert_eq!(wall_clock(1_772_974_800_000, 8 * 60), "21:00");
}

#[tokio::test]
async fn outside_its_window_a_message_waits_for_the_opening_and_inside_it_is_sent() -> anyhow::Result<()> {
    let minute = this_minute_ms();
    // Marketing opens two hours from now on a Singapore clock; utility is open now.
    let marketing = window(
        &wall_clock(minute + 2 * HOUR_MS, SINGAPORE_OFFSET_MINUTES),
        &wall_clock(minute + 3 * HOUR_MS, SINGAPORE_OFFSET_MINUTES),
    );
    let utility = window(
        &wall_clock(minute - HOUR_MS, SINGAPORE_OFFSET_MINUTES),
        &wall_clock(minute + HOUR_MS, SINGAPORE_OFFSET_MINUTES),
    );
    let host = start_host(format!(
        "{{ windows = {{ marketing = {marketing}, utility = {utility} }} }}"
    ))
    .await?;

    let waiting = send(&host, &text("+6591230001", "marketing", "Spring sale")).await?;
    let message = host.wait_for(&waiting, "deferred", WAIT).await?;
    assert_eq!(
        deferred_until(&message),
        Some(rfc3339(minute + 2 * HOUR_MS)),
        "{message:#}"
    );
    assert_eq!(message["due_at"], json!(rfc3339(minute + 2 * HOUR_MS)), "{message:#}");

    let going = send(&host, &text("+6591230002", "utility", "Your parcel is on its way")).await?;
    host.wait_for(&going, "read", WAIT).await?;
    let recipients: Vec<String> = host.simulator.sent().iter().map(|sent| sent.to.clone()).collect();
    assert_eq!(
        recipients,
        ["6591230002"],
        "only the message inside its window went out"
    );
    assert_eq!(host.message(&waiting).await?["status"], "deferred");

    // A contact's own zone overrides the number's: Tokyo (UTC+9) reaches the same wall
    // clock an hour before Singapore does.
    let response = host
        .client
        .put(format!("{}/v1/contacts/6591230003", host.url))
        .bearer_auth(TOKEN)
        .json(&json!({"attributes": {"time_zone": "Asia/Tokyo"}}))
        .send()
        .await?;
    anyhow::ensure!(response.status().is_success(), "PUT contact: {}", response.status());
    let in_tokyo = send(&host, &text("+6591230003", "marketing", "Spring sale")).await?;
    let message = host.wait_for(&in_tokyo, "deferred", WAIT).await?;
    assert_eq!(deferred_until(&message), Some(rfc3339(minute + HOUR_MS)), "{message:#}");
    Ok(())
}

#[tokio::test]
async fn a_los_angeles_number_waits_for_los_angeles_time() -> anyhow::Result<()> {
    let minute = this_minute_ms();
    // US marketing opens at what a Pacific standard clock reads six hours from now. Los
    // Angeles reaches it in six hours (standard time) or five (daylight time); New York,
    // three hours ahead, in three or two. The number's area code decides which.
    let marketing = window(
        &wall_clock(minute + 6 * HOUR_MS, PACIFIC_STANDARD_OFFSET_MINUTES),
        &wall_clock(minute + 7 * HOUR_MS, PACIFIC_STANDARD_OFFSET_MINUTES),
    );
    let host = start_host(format!("{{ countries = {{ \"1\" = {{ marketing = {marketing} }} }} }}")).await?;

    let los_angeles = send(&host, &text("+14155550123", "marketing", "Spring sale")).await?;
    let new_york = send(&host, &text("+12125550123", "marketing", "Spring sale")).await?;
    let message = host.wait_for(&los_angeles, "deferred", WAIT).await?;
    let until = deferred_until(&message);
    let pacific = [rfc3339(minute + 5 * HOUR_MS), rfc3339(minute + 6 * HOUR_MS)];
    assert!(
        until.as_ref().is_some_and(|until| pacific.contains(until)),
        "+1 415 deferred until {until:?}, not to a Los Angeles opening {pacific:?}: {message:#}"
    );
    let message = host.wait_for(&new_york, "deferred", WAIT).await?;
    let until = deferred_until(&message);
    let eastern = [rfc3339(minute + 2 * HOUR_MS), rfc3339(minute + 3 * HOUR_MS)];
    assert!(
        until.as_ref().is_some_and(|until| eastern.contains(until)),
        "+1 212 deferred until {until:?}, not to a New York opening {eastern:?}: {message:#}"
    );
    assert!(host.simulator.sent().is_empty());
    Ok(())
}

#[tokio::test]
async fn critical_messages_go_outside_the_window() -> anyhow::Result<()> {
    let minute = this_minute_ms();
    let marketing = window(
        &wall_clock(minute + 2 * HOUR_MS, SINGAPORE_OFFSET_MINUTES),
        &wall_clock(minute + 3 * HOUR_MS, SINGAPORE_OFFSET_MINUTES),
    );
    let host = start_host(format!("{{ windows = {{ marketing = {marketing} }} }}")).await?;
    let mut body = text("+6591230004", "marketing", "Flash sale ends in an hour");
    body["priority"] = "critical".into();
    let urgent = send(&host, &body).await?;
    let message = host.wait_for(&urgent, "read", WAIT).await?;
    assert_eq!(deferred_until(&message), None, "{message:#}");
    Ok(())
}
