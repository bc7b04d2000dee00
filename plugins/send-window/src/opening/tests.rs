//! Native tests of zone resolution and the next opening, across daylight-saving changes,
//! with a brute-force cross-check of [`next_opening`] against a minute-by-minute scan.

use super::*;
use crate::window::{ClockTime, Days, Window};

fn clock(text: &str) -> ClockTime {
    ClockTime::parse(text).expect("a valid time")
}

fn at(text: &str) -> Timestamp {
    text.parse().expect("an RFC 3339 instant")
}

fn zone(name: &str) -> TimeZone {
    TimeZone::get(name).expect("a known zone")
}

fn opening(schedule: &Schedule, zone_name: &str, now: &str) -> Option<String> {
    next_opening(schedule, &zone(zone_name), at(now)).map(|instant| instant.to_string())
}

#[test]
fn closed_in_the_evening_opens_the_next_morning() {
    let marketing = Schedule::daily(clock("09:00"), clock("20:00"));
    // 21:00 in Singapore (UTC+8): opens at 09:00 local the next day.
    assert_eq!(
        opening(&marketing, "Asia/Singapore", "2026-03-02T13:00:00Z").as_deref(),
        Some("2026-03-03T01:00:00Z")
    );
    // 07:00 local: opens the same morning.
    assert_eq!(
        opening(&marketing, "Asia/Singapore", "2026-03-01T23:00:00Z").as_deref(),
        Some("2026-03-02T01:00:00Z")
    );
    // 10:00 local: open now.
    assert_eq!(opening(&marketing, "Asia/Singapore", "2026-03-02T02:00:00Z"), None);
    assert_eq!(
        opening(&Schedule::Always, "Asia/Singapore", "2026-03-02T13:00:00Z"),
        None
    );
}

#[test]
fn spring_forward_opens_at_the_new_offset() {
    let marketing = Schedule::daily(clock("09:00"), clock("20:00"));
    // New York, the night before clocks go forward on 2026-03-08: 23:00 EST (UTC-5).
    // 09:00 on the 8th is already EDT (UTC-4): 13:00 UTC, not 14:00.
    assert_eq!(
        opening(&marketing, "America/New_York", "2026-03-08T04:00:00Z").as_deref(),
        Some("2026-03-08T13:00:00Z")
    );
    // Berlin, the night before 2026-03-29: 09:00 CEST is 07:00 UTC.
    assert_eq!(
        opening(&marketing, "Europe/Berlin", "2026-03-28T22:00:00Z").as_deref(),
        Some("2026-03-29T07:00:00Z")
    );
}

#[test]
fn fall_back_opens_at_the_old_offset_no_more() {
    let marketing = Schedule::daily(clock("09:00"), clock("20:00"));
    // New York, 2026-11-01: clocks go back at 02:00 EDT; 09:00 EST is 14:00 UTC.
    assert_eq!(
        opening(&marketing, "America/New_York", "2026-11-01T04:30:00Z").as_deref(),
        Some("2026-11-01T14:00:00Z")
    );
}

#[test]
fn a_start_inside_the_spring_gap_opens_at_the_jump() {
    // 02:30 does not exist in New York on 2026-03-08: clocks go from 02:00 EST to 03:00
    // EDT at 07:00 UTC, and the window (02:30 to 05:00) is open from that moment.
    let night = Schedule::daily(clock("02:30"), clock("05:00"));
    assert_eq!(
        opening(&night, "America/New_York", "2026-03-08T05:00:00Z").as_deref(),
        Some("2026-03-08T07:00:00Z")
    );
}

#[test]
fn a_start_inside_the_fall_fold_opens_at_its_first_occurrence() {
    // 01:30 happens twice in New York on 2026-11-01: first at 05:30 UTC (EDT).
    let night = Schedule::daily(clock("01:30"), clock("04:00"));
    assert_eq!(
        opening(&night, "America/New_York", "2026-11-01T04:00:00Z").as_deref(),
        Some("2026-11-01T05:30:00Z")
    );
}

#[test]
fn turning_the_clock_back_can_reopen_a_window() {
    // A window until 01:30 closes at 01:30 EDT (05:30 UTC); at 06:00 UTC the clock is
    // turned back to 01:00 EST, inside the window again until 01:30 EST.
    let late = Schedule::daily(clock("22:00"), clock("01:30"));
    assert_eq!(
        opening(&late, "America/New_York", "2026-11-01T05:45:00Z").as_deref(),
        Some("2026-11-01T06:00:00Z")
    );
}

#[test]
fn weekday_windows_skip_to_their_next_day() {
    // Monday to Saturday only; Saturday 21:00 in Berlin waits until Monday 09:00.
    let mut days = Days::NONE;
    for name in ["mon", "tue", "wed", "thu", "fri", "sat"] {
        days = days.with(Days::parse_weekday(name).expect("a weekday"));
    }
    let marketing = Schedule::Windows(vec![Window {
        start: clock("09:00"),
        end: clock("20:00"),
        days,
    }]);
    // 2026-03-07 is a Saturday; Berlin is UTC+1 in March before the 29th.
    assert_eq!(
        opening(&marketing, "Europe/Berlin", "2026-03-07T20:00:00Z").as_deref(),
        Some("2026-03-09T08:00:00Z")
    );
    // Sundays only, asked on a Sunday just after closing: next Sunday.
    let sundays = Schedule::Windows(vec![Window {
        start: clock("10:00"),
        end: clock("12:00"),
        days: Days::NONE.with(jiff::civil::Weekday::Sunday),
    }]);
    assert_eq!(
        opening(&sundays, "UTC", "2026-03-08T12:00:00Z").as_deref(),
        Some("2026-03-15T10:00:00Z")
    );
}

#[test]
fn a_night_window_opens_the_same_evening() {
    let night = Schedule::daily(clock("22:00"), clock("06:00"));
    assert_eq!(
        opening(&night, "Asia/Singapore", "2026-03-02T04:00:00Z").as_deref(),
        Some("2026-03-02T14:00:00Z")
    );
    // 03:00 local belongs to the window opened the evening before.
    assert_eq!(opening(&night, "Asia/Singapore", "2026-03-01T19:00:00Z"), None);
}

#[test]
fn an_unknown_zone_falls_back_to_the_offset() {
    let zone = RecipientZone::resolve("Mars/Olympus_Mons", 330);
    assert_eq!(zone.source.describe(), "UTC+05:30");
    assert_eq!(
        zone.source,
        ZoneSource::Offset {
            unknown_name: "Mars/Olympus_Mons".to_string(),
            utc_offset_minutes: 330
        }
    );
    let marketing = Schedule::daily(clock("09:00"), clock("20:00"));
    // 21:30 at UTC+05:30; 09:00 the next day is 03:30 UTC.
    let now = at("2026-03-02T16:00:00Z");
    assert_eq!(
        next_opening(&marketing, &zone.zone, now).map(|instant| instant.to_string()),
        Some("2026-03-03T03:30:00Z".to_string())
    );
    assert_eq!(RecipientZone::resolve("", -210).source.describe(), "UTC-03:30");
    assert_eq!(
        RecipientZone::resolve("Europe/Berlin", 0).source,
        ZoneSource::Named("Europe/Berlin".to_string())
    );
    // An offset no zone can have falls back to UTC.
    let absurd = RecipientZone::resolve("", i32::MAX);
    assert_eq!(absurd.zone.to_offset(now), Offset::UTC);
}

/// The first whole minute after `now` at which `schedule` is open, found by looking at
/// every minute: slow, obviously right, and independent of how [`next_opening`] works.
fn scan_for_opening(schedule: &Schedule, zone: &TimeZone, now: Timestamp) -> Option<Timestamp> {
    const MINUTE_MS: i64 = 60_000;
    const LIMIT_MINUTES: i64 = 9 * 24 * 60;
    let now_ms = now.as_millisecond();
    let first = now_ms - now_ms.rem_euclid(MINUTE_MS) + MINUTE_MS;
    (0..LIMIT_MINUTES)
        .map(|step| Timestamp::from_millisecond(first + step * MINUTE_MS).expect("in range"))
        .find(|instant| schedule.is_open(zone.to_datetime(*instant)))
}

#[test]
fn next_opening_agrees_with_a_minute_by_minute_scan() {
    let weekdays = ["mon", "tue", "wed", "thu", "fri"]
        .iter()
        .fold(Days::NONE, |days, name| {
            days.with(Days::parse_weekday(name).expect("a weekday"))
        });
    let schedules = [
        Schedule::daily(clock("09:00"), clock("20:00")),
        Schedule::daily(clock("22:00"), clock("06:00")),
        // Starts inside many zones' spring-forward gap and fall-back fold.
        Schedule::daily(clock("02:30"), clock("03:15")),
        Schedule::daily(clock("01:15"), clock("01:45")),
        Schedule::Windows(vec![
            Window {
                start: clock("09:00"),
                end: clock("12:00"),
                days: weekdays,
            },
            Window {
                start: clock("23:00"),
                end: clock("01:00"),
                days: Days::NONE.with(jiff::civil::Weekday::Saturday),
            },
        ]),
    ];
    // Around each zone's 2026 changes: (zone, a day or so before a change).
    let cases = [
        ("America/New_York", "2026-03-07T00:00:00Z"),
        ("America/New_York", "2026-10-31T00:00:00Z"),
        ("Europe/Berlin", "2026-03-28T00:00:00Z"),
        ("Europe/Berlin", "2026-10-24T00:00:00Z"),
        ("Australia/Sydney", "2026-04-04T00:00:00Z"),
        ("Australia/Sydney", "2026-10-03T00:00:00Z"),
        // Half-hour daylight saving.
        ("Australia/Lord_Howe", "2026-04-04T00:00:00Z"),
        ("Asia/Kathmandu", "2026-03-07T00:00:00Z"),
        ("UTC", "2026-03-07T00:00:00Z"),
    ];
    let mut checked = 0;
    for (zone_name, from) in cases {
        let zone = zone(zone_name);
        for schedule in &schedules {
            // Every 151 minutes for two and a half days: lands on many local times.
            for step in 0..24 {
                let now = at(from)
                    .checked_add(jiff::SignedDuration::from_mins(151 * step))
                    .expect("in range");
                let expected = if schedule.is_open(zone.to_datetime(now)) {
                    None
                } else {
                    scan_for_opening(schedule, &zone, now)
                };
                assert_eq!(
                    next_opening(schedule, &zone, now),
                    expected,
                    "{zone_name} at {now} ({}), schedule {schedule}",
                    zone.to_datetime(now)
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 9 * 5 * 24);
}
