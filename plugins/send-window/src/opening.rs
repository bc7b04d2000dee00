//! From wall-clock windows to instants: which time zone the recipient is in
//! ([`RecipientZone`]), and the first instant after "now" at which a [`Schedule`] is open
//! there ([`next_opening`]), daylight-saving changes included.
//!
//! The zone comes from the context's IANA name, looked up in the tz database bundled into
//! the plugin (jiff's `tzdb-bundle-always`); when the name is unknown, the context's
//! `utc_offset_minutes` stands in as a fixed offset. Nothing here reads a clock: "now" is
//! always passed in. Calls only jiff and [`crate::window`].

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};

use crate::window::Schedule;

/// Days before today (local) whose window starts are candidates too. A margin: a start
/// dated yesterday lies ahead of now only just after a zone has moved its clock back by
/// most of a day, which is rare but costs nothing to cover.
const DAYS_BEHIND: i64 = 1;
/// Days after today (local) searched for an opening: a window open on one weekday only
/// next opens at most a week and a day from now.
const DAYS_AHEAD: i64 = 8;
/// Zone transitions later than this after "now" cannot move the next opening.
const TRANSITION_HORIZON_SECONDS: i64 = (DAYS_AHEAD + 2) * 24 * 60 * 60;

/// The recipient's time zone, as resolved for one call.
#[derive(Clone, Debug)]
pub struct RecipientZone {
    pub zone: TimeZone,
    /// How the zone was found, for logs.
    pub source: ZoneSource,
}

/// Where a [`RecipientZone`] came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZoneSource {
    /// The IANA name in the context, known to the bundled tz database.
    Named(String),
    /// The name was not known (it is kept here); the context's fixed offset stands in,
    /// which cannot see a daylight-saving change coming.
    Offset {
        unknown_name: String,
        utc_offset_minutes: i32,
    },
}

impl ZoneSource {
    /// The zone's name, or the offset that stands in for it (`UTC+05:30`).
    pub fn describe(&self) -> String {
        match self {
            ZoneSource::Named(name) => name.clone(),
            ZoneSource::Offset { utc_offset_minutes, .. } => {
                let sign = if *utc_offset_minutes < 0 { '-' } else { '+' };
                let minutes = utc_offset_minutes.unsigned_abs();
                format!("UTC{sign}{:02}:{:02}", minutes / 60, minutes % 60)
            }
        }
    }
}

impl RecipientZone {
    /// `time_zone` when the bundled database knows it, else a fixed `utc_offset_minutes`
    /// (UTC if even that is out of range).
    pub fn resolve(time_zone: &str, utc_offset_minutes: i32) -> RecipientZone {
        if let Ok(zone) = TimeZone::get(time_zone) {
            return RecipientZone {
                zone,
                source: ZoneSource::Named(time_zone.to_string()),
            };
        }
        let offset = utc_offset_minutes
            .checked_mul(60)
            .and_then(|seconds| Offset::from_seconds(seconds).ok())
            .unwrap_or(Offset::UTC);
        RecipientZone {
            zone: TimeZone::fixed(offset),
            source: ZoneSource::Offset {
                unknown_name: time_zone.to_string(),
                utc_offset_minutes,
            },
        }
    }
}

/// Whether `schedule` is open at `now` in `zone`.
pub fn is_open(schedule: &Schedule, zone: &TimeZone, now: Timestamp) -> bool {
    schedule.is_open(zone.to_datetime(now))
}

/// The first instant after `now` at which `schedule` is open in `zone`; `None` when it is
/// open at `now` already, or (which a valid config rules out) when it does not open within
/// eight days.
///
/// The wall clock moves one second per second except at a zone transition, where it jumps.
/// So the schedule becomes open either where the clock reaches a window's start, or at a
/// transition that jumps into a window. Both kinds of instant are collected for the days
/// around `now` and the earliest one at which the schedule is open wins. This handles the
/// awkward days without special cases: a start that falls in a spring-forward gap (02:30 on
/// the day clocks jump from 02:00 to 03:00) opens at the jump; a start that occurs twice in
/// a fall-back fold opens at its first occurrence; a window that closed before a fall-back
/// opens again when the clock is turned back into it.
pub fn next_opening(schedule: &Schedule, zone: &TimeZone, now: Timestamp) -> Option<Timestamp> {
    let Schedule::Windows(windows) = schedule else {
        return None;
    };
    if schedule.is_open(zone.to_datetime(now)) {
        return None;
    }
    let today = zone.to_datetime(now).date();
    let mut candidates = Vec::new();
    for offset in -DAYS_BEHIND..=DAYS_AHEAD {
        let Some(day) = add_days(today, offset) else {
            continue;
        };
        for window in windows.iter().filter(|window| window.days.contains(day.weekday())) {
            let start = day.at(
                i8::try_from(window.start.hour()).unwrap_or_default(),
                i8::try_from(window.start.minute()).unwrap_or_default(),
                0,
                0,
            );
            push_instants_of(zone, start, &mut candidates);
        }
    }
    if let Ok(horizon) = now.checked_add(jiff::SignedDuration::from_secs(TRANSITION_HORIZON_SECONDS)) {
        candidates.extend(
            zone.following(now)
                .map(|transition| transition.timestamp())
                .take_while(|instant| *instant <= horizon),
        );
    }
    candidates
        .into_iter()
        .filter(|instant| *instant > now && schedule.is_open(zone.to_datetime(*instant)))
        .min()
}

/// The instants at which the wall clock of `zone` reads `local`: one, two in a fold, none
/// in a gap (the transition that skips it is a candidate of its own).
fn push_instants_of(zone: &TimeZone, local: DateTime, instants: &mut Vec<Timestamp>) {
    let offsets = match zone.to_ambiguous_timestamp(local).offset() {
        AmbiguousOffset::Unambiguous { offset } => [Some(offset), None],
        AmbiguousOffset::Fold { before, after } => [Some(before), Some(after)],
        AmbiguousOffset::Gap { .. } => [None, None],
    };
    instants.extend(
        offsets
            .into_iter()
            .flatten()
            .filter_map(|offset| offset.to_timestamp(local).ok()),
    );
}

fn add_days(date: Date, days: i64) -> Option<Date> {
    date.checked_add(jiff::Span::new().days(days)).ok()
}

#[cfg(test)]
mod tests;
