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
/// The local dates availability looks at: the current one plus the horizon.
const HORIZON_DATES: usize = HORIZON_DAYS + 1;

/// At most this many windows a day (split shifts).
pub const MAX_WINDOWS: usize = 4;

/// The hours a `working` override gets when neither it nor its weekday names any, and each weekday of the
/// default week.
const FALLBACK_WINDOWS: &[Window] = &[Window {
    start: TimeOfDay(9 * 60),
    end: TimeOfDay(18 * 60),
}];
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
// Windows, hours and overrides
// ---------------------------------------------------------------------------------------------------------

/// One window of chat hours, `start` inclusive, `end` exclusive (`end` may be `"24:00"`). A window never
/// crosses midnight: overnight hours are a window to 24:00 and one from 00:00 the next day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub start: TimeOfDay,
    pub end: TimeOfDay,
}

impl Window {
    pub fn new(start: TimeOfDay, end: TimeOfDay) -> Self {
        Window { start, end }
    }
}

/// One day's chat hours: its windows, in order (validated: 1 to [`MAX_WINDOWS`], neither overlapping nor
/// touching).
///
/// JSON: one window is an object `{"start", "end"}`, exactly as before split shifts existed (a list of one is
/// written back as an object); two or more are a list. Both shapes are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayHours(Vec<Window>);

impl DayHours {
    pub fn new(windows: Vec<Window>) -> Self {
        DayHours(windows)
    }

    /// One window.
    pub fn one(start: TimeOfDay, end: TimeOfDay) -> Self {
        DayHours(vec![Window { start, end }])
    }

    pub fn windows(&self) -> &[Window] {
        &self.0
    }
}

impl Serialize for DayHours {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => one.serialize(serializer),
            many => many.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for DayHours {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = DayHours;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a window {\"start\": \"HH:MM\", \"end\": \"HH:MM\"} or a list of windows",
                )
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<DayHours, A::Error> {
                Window::deserialize(MapAccessDeserializer::new(map)).map(|w| DayHours(vec![w]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<DayHours, A::Error> {
                Vec::<Window>::deserialize(SeqAccessDeserializer::new(seq)).map(DayHours)
            }
        }
        // Both shapes go through the same element deserializers, so a bad time still names its path
        // (`hours.mon[1].start`).
        deserializer.deserialize_any(Visitor)
    }
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
    pub fn for_weekday(&self, wd: Weekday) -> Option<&DayHours> {
        match wd {
            Weekday::Mon => self.mon.as_ref(),
            Weekday::Tue => self.tue.as_ref(),
            Weekday::Wed => self.wed.as_ref(),
            Weekday::Thu => self.thu.as_ref(),
            Weekday::Fri => self.fri.as_ref(),
            Weekday::Sat => self.sat.as_ref(),
            Weekday::Sun => self.sun.as_ref(),
        }
    }

    /// The days in contract order with their JSON keys (for validation messages).
    fn named_days(&self) -> [(&'static str, Option<&DayHours>); 7] {
        [
            ("mon", self.mon.as_ref()),
            ("tue", self.tue.as_ref()),
            ("wed", self.wed.as_ref()),
            ("thu", self.thu.as_ref()),
            ("fri", self.fri.as_ref()),
            ("sat", self.sat.as_ref()),
            ("sun", self.sun.as_ref()),
        ]
    }
}

impl Default for WeeklyHours {
    /// 09:00–18:00 Monday to Friday, no chat at the weekend (new departments and the hours reset).
    fn default() -> Self {
        let day = || Some(DayHours(FALLBACK_WINDOWS.to_vec()));
        WeeklyHours {
            mon: day(),
            tue: day(),
            wed: day(),
            thu: day(),
            fri: day(),
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
/// JSON: `{"start_date":"2026-12-24","end_date":"2026-12-26","kind":"non_working"}`; a working override may
/// carry its own hours: one window as `"start"`/`"end"` (as before split shifts existed, and how a list of one
/// is written back), or two or more as `"windows": [{"start", "end"}, …]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateOverride {
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    pub kind: OverrideKind,
    /// A working override's own hours; `None` takes the weekday's (else 09:00–18:00). A non_working override
    /// has none (validated).
    pub hours: Option<DayHours>,
}

impl DateOverride {
    fn covers(&self, date: NaiveDate) -> bool {
        self.start_date <= date && date <= self.end_date
    }
}

/// The wire shape of a date override, as read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DateOverrideIn {
    start_date: NaiveDate,
    end_date: NaiveDate,
    kind: OverrideKind,
    #[serde(default)]
    start: Option<TimeOfDay>,
    #[serde(default)]
    end: Option<TimeOfDay>,
    #[serde(default)]
    windows: Option<Vec<Window>>,
}

/// The wire shape of a date override, as written.
#[derive(Serialize)]
struct DateOverrideOut<'a> {
    start_date: NaiveDate,
    end_date: NaiveDate,
    kind: OverrideKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    start: Option<TimeOfDay>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end: Option<TimeOfDay>,
    #[serde(skip_serializing_if = "Option::is_none")]
    windows: Option<&'a [Window]>,
}

impl Serialize for DateOverride {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (start, end, windows) = match self.hours.as_ref().map(DayHours::windows) {
            None => (None, None, None),
            Some([one]) => (Some(one.start), Some(one.end), None),
            Some(many) => (None, None, Some(many)),
        };
        DateOverrideOut {
            start_date: self.start_date,
            end_date: self.end_date,
            kind: self.kind,
            start,
            end,
            windows,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for DateOverride {
    /// Only what the model cannot hold is refused here (half a window, or a window and a list); every other
    /// rule is [`validate_overrides`]'.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let o = DateOverrideIn::deserialize(deserializer)?;
        let hours = match (o.start, o.end, o.windows) {
            (None, None, None) => None,
            (Some(start), Some(end), None) => Some(DayHours::one(start, end)),
            (None, None, Some(windows)) => Some(DayHours(windows)),
            (_, _, Some(_)) => {
                return Err(serde::de::Error::custom(
                    "give a working override either start and end or windows, not both",
                ))
            }
            _ => {
                return Err(serde::de::Error::custom(
                    "give a working override both start and end, or neither (to use the weekday's hours); \
                     a non_working override takes neither",
                ))
            }
        };
        Ok(DateOverride {
            start_date: o.start_date,
            end_date: o.end_date,
            kind: o.kind,
            hours,
        })
    }
}

// ---------------------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------------------

/// Checks weekly hours before they are stored: every day with hours has 1 to 4 windows, each with
/// `start < end` and `start` not `24:00`, in order, neither overlapping nor touching. The error is the first
/// problem found, code `invalid_hours`, field `hours.<day>` for a day of one window, `hours.<day>[i]` for
/// window `i` of a list.
pub fn validate_hours(hours: &WeeklyHours) -> Result<(), DomainError> {
    for (day, h) in hours.named_days() {
        let Some(h) = h else { continue };
        let field = format!("hours.{day}");
        validate_windows(h.windows(), InvalidCode::InvalidHours, &field, &field, day)?;
    }
    Ok(())
}

/// The rules of one day's windows, shared by the weekly hours and the working overrides. `one` is the field
/// of a day of one window, `list` the field of the list (window `i` is `list[i]`); `what` names the day in
/// messages.
fn validate_windows(
    windows: &[Window],
    code: InvalidCode,
    one: &str,
    list: &str,
    what: &str,
) -> Result<(), DomainError> {
    let invalid = |field: String, message: String| DomainError::invalid(code, field, message);
    let at = |i: usize| {
        if windows.len() == 1 {
            one.to_owned()
        } else {
            format!("{list}[{i}]")
        }
    };
    if windows.is_empty() {
        return Err(invalid(
            list.to_owned(),
            format!(
                "{what}: an empty list of windows; give at least one, or null for no chat that day"
            ),
        ));
    }
    if windows.len() > MAX_WINDOWS {
        return Err(invalid(
            format!("{list}[{MAX_WINDOWS}]"),
            format!(
                "{what}: at most {MAX_WINDOWS} windows a day (got {})",
                windows.len()
            ),
        ));
    }
    for (i, w) in windows.iter().enumerate() {
        if w.start == TimeOfDay::END_OF_DAY {
            return Err(invalid(
                at(i),
                format!("{what}: a window cannot start at 24:00 (use 00:00 of the next day)"),
            ));
        }
        if w.start >= w.end {
            return Err(invalid(
                at(i),
                format!("{what}: start {} must be before end {}", w.start, w.end),
            ));
        }
        let Some(prev) = i.checked_sub(1).map(|p| windows[p]) else {
            continue;
        };
        let problem = if w.start < prev.start {
            "is before the window listed ahead of it: list the windows in order"
        } else if w.start < prev.end {
            "overlaps the window before it"
        } else if w.start == prev.end {
            "touches the window before it: make them one window"
        } else {
            continue;
        };
        return Err(invalid(
            at(i),
            format!(
                "{what}: {}–{} {problem} ({}–{})",
                w.start, w.end, prev.start, prev.end
            ),
        ));
    }
    Ok(())
}

/// Checks date overrides before they are stored. The error is the first problem found, code
/// `invalid_date_override`, field `date_overrides` (too many), `date_overrides[i]` (kind, a one-window override's
/// hours, overlap), `date_overrides[i].windows[j]` (a window of a list) or `date_overrides[i].end_date` (the date
/// range).
///
/// Rules: at most 400 overrides; `start_date <= end_date`; at most 366 days per override; `non_working` carries
/// no hours; a `working` override's own windows follow the rules of [`validate_hours`]; no date is covered by
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
        match (o.kind, &o.hours) {
            (_, None) => {}
            (OverrideKind::NonWorking, Some(_)) => {
                return Err(invalid(
                    field,
                    "a non_working override is closed all day and takes no start, end or windows"
                        .to_owned(),
                ));
            }
            (OverrideKind::Working, Some(h)) => validate_windows(
                h.windows(),
                InvalidCode::InvalidDateOverride,
                &field,
                &format!("{field}.windows"),
                "a working override",
            )?,
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
pub enum DaySchedule<'a> {
    /// Chat hours that day: its windows, in order.
    Open(&'a [Window]),
    /// No chat that day; `non_working` when a `non_working` override says so (rather than the weekly hours).
    Closed { non_working: bool },
}

/// The schedule of a local date: an override covering the date wins over the weekly hours (a `non_working` one
/// closes the day; a `working` one opens it with its own windows, else the weekday's, else 09:00–18:00);
/// without one, the weekday's hours or closed.
///
/// Validated overrides never overlap; should they, the first in the list wins.
pub fn day_schedule<'a>(
    hours: &'a WeeklyHours,
    overrides: &'a [DateOverride],
    date: NaiveDate,
) -> DaySchedule<'a> {
    schedule_with(hours, overrides.iter().find(|o| o.covers(date)), date)
}

fn schedule_with<'a>(
    hours: &'a WeeklyHours,
    covering: Option<&'a DateOverride>,
    date: NaiveDate,
) -> DaySchedule<'a> {
    let weekday = hours.for_weekday(date.weekday()).map(DayHours::windows);
    match covering {
        Some(o) if o.kind == OverrideKind::NonWorking => DaySchedule::Closed { non_working: true },
        Some(o) => DaySchedule::Open(
            o.hours
                .as_ref()
                .map(DayHours::windows)
                .or(weekday)
                .unwrap_or(FALLBACK_WINDOWS),
        ),
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

// ---------------------------------------------------------------------------------------------------------
// Availability
// ---------------------------------------------------------------------------------------------------------

/// Why a department is or is not taking chats, as the availability endpoint reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AvailabilityReason {
    Open,
    /// A weekday without hours, or before/after/between its windows.
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
    /// When open: the end of the open stretch (windows that touch, a window to 24:00 and the next date's from
    /// 00:00, merge), `None` when it runs past the next 366 local dates. `None` when closed.
    pub closes_at: Option<DateTime<FixedOffset>>,
}

/// Whether a department takes chats at `at`.
///
/// `online == false` wins over everything (reason `offline`, no times). Otherwise the department is open iff
/// the local date D of `at` in `tz` has hours (after overrides) and `at` lies in `[start, end)` of one of its
/// windows as instants ([`local_instant`]). When closed, `reason` is `non_working_day` if a `non_working`
/// override covers D, else `outside_hours`, and `opens_at` is the earliest window start after `at` on dates
/// D..=D+366. When open, `closes_at` is where the open stretch ends: windows whose instants touch (a window
/// to 24:00 and the next date's from 00:00, or two windows joined by a DST gap) are one stretch; `None` if
/// the stretch reaches D+366.
///
/// Cost: one pass over the overrides plus at most 367 days, each a few zone look-ups per window.
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
    let horizon = Horizon::new(hours, overrides, today);
    let schedule = horizon.schedule(0);

    if let DaySchedule::Open(windows) = schedule {
        for (k, w) in windows.iter().enumerate() {
            if w.start >= w.end {
                continue;
            }
            // The end costs a second zone look-up: only pay it for a window that has started.
            if local_instant(tz, today, w.start) > at {
                continue;
            }
            let end = local_instant(tz, today, w.end);
            if at < end {
                return Availability {
                    open: true,
                    reason: AvailabilityReason::Open,
                    opens_at: None,
                    closes_at: horizon.stretch_end(tz, k, end).map(in_zone),
                };
            }
        }
    }
    let reason = match schedule {
        DaySchedule::Closed { non_working: true } => AvailabilityReason::NonWorkingDay,
        _ => AvailabilityReason::OutsideHours,
    };
    Availability {
        open: false,
        reason,
        opens_at: horizon.next_opening(tz, at).map(in_zone),
        closes_at: None,
    }
}

/// The first instant after `at` at which the availability computed at `at` may read differently because of
/// the schedule alone: `closes_at` when open; when closed, `opens_at` or the next local midnight, whichever
/// comes first (at midnight the date's rules change the `reason`, e.g. `non_working_day` to `outside_hours`,
/// and the horizon of `opens_at` moves); the next local midnight for an open stretch past the horizon.
/// `None` when offline: only staff change that (see [`AVAILABILITY_MAX_AGE_SECS`]).
pub fn next_change(a: &Availability, tz: Tz, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let midnight = || {
        let today = at.with_timezone(&tz).date_naive();
        local_instant(tz, today, TimeOfDay::END_OF_DAY)
    };
    let utc = |t: DateTime<FixedOffset>| t.with_timezone(&Utc);
    match a.reason {
        AvailabilityReason::Offline => None,
        AvailabilityReason::Open => Some(a.closes_at.map_or_else(midnight, utc)),
        _ => Some(a.opens_at.map_or_else(midnight, |o| utc(o).min(midnight()))),
    }
}

/// Whether the department's hours opened at some instant in `(after, until]`: a window started then (by
/// its hours and overrides, whatever the switch). What tells a new closed period from the one `after` was
/// in: a client texting five times in one night is in one closed period, the next night in another. An
/// offline stretch inside opening hours is one closed period until the next window starts. Looks as far as
/// availability does (366 dates past `after`).
pub fn opened_between(
    hours: &WeeklyHours,
    overrides: &[DateOverride],
    tz: Tz,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
) -> bool {
    if until <= after {
        return false;
    }
    let first = after.with_timezone(&tz).date_naive();
    Horizon::new(hours, overrides, first)
        .next_opening(tz, after)
        .is_some_and(|opening| opening <= until)
}

/// The longest an availability answer may be kept by a browser or a CDN (`Cache-Control: max-age`): staff
/// may flip the Online/Offline switch at any time, and a widget should show it within half a minute.
pub const AVAILABILITY_MAX_AGE_SECS: u32 = 30;

/// For how many whole seconds from `now` an answer stays true when its earliest scheduled change is
/// `change` ([`next_change`]): at most [`AVAILABILITY_MAX_AGE_SECS`], rounded down so that `now + max-age`
/// never passes the change; 0 (revalidate every time) when the change is due within the second.
pub fn fresh_seconds(change: Option<DateTime<Utc>>, now: DateTime<Utc>) -> u32 {
    let cap = AVAILABILITY_MAX_AGE_SECS;
    match change {
        None => cap,
        Some(c) => {
            let whole = (c - now).num_milliseconds().div_euclid(1000);
            u32::try_from(whole.clamp(0, i64::from(cap))).unwrap_or(cap)
        }
    }
}

/// The schedules of the local dates `first..first+HORIZON_DATES`, with the override of each date looked up once.
struct Horizon<'a> {
    hours: &'a WeeklyHours,
    first: NaiveDate,
    /// The override covering each date of the horizon.
    covering: [Option<&'a DateOverride>; HORIZON_DATES],
}

impl<'a> Horizon<'a> {
    /// One pass over the overrides: each paints the dates it covers inside the horizon. Painting in reverse
    /// list order makes the first override win, as in [`day_schedule`]; without overlaps (validated data) each
    /// date is painted at most once, so this is O(overrides + days).
    fn new(hours: &'a WeeklyHours, overrides: &'a [DateOverride], first: NaiveDate) -> Self {
        let mut covering = [None; HORIZON_DATES];
        for o in overrides.iter().rev() {
            let from = (o.start_date - first).num_days().max(0);
            let to = (o.end_date - first)
                .num_days()
                .min(HORIZON_DATES as i64 - 1);
            if from <= to {
                // Both bounds are within 0..HORIZON_DATES here.
                for slot in &mut covering[from as usize..=to as usize] {
                    *slot = Some(o);
                }
            }
        }
        Horizon {
            hours,
            first,
            covering,
        }
    }

    fn date(&self, offset: usize) -> Option<NaiveDate> {
        self.first
            .checked_add_days(chrono::Days::new(offset as u64))
    }

    fn schedule(&self, offset: usize) -> DaySchedule<'a> {
        match self.date(offset) {
            Some(date) => schedule_with(self.hours, self.covering[offset], date),
            None => DaySchedule::Closed { non_working: false },
        }
    }

    /// The earliest start instant after `at` of a non-empty window on the horizon's dates.
    fn next_opening(&self, tz: Tz, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        for offset in 0..HORIZON_DATES {
            let date = self.date(offset)?;
            let DaySchedule::Open(windows) = self.schedule(offset) else {
                continue;
            };
            for w in windows.iter().filter(|w| w.start < w.end) {
                let start = local_instant(tz, date, w.start);
                // The end costs a second zone look-up: only pay it for a candidate.
                if start > at && start < local_instant(tz, date, w.end) {
                    return Some(start);
                }
            }
        }
        None
    }

    /// Extends the open window `window` of the first date, which ends at the instant `end`, through the windows
    /// that follow (the rest of that date's, then each next date's) while each starts exactly where the
    /// stretch ends. `None` if the stretch reaches the horizon's last date.
    fn stretch_end(&self, tz: Tz, window: usize, end: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let DaySchedule::Open(today) = self.schedule(0) else {
            return Some(end);
        };
        // The stretch's end as a local date and time; its instant is resolved only when needed, so a stretch
        // of all-day dates costs no zone look-up per day.
        let (mut end_date, mut end_time, mut end_instant) =
            (self.first, today[window].end, Some(end));
        for offset in 0..HORIZON_DATES {
            let Some(date) = self.date(offset) else { break };
            let DaySchedule::Open(windows) = self.schedule(offset) else {
                break;
            };
            let next = if offset == 0 {
                &windows[window + 1..]
            } else {
                windows
            };
            for w in next.iter().filter(|w| w.start < w.end) {
                // 24:00 and the next 00:00 are the same local time, hence the same instant. Otherwise compare
                // instants: two times inside one DST gap touch too.
                let touches = (end_time == TimeOfDay::END_OF_DAY
                    && w.start == TimeOfDay::MIDNIGHT
                    && end_date.succ_opt() == Some(date))
                    || {
                        let stretch_end = *end_instant
                            .get_or_insert_with(|| local_instant(tz, end_date, end_time));
                        local_instant(tz, date, w.start) == stretch_end
                    };
                if !touches {
                    return Some(
                        end_instant.unwrap_or_else(|| local_instant(tz, end_date, end_time)),
                    );
                }
                if offset == HORIZON_DATES - 1 {
                    return None;
                }
                // A window emptied by a gap ends where it starts, which is where the stretch already ends.
                (end_date, end_time, end_instant) = (date, w.end, None);
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
/// `at` when given. Otherwise 30 minutes before that date's closing instant (the end of its last window,
/// after overrides; 24:00 is the end of the day), measured in real time (so on a DST day it is still 30
/// minutes of warning), but not before the date's 00:00 — even when that lands before the opening time. On a
/// date without hours: 17:30.
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
        DaySchedule::Open([.., last]) => {
            let closing = local_instant(tz, date, last.end);
            let day_start = local_instant(tz, date, TimeOfDay::MIDNIGHT);
            closing
                .checked_sub_signed(Duration::minutes(REMINDER_LEAD_MINUTES))
                .map_or(day_start, |t| t.max(day_start))
        }
        DaySchedule::Open([]) | DaySchedule::Closed { .. } => {
            local_instant(tz, date, CLOSED_DAY_REMINDER)
        }
    }
}
