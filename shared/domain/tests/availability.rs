//! Hours, overrides and availability as a practice sees them: explicit cases, including the DST days of
//! New York, London, Lord Howe and a half-hour zone.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use domain::schedule::{
    availability, day_schedule, fresh_seconds, local_instant, next_change, reminder_instant,
    validate_hours, validate_overrides, Availability, AvailabilityReason, DateOverride, DayHours,
    DaySchedule, OverrideKind, TimeOfDay, WeeklyHours, Window, AVAILABILITY_MAX_AGE_SECS,
};
use domain::{DomainError, InvalidCode};
use serde_json::json;

const NY: Tz = chrono_tz::America::New_York;
const LONDON: Tz = chrono_tz::Europe::London;

fn t(s: &str) -> TimeOfDay {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn hours(start: &str, end: &str) -> Option<DayHours> {
    Some(DayHours::one(t(start), t(end)))
}

/// A day of several windows: `windows(&[("08:00", "12:00"), ("14:00", "19:00")])`.
fn windows(list: &[(&str, &str)]) -> Option<DayHours> {
    Some(DayHours::new(
        list.iter().map(|(s, e)| Window::new(t(s), t(e))).collect(),
    ))
}

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// An instant from RFC 3339 with any offset.
fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn closed_week() -> WeeklyHours {
    WeeklyHours {
        mon: None,
        tue: None,
        wed: None,
        thu: None,
        fri: None,
        sat: None,
        sun: None,
    }
}

fn every_day(h: Option<DayHours>) -> WeeklyHours {
    WeeklyHours {
        mon: h.clone(),
        tue: h.clone(),
        wed: h.clone(),
        thu: h.clone(),
        fri: h.clone(),
        sat: h.clone(),
        sun: h,
    }
}

fn sundays(h: Option<DayHours>) -> WeeklyHours {
    WeeklyHours {
        sun: h,
        ..closed_week()
    }
}

fn non_working(from: &str, to: &str) -> DateOverride {
    DateOverride {
        start_date: date(from),
        end_date: date(to),
        kind: OverrideKind::NonWorking,
        hours: None,
    }
}

fn working(from: &str, to: &str, hours: Option<(&str, &str)>) -> DateOverride {
    DateOverride {
        start_date: date(from),
        end_date: date(to),
        kind: OverrideKind::Working,
        hours: hours.and_then(|h| self::hours(h.0, h.1)),
    }
}

/// What the availability endpoint would print: (open, reason, opens_at, closes_at).
fn shown(a: &Availability) -> (bool, &'static str, Option<String>, Option<String>) {
    let reason = match a.reason {
        AvailabilityReason::Open => "open",
        AvailabilityReason::OutsideHours => "outside_hours",
        AvailabilityReason::NonWorkingDay => "non_working_day",
        AvailabilityReason::Offline => "offline",
    };
    (
        a.open,
        reason,
        a.opens_at.map(|o| o.to_rfc3339()),
        a.closes_at.map(|c| c.to_rfc3339()),
    )
}

fn check(
    h: &WeeklyHours,
    ov: &[DateOverride],
    tz: Tz,
    when: &str,
) -> (bool, &'static str, Option<String>, Option<String>) {
    shown(&availability(h, ov, true, tz, at(when)))
}

fn open_until(c: &str) -> (bool, &'static str, Option<String>, Option<String>) {
    (true, "open", None, Some(c.to_owned()))
}

fn closed(
    reason: &'static str,
    o: Option<&str>,
) -> (bool, &'static str, Option<String>, Option<String>) {
    (false, reason, o.map(str::to_owned), None)
}

// ------------------------------------------------------------------------------------------------ defaults

#[test]
fn default_hours_are_nine_to_six_on_weekdays_with_the_weekend_off() {
    let json = serde_json::to_value(WeeklyHours::default()).unwrap();
    assert_eq!(
        json,
        json!({"mon": {"start": "09:00", "end": "18:00"}, "tue": {"start": "09:00", "end": "18:00"},
               "wed": {"start": "09:00", "end": "18:00"}, "thu": {"start": "09:00", "end": "18:00"},
               "fri": {"start": "09:00", "end": "18:00"}, "sat": null, "sun": null})
    );
    assert!(validate_hours(&WeeklyHours::default()).is_ok());
}

#[test]
fn open_during_weekday_hours_and_closes_at_six_local() {
    let h = WeeklyHours::default();
    assert_eq!(
        check(&h, &[], NY, "2026-11-23T10:00:00-05:00"),
        open_until("2026-11-23T18:00:00-05:00")
    );
    // The first minute is open, the closing minute is not.
    assert_eq!(
        check(&h, &[], NY, "2026-11-23T09:00:00-05:00"),
        open_until("2026-11-23T18:00:00-05:00")
    );
    assert_eq!(
        check(&h, &[], NY, "2026-11-23T17:59:59-05:00"),
        open_until("2026-11-23T18:00:00-05:00")
    );
    assert_eq!(
        check(&h, &[], NY, "2026-11-23T18:00:00-05:00"),
        closed("outside_hours", Some("2026-11-24T09:00:00-05:00"))
    );
}

#[test]
fn hours_are_applied_in_the_practice_zone_not_utc() {
    // 14:30Z is 09:30 in New York: open, although it is after 09:00 UTC either way; 13:30Z is 08:30 there.
    let h = WeeklyHours::default();
    assert_eq!(
        check(&h, &[], NY, "2026-11-23T14:30:00Z"),
        open_until("2026-11-23T18:00:00-05:00")
    );
    assert_eq!(
        check(&h, &[], NY, "2026-11-23T13:30:00Z"),
        closed("outside_hours", Some("2026-11-23T09:00:00-05:00"))
    );
    // 2026-11-24T01:00Z is still Monday 20:00 in New York: Tuesday 09:00 is next.
    assert_eq!(
        check(&h, &[], NY, "2026-11-24T01:00:00Z"),
        closed("outside_hours", Some("2026-11-24T09:00:00-05:00"))
    );
}

#[test]
fn weekend_is_closed_until_monday() {
    let h = WeeklyHours::default();
    assert_eq!(
        check(&h, &[], NY, "2026-11-21T12:00:00-05:00"),
        closed("outside_hours", Some("2026-11-23T09:00:00-05:00"))
    );
    assert_eq!(
        check(&h, &[], NY, "2026-11-22T23:59:00-05:00"),
        closed("outside_hours", Some("2026-11-23T09:00:00-05:00"))
    );
}

#[test]
fn before_and_after_hours_point_at_the_next_opening() {
    let h = WeeklyHours::default();
    // Friday 19:00 in New York: Monday 09:00.
    assert_eq!(
        check(&h, &[], NY, "2026-11-20T19:00:00-05:00"),
        closed("outside_hours", Some("2026-11-23T09:00:00-05:00"))
    );
    // Friday 08:59: the same morning.
    assert_eq!(
        check(&h, &[], NY, "2026-11-20T08:59:00-05:00"),
        closed("outside_hours", Some("2026-11-20T09:00:00-05:00"))
    );
}

#[test]
fn opens_at_carries_the_offset_of_the_opening_not_of_now() {
    let h = WeeklyHours::default();
    // Saturday in EDT, Monday in EST (clocks went back on Sunday 2026-11-01).
    assert_eq!(
        check(&h, &[], NY, "2026-10-31T12:00:00-04:00"),
        closed("outside_hours", Some("2026-11-02T09:00:00-05:00"))
    );
    // Friday in EST, Monday in EDT (clocks went forward on Sunday 2026-03-08).
    assert_eq!(
        check(&h, &[], NY, "2026-03-06T19:00:00-05:00"),
        closed("outside_hours", Some("2026-03-09T09:00:00-04:00"))
    );
}

// ------------------------------------------------------------------------------------------------ overrides

#[test]
fn non_working_range_closes_every_date_it_covers() {
    let h = WeeklyHours::default();
    let ov = [non_working("2026-12-24", "2026-12-26")];
    // Thursday and Friday would be open without the override.
    for when in [
        "2026-12-24T10:00:00-05:00",
        "2026-12-25T00:00:00-05:00",
        "2026-12-25T23:59:00-05:00",
    ] {
        assert_eq!(
            check(&h, &ov, NY, when),
            closed("non_working_day", Some("2026-12-28T09:00:00-05:00")),
            "{when}"
        );
    }
    // Saturday is a non-working day because of the override, not merely outside hours.
    assert_eq!(
        check(&h, &ov, NY, "2026-12-26T12:00:00-05:00"),
        closed("non_working_day", Some("2026-12-28T09:00:00-05:00"))
    );
    // The evening before: outside hours, and the next opening skips the whole range.
    assert_eq!(
        check(&h, &ov, NY, "2026-12-23T19:00:00-05:00"),
        closed("outside_hours", Some("2026-12-28T09:00:00-05:00"))
    );
    // Open the day before, until the usual closing.
    assert_eq!(
        check(&h, &ov, NY, "2026-12-23T12:00:00-05:00"),
        open_until("2026-12-23T18:00:00-05:00")
    );
    assert_eq!(
        day_schedule(&h, &ov, date("2026-12-25")),
        DaySchedule::Closed { non_working: true }
    );
    assert_eq!(
        day_schedule(&h, &ov, date("2026-12-27")),
        DaySchedule::Closed { non_working: false }
    );
}

#[test]
fn holidays_can_be_entered_a_year_ahead() {
    let h = WeeklyHours::default();
    let ov = [non_working("2027-11-22", "2027-11-26")];
    assert_eq!(
        check(&h, &ov, NY, "2027-11-19T19:00:00-05:00"),
        closed("outside_hours", Some("2027-11-29T09:00:00-05:00"))
    );
}

#[test]
fn working_sunday_with_its_own_hours() {
    let h = WeeklyHours::default();
    let ov = [working(
        "2026-11-29",
        "2026-11-29",
        Some(("10:00", "14:00")),
    )];
    assert_eq!(
        check(&h, &ov, NY, "2026-11-28T12:00:00-05:00"),
        closed("outside_hours", Some("2026-11-29T10:00:00-05:00"))
    );
    assert_eq!(
        check(&h, &ov, NY, "2026-11-29T09:30:00-05:00"),
        closed("outside_hours", Some("2026-11-29T10:00:00-05:00"))
    );
    assert_eq!(
        check(&h, &ov, NY, "2026-11-29T11:00:00-05:00"),
        open_until("2026-11-29T14:00:00-05:00")
    );
    assert_eq!(
        check(&h, &ov, NY, "2026-11-29T14:00:00-05:00"),
        closed("outside_hours", Some("2026-11-30T09:00:00-05:00"))
    );
}

#[test]
fn working_override_own_hours_also_replace_weekday_hours() {
    // A short Friday: 09:00-13:00 instead of 09:00-18:00.
    let h = WeeklyHours::default();
    let ov = [working(
        "2026-11-27",
        "2026-11-27",
        Some(("09:00", "13:00")),
    )];
    assert_eq!(
        check(&h, &ov, NY, "2026-11-27T10:00:00-05:00"),
        open_until("2026-11-27T13:00:00-05:00")
    );
    assert_eq!(
        check(&h, &ov, NY, "2026-11-27T15:00:00-05:00"),
        closed("outside_hours", Some("2026-11-30T09:00:00-05:00"))
    );
}

#[test]
fn working_override_without_hours_takes_the_weekday_hours_else_nine_to_six() {
    // Saturday has no hours, Sunday has 11:00-15:00; one working override covers both.
    let h = WeeklyHours {
        sun: hours("11:00", "15:00"),
        ..WeeklyHours::default()
    };
    let ov = [working("2026-11-28", "2026-11-29", None)];
    assert_eq!(
        day_schedule(&h, &ov, date("2026-11-28")),
        DaySchedule::Open(&[Window::new(t("09:00"), t("18:00"))])
    );
    assert_eq!(
        day_schedule(&h, &ov, date("2026-11-29")),
        DaySchedule::Open(&[Window::new(t("11:00"), t("15:00"))])
    );
    assert_eq!(
        check(&h, &ov, NY, "2026-11-28T17:00:00-05:00"),
        open_until("2026-11-28T18:00:00-05:00")
    );
    assert_eq!(
        check(&h, &ov, NY, "2026-11-28T18:30:00-05:00"),
        closed("outside_hours", Some("2026-11-29T11:00:00-05:00"))
    );
    // A working Sunday with no Sunday hours at all: 09:00-18:00.
    let ov = [working("2026-11-29", "2026-11-29", None)];
    let h = WeeklyHours::default();
    assert_eq!(
        check(&h, &ov, NY, "2026-11-28T12:00:00-05:00"),
        closed("outside_hours", Some("2026-11-29T09:00:00-05:00"))
    );
    assert_eq!(
        check(&h, &ov, NY, "2026-11-29T17:00:00-05:00"),
        open_until("2026-11-29T18:00:00-05:00")
    );
}

#[test]
fn a_year_of_overrides_still_finds_the_next_opening() {
    // Every date of a year is a non-working override except one working date 300 days on.
    let h = WeeklyHours::default();
    let first = date("2026-01-01");
    let working_day = first + chrono::Days::new(300);
    let ov: Vec<DateOverride> = (0..366u64)
        .map(|i| first + chrono::Days::new(i))
        .map(|d| {
            let kind = if d == working_day {
                OverrideKind::Working
            } else {
                OverrideKind::NonWorking
            };
            DateOverride {
                start_date: d,
                end_date: d,
                kind,
                hours: None,
            }
        })
        .collect();
    assert!(validate_overrides(&ov).is_ok());
    let a = availability(&h, &ov, true, NY, at("2026-01-01T10:00:00-05:00"));
    assert_eq!(
        shown(&a),
        closed("non_working_day", Some("2026-10-28T09:00:00-04:00"))
    );
}

#[test]
fn nothing_to_open_within_366_days_gives_no_opens_at() {
    let a = availability(
        &closed_week(),
        &[],
        true,
        NY,
        at("2026-11-23T10:00:00-05:00"),
    );
    assert_eq!(shown(&a), closed("outside_hours", None));
    // A working date 367 local dates away is beyond the horizon; 366 is within it.
    let far = [working("2027-11-25", "2027-11-25", None)];
    let a = availability(
        &closed_week(),
        &far,
        true,
        NY,
        at("2026-11-23T10:00:00-05:00"),
    );
    assert_eq!(shown(&a), closed("outside_hours", None));
    let near = [working("2027-11-24", "2027-11-24", None)];
    let a = availability(
        &closed_week(),
        &near,
        true,
        NY,
        at("2026-11-23T10:00:00-05:00"),
    );
    assert_eq!(
        shown(&a),
        closed("outside_hours", Some("2027-11-24T09:00:00-05:00"))
    );
}

// ------------------------------------------------------------------------------------------------ offline

#[test]
fn offline_wins_over_everything() {
    let offline = Availability {
        open: false,
        reason: AvailabilityReason::Offline,
        opens_at: None,
        closes_at: None,
    };
    let h = every_day(hours("00:00", "24:00"));
    assert_eq!(
        availability(&h, &[], false, NY, at("2026-11-23T10:00:00-05:00")),
        offline
    );
    let ov = [non_working("2026-11-23", "2026-11-23")];
    assert_eq!(
        availability(
            &WeeklyHours::default(),
            &ov,
            false,
            NY,
            at("2026-11-23T10:00:00-05:00")
        ),
        offline
    );
    assert_eq!(
        availability(
            &closed_week(),
            &[],
            false,
            NY,
            at("2026-11-21T10:00:00-05:00")
        ),
        offline
    );
}

// ------------------------------------------------------------------------------------------------ midnight

#[test]
fn open_all_day_every_day_never_closes() {
    let h = every_day(hours("00:00", "24:00"));
    for when in [
        "2026-11-23T00:00:00-05:00",
        "2026-11-23T23:59:59-05:00",
        "2026-03-08T02:00:00-05:00", // 07:00Z, the New York spring-forward instant
        "2026-11-01T01:30:00-05:00", // the second 01:30 on the fall-back day
        "2027-12-31T23:59:00-05:00",
    ] {
        assert_eq!(
            check(&h, &[], NY, when),
            (true, "open", None, None),
            "{when}"
        );
    }
    assert_eq!(
        check(&h, &[], LONDON, "2026-03-29T01:00:00Z"),
        (true, "open", None, None)
    );
}

#[test]
fn midnight_between_two_open_days_is_not_a_closed_minute() {
    let h = WeeklyHours {
        mon: hours("00:00", "24:00"),
        tue: hours("00:00", "12:00"),
        ..closed_week()
    };
    for when in [
        "2026-11-23T00:00:00-05:00",
        "2026-11-23T23:59:00-05:00",
        "2026-11-23T23:59:59-05:00",
        "2026-11-24T00:00:00-05:00",
        "2026-11-24T11:59:00-05:00",
    ] {
        assert_eq!(
            check(&h, &[], NY, when),
            open_until("2026-11-24T12:00:00-05:00"),
            "{when}"
        );
    }
    assert_eq!(
        check(&h, &[], NY, "2026-11-24T12:00:00-05:00"),
        closed("outside_hours", Some("2026-11-30T00:00:00-05:00"))
    );
    // Sunday 24:00 closes at midnight when Monday starts later: the run stops there.
    let h = WeeklyHours {
        sun: hours("20:00", "24:00"),
        mon: hours("00:01", "12:00"),
        ..closed_week()
    };
    assert_eq!(
        check(&h, &[], NY, "2026-11-22T21:00:00-05:00"),
        open_until("2026-11-23T00:00:00-05:00")
    );
    assert_eq!(
        check(&h, &[], NY, "2026-11-23T00:00:30-05:00"),
        closed("outside_hours", Some("2026-11-23T00:01:00-05:00"))
    );
}

#[test]
fn an_open_run_ends_at_a_non_working_override() {
    let h = every_day(hours("00:00", "24:00"));
    let ov = [non_working("2026-12-25", "2026-12-25")];
    assert_eq!(
        check(&h, &ov, NY, "2026-12-20T10:00:00-05:00"),
        open_until("2026-12-25T00:00:00-05:00")
    );
    assert_eq!(
        check(&h, &ov, NY, "2026-12-25T10:00:00-05:00"),
        closed("non_working_day", Some("2026-12-26T00:00:00-05:00"))
    );
}

// ------------------------------------------------------------------------------------------------ DST

#[test]
fn new_york_spring_forward_opening_in_the_gap_opens_when_the_gap_ends() {
    // 2026-03-08: 02:00 EST jumps to 03:00 EDT. An opening at 02:30 opens at 03:00 EDT (07:00Z).
    let h = sundays(hours("02:30", "10:00"));
    assert_eq!(
        check(&h, &[], NY, "2026-03-08T01:59:00-05:00"),
        closed("outside_hours", Some("2026-03-08T03:00:00-04:00"))
    );
    assert_eq!(
        check(&h, &[], NY, "2026-03-08T07:00:00Z"),
        open_until("2026-03-08T10:00:00-04:00")
    );
    assert_eq!(
        local_instant(NY, date("2026-03-08"), t("02:30")),
        at("2026-03-08T07:00:00Z")
    );
    // Hours wholly inside the gap never open that day: the next Sunday is next.
    let h = sundays(hours("02:10", "02:50"));
    assert_eq!(
        check(&h, &[], NY, "2026-03-07T12:00:00-05:00"),
        closed("outside_hours", Some("2026-03-15T02:10:00-04:00"))
    );
    // The day is shorter: 00:00-24:00 on that Sunday is 23 hours.
    let h = sundays(hours("00:00", "24:00"));
    assert_eq!(
        check(&h, &[], NY, "2026-03-08T00:00:00-05:00"),
        open_until("2026-03-09T00:00:00-04:00")
    );
}

#[test]
fn new_york_fall_back_closing_at_a_repeated_time_closes_at_its_first_occurrence() {
    // 2026-11-01: 02:00 EDT goes back to 01:00 EST; 01:30 happens at 05:30Z and again at 06:30Z.
    let h = sundays(hours("00:00", "01:30"));
    assert_eq!(
        check(&h, &[], NY, "2026-11-01T05:29:00Z"),
        open_until("2026-11-01T01:30:00-04:00")
    );
    assert_eq!(
        local_instant(NY, date("2026-11-01"), t("01:30")),
        at("2026-11-01T05:30:00Z")
    );
    // Past the first 01:30, including the second 01:15 (06:15Z): closed.
    for when in [
        "2026-11-01T05:30:00Z",
        "2026-11-01T05:45:00Z",
        "2026-11-01T06:15:00Z",
    ] {
        assert_eq!(
            check(&h, &[], NY, when),
            closed("outside_hours", Some("2026-11-08T00:00:00-05:00")),
            "{when}"
        );
    }
    // An opening at 01:30 opens at the first 01:30 too.
    let h = sundays(hours("01:30", "05:00"));
    assert_eq!(
        check(&h, &[], NY, "2026-11-01T05:00:00Z"),
        closed("outside_hours", Some("2026-11-01T01:30:00-04:00"))
    );
    assert_eq!(
        check(&h, &[], NY, "2026-11-01T06:15:00Z"),
        open_until("2026-11-01T05:00:00-05:00")
    );
}

#[test]
fn london_spring_forward_and_fall_back() {
    // 2026-03-29: 01:00 GMT jumps to 02:00 BST.
    let h = sundays(hours("01:30", "12:00"));
    assert_eq!(
        check(&h, &[], LONDON, "2026-03-29T00:59:00Z"),
        closed("outside_hours", Some("2026-03-29T02:00:00+01:00"))
    );
    assert_eq!(
        check(&h, &[], LONDON, "2026-03-29T01:00:00Z"),
        open_until("2026-03-29T12:00:00+01:00")
    );
    // 2026-10-25: 02:00 BST goes back to 01:00 GMT; the first 01:30 is 00:30Z.
    let h = sundays(hours("00:00", "01:30"));
    assert_eq!(
        check(&h, &[], LONDON, "2026-10-25T00:15:00Z"),
        open_until("2026-10-25T01:30:00+01:00")
    );
    assert_eq!(
        check(&h, &[], LONDON, "2026-10-25T01:15:00Z"),
        closed("outside_hours", Some("2026-11-01T00:00:00+00:00"))
    );
    // A normal day after the change is in GMT.
    let h = WeeklyHours::default();
    assert_eq!(
        check(&h, &[], LONDON, "2026-10-24T12:00:00+01:00"),
        closed("outside_hours", Some("2026-10-26T09:00:00+00:00"))
    );
}

#[test]
fn half_hour_zones() {
    // Kolkata: +05:30, no DST.
    let kolkata: Tz = chrono_tz::Asia::Kolkata;
    let h = WeeklyHours::default();
    assert_eq!(
        check(&h, &[], kolkata, "2026-11-23T03:29:00Z"),
        closed("outside_hours", Some("2026-11-23T09:00:00+05:30"))
    );
    assert_eq!(
        check(&h, &[], kolkata, "2026-11-23T03:30:00Z"),
        open_until("2026-11-23T18:00:00+05:30")
    );

    // Lord Howe moves its clocks by 30 minutes. 2026-10-04: 02:00 +10:30 jumps to 02:30 +11:00.
    let lord_howe: Tz = chrono_tz::Australia::Lord_Howe;
    let h = sundays(hours("02:15", "03:00"));
    assert_eq!(
        check(&h, &[], lord_howe, "2026-10-04T01:59:00+10:30"),
        closed("outside_hours", Some("2026-10-04T02:30:00+11:00"))
    );
    // 2026-04-05: 02:00 +11:00 goes back to 01:30 +10:30; 01:45 first happens at 14:45Z on the 4th.
    let h = sundays(hours("00:00", "01:45"));
    assert_eq!(
        check(&h, &[], lord_howe, "2026-04-04T14:30:00Z"),
        open_until("2026-04-05T01:45:00+11:00")
    );
    assert_eq!(
        check(&h, &[], lord_howe, "2026-04-04T15:10:00Z"), // the second 01:40
        closed("outside_hours", Some("2026-04-12T00:00:00+10:30"))
    );
}

#[test]
fn local_instant_of_end_of_day_is_the_next_midnight() {
    assert_eq!(
        local_instant(NY, date("2026-11-23"), TimeOfDay::END_OF_DAY),
        at("2026-11-24T05:00:00Z")
    );
    assert_eq!(
        local_instant(NY, date("2026-11-23"), TimeOfDay::END_OF_DAY),
        local_instant(NY, date("2026-11-24"), TimeOfDay::MIDNIGHT)
    );
    assert_eq!(
        local_instant(chrono_tz::UTC, date("2026-12-31"), TimeOfDay::END_OF_DAY),
        at("2027-01-01T00:00:00Z")
    );
}

// ------------------------------------------------------------------------------------------------ reminder

#[test]
fn reminder_at_an_explicit_time() {
    let h = WeeklyHours::default();
    let r = reminder_instant(&h, &[], Some(t("17:00")), NY, date("2026-11-23"));
    assert_eq!(r, at("2026-11-23T17:00:00-05:00"));
    // Even on a closed day.
    let r = reminder_instant(&h, &[], Some(t("12:15")), NY, date("2026-11-22"));
    assert_eq!(r, at("2026-11-22T12:15:00-05:00"));
}

#[test]
fn reminder_half_an_hour_before_closing() {
    let h = WeeklyHours::default();
    assert_eq!(
        reminder_instant(&h, &[], None, NY, date("2026-11-23")),
        at("2026-11-23T17:30:00-05:00")
    );
    // Summer time: the same wall clock, another UTC instant.
    assert_eq!(
        reminder_instant(&h, &[], None, NY, date("2026-07-06")),
        at("2026-07-06T17:30:00-04:00")
    );
    // Open until midnight: 23:30.
    let h = every_day(hours("08:00", "24:00"));
    assert_eq!(
        reminder_instant(&h, &[], None, NY, date("2026-11-23")),
        at("2026-11-23T23:30:00-05:00")
    );
}

#[test]
fn reminder_on_a_closed_day_is_at_half_past_five() {
    let h = WeeklyHours::default();
    assert_eq!(
        reminder_instant(&h, &[], None, NY, date("2026-11-21")),
        at("2026-11-21T17:30:00-05:00")
    );
    let ov = [non_working("2026-11-23", "2026-11-23")];
    assert_eq!(
        reminder_instant(&h, &ov, None, NY, date("2026-11-23")),
        at("2026-11-23T17:30:00-05:00")
    );
}

#[test]
fn reminder_follows_override_hours() {
    let h = WeeklyHours::default();
    let ov = [working(
        "2026-11-29",
        "2026-11-29",
        Some(("10:00", "14:00")),
    )];
    assert_eq!(
        reminder_instant(&h, &ov, None, NY, date("2026-11-29")),
        at("2026-11-29T13:30:00-05:00")
    );
    let ov = [working("2026-11-29", "2026-11-29", None)];
    assert_eq!(
        reminder_instant(&h, &ov, None, NY, date("2026-11-29")),
        at("2026-11-29T17:30:00-05:00")
    );
}

#[test]
fn reminder_before_a_short_opening_or_midnight() {
    // Open 09:00-09:15: the reminder still goes 30 minutes before closing, at 08:45.
    let h = every_day(hours("09:00", "09:15"));
    assert_eq!(
        reminder_instant(&h, &[], None, NY, date("2026-11-23")),
        at("2026-11-23T08:45:00-05:00")
    );
    // Open 00:00-00:20: not before the day's midnight.
    let h = every_day(hours("00:00", "00:20"));
    assert_eq!(
        reminder_instant(&h, &[], None, NY, date("2026-11-23")),
        at("2026-11-23T00:00:00-05:00")
    );
}

#[test]
fn reminder_on_dst_days_is_thirty_real_minutes_before_closing() {
    // 2026-03-08 closing at 03:15 EDT (07:15Z): 30 minutes earlier is 01:45 EST.
    let h = sundays(hours("01:00", "03:15"));
    assert_eq!(
        reminder_instant(&h, &[], None, NY, date("2026-03-08")),
        at("2026-03-08T01:45:00-05:00")
    );
    // An explicit time inside the gap: when the gap ends.
    assert_eq!(
        reminder_instant(&h, &[], Some(t("02:30")), NY, date("2026-03-08")),
        at("2026-03-08T03:00:00-04:00")
    );
    // 2026-11-01 closing at 18:00 EST; an explicit 01:30 is the first one (EDT).
    let h = sundays(hours("09:00", "18:00"));
    assert_eq!(
        reminder_instant(&h, &[], None, NY, date("2026-11-01")),
        at("2026-11-01T17:30:00-05:00")
    );
    assert_eq!(
        reminder_instant(&h, &[], Some(t("01:30")), NY, date("2026-11-01")),
        at("2026-11-01T01:30:00-04:00")
    );
}

// ------------------------------------------------------------------------------------------------ validation

fn invalid(r: Result<(), DomainError>) -> (&'static str, String, String) {
    match r {
        Err(DomainError::Invalid {
            code,
            field,
            message,
        }) => (code.as_str(), field, message),
        other => panic!("expected a 422, got {other:?}"),
    }
}

#[test]
fn hours_validation_names_the_day() {
    let h = WeeklyHours {
        wed: hours("18:00", "09:00"),
        ..WeeklyHours::default()
    };
    let (code, field, message) = invalid(validate_hours(&h));
    assert_eq!((code, field.as_str()), ("invalid_hours", "hours.wed"));
    assert!(
        message.contains("18:00") && message.contains("09:00"),
        "{message}"
    );

    let h = WeeklyHours {
        mon: hours("10:00", "10:00"),
        ..WeeklyHours::default()
    };
    assert_eq!(invalid(validate_hours(&h)).1, "hours.mon");

    let h = WeeklyHours {
        sun: hours("24:00", "24:00"),
        ..WeeklyHours::default()
    };
    let (code, field, message) = invalid(validate_hours(&h));
    assert_eq!((code, field.as_str()), ("invalid_hours", "hours.sun"));
    assert!(message.contains("24:00"), "{message}");

    // The first problem is reported.
    let h = WeeklyHours {
        tue: hours("12:00", "11:00"),
        fri: hours("12:00", "11:00"),
        ..WeeklyHours::default()
    };
    assert_eq!(invalid(validate_hours(&h)).1, "hours.tue");

    assert!(validate_hours(&every_day(hours("00:00", "24:00"))).is_ok());
    assert!(validate_hours(&closed_week()).is_ok());
}

#[test]
fn override_validation_names_the_override() {
    let ok = non_working("2026-12-24", "2026-12-26");
    let cases: Vec<(Vec<DateOverride>, &str, &str)> = vec![
        (
            vec![ok.clone(), non_working("2026-12-31", "2026-12-30")],
            "date_overrides[1].end_date",
            "before",
        ),
        (
            vec![non_working("2026-01-01", "2027-01-02")],
            "date_overrides[0].end_date",
            "366",
        ),
        (
            vec![DateOverride {
                hours: hours("10:00", "12:00"),
                ..ok.clone()
            }],
            "date_overrides[0]",
            "non_working",
        ),
        (
            vec![working(
                "2026-11-29",
                "2026-11-29",
                Some(("14:00", "10:00")),
            )],
            "date_overrides[0]",
            "before",
        ),
        (
            vec![working(
                "2026-11-29",
                "2026-11-29",
                Some(("24:00", "24:00")),
            )],
            "date_overrides[0]",
            "24:00",
        ),
        (
            vec![
                ok.clone(),
                non_working("2027-01-01", "2027-01-01"),
                working("2026-12-26", "2026-12-27", None),
            ],
            "date_overrides[2]",
            "overlap",
        ),
        (vec![ok.clone(), ok.clone()], "date_overrides[1]", "overlap"),
    ];
    for (ov, want_field, want_word) in cases {
        let (code, field, message) = invalid(validate_overrides(&ov));
        assert_eq!(
            (code, field.as_str()),
            ("invalid_date_override", want_field),
            "{ov:?}: {message}"
        );
        assert!(
            message.contains(want_word),
            "{want_word:?} not in {message:?}"
        );
    }
    // Half a window cannot even be read: the model holds a whole window or none (the HTTP layer answers it as
    // `invalid_date_override` at `date_overrides[i]`).
    let err = serde_json::from_value::<DateOverride>(json!({"start_date": "2026-11-29",
        "end_date": "2026-11-29", "kind": "working", "start": "10:00"}))
    .unwrap_err();
    assert!(err.to_string().contains("both"), "{err}");

    // The overlap message names both overrides and the first shared date.
    let ov = [
        non_working("2026-12-20", "2026-12-31"),
        non_working("2027-01-05", "2027-01-06"),
        ok.clone(),
    ];
    let (_, field, message) = invalid(validate_overrides(&ov));
    assert_eq!(field, "date_overrides[2]");
    assert!(
        message.contains("date_overrides[0]") && message.contains("2026-12-24"),
        "{message}"
    );

    // Too many.
    let max = domain::schedule::MAX_DATE_OVERRIDES as u64;
    assert_eq!(max, 400);
    let many: Vec<DateOverride> = (0..=max)
        .map(|i| {
            let d = date("2026-01-01") + chrono::Days::new(i);
            DateOverride {
                start_date: d,
                end_date: d,
                kind: OverrideKind::NonWorking,
                hours: None,
            }
        })
        .collect();
    let (code, field, _) = invalid(validate_overrides(&many));
    assert_eq!(
        (code, field.as_str()),
        ("invalid_date_override", "date_overrides")
    );
    assert!(validate_overrides(&many[..max as usize]).is_ok());

    // Fine: a 366-day range, adjacent ranges, a working override with or without hours ending at 24:00.
    assert!(validate_overrides(&[
        non_working("2028-01-01", "2028-12-31"),
        non_working("2029-01-01", "2029-01-01"),
        working("2027-06-01", "2027-06-01", Some(("00:00", "24:00"))),
        working("2027-06-02", "2027-06-03", None),
    ])
    .is_ok());
    assert_eq!(
        InvalidCode::InvalidDateOverride.as_str(),
        "invalid_date_override"
    );
}

// ------------------------------------------------------------------------------------------------ JSON

#[test]
fn hours_and_overrides_round_trip_in_the_contract_shape() {
    let hours_json = json!({"mon": {"start": "09:00", "end": "18:00"}, "tue": {"start": "09:00", "end": "18:00"},
        "wed": {"start": "09:00", "end": "18:00"}, "thu": {"start": "09:00", "end": "18:00"},
        "fri": {"start": "09:00", "end": "18:00"}, "sat": null, "sun": null});
    let h: WeeklyHours = serde_json::from_value(hours_json.clone()).unwrap();
    assert_eq!(h, WeeklyHours::default());
    assert_eq!(serde_json::to_value(&h).unwrap(), hours_json);

    let overrides_json = json!([
        {"start_date": "2026-12-24", "end_date": "2026-12-26", "kind": "non_working"},
        {"start_date": "2026-11-29", "end_date": "2026-11-29", "kind": "working", "start": "10:00", "end": "14:00"}
    ]);
    let ov: Vec<DateOverride> = serde_json::from_value(overrides_json.clone()).unwrap();
    assert_eq!(
        ov,
        vec![
            non_working("2026-12-24", "2026-12-26"),
            working("2026-11-29", "2026-11-29", Some(("10:00", "14:00")))
        ]
    );
    assert_eq!(serde_json::to_value(&ov).unwrap(), overrides_json);
}

#[test]
fn missing_days_are_closed_and_24_00_is_an_end() {
    let h: WeeklyHours =
        serde_json::from_str(r#"{"sat": {"start": "00:00", "end": "24:00"}}"#).unwrap();
    assert_eq!(
        h,
        WeeklyHours {
            sat: hours("00:00", "24:00"),
            ..closed_week()
        }
    );
    assert_eq!(
        serde_json::to_string(&h).unwrap(),
        r#"{"mon":null,"tue":null,"wed":null,"thu":null,"fri":null,"sat":{"start":"00:00","end":"24:00"},"sun":null}"#
    );
    let h: WeeklyHours = serde_json::from_str("{}").unwrap();
    assert_eq!(h, closed_week());
}

#[test]
fn malformed_times_are_refused() {
    for bad in [
        "24:01",
        "9:00",
        "25:00",
        "09:60",
        "09:00:00",
        " 09:00",
        "0900",
        "",
        "ab:cd",
        "-1:00",
        "+9:00",
        "２３:00",
    ] {
        assert!(bad.parse::<TimeOfDay>().is_err(), "{bad:?} parsed");
        let body = json!({"mon": {"start": bad, "end": "18:00"}});
        let err = serde_json::from_value::<WeeklyHours>(body).unwrap_err();
        assert!(err.to_string().contains("HH:MM"), "{bad:?}: {err}");
    }
    for bad in [json!(900), json!(null), json!({"h": 9})] {
        assert!(
            serde_json::from_value::<TimeOfDay>(bad.clone()).is_err(),
            "{bad}"
        );
    }
    assert!(
        serde_json::from_value::<WeeklyHours>(json!({"monday": null})).is_err(),
        "unknown day key"
    );
    assert!(serde_json::from_value::<DateOverride>(
        json!({"start_date": "2026-12-24", "end_date": "2026-12-24", "kind": "holiday"})
    )
    .is_err());
    assert!(serde_json::from_value::<DateOverride>(json!({"start_date": "2026-12-24", "end_date": "2026-12-24", "kind": "non_working", "note": "x"})).is_err());
}

#[test]
fn time_of_day_text_and_numbers() {
    assert_eq!(t("00:00"), TimeOfDay::MIDNIGHT);
    assert_eq!(t("24:00"), TimeOfDay::END_OF_DAY);
    assert_eq!(t("23:59").minutes(), 1439);
    assert_eq!(TimeOfDay::END_OF_DAY.minutes(), 1440);
    assert_eq!(
        TimeOfDay::from_hm(7, 5).map(|x| x.to_string()),
        Some("07:05".to_owned())
    );
    assert_eq!(TimeOfDay::from_hm(24, 0), Some(TimeOfDay::END_OF_DAY));
    assert_eq!(TimeOfDay::from_hm(24, 1), None);
    assert_eq!(TimeOfDay::from_hm(12, 60), None);
    assert!(t("09:00") < t("18:00") && t("18:00") < TimeOfDay::END_OF_DAY);
    assert_eq!(serde_json::to_string(&t("09:05")).unwrap(), r#""09:05""#);
    for m in 0..=1440u16 {
        let x = TimeOfDay::from_hm(m / 60, m % 60).unwrap();
        assert_eq!(x.to_string().parse::<TimeOfDay>().unwrap(), x);
    }
}

// ------------------------------------------------------------------------------------------------ split shifts

/// Monday 08:00–12:00 and 14:00–19:00 (lunch closed), the rest of the week as by default.
fn split_monday() -> WeeklyHours {
    WeeklyHours {
        mon: windows(&[("08:00", "12:00"), ("14:00", "19:00")]),
        ..WeeklyHours::default()
    }
}

#[test]
fn split_shift_monday_is_open_in_each_window_and_closed_at_lunch() {
    let h = split_monday();
    assert!(validate_hours(&h).is_ok());
    // 2026-11-23 is a Monday.
    assert_eq!(
        check(&h, &[], NY, "2026-11-23T10:00:00-05:00"),
        open_until("2026-11-23T12:00:00-05:00")
    );
    assert_eq!(
        check(&h, &[], NY, "2026-11-23T12:30:00-05:00"),
        closed("outside_hours", Some("2026-11-23T14:00:00-05:00"))
    );
    assert_eq!(
        check(&h, &[], NY, "2026-11-23T15:00:00-05:00"),
        open_until("2026-11-23T19:00:00-05:00")
    );
    // The edges: 12:00 is closed, 14:00 open, 19:00 closed until Tuesday 09:00.
    assert_eq!(
        check(&h, &[], NY, "2026-11-23T12:00:00-05:00"),
        closed("outside_hours", Some("2026-11-23T14:00:00-05:00"))
    );
    assert_eq!(
        check(&h, &[], NY, "2026-11-23T14:00:00-05:00"),
        open_until("2026-11-23T19:00:00-05:00")
    );
    assert_eq!(
        check(&h, &[], NY, "2026-11-23T19:00:00-05:00"),
        closed("outside_hours", Some("2026-11-24T09:00:00-05:00"))
    );
    assert_eq!(
        check(&h, &[], NY, "2026-11-23T07:00:00-05:00"),
        closed("outside_hours", Some("2026-11-23T08:00:00-05:00"))
    );
}

#[test]
fn split_shift_reminder_goes_half_an_hour_before_the_last_window_ends() {
    let h = split_monday();
    assert_eq!(
        reminder_instant(&h, &[], None, NY, date("2026-11-23")),
        at("2026-11-23T18:30:00-05:00")
    );
    // Not before the lunch break: the end of the day's last window.
    assert_ne!(
        reminder_instant(&h, &[], None, NY, date("2026-11-23")),
        at("2026-11-23T11:30:00-05:00")
    );
    // An explicit time still wins.
    assert_eq!(
        reminder_instant(&h, &[], Some(t("12:15")), NY, date("2026-11-23")),
        at("2026-11-23T12:15:00-05:00")
    );
}

/// 22:00–24:00 every night and 00:00–06:00 every morning.
fn emergency_team() -> WeeklyHours {
    every_day(windows(&[("00:00", "06:00"), ("22:00", "24:00")]))
}

#[test]
fn overnight_hours_are_one_stretch_with_no_closed_minute_at_midnight() {
    let h = emergency_team();
    assert!(validate_hours(&h).is_ok());
    for when in [
        "2026-11-23T23:59:00-05:00",
        "2026-11-24T00:00:00-05:00",
        "2026-11-24T00:01:00-05:00",
        "2026-11-23T22:00:00-05:00",
        "2026-11-24T05:59:59-05:00",
    ] {
        assert_eq!(
            check(&h, &[], NY, when),
            open_until("2026-11-24T06:00:00-05:00"),
            "{when}"
        );
    }
    assert_eq!(
        check(&h, &[], NY, "2026-11-24T06:00:00-05:00"),
        closed("outside_hours", Some("2026-11-24T22:00:00-05:00"))
    );
    assert_eq!(
        check(&h, &[], NY, "2026-11-23T21:59:00-05:00"),
        closed("outside_hours", Some("2026-11-23T22:00:00-05:00"))
    );
    // The reminder of each date: 30 minutes before its last window ends (24:00 is the end of the day).
    assert_eq!(
        reminder_instant(&h, &[], None, NY, date("2026-11-23")),
        at("2026-11-23T23:30:00-05:00")
    );
}

#[test]
fn overnight_stretch_across_dst_nights() {
    let h = emergency_team();
    // (zone, the Saturday evening before the change, the Sunday 06:00 the stretch ends at)
    let nights: [(Tz, &str, &str, &str); 8] = [
        // New York springs forward at 02:00 and falls back at 02:00.
        (
            NY,
            "2026-03-07T23:59:00-05:00",
            "2026-03-08T00:01:00-05:00",
            "2026-03-08T06:00:00-04:00",
        ),
        (
            NY,
            "2026-10-31T23:59:00-04:00",
            "2026-11-01T00:01:00-04:00",
            "2026-11-01T06:00:00-05:00",
        ),
        // London at 01:00 GMT / 02:00 BST.
        (
            LONDON,
            "2026-03-28T23:59:00+00:00",
            "2026-03-29T00:01:00+00:00",
            "2026-03-29T06:00:00+01:00",
        ),
        (
            LONDON,
            "2026-10-24T23:59:00+01:00",
            "2026-10-25T00:01:00+01:00",
            "2026-10-25T06:00:00+00:00",
        ),
        // Sydney falls back at 03:00 in April and springs forward at 02:00 in October.
        (
            SYDNEY,
            "2026-04-04T23:59:00+11:00",
            "2026-04-05T00:01:00+11:00",
            "2026-04-05T06:00:00+10:00",
        ),
        (
            SYDNEY,
            "2026-10-03T23:59:00+10:00",
            "2026-10-04T00:01:00+10:00",
            "2026-10-04T06:00:00+11:00",
        ),
        // Lord Howe moves by 30 minutes at 02:00.
        (
            LORD_HOWE,
            "2026-04-04T23:59:00+11:00",
            "2026-04-05T00:01:00+11:00",
            "2026-04-05T06:00:00+10:30",
        ),
        (
            LORD_HOWE,
            "2026-10-03T23:59:00+10:30",
            "2026-10-04T00:01:00+10:30",
            "2026-10-04T06:00:00+11:00",
        ),
    ];
    for (tz, evening, after_midnight, end) in nights {
        for when in [evening, after_midnight] {
            assert_eq!(check(&h, &[], tz, when), open_until(end), "{tz} {when}");
        }
        // Midnight itself, and every hour of the night, DST hour included: the same stretch.
        let midnight = at(after_midnight) - chrono::Duration::minutes(1);
        assert_eq!(check_at(&h, tz, midnight), open_until(end), "{tz} midnight");
        let mut t = midnight;
        while t < at(end) {
            assert_eq!(
                check_at(&h, tz, t),
                open_until(end),
                "{tz} at {}",
                t.with_timezone(&tz)
            );
            t += chrono::Duration::minutes(15);
        }
        assert!(!check_at(&h, tz, at(end)).0, "{tz}: closed at {end}");
    }
    // The length of the night tells the DST story: 7 real hours in spring, 9 in autumn, 7.5 / 8.5 on Lord Howe.
    let length = |tz: Tz, night: &str| {
        let d = date(night);
        local_instant(tz, d + chrono::Days::new(1), t("06:00")) - local_instant(tz, d, t("22:00"))
    };
    assert_eq!(length(NY, "2026-03-07").num_minutes(), 7 * 60);
    assert_eq!(length(NY, "2026-10-31").num_minutes(), 9 * 60);
    assert_eq!(length(LORD_HOWE, "2026-10-03").num_minutes(), 7 * 60 + 30);
    assert_eq!(length(LORD_HOWE, "2026-04-04").num_minutes(), 8 * 60 + 30);
}

const SYDNEY: Tz = chrono_tz::Australia::Sydney;
const LORD_HOWE: Tz = chrono_tz::Australia::Lord_Howe;

fn check_at(
    h: &WeeklyHours,
    tz: Tz,
    when: DateTime<Utc>,
) -> (bool, &'static str, Option<String>, Option<String>) {
    shown(&availability(h, &[], true, tz, when))
}

#[test]
fn a_dst_gap_between_two_windows_joins_them_and_a_fold_stays_inside_one() {
    // 2026-03-08 in New York: 02:00–03:00 does not exist. 02:15 and 02:45 are both the instant 03:00 EDT,
    // so 01:00–02:15 and 02:45–05:00 touch there: one stretch.
    let h = sundays(windows(&[("01:00", "02:15"), ("02:45", "05:00")]));
    assert!(validate_hours(&h).is_ok());
    assert_eq!(
        check(&h, &[], NY, "2026-03-08T01:30:00-05:00"),
        open_until("2026-03-08T05:00:00-04:00")
    );
    assert_eq!(
        check(&h, &[], NY, "2026-03-08T03:00:00-04:00"),
        open_until("2026-03-08T05:00:00-04:00")
    );
    // A window wholly inside the gap never opens; the next window does.
    let h = sundays(windows(&[("02:10", "02:40"), ("04:00", "05:00")]));
    assert_eq!(
        check(&h, &[], NY, "2026-03-08T01:00:00-05:00"),
        closed("outside_hours", Some("2026-03-08T04:00:00-04:00"))
    );
    // 2026-11-01: 01:00–02:00 happens twice. A window around it holds both passes.
    let h = sundays(windows(&[("00:30", "03:00"), ("10:00", "11:00")]));
    for when in ["2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00"] {
        assert_eq!(
            check(&h, &[], NY, when),
            open_until("2026-11-01T03:00:00-05:00"),
            "{when}"
        );
    }
    // A window ending inside the fold ends at its first pass.
    let h = sundays(windows(&[("00:30", "01:30"), ("10:00", "11:00")]));
    assert_eq!(
        check(&h, &[], NY, "2026-11-01T01:00:00-04:00"),
        open_until("2026-11-01T01:30:00-04:00")
    );
    assert_eq!(
        check(&h, &[], NY, "2026-11-01T01:10:00-05:00"),
        closed("outside_hours", Some("2026-11-01T10:00:00-05:00"))
    );
}

#[test]
fn working_overrides_take_their_own_windows() {
    let mut christmas_eve = working("2026-12-24", "2026-12-24", None);
    christmas_eve.hours = windows(&[("09:00", "12:00"), ("13:00", "15:00")]);
    let ov = vec![christmas_eve];
    assert!(validate_overrides(&ov).is_ok());
    let h = WeeklyHours::default();
    assert_eq!(
        check(&h, &ov, NY, "2026-12-24T12:30:00-05:00"),
        closed("outside_hours", Some("2026-12-24T13:00:00-05:00"))
    );
    assert_eq!(
        check(&h, &ov, NY, "2026-12-24T14:00:00-05:00"),
        open_until("2026-12-24T15:00:00-05:00")
    );
    assert_eq!(
        check(&h, &ov, NY, "2026-12-24T15:00:00-05:00"),
        closed("outside_hours", Some("2026-12-25T09:00:00-05:00"))
    );
    assert_eq!(
        reminder_instant(&h, &ov, None, NY, date("2026-12-24")),
        at("2026-12-24T14:30:00-05:00")
    );
    // A working override without hours takes the weekday's windows, split shift included.
    let ov = vec![working("2026-11-22", "2026-11-23", None)];
    let h = split_monday();
    assert_eq!(
        check(&h, &ov, NY, "2026-11-23T12:30:00-05:00"),
        closed("outside_hours", Some("2026-11-23T14:00:00-05:00"))
    );
    // Sunday the 22nd has no weekday hours: 09:00–18:00.
    assert_eq!(
        check(&h, &ov, NY, "2026-11-22T12:30:00-05:00"),
        open_until("2026-11-22T18:00:00-05:00")
    );
}

#[test]
fn an_override_with_windows_366_days_ahead_is_found_and_one_past_it_is_not() {
    let mut far = working("2027-11-24", "2027-11-24", None);
    far.hours = windows(&[("02:00", "03:00"), ("20:00", "21:00")]);
    let ov = vec![far];
    // From 2026-11-23 the 24th of November 2027 is 366 dates ahead.
    assert_eq!(
        check(&closed_week(), &ov, NY, "2026-11-23T12:00:00-05:00"),
        closed("outside_hours", Some("2027-11-24T02:00:00-05:00"))
    );
    assert_eq!(
        check(&closed_week(), &ov, NY, "2026-11-22T12:00:00-05:00"),
        closed("outside_hours", None)
    );
    // Between its windows, the second is next.
    assert_eq!(
        check(&closed_week(), &ov, NY, "2027-11-24T12:00:00-05:00"),
        closed("outside_hours", Some("2027-11-24T20:00:00-05:00"))
    );
}

#[test]
fn bad_windows_are_refused_naming_the_window() {
    let bad_monday = |list: &[(&str, &str)]| WeeklyHours {
        mon: windows(list),
        ..WeeklyHours::default()
    };
    let cases: [(&str, WeeklyHours, &str, &str); 8] = [
        (
            "overlapping",
            bad_monday(&[("08:00", "12:00"), ("11:00", "19:00")]),
            "hours.mon[1]",
            "overlaps",
        ),
        (
            "touching",
            bad_monday(&[("08:00", "12:00"), ("12:00", "19:00")]),
            "hours.mon[1]",
            "touches",
        ),
        (
            "unsorted",
            bad_monday(&[("14:00", "19:00"), ("08:00", "12:00")]),
            "hours.mon[1]",
            "order",
        ),
        (
            "more than 4",
            bad_monday(&[
                ("01:00", "02:00"),
                ("03:00", "04:00"),
                ("05:00", "06:00"),
                ("07:00", "08:00"),
                ("09:00", "10:00"),
            ]),
            "hours.mon[4]",
            "at most 4",
        ),
        (
            "start after end",
            bad_monday(&[("08:00", "12:00"), ("19:00", "14:00")]),
            "hours.mon[1]",
            "before",
        ),
        (
            "start equal to end",
            bad_monday(&[("08:00", "08:00"), ("14:00", "19:00")]),
            "hours.mon[0]",
            "before",
        ),
        (
            "start at 24:00",
            bad_monday(&[("08:00", "12:00"), ("24:00", "24:00")]),
            "hours.mon[1]",
            "24:00",
        ),
        ("empty list", bad_monday(&[]), "hours.mon", "empty"),
    ];
    for (what, h, want_field, want_word) in cases {
        let (code, field, message) = invalid(validate_hours(&h));
        assert_eq!(
            (code, field.as_str()),
            ("invalid_hours", want_field),
            "{what}: {message}"
        );
        assert!(
            message.contains(want_word),
            "{what}: {want_word:?} not in {message:?}"
        );
    }
    // Four windows are fine, and so is the overnight pair.
    assert!(validate_hours(&bad_monday(&[
        ("01:00", "02:00"),
        ("03:00", "04:00"),
        ("05:00", "06:00"),
        ("07:00", "24:00"),
    ]))
    .is_ok());
    assert!(validate_hours(&emergency_team()).is_ok());

    // The same rules for a working override's own windows, under its own code.
    let mut o = working("2026-12-24", "2026-12-24", None);
    o.hours = windows(&[("09:00", "12:00"), ("11:00", "15:00")]);
    let (code, field, message) = invalid(validate_overrides(&[
        non_working("2026-12-31", "2026-12-31"),
        o.clone(),
    ]));
    assert_eq!(
        (code, field.as_str()),
        ("invalid_date_override", "date_overrides[1].windows[1]"),
        "{message}"
    );
    o.hours = windows(&[]);
    assert_eq!(
        invalid(validate_overrides(&[o.clone()])).1,
        "date_overrides[0].windows"
    );
    o.hours = windows(&[("01:00", "02:00"); 5]);
    assert_eq!(
        invalid(validate_overrides(&[o.clone()])).1,
        "date_overrides[0].windows[4]"
    );
    // A non_working override takes no windows.
    let mut closed_day = non_working("2026-12-25", "2026-12-25");
    closed_day.hours = windows(&[("09:00", "12:00"), ("13:00", "15:00")]);
    let (_, field, message) = invalid(validate_overrides(&[closed_day]));
    assert_eq!(field, "date_overrides[0]");
    assert!(message.contains("non_working"), "{message}");
}

#[test]
fn one_window_reads_and_writes_as_an_object_and_several_as_a_list() {
    // One window: exactly the shape of before.
    let h: WeeklyHours =
        serde_json::from_value(json!({"mon": {"start": "09:00", "end": "18:00"}})).unwrap();
    assert_eq!(h.mon, hours("09:00", "18:00"));
    assert_eq!(
        serde_json::to_value(&h).unwrap()["mon"],
        json!({"start": "09:00", "end": "18:00"})
    );
    // A list of one is the same day, written back as an object.
    let listed: WeeklyHours =
        serde_json::from_value(json!({"mon": [{"start": "09:00", "end": "18:00"}]})).unwrap();
    assert_eq!(listed, h);
    assert_eq!(
        serde_json::to_value(&listed).unwrap()["mon"],
        json!({"start": "09:00", "end": "18:00"})
    );
    // Two or more: a list.
    let split = json!([{"start": "08:00", "end": "12:00"}, {"start": "14:00", "end": "19:00"}]);
    let h: WeeklyHours = serde_json::from_value(json!({"mon": split})).unwrap();
    assert_eq!(h, split_monday_only());
    assert_eq!(serde_json::to_value(&h).unwrap()["mon"], split);
    // A bad time inside a list names its place.
    let err = serde_path_to_error::deserialize::<_, WeeklyHours>(
        json!({"mon": [{"start": "08:00", "end": "12:00"}, {"start": "2pm", "end": "19:00"}]}),
    )
    .unwrap_err();
    assert_eq!(err.path().to_string(), "mon[1].start");
    assert!(serde_json::from_value::<WeeklyHours>(json!({"mon": "08:00-12:00"})).is_err());
    assert!(serde_json::from_value::<WeeklyHours>(json!({"mon": [{"start": "08:00"}]})).is_err());

    // Overrides: one window as start/end (a list of one is written that way), several as `windows`.
    let one: DateOverride =
        serde_json::from_value(json!({"start_date": "2026-12-24", "end_date": "2026-12-24",
        "kind": "working", "windows": [{"start": "10:00", "end": "14:00"}]}))
        .unwrap();
    assert_eq!(
        one,
        working("2026-12-24", "2026-12-24", Some(("10:00", "14:00")))
    );
    assert_eq!(
        serde_json::to_value(&one).unwrap(),
        json!({"start_date": "2026-12-24", "end_date": "2026-12-24", "kind": "working", "start": "10:00", "end": "14:00"})
    );
    let two_json = json!({"start_date": "2026-12-24", "end_date": "2026-12-24", "kind": "working",
        "windows": [{"start": "09:00", "end": "12:00"}, {"start": "13:00", "end": "15:00"}]});
    let two: DateOverride = serde_json::from_value(two_json.clone()).unwrap();
    assert_eq!(
        two.hours,
        windows(&[("09:00", "12:00"), ("13:00", "15:00")])
    );
    assert_eq!(serde_json::to_value(&two).unwrap(), two_json);
    let err = serde_json::from_value::<DateOverride>(json!({"start_date": "2026-12-24", "end_date": "2026-12-24",
        "kind": "working", "start": "09:00", "end": "12:00", "windows": [{"start": "13:00", "end": "15:00"}]}))
    .unwrap_err();
    assert!(err.to_string().contains("not both"), "{err}");
}

fn split_monday_only() -> WeeklyHours {
    WeeklyHours {
        mon: windows(&[("08:00", "12:00"), ("14:00", "19:00")]),
        ..closed_week()
    }
}

// ------------------------------------------------------------------------------------ caching (max-age)

/// The max-age an availability answer computed at `now` gets (what `Cache-Control` carries).
fn max_age(h: &WeeklyHours, ov: &[DateOverride], online: bool, tz: Tz, now: DateTime<Utc>) -> u32 {
    let a = availability(h, ov, online, tz, now);
    fresh_seconds(next_change(&a, tz, now), now)
}

/// The max-age `ms` milliseconds before `change` (every day 09:00-18:00 in `tz`).
fn max_age_before(tz: Tz, change: DateTime<Utc>, ms: i64) -> u32 {
    let h = every_day(hours("09:00", "18:00"));
    max_age(
        &h,
        &[],
        true,
        tz,
        change - chrono::Duration::milliseconds(ms),
    )
}

/// At every whole second in the 40 before `change`, now + max-age stays at or before it.
fn assert_never_crosses(tz: Tz, change: DateTime<Utc>) {
    for back in 1..=40 {
        let now = change - chrono::Duration::seconds(back);
        let n = max_age_before(tz, change, back * 1000);
        assert!(
            now + chrono::Duration::seconds(n.into()) <= change,
            "{back} s before {change}: max-age {n}"
        );
    }
}

#[test]
fn max_age_never_crosses_an_opening() {
    // Monday 2026-11-23 opens at 09:00 EST = 14:00Z.
    let opening = at("2026-11-23T09:00:00-05:00");
    assert_eq!(
        max_age_before(NY, opening, 3_600_000),
        AVAILABILITY_MAX_AGE_SECS
    );
    assert_eq!(max_age_before(NY, opening, 30_000), 30);
    assert_eq!(max_age_before(NY, opening, 12_000), 12);
    assert_eq!(max_age_before(NY, opening, 12_400), 12, "rounded down");
    // Due within the second: not cached at all (revalidated each time).
    assert_eq!(max_age_before(NY, opening, 999), 0);
    assert_eq!(max_age_before(NY, opening, 1), 0);
    // From the opening on it is open, and caching is back to the cap.
    assert_eq!(max_age_before(NY, opening, 0), 30);
    assert_never_crosses(NY, opening);
}

#[test]
fn max_age_never_crosses_a_closing() {
    // Friday 2026-11-27 closes at 18:00 GMT in London.
    let closing = at("2026-11-27T18:00:00Z");
    assert_eq!(max_age_before(LONDON, closing, 45_000), 30);
    assert_eq!(max_age_before(LONDON, closing, 5_000), 5);
    assert_eq!(max_age_before(LONDON, closing, 300), 0);
    assert_eq!(max_age_before(LONDON, closing, 0), 30);
    assert_never_crosses(LONDON, closing);
}

#[test]
fn max_age_stops_at_the_split_shift_break_and_at_the_midnight_a_non_working_day_ends() {
    let h = every_day(windows(&[("08:00", "12:00"), ("14:00", "19:00")]));
    assert_eq!(
        max_age(&h, &[], true, NY, at("2026-11-23T11:59:50-05:00")),
        10
    );
    assert_eq!(
        max_age(&h, &[], true, NY, at("2026-11-23T13:59:40-05:00")),
        20
    );
    // Thursday a holiday: `non_working_day` turns into `outside_hours` at Friday's midnight, before Friday's
    // 08:00 opening, so the answer at 23:59:50 is kept 10 s only.
    let ov = [non_working("2026-11-26", "2026-11-26")];
    let a = availability(&h, &ov, true, NY, at("2026-11-26T23:59:50-05:00"));
    assert_eq!(a.reason, AvailabilityReason::NonWorkingDay);
    assert_eq!(
        max_age(&h, &ov, true, NY, at("2026-11-26T23:59:50-05:00")),
        10
    );
    // An open stretch through midnight (22:00-24:00 then 00:00-06:00) changes nothing at midnight.
    let mut night = closed_week();
    night.mon = hours("22:00", "24:00");
    night.tue = hours("00:00", "06:00");
    assert_eq!(
        max_age(&night, &[], true, NY, at("2026-11-23T23:59:50-05:00")),
        30
    );
    assert_eq!(
        max_age(&night, &[], true, NY, at("2026-11-24T05:59:58-05:00")),
        2
    );
}

#[test]
fn offline_is_kept_the_cap_only_and_the_cap_is_thirty_seconds() {
    let h = every_day(hours("09:00", "18:00"));
    // Whatever the hours, an offline department changes only when staff flip the switch back.
    assert_eq!(
        max_age(&h, &[], false, NY, at("2026-11-23T08:59:59-05:00")),
        30
    );
    assert_eq!(AVAILABILITY_MAX_AGE_SECS, 30);
    // Never opening within the horizon: the cap (and midnight, when the horizon moves).
    assert_eq!(
        max_age(
            &closed_week(),
            &[],
            true,
            NY,
            at("2026-11-23T12:00:00-05:00")
        ),
        30
    );
    assert_eq!(
        max_age(
            &closed_week(),
            &[],
            true,
            NY,
            at("2026-11-23T23:59:45-05:00")
        ),
        15
    );
}
