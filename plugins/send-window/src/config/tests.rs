//! Native tests of the send-window config: defaults, overrides, and every refusal naming
//! its field.

use super::*;

fn clock(text: &str) -> ClockTime {
    ClockTime::parse(text).expect("a valid time")
}

fn refusal(text: &str) -> String {
    Config::parse(text).expect_err("refused")
}

#[test]
fn empty_configs_give_the_defaults() {
    for text in ["", "{}", "null"] {
        assert_eq!(Config::parse(text), Ok(Config::default()), "{text:?}");
    }
    let config = Config::default();
    assert_eq!(config.windows.authentication, Schedule::Always);
    assert_eq!(config.windows.service, Schedule::Always);
    assert_eq!(
        config.windows.marketing,
        Schedule::daily(clock("09:00"), clock("20:00"))
    );
    assert_eq!(config.windows.utility, Schedule::daily(clock("07:00"), clock("22:00")));
    assert_eq!(config.bypass_priorities, vec![Priority::Critical]);
    assert!(config.countries.is_empty());
}

#[test]
fn a_category_window_replaces_its_default_only() {
    let config = Config::parse(r#"{"windows": {"utility": {"start": "08:00", "end": "21:30"}, "service": "any"}}"#)
        .expect("valid");
    assert_eq!(config.windows.utility, Schedule::daily(clock("08:00"), clock("21:30")));
    assert_eq!(config.windows.marketing, CategorySchedules::default().marketing);
    assert_eq!(config.windows.service, Schedule::Always);
}

#[test]
fn a_country_overrides_the_categories_it_names() {
    let config = Config::parse(
        r#"{"windows": {"marketing": {"start": "10:00", "end": "18:00"}},
            "countries": {"49": {"marketing": {"start": "10:00", "end": "19:00", "days": ["mon", "tue", "wed", "thu", "fri", "saturday"]}},
                          "65": {"utility": "any"}}}"#,
    )
    .expect("valid");
    let Schedule::Windows(germany) = config.schedule(49, Category::Marketing) else {
        panic!("expected windows");
    };
    assert_eq!((germany[0].start, germany[0].end), (clock("10:00"), clock("19:00")));
    assert!(!germany[0].days.contains(jiff::civil::Weekday::Sunday));
    assert!(germany[0].days.contains(jiff::civil::Weekday::Saturday));
    // Germany's utility and everyone else's marketing follow `windows`.
    assert_eq!(
        config.schedule(49, Category::Utility),
        &CategorySchedules::default().utility
    );
    assert_eq!(
        config.schedule(44, Category::Marketing),
        &Schedule::daily(clock("10:00"), clock("18:00"))
    );
    assert_eq!(config.schedule(65, Category::Utility), &Schedule::Always);
}

#[test]
fn a_category_may_have_several_windows() {
    let config = Config::parse(
        r#"{"windows": {"marketing": [{"start": "09:00", "end": "12:00"}, {"start": "14:00", "end": "19:00", "days": ["sat"]}]}}"#,
    )
    .expect("valid");
    let Schedule::Windows(windows) = &config.windows.marketing else {
        panic!("expected windows");
    };
    assert_eq!(windows.len(), 2);
    assert_eq!(windows[1].days, Days::NONE.with(jiff::civil::Weekday::Saturday));
}

#[test]
fn bypass_priorities_can_be_changed_or_emptied() {
    let config = Config::parse(r#"{"bypass_priorities": ["critical", "high"]}"#).expect("valid");
    assert!(config.bypasses(Priority::High) && config.bypasses(Priority::Critical));
    assert!(!config.bypasses(Priority::Bulk));
    let config = Config::parse(r#"{"bypass_priorities": []}"#).expect("valid");
    assert!(!config.bypasses(Priority::Critical));
}

#[test]
fn bad_values_are_refused_naming_the_field() {
    let cases = [
        (
            r#"{"windows": {"marketing": {"start": "9am", "end": "20:00"}}}"#,
            r#"windows.marketing.start: expected HH:MM (00:00 to 23:59), got "9am""#,
        ),
        (
            r#"{"windows": {"utility": {"start": "07:00", "end": "24:00"}}}"#,
            r#"windows.utility.end: expected HH:MM (00:00 to 23:59), got "24:00""#,
        ),
        (
            r#"{"countries": {"49": {"marketing": {"start": "10:00", "end": "7:00"}}}}"#,
            r#"countries.49.marketing.end: expected HH:MM (00:00 to 23:59), got "7:00""#,
        ),
        (
            r#"{"windows": {"marketing": [{"start": "09:00", "end": "12:00"}, {"start": "14:00", "end": "14:00"}]}}"#,
            r#"windows.marketing[1]: start and end are both 14:00; a window needs two different times (use "any" to never close)"#,
        ),
        (
            r#"{"windows": {"marketing": {"start": "09:00", "end": "20:00", "days": ["mon", "funday"]}}}"#,
            r#"windows.marketing.days[1]: expected a weekday (monday to sunday, or mon to sun), got "funday""#,
        ),
        (
            r#"{"windows": {"marketing": {"start": "09:00", "end": "20:00", "days": []}}}"#,
            "windows.marketing.days: expected at least one day (leave `days` out for every day)",
        ),
        (
            r#"{"windows": {"marketing": []}}"#,
            r#"windows.marketing: expected at least one window, or "any""#,
        ),
        (
            r#"{"countries": {"049": {"marketing": "any"}}}"#,
            r#"countries.049: expected a country calling code such as "49", got "049""#,
        ),
        (
            r#"{"countries": {"Germany": {"marketing": "any"}}}"#,
            r#"countries.Germany: expected a country calling code such as "49", got "Germany""#,
        ),
    ];
    for (text, reason) in cases {
        assert_eq!(refusal(text), reason, "{text}");
    }
}

#[test]
fn shape_errors_name_the_field_too() {
    let error = refusal(r#"{"windows": {"marketing": "always"}}"#);
    assert!(
        error.starts_with("config field `windows.marketing`: invalid value"),
        "{error}"
    );
    let error = refusal(r#"{"windows": {"marketing": {"start": "09:00", "end": "20:00", "days": "mon"}}}"#);
    assert!(error.starts_with("config field `windows.marketing.days`"), "{error}");
    let error = refusal(r#"{"windows": {"marketing": [{"start": "09:00", "ends": "20:00"}]}}"#);
    assert!(error.contains("unknown field `ends`"), "{error}");
    assert!(error.starts_with("config field `windows.marketing[0]"), "{error}");
    let error = refusal(r#"{"windows": {"promotions": "any"}}"#);
    assert!(error.contains("unknown field `promotions`"), "{error}");
    let error = refusal(r#"{"bypass_priorities": ["urgent"]}"#);
    assert!(error.starts_with("config field `bypass_priorities[0]`"), "{error}");
    let error = refusal(r#"{"window": {}}"#);
    assert!(error.contains("unknown field `window`"), "{error}");
    let error = refusal(r#"{"countries": {"49": {"marketing": {"start": "10:00"}}}}"#);
    assert!(error.contains("missing field `end`"), "{error}");
}

#[test]
fn calling_codes_are_one_to_three_digits() {
    assert_eq!(parse_calling_code("1"), Some(1));
    assert_eq!(parse_calling_code("49"), Some(49));
    assert_eq!(parse_calling_code("971"), Some(971));
    for bad in ["", "0", "1234", "+49", "4 9", "٤٩"] {
        assert_eq!(parse_calling_code(bad), None, "{bad:?}");
    }
}
