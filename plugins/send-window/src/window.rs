//! Send windows on the recipient's wall clock: a time of day ([`ClockTime`]), a set of
//! weekdays ([`Days`]), one window ([`Window`], which may cross midnight) and a category's
//! whole rule ([`Schedule`]: always open, or open inside any of its windows).
//!
//! Everything here is civil (local) time and pure: no zones, no instants. Which instant a
//! window opens at is [`crate::opening`]'s business. Calls only `jiff::civil`.

use std::fmt;

use jiff::civil::{DateTime, Weekday};

const MINUTES_PER_HOUR: u16 = 60;

/// A time of day to the minute, `00:00` to `23:59`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClockTime {
    /// Minutes since midnight, 0 to 1439.
    minute_of_day: u16,
}

impl ClockTime {
    /// `hour` 0 to 23 and `minute` 0 to 59; `None` otherwise.
    pub fn new(hour: u8, minute: u8) -> Option<ClockTime> {
        (hour < 24 && minute < 60).then(|| ClockTime {
            minute_of_day: u16::from(hour) * MINUTES_PER_HOUR + u16::from(minute),
        })
    }

    /// Parses exactly `HH:MM` (two digits each, 24-hour clock).
    pub fn parse(text: &str) -> Option<ClockTime> {
        let (hour, minute) = text.split_once(':')?;
        let two_digits = |part: &str| {
            (part.len() == 2 && part.bytes().all(|byte| byte.is_ascii_digit()))
                .then(|| part.parse::<u8>().ok())
                .flatten()
        };
        ClockTime::new(two_digits(hour)?, two_digits(minute)?)
    }

    pub fn hour(self) -> u8 {
        // Below 24 by construction.
        u8::try_from(self.minute_of_day / MINUTES_PER_HOUR).unwrap_or_default()
    }

    pub fn minute(self) -> u8 {
        // Below 60 by construction.
        u8::try_from(self.minute_of_day % MINUTES_PER_HOUR).unwrap_or_default()
    }

    /// The minute of `at`'s day that `at` falls in (seconds are dropped: a window's edges
    /// are whole minutes, so 19:59:59 is still before 20:00).
    fn of(at: DateTime) -> ClockTime {
        // jiff keeps hours in 0..24 and minutes in 0..60.
        let hour = u8::try_from(at.hour()).unwrap_or_default();
        let minute = u8::try_from(at.minute()).unwrap_or_default();
        ClockTime::new(hour, minute).unwrap_or(ClockTime { minute_of_day: 0 })
    }
}

impl fmt::Display for ClockTime {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{:02}:{:02}", self.hour(), self.minute())
    }
}

/// A set of weekdays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Days {
    /// Bit `n` is the weekday `n` days after Monday.
    bits: u8,
}

impl Days {
    /// Every day of the week.
    pub const ALL: Days = Days { bits: 0b111_1111 };
    /// No day: what a list of days starts from.
    pub const NONE: Days = Days { bits: 0 };

    /// Parses a weekday's name: `monday` to `sunday`, or its first three letters (`mon`).
    pub fn parse_weekday(name: &str) -> Option<Weekday> {
        const NAMES: [(&str, Weekday); 7] = [
            ("monday", Weekday::Monday),
            ("tuesday", Weekday::Tuesday),
            ("wednesday", Weekday::Wednesday),
            ("thursday", Weekday::Thursday),
            ("friday", Weekday::Friday),
            ("saturday", Weekday::Saturday),
            ("sunday", Weekday::Sunday),
        ];
        NAMES
            .iter()
            .find(|(full, _)| name == *full || (name.len() == 3 && full.starts_with(name)))
            .map(|(_, weekday)| *weekday)
    }

    /// This set and `weekday`.
    pub fn with(self, weekday: Weekday) -> Days {
        Days {
            bits: self.bits | Days::bit(weekday),
        }
    }

    pub fn contains(self, weekday: Weekday) -> bool {
        self.bits & Days::bit(weekday) != 0
    }

    pub fn is_empty(self) -> bool {
        self.bits == 0
    }

    fn bit(weekday: Weekday) -> u8 {
        // 0 (Monday) to 6 (Sunday).
        1 << weekday.to_monday_zero_offset()
    }
}

/// Open from `start` (inclusive) to `end` (exclusive) on the recipient's clock, on the days
/// it opens. When `end` is not after `start` the window crosses midnight: 22:00 to 06:00
/// opens at 22:00 on each of its days and closes at 06:00 the next morning, and an `end`
/// of 00:00 means "until midnight".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    pub start: ClockTime,
    pub end: ClockTime,
    /// The days the window opens on (for a window that crosses midnight, the day it opens,
    /// not the morning after).
    pub days: Days,
}

impl Window {
    /// Every day from `start` to `end`. `start` and `end` must differ.
    pub fn daily(start: ClockTime, end: ClockTime) -> Window {
        Window {
            start,
            end,
            days: Days::ALL,
        }
    }

    pub fn crosses_midnight(&self) -> bool {
        self.end <= self.start
    }

    /// Whether the local time `at` lies inside this window.
    pub fn contains(&self, at: DateTime) -> bool {
        let time = ClockTime::of(at);
        let weekday = at.weekday();
        if self.crosses_midnight() {
            (time >= self.start && self.days.contains(weekday))
                || (time < self.end && self.days.contains(weekday.previous()))
        } else {
            self.start <= time && time < self.end && self.days.contains(weekday)
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}-{}", self.start, self.end)
    }
}

/// When a category may be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// Any time (`"any"` in the config).
    Always,
    /// Inside any of these windows (never empty).
    Windows(Vec<Window>),
}

impl Schedule {
    /// One window, every day.
    pub fn daily(start: ClockTime, end: ClockTime) -> Schedule {
        Schedule::Windows(vec![Window::daily(start, end)])
    }

    /// Whether the local time `at` lies inside the schedule.
    pub fn is_open(&self, at: DateTime) -> bool {
        match self {
            Schedule::Always => true,
            Schedule::Windows(windows) => windows.iter().any(|window| window.contains(at)),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Always => formatter.write_str("any"),
            Schedule::Windows(windows) => {
                for (index, window) in windows.iter().enumerate() {
                    if index > 0 {
                        formatter.write_str(", ")?;
                    }
                    write!(formatter, "{window}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use jiff::civil::date;

    use super::*;

    fn clock(text: &str) -> ClockTime {
        ClockTime::parse(text).expect("a valid time")
    }

    #[test]
    fn clock_times_are_exactly_hh_mm() {
        assert_eq!(clock("09:05").to_string(), "09:05");
        assert_eq!(clock("23:59"), ClockTime::new(23, 59).expect("valid"));
        assert_eq!(clock("00:00").hour(), 0);
        for bad in [
            "9:00",
            "09:5",
            "24:00",
            "12:60",
            "12-00",
            "",
            "ab:cd",
            "+1:00",
            "09:00:00",
            "٠٩:٠٠",
        ] {
            assert_eq!(ClockTime::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn weekdays_by_full_or_short_name() {
        assert_eq!(Days::parse_weekday("monday"), Some(Weekday::Monday));
        assert_eq!(Days::parse_weekday("sun"), Some(Weekday::Sunday));
        assert_eq!(Days::parse_weekday("Sunday"), None);
        assert_eq!(Days::parse_weekday("su"), None);
        assert_eq!(Days::parse_weekday("mond"), None);
        let days = Days::NONE.with(Weekday::Saturday).with(Weekday::Sunday);
        assert!(days.contains(Weekday::Sunday) && !days.contains(Weekday::Friday));
        assert!(Days::NONE.is_empty() && !Days::ALL.is_empty());
    }

    #[test]
    fn a_day_window_includes_its_start_and_excludes_its_end() {
        let window = Window::daily(clock("09:00"), clock("20:00"));
        let day = date(2026, 3, 2);
        assert!(!window.contains(day.at(8, 59, 59, 999_999_999)));
        assert!(window.contains(day.at(9, 0, 0, 0)));
        assert!(window.contains(day.at(19, 59, 59, 0)));
        assert!(!window.contains(day.at(20, 0, 0, 0)));
    }

    #[test]
    fn a_night_window_runs_into_the_next_morning() {
        // Fridays only, 22:00 to 06:00: Friday night into Saturday morning.
        let window = Window {
            start: clock("22:00"),
            end: clock("06:00"),
            days: Days::NONE.with(Weekday::Friday),
        };
        let friday = date(2026, 3, 6);
        let saturday = date(2026, 3, 7);
        assert!(window.contains(friday.at(22, 0, 0, 0)));
        assert!(window.contains(saturday.at(5, 59, 0, 0)));
        assert!(!window.contains(saturday.at(6, 0, 0, 0)));
        assert!(!window.contains(saturday.at(22, 30, 0, 0)));
        // Friday morning belongs to Thursday night, which is not a day of the window.
        assert!(!window.contains(friday.at(2, 0, 0, 0)));
    }

    #[test]
    fn an_end_of_midnight_means_until_the_end_of_the_day() {
        let window = Window::daily(clock("18:00"), clock("00:00"));
        let day = date(2026, 3, 2);
        assert!(window.contains(day.at(23, 59, 0, 0)));
        assert!(!window.contains(day.at(0, 0, 0, 0)));
        assert!(!window.contains(day.at(17, 0, 0, 0)));
    }

    #[test]
    fn a_schedule_is_open_in_any_of_its_windows() {
        let schedule = Schedule::Windows(vec![
            Window::daily(clock("08:00"), clock("12:00")),
            Window::daily(clock("14:00"), clock("18:00")),
        ]);
        let day = date(2026, 3, 2);
        assert!(schedule.is_open(day.at(9, 0, 0, 0)));
        assert!(!schedule.is_open(day.at(13, 0, 0, 0)));
        assert!(schedule.is_open(day.at(17, 0, 0, 0)));
        assert!(Schedule::Always.is_open(day.at(3, 0, 0, 0)));
        assert_eq!(schedule.to_string(), "08:00-12:00, 14:00-18:00");
    }
}
