//! The recipient's local wall-clock time, computed from the context the host passes
//! (`now-ms` and the recipient's `utc-offset-minutes`). Plugins have no clock of their
//! own: the context's time is the only "now", which keeps verdicts reproducible.

use crate::Context;

const MILLISECONDS_PER_MINUTE: i64 = 60_000;
const MILLISECONDS_PER_HOUR: i64 = 60 * MILLISECONDS_PER_MINUTE;
const MILLISECONDS_PER_DAY: i64 = 24 * MILLISECONDS_PER_HOUR;

/// A day of the week, Monday first (ISO 8601).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl Weekday {
    const ALL: [Weekday; 7] = [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
        Weekday::Sunday,
    ];

    /// Saturday or Sunday.
    pub fn is_weekend(self) -> bool {
        matches!(self, Weekday::Saturday | Weekday::Sunday)
    }

    /// Days since Monday: Monday is 0, Sunday is 6.
    pub fn days_from_monday(self) -> u8 {
        self as u8
    }

    /// The weekday of a day counted from the Unix epoch (day 0 was a Thursday).
    fn from_days_since_epoch(days: i64) -> Weekday {
        // Thursday is index 3 counting from Monday.
        let index = (days + 3).rem_euclid(7);
        // rem_euclid(7) is always in 0..7.
        Weekday::ALL[usize::try_from(index).unwrap_or_default()]
    }
}

/// The recipient's local `(hour, minute, weekday)` at `context.now-ms`, using
/// `context.recipient.utc-offset-minutes` (the host resolves the time zone, daylight saving
/// included, for that instant). Hours run 0 to 23.
pub fn local_time(context: &Context) -> (u8, u8, Weekday) {
    local_time_at(context.now_ms, context.recipient.utc_offset_minutes)
}

/// [`local_time`] for an explicit instant (milliseconds since the Unix epoch) and offset.
pub fn local_time_at(now_ms: i64, utc_offset_minutes: i32) -> (u8, u8, Weekday) {
    let local_ms = now_ms.saturating_add(i64::from(utc_offset_minutes).saturating_mul(MILLISECONDS_PER_MINUTE));
    let days = local_ms.div_euclid(MILLISECONDS_PER_DAY);
    let millisecond_of_day = local_ms.rem_euclid(MILLISECONDS_PER_DAY);
    // Both quotients are bounded (0..24 and 0..60), so the conversions cannot fail.
    let hour = u8::try_from(millisecond_of_day / MILLISECONDS_PER_HOUR).unwrap_or_default();
    let minute = u8::try_from(millisecond_of_day % MILLISECONDS_PER_HOUR / MILLISECONDS_PER_MINUTE).unwrap_or_default();
    (hour, minute, Weekday::from_days_since_epoch(days))
}

#[cfg(test)]
mod tests {
    use super::{Weekday, local_time, local_time_at};
    use crate::Context;

    #[test]
    fn the_epoch_was_a_thursday_at_midnight() {
        assert_eq!(local_time_at(0, 0), (0, 0, Weekday::Thursday));
    }

    #[test]
    fn offsets_move_the_clock_and_the_day() {
        // 2024-03-01T23:30:00Z was a Friday.
        let now_ms = 1_709_335_800_000;
        assert_eq!(local_time_at(now_ms, 0), (23, 30, Weekday::Friday));
        // Singapore, UTC+8: Saturday 07:30.
        assert_eq!(local_time_at(now_ms, 480), (7, 30, Weekday::Saturday));
        // New York in winter, UTC-5: Friday 18:30.
        assert_eq!(local_time_at(now_ms, -300), (18, 30, Weekday::Friday));
        // India, UTC+5:30: Saturday 05:00.
        assert_eq!(local_time_at(now_ms, 330), (5, 0, Weekday::Saturday));
    }

    #[test]
    fn times_before_the_epoch_work() {
        // 1969-12-31T23:59:00Z was a Wednesday.
        assert_eq!(local_time_at(-60_000, 0), (23, 59, Weekday::Wednesday));
    }

    #[test]
    fn reads_the_context() {
        let context = Context {
            now_ms: 1_709_335_800_000,
            recipient: crate::RecipientFacts {
                utc_offset_minutes: 480,
                ..Default::default()
            },
            ..Default::default()
        };
        let (hour, minute, weekday) = local_time(&context);
        assert_eq!((hour, minute, weekday), (7, 30, Weekday::Saturday));
        assert!(weekday.is_weekend());
        assert_eq!(weekday.days_from_monday(), 5);
    }
}
