//! Opening hours, date overrides and availability, all evaluated in the practice's IANA time zone.
//!
//! Every rule here takes the instant to evaluate as an argument (the crate reads no clock). Local times are
//! turned into instants by [`local_instant`], which carries the DST rules: a time that a spring-forward day
//! skips resolves to the first instant after the gap, and a time that a fall-back day repeats takes its first
//! occurrence. Both rules are the same thing: the first instant whose local time is at or after the wall-clock
//! time asked for, which also makes the mapping monotonic (later local times never map to earlier instants).

use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Duration, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime,
    TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{DomainError, InvalidCode};

/// At most this many date overrides per department (a few years of holidays with room to spare).
pub const MAX_DATE_OVERRIDES: usize = 400;
/// The longest date range one override may cover.
pub const MAX_OVERRIDE_DAYS: i64 = 366;

/// Availability looks this many local dates ahead of the current one for `opens_at` and `closes_at`.
const HORIZON_DAYS: usize = 366;
/// The current date plus the horizon.
const WINDOW: usize = HORIZON_DAYS + 1;

/// The hours a `working` override gets when neither it nor its weekday names any.
const FALLBACK_HOURS: DayHours = DayHours {
    start: TimeOfDay(9 * 60),
    end: TimeOfDay(18 * 60),
};
/// The reminder time on a date without hours.
const CLOSED_DAY_REMINDER: TimeOfDay = TimeOfDay(17 * 60 + 30);
/// The reminder goes this long before closing when no explicit time is set.
const REMINDER_LEAD_MINUTES: i64 = 30;

// ---------------------------------------------------------------------------------------------------------
// TimeOfDay
// ---------------------------------------------------------------------------------------------------------

/// A practice-local wall-clock time: minutes since local midnight, `0..=1440`.
///
/// Written as `"HH:MM"` (24 h). `"24:00"` ([`TimeOfDay::END_OF_DAY`]) means the end of the day; it is a valid
/// *end* of hours (validation refuses it as a start) and, as a local time, stands for 00:00 of the next date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    /// 00:00.
    pub const MIDNIGHT: Self = TimeOfDay(0);
    /// 24:00, the end of the day.
    pub const END_OF_DAY: Self = TimeOfDay(24 * 60);

    /// `h:m` with `h` in `0..=23` and `m` in `0..=59`, or exactly `24:00`.
    pub fn from_hm(h: u16, m: u16) -> Option<Self> {
        match (h, m) {
            (0..=23, 0..=59) => Some(TimeOfDay(h * 60 + m)),
            (24, 0) => Some(Self::END_OF_DAY),
            _ => None,
        }
    }

    /// Minutes since local midnight, `0..=1440`.
    pub fn minutes(self) -> u16 {
        self.0
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

/// Why a string is not a `"HH:MM"` time of day.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a time of day \"HH:MM\" between 00:00 and 24:00, got {0:?}")]
pub struct ParseTimeOfDayError(String);

impl FromStr for TimeOfDay {
    type Err = ParseTimeOfDayError;

    /// Exactly two digits, a colon, two digits: `"9:00"`, `"09:00:00"` and `" 09:00"` are refused so that
    /// what is stored is what is shown.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseTimeOfDayError(s.to_owned());
        let b = s.as_bytes();
        if b.len() != 5 || b[2] != b':' || ![b[0], b[1], b[3], b[4]].iter().all(u8::is_ascii_digit)
        {
            return Err(err());
        }
        let num = |hi: u8, lo: u8| u16::from(hi - b'0') * 10 + u16::from(lo - b'0');
        TimeOfDay::from_hm(num(b[0], b[1]), num(b[3], b[4])).ok_or_else(err)
    }
}

impl Serialize for TimeOfDay {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = TimeOfDay;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a time of day \"HH:MM\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TimeOfDay, E> {
                v.parse().map_err(E::custom)
            }
        }
        // A visitor rather than `String::deserialize`: no allocation for borrowed input.
        deserializer.deserialize_str(Visitor)
    }
}

// ---------------------------------------------------------------------------------------------------------
// Hours and overrides
// ---------------------------------------------------------------------------------------------------------

/// One day's chat hours, `start` inclusive, `end` exclusive (`end` may be `"24:00"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DayHours {
    pub start: TimeOfDay,
    pub end: TimeOfDay,
}

/// The regular week. `null` or a missing key means no chat that day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeeklyHours {
    #[serde(default)]
    pub mon: Option<DayHours>,
    #[serde(default)]
    pub tue: Option<DayHours>,
    #[serde(default)]
    pub wed: Option<DayHours>,
    #[serde(default)]
    pub thu: Option<DayHours>,
    #[serde(default)]
    pub fri: Option<DayHours>,
    #[serde(default)]
    pub sat: Option<DayHours>,
    #[serde(default)]
    pub sun: Option<DayHours>,
}

impl WeeklyHours {
    /// The hours of a weekday, `None` when there is no chat that day.
    pub fn for_weekday(&self, wd: Weekday) -> Option<DayHours> {
        match wd {
            Weekday::Mon => self.mon,
            Weekday::Tue => self.tue,
            Weekday::Wed => self.wed,
            Weekday::Thu => self.thu,
            Weekday::Fri => self.fri,
            Weekday::Sat => self.sat,
            Weekday::Sun => self.sun,
        }
    }

    /// The days in contract order with their JSON keys (for validation messages).
    fn named_days(&self) -> [(&'static str, Option<DayHours>); 7] {
        [
            ("mon", self.mon),
            ("tue", self.tue),
            ("wed", self.wed),
            ("thu", self.thu),
            ("fri", self.fri),
            ("sat", self.sat),
            ("sun", self.sun),
        ]
    }
}

impl Default for WeeklyHours {
    /// 09:00–18:00 Monday to Friday, no chat at the weekend (new departments and the hours reset).
    fn default() -> Self {
        let day = Some(FALLBACK_HOURS);
        WeeklyHours {
            mon: day,
            tue: day,
            wed: day,
            thu: day,
            fri: day,
            sat: None,
            sun: None,
        }
    }
}

/// What a date override does to the dates it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverrideKind {
    /// Closed all day (holidays).
    NonWorking,
    /// Open that day, with the override's own hours, else the weekday's, else 09:00–18:00.
    Working,
}

/// A range of whole practice-local dates, both ends inclusive, that replaces the weekly hours.
///
/// JSON: `{"start_date":"2026-12-24","end_date":"2026-12-26","kind":"non_working"}`, or for a working
/// override optionally with `"start"`/`"end"` (omitted from the output when absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateOverride {
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    pub kind: OverrideKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<TimeOfDay>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<TimeOfDay>,
}

impl DateOverride {
    fn covers(&self, date: NaiveDate) -> bool {
        self.start_date <= date && date <= self.end_date
    }
}

// ---------------------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------------------

/// Checks weekly hours before they are stored: every day with hours has `start < end`, and `start` is not
/// `24:00`. The error is the first problem found, code `invalid_hours`, field `hours.<day>`.
pub fn validate_hours(hours: &WeeklyHours) -> Result<(), DomainError> {
    for (day, h) in hours.named_days() {
        let Some(h) = h else { continue };
        let field = format!("hours.{day}");
        if h.start == TimeOfDay::END_OF_DAY {
            return Err(DomainError::invalid(
                InvalidCode::InvalidHours,
                field,
                format!("{day}: a day cannot start at 24:00 (use 00:00 of the next day)"),
            ));
        }
        if h.start >= h.end {
            return Err(DomainError::invalid(
                InvalidCode::InvalidHours,
                field,
                format!("{day}: start {} must be before end {}", h.start, h.end),
            ));
        }
    }
    Ok(())
}

/// Checks date overrides before they are stored. The error is the first problem found, code
/// `invalid_date_override`, field `date_overrides` (too many), `date_overrides[i]` (kind and hours, overlap)
/// or `date_overrides[i].end_date` (the date range).
///
/// Rules: at most 400 overrides; `start_date <= end_date`; at most 366 days per override; `non_working` carries
/// no `start`/`end`; `working` has both or neither, `start < end`, `start` not `24:00`; no date is covered by
/// two overrides.
pub fn validate_overrides(overrides: &[DateOverride]) -> Result<(), DomainError> {
    let invalid = |field: String, message: String| {
        DomainError::invalid(InvalidCode::InvalidDateOverride, field, message)
    };
    if overrides.len() > MAX_DATE_OVERRIDES {
        return Err(invalid(
            "date_overrides".to_owned(),
            format!(
                "at most {MAX_DATE_OVERRIDES} date overrides (got {})",
                overrides.len()
            ),
        ));
    }
    for (i, o) in overrides.iter().enumerate() {
        let field = format!("date_overrides[{i}]");
        if o.start_date > o.end_date {
            return Err(invalid(
                format!("{field}.end_date"),
                format!(
                    "end_date {} is before start_date {}",
                    o.end_date, o.start_date
                ),
            ));
        }
        let days = (o.end_date - o.start_date).num_days() + 1;
        if days > MAX_OVERRIDE_DAYS {
            return Err(invalid(
                format!("{field}.end_date"),
                format!(
                    "an override covers at most {MAX_OVERRIDE_DAYS} days ({} to {} is {days})",
                    o.start_date, o.end_date
                ),
            ));
        }
        match (o.kind, o.start, o.end) {
            (OverrideKind::NonWorking, None, None) | (OverrideKind::Working, None, None) => {}
            (OverrideKind::NonWorking, _, _) => {
                return Err(invalid(
                    field,
                    "a non_working override is closed all day and takes no start or end".to_owned(),
                ));
            }
            (OverrideKind::Working, Some(start), Some(end)) => {
                if start == TimeOfDay::END_OF_DAY {
                    return Err(invalid(
                        field,
                        "a working override cannot start at 24:00".to_owned(),
                    ));
                }
                if start >= end {
                    return Err(invalid(
                        field,
                        format!("start {start} must be before end {end}"),
                    ));
                }
            }
            (OverrideKind::Working, _, _) => {
                return Err(invalid(
                    field,
                    "give a working override both start and end, or neither (to use the weekday's hours)".to_owned(),
                ));
            }
        }
    }
    // Overlap: sort by start date once; a range overlaps an earlier-starting one iff it starts on or before
    // the latest end seen so far. O(n log n) instead of comparing all pairs.
    let mut order: Vec<usize> = (0..overrides.len()).collect();
    order.sort_by_key(|&i| (overrides[i].start_date, i));
    let mut reach: Option<usize> = None; // the override with the latest end_date so far
    for &i in &order {
        let o = &overrides[i];
        if let Some(r) = reach {
            let prev = &overrides[r];
            if o.start_date <= prev.end_date {
                let (first, second) = (r.min(i), r.max(i));
                return Err(invalid(
                    format!("date_overrides[{second}]"),
                    format!(
                        "date_overrides[{second}] overlaps date_overrides[{first}] on {}: a date can have only one override",
                        o.start_date
                    ),
                ));
            }
            if o.end_date > prev.end_date {
                reach = Some(i);
            }
        } else {
            reach = Some(i);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Day schedule
// ---------------------------------------------------------------------------------------------------------

/// What one local date looks like once overrides are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaySchedule {
    /// Chat hours that day.
    Open(DayHours),
    /// No chat that day; `non_working` when a `non_working` override says so (rather than the weekly hours).
    Closed { non_working: bool },
}

/// The schedule of a local date: an override covering the date wins over the weekly hours (a `non_working` one
/// closes the day; a `working` one opens it with its own hours, else the weekday's, else 09:00–18:00);
/// without one, the weekday's hours or closed.
///
/// Validated overrides never overlap; should they, the first in the list wins.
pub fn day_schedule(
    hours: &WeeklyHours,
    overrides: &[DateOverride],
    date: NaiveDate,
) -> DaySchedule {
    schedule_with(hours, overrides.iter().find(|o| o.covers(date)), date)
}

fn schedule_with(
    hours: &WeeklyHours,
    covering: Option<&DateOverride>,
    date: NaiveDate,
) -> DaySchedule {
    let weekday = hours.for_weekday(date.weekday());
    match covering {
        Some(o) if o.kind == OverrideKind::NonWorking => DaySchedule::Closed { non_working: true },
        Some(o) => {
            // Validation wants both or neither; filling each missing side separately keeps unvalidated
            // data meaningful instead of panicking.
            let base = weekday.unwrap_or(FALLBACK_HOURS);
            DaySchedule::Open(DayHours {
                start: o.start.unwrap_or(base.start),
                end: o.end.unwrap_or(base.end),
            })
        }
        None => weekday.map_or(
            DaySchedule::Closed { non_working: false },
            DaySchedule::Open,
        ),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Local time -> instant
// ---------------------------------------------------------------------------------------------------------

/// The instant that local `date` + `time` means in `tz`.
///
/// `24:00` is 00:00 of the next date. A time skipped by a spring-forward gap resolves to the first instant
/// after the gap (02:30 on 2026-03-08 in New York is 03:00 EDT); a time repeated by a fall-back takes its first
/// occurrence (01:30 on 2026-11-01 in New York is 01:30 EDT = 05:30Z).
pub fn local_instant(tz: Tz, date: NaiveDate, time: TimeOfDay) -> DateTime<Utc> {
    let (date, minutes) = if time >= TimeOfDay::END_OF_DAY {
        match date.succ_opt() {
            Some(next) => (next, 0),
            None => return DateTime::<Utc>::MAX_UTC,
        }
    } else {
        (date, time.minutes())
    };
    let naive = date.and_time(NaiveTime::MIN) + Duration::minutes(i64::from(minutes));
    resolve_local(tz, naive)
}

/// The first instant whose local time is at or after `naive` (see the module docs).
fn resolve_local(tz: Tz, naive: NaiveDateTime) -> DateTime<Utc> {
    earliest(tz, naive).unwrap_or_else(|| after_gap(tz, naive))
}

/// The first occurrence of a local time, `None` inside a gap.
fn earliest(tz: Tz, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
        LocalResult::None => None,
    }
}

/// `naive` falls in a gap: find the local time where the gap ends (probe forward doubling the step, then
/// bisect to the second) and return its instant, which is the transition itself. Only gap days pay for this:
/// about twenty zone look-ups.
#[cold]
fn after_gap(tz: Tz, naive: NaiveDateTime) -> DateTime<Utc> {
    let mut missing = naive;
    let mut step = Duration::minutes(1);
    let (mut found, mut instant) = loop {
        let Some(probe) = naive.checked_add_signed(step) else {
            return DateTime::<Utc>::MAX_UTC;
        };
        if let Some(t) = earliest(tz, probe) {
            break (probe, t);
        }
        missing = probe;
        // Real gaps are at most a day long; give up past a few days rather than loop.
        if step > Duration::days(4) {
            return naive.and_utc();
        }
        step = step * 2;
    };
    while (found - missing).num_seconds() > 1 {
        let mid = missing + Duration::seconds((found - missing).num_seconds() / 2);
        match earliest(tz, mid) {
            Some(t) => (found, instant) = (mid, t),
            None => missing = mid,
        }
    }
    instant
}

/// The instants `[start, end)` of a date's hours, `None` when closed or when the interval is empty (bad hours,
/// or both ends inside the same DST gap).
fn interval(
    tz: Tz,
    date: NaiveDate,
    schedule: DaySchedule,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let DaySchedule::Open(h) = schedule else {
        return None;
    };
    if h.start >= h.end {
        return None;
    }
    let start = local_instant(tz, date, h.start);
    let end = local_instant(tz, date, h.end);
    (start < end).then_some((start, end))
}

// ---------------------------------------------------------------------------------------------------------
// Availability
// ---------------------------------------------------------------------------------------------------------

/// Why a department is or is not taking chats, as the availability endpoint reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AvailabilityReason {
    Open,
    /// A weekday without hours, or before/after them.
    OutsideHours,
    /// A `non_working` override covers the date.
    NonWorkingDay,
    /// The manual switch is off.
    Offline,
}

/// A department's availability at one instant.
///
/// `opens_at`/`closes_at` carry the practice zone's offset at that instant, so they print as
/// `2026-11-23T09:00:00-05:00`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Availability {
    pub open: bool,
    pub reason: AvailabilityReason,
    /// When closed: the next opening within the next 366 local dates, else `None`. `None` when open.
    pub opens_at: Option<DateTime<FixedOffset>>,
    /// When open: the end of the open run (consecutive days that touch at midnight merge), `None` when it
    /// runs past the next 366 local dates. `None` when closed.
    pub closes_at: Option<DateTime<FixedOffset>>,
}

/// Whether a department takes chats at `at`.
///
/// `online == false` wins over everything (reason `offline`, no times). Otherwise the department is open iff
/// the local date D of `at` in `tz` has hours (after overrides) and `at` lies in `[start, end)` of those
/// hours as instants ([`local_instant`]). When closed, `reason` is `non_working_day` if a `non_working`
/// override covers D, else `outside_hours`, and `opens_at` is the earliest opening instant after `at` on
/// dates D..=D+366. When open, `closes_at` is where the open run ends: a day ending at 24:00 and a next day
/// starting at 00:00 are one run; `None` if the run covers all of D+1..=D+366.
///
/// Cost: one pass over the overrides plus at most 367 days, each a couple of zone look-ups.
pub fn availability(
    hours: &WeeklyHours,
    overrides: &[DateOverride],
    online: bool,
    tz: Tz,
    at: DateTime<Utc>,
) -> Availability {
    if !online {
        return Availability {
            open: false,
            reason: AvailabilityReason::Offline,
            opens_at: None,
            closes_at: None,
        };
    }
    let in_zone = |t: DateTime<Utc>| t.with_timezone(&tz).fixed_offset();
    let today = at.with_timezone(&tz).date_naive();
    let window = Window::new(hours, overrides, today);
    let schedule = window.schedule(0);

    if let Some((start, end)) = interval(tz, today, schedule) {
        if start <= at && at < end {
            return Availability {
                open: true,
                reason: AvailabilityReason::Open,
                opens_at: None,
                closes_at: window.run_end(tz, end).map(in_zone),
            };
        }
    }
    let reason = match schedule {
        DaySchedule::Closed { non_working: true } => AvailabilityReason::NonWorkingDay,
        _ => AvailabilityReason::OutsideHours,
    };
    Availability {
        open: false,
        reason,
        opens_at: window.next_opening(tz, at).map(in_zone),
        closes_at: None,
    }
}

/// The schedules of the local dates `first..first+WINDOW`, with the override of each date looked up once.
struct Window<'a> {
    hours: &'a WeeklyHours,
    first: NaiveDate,
    /// The override covering each date of the window.
    covering: [Option<&'a DateOverride>; WINDOW],
}

impl<'a> Window<'a> {
    /// One pass over the overrides: each paints the dates it covers inside the window. Painting in reverse list
    /// order makes the first override win, as in [`day_schedule`]; without overlaps (validated data) each date
    /// is painted at most once, so this is O(overrides + days).
    fn new(hours: &'a WeeklyHours, overrides: &'a [DateOverride], first: NaiveDate) -> Self {
        let mut covering = [None; WINDOW];
        for o in overrides.iter().rev() {
            let from = (o.start_date - first).num_days().max(0);
            let to = (o.end_date - first).num_days().min(WINDOW as i64 - 1);
            if from <= to {
                // Both bounds are within 0..WINDOW here.
                for slot in &mut covering[from as usize..=to as usize] {
                    *slot = Some(o);
                }
            }
        }
        Window {
            hours,
            first,
            covering,
        }
    }

    fn date(&self, offset: usize) -> Option<NaiveDate> {
        self.first
            .checked_add_days(chrono::Days::new(offset as u64))
    }

    fn schedule(&self, offset: usize) -> DaySchedule {
        match self.date(offset) {
            Some(date) => schedule_with(self.hours, self.covering[offset], date),
            None => DaySchedule::Closed { non_working: false },
        }
    }

    /// The earliest start instant after `at` of a non-empty interval on the window's dates.
    fn next_opening(&self, tz: Tz, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        for offset in 0..WINDOW {
            let date = self.date(offset)?;
            let DaySchedule::Open(h) = self.schedule(offset) else {
                continue;
            };
            if h.start >= h.end {
                continue;
            }
            let start = local_instant(tz, date, h.start);
            // The end costs a second zone look-up: only pay it for a candidate.
            if start > at && start < local_instant(tz, date, h.end) {
                return Some(start);
            }
        }
        None
    }

    /// Extends the open interval of the first date, which ends at the instant `end`, through the following
    /// dates while each next interval starts exactly where the run ends. `None` if the run outlasts the window.
    fn run_end(&self, tz: Tz, end: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let DaySchedule::Open(first) = self.schedule(0) else {
            return Some(end);
        };
        // The run's end as a local date and time; its instant is resolved only when needed, so a run of
        // all-day dates costs no zone look-up per day.
        let (mut end_date, mut end_time, mut end_instant) = (self.first, first.end, Some(end));
        for offset in 1..WINDOW {
            let Some(date) = self.date(offset) else { break };
            let DaySchedule::Open(h) = self.schedule(offset) else {
                break;
            };
            if h.start >= h.end {
                break;
            }
            // 24:00 and the next 00:00 are the same local time, hence the same instant. Otherwise compare
            // instants: two times inside one DST gap touch too.
            let touches = (end_time == TimeOfDay::END_OF_DAY && h.start == TimeOfDay::MIDNIGHT)
                || {
                    let run_end =
                        *end_instant.get_or_insert_with(|| local_instant(tz, end_date, end_time));
                    local_instant(tz, date, h.start) == run_end
                };
            if !touches {
                break;
            }
            // An interval emptied by a gap ends where it starts, which is where the run already ends: harmless.
            (end_date, end_time, end_instant) = (date, h.end, None);
            if offset == WINDOW - 1 {
                return None;
            }
        }
        Some(end_instant.unwrap_or_else(|| local_instant(tz, end_date, end_time)))
    }
}

// ---------------------------------------------------------------------------------------------------------
// Reminder
// ---------------------------------------------------------------------------------------------------------

/// When the end-of-day unresolved-conversation reminder is due on local `date`.
///
/// `at` when given. Otherwise 30 minutes before that date's closing instant (after overrides), measured in
/// real time (so on a DST day it is still 30 minutes of warning), but not before the date's 00:00 — even when
/// that lands before the opening time. On a date without hours: 17:30.
pub fn reminder_instant(
    hours: &WeeklyHours,
    overrides: &[DateOverride],
    at: Option<TimeOfDay>,
    tz: Tz,
    date: NaiveDate,
) -> DateTime<Utc> {
    if let Some(at) = at {
        return local_instant(tz, date, at);
    }
    match day_schedule(hours, overrides, date) {
        DaySchedule::Open(h) => {
            let closing = local_instant(tz, date, h.end);
            let day_start = local_instant(tz, date, TimeOfDay::MIDNIGHT);
            closing
                .checked_sub_signed(Duration::minutes(REMINDER_LEAD_MINUTES))
                .map_or(day_start, |t| t.max(day_start))
        }
        DaySchedule::Closed { .. } => local_instant(tz, date, CLOSED_DAY_REMINDER),
    }
}
