//! Property tests: `availability` against a brute-force reference written here with chrono-tz directly, over
//! random hours, random non-overlapping overrides, zones with 30- and 60-minute DST moves, and instants
//! biased towards DST transitions.

use chrono::{DateTime, Days, Duration, LocalResult, NaiveDate, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use domain::schedule::{
    availability, day_schedule, validate_hours, validate_overrides, AvailabilityReason,
    DateOverride, DayHours, DaySchedule, OverrideKind, TimeOfDay, WeeklyHours,
};
use proptest::prelude::*;

/// The zones, each with the UTC instants of its 2026-2027 DST transitions.
const ZONES: [(Tz, &[&str]); 6] = [
    (
        chrono_tz::America::New_York,
        &[
            "2026-03-08T07:00:00Z",
            "2026-11-01T06:00:00Z",
            "2027-03-14T07:00:00Z",
            "2027-11-07T06:00:00Z",
        ],
    ),
    (
        chrono_tz::Europe::London,
        &[
            "2026-03-29T01:00:00Z",
            "2026-10-25T01:00:00Z",
            "2027-03-28T01:00:00Z",
            "2027-10-31T01:00:00Z",
        ],
    ),
    (
        chrono_tz::Australia::Lord_Howe,
        &[
            "2026-04-04T15:00:00Z",
            "2026-10-03T15:30:00Z",
            "2027-04-03T15:00:00Z",
            "2027-10-02T15:30:00Z",
        ],
    ),
    (
        chrono_tz::America::St_Johns,
        &[
            "2026-03-08T05:30:00Z",
            "2026-11-01T04:30:00Z",
            "2027-03-14T05:30:00Z",
            "2027-11-07T04:30:00Z",
        ],
    ),
    // No DST: local midnights and the year change are the edges.
    (
        chrono_tz::Asia::Kolkata,
        &["2026-11-22T18:30:00Z", "2026-12-31T18:30:00Z"],
    ),
    (
        chrono_tz::UTC,
        &["2026-11-23T00:00:00Z", "2027-01-01T00:00:00Z"],
    ),
];

// ------------------------------------------------------------------------------------------------ reference

/// The instant of a local date and time, by brute force: the first occurrence of the wall-clock time, or, in a
/// gap, the first whole minute after it that exists (every transition of these zones is on a whole minute).
fn reference_instant(tz: Tz, date: NaiveDate, time: TimeOfDay) -> DateTime<Utc> {
    let (date, minutes) = if time.minutes() == 1440 {
        (date.succ_opt().unwrap(), 0)
    } else {
        (date, time.minutes())
    };
    let mut naive = date
        .and_hms_opt(u32::from(minutes / 60), u32::from(minutes % 60), 0)
        .unwrap();
    loop {
        match tz.from_local_datetime(&naive) {
            LocalResult::Single(x) => return x.with_timezone(&Utc),
            LocalResult::Ambiguous(a, b) => return a.min(b).with_timezone(&Utc),
            LocalResult::None => naive += Duration::minutes(1),
        }
    }
}

/// Open at `at`: the local date's hours (after overrides) as instants contain `at`.
fn reference_open(h: &WeeklyHours, ov: &[DateOverride], tz: Tz, at: DateTime<Utc>) -> bool {
    let date = at.with_timezone(&tz).date_naive();
    match day_schedule(h, ov, date) {
        DaySchedule::Open(dh) => {
            reference_instant(tz, date, dh.start) <= at && at < reference_instant(tz, date, dh.end)
        }
        DaySchedule::Closed { .. } => false,
    }
}

fn ceil_to_minute(t: DateTime<Utc>) -> DateTime<Utc> {
    let floor = t.with_second(0).unwrap().with_nanosecond(0).unwrap();
    if floor == t {
        t
    } else {
        floor + Duration::minutes(1)
    }
}

/// Minute boundaries strictly between `from` and `to`.
fn minutes_between(from: DateTime<Utc>, to: DateTime<Utc>) -> impl Iterator<Item = DateTime<Utc>> {
    let first = ceil_to_minute(from + Duration::seconds(1));
    (0..)
        .map(move |k| first + Duration::minutes(k))
        .take_while(move |t| *t < to)
}

/// Scans minute by minute only over gaps this short, to keep the suite fast.
fn scan_limit() -> Duration {
    Duration::days(8)
}

// ------------------------------------------------------------------------------------------------ strategies

fn time_of_day(m: u16) -> TimeOfDay {
    TimeOfDay::from_hm(m / 60, m % 60).unwrap()
}

/// Hours with a bias to the edges (00:00, 24:00) and to the small hours where DST transitions happen.
fn day_hours() -> impl Strategy<Value = DayHours> {
    let start = prop_oneof![
        2 => Just(0u16),
        4 => 0u16..1440,
        3 => (0u16..=16).prop_map(|q| q * 15), // 00:00 to 04:00
    ];
    start.prop_flat_map(|s| {
        let end = prop_oneof![
            2 => Just(1440u16),
            3 => (s + 1)..=1440,
            2 => (s + 1)..=(s + 240).min(1440),
        ];
        end.prop_map(move |e| DayHours {
            start: time_of_day(s),
            end: time_of_day(e),
        })
    })
}

fn weekly_hours() -> impl Strategy<Value = WeeklyHours> {
    let day = || prop::option::weighted(0.7, day_hours());
    let random = (day(), day(), day(), day(), day(), day(), day()).prop_map(
        |(mon, tue, wed, thu, fri, sat, sun)| WeeklyHours {
            mon,
            tue,
            wed,
            thu,
            fri,
            sat,
            sun,
        },
    );
    let all_day = Some(DayHours {
        start: TimeOfDay::MIDNIGHT,
        end: TimeOfDay::END_OF_DAY,
    });
    prop_oneof![
        8 => random,
        1 => Just(WeeklyHours { mon: None, tue: None, wed: None, thu: None, fri: None, sat: None, sun: None }),
        // Open round the clock, sometimes with Sunday off.
        1 => prop::bool::weighted(0.8).prop_map(move |sunday| WeeklyHours {
            mon: all_day, tue: all_day, wed: all_day, thu: all_day, fri: all_day, sat: all_day,
            sun: if sunday { all_day } else { None },
        }),
    ]
}

fn an_override() -> impl Strategy<Value = (u64, u64, DateOverride)> {
    // (days after the previous one, length in days, the override with placeholder dates)
    let kind = prop_oneof![
        Just((OverrideKind::NonWorking, None)),
        Just((OverrideKind::Working, None)),
        day_hours().prop_map(|h| (OverrideKind::Working, Some(h))),
    ];
    (0u64..40, 1u64..10, kind).prop_map(|(gap, len, (kind, h))| {
        let d = NaiveDate::MIN;
        (
            gap,
            len,
            DateOverride {
                start_date: d,
                end_date: d,
                kind,
                start: h.map(|h| h.start),
                end: h.map(|h| h.end),
            },
        )
    })
}

/// Non-overlapping overrides laid out from late 2025 on, in shuffled order.
fn overrides() -> impl Strategy<Value = Vec<DateOverride>> {
    (0u64..200, prop::collection::vec(an_override(), 0..14))
        .prop_map(|(offset, parts)| {
            let mut next = NaiveDate::from_ymd_opt(2025, 12, 1).unwrap() + Days::new(offset);
            parts
                .into_iter()
                .map(|(gap, len, mut o)| {
                    o.start_date = next + Days::new(gap);
                    o.end_date = o.start_date + Days::new(len - 1);
                    next = o.end_date + Days::new(1);
                    o
                })
                .collect::<Vec<_>>()
        })
        .prop_shuffle()
}

fn rfc3339(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Any instant of 2026-2027, or one within four hours of one of the zone's transitions.
fn instant(transitions: &'static [&'static str]) -> impl Strategy<Value = DateTime<Utc>> {
    let start = rfc3339("2026-01-01T00:00:00Z");
    let span = Duration::days(730).num_seconds();
    let anywhere = (0..span).prop_map(move |s| start + Duration::seconds(s));
    let near_transition = (
        prop::sample::select(transitions),
        -4 * 60i64..=4 * 60,
        0i64..60,
    )
        .prop_map(|(t, m, s)| rfc3339(t) + Duration::minutes(m) + Duration::seconds(s));
    prop_oneof![1 => anywhere, 1 => near_transition]
}

fn case() -> impl Strategy<Value = (WeeklyHours, Vec<DateOverride>, Tz, DateTime<Utc>)> {
    prop::sample::select(ZONES.to_vec()).prop_flat_map(|(tz, transitions)| {
        (weekly_hours(), overrides(), Just(tz), instant(transitions))
    })
}

// ------------------------------------------------------------------------------------------------ properties

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// The generators only make valid data, so these are the inputs the service would store.
    #[test]
    fn generated_data_is_valid((h, ov, _tz, _at) in case()) {
        prop_assert!(validate_hours(&h).is_ok(), "{:?}", validate_hours(&h));
        prop_assert!(validate_overrides(&ov).is_ok(), "{:?}", validate_overrides(&ov));
    }

    /// (1) `open` and `reason` agree with the brute-force reference.
    #[test]
    fn open_agrees_with_the_reference((h, ov, tz, at) in case()) {
        let a = availability(&h, &ov, true, tz, at);
        let expected = reference_open(&h, &ov, tz, at);
        prop_assert_eq!(a.open, expected, "at {} ({}) in {}", at, at.with_timezone(&tz), tz);
        let date = at.with_timezone(&tz).date_naive();
        let reason = match (expected, day_schedule(&h, &ov, date)) {
            (true, _) => AvailabilityReason::Open,
            (false, DaySchedule::Closed { non_working: true }) => AvailabilityReason::NonWorkingDay,
            (false, _) => AvailabilityReason::OutsideHours,
        };
        prop_assert_eq!(a.reason, reason);
        // The edges of the day's hours themselves: the opening instant is open, the closing one is not.
        if let DaySchedule::Open(dh) = day_schedule(&h, &ov, date) {
            let (s, e) = (reference_instant(tz, date, dh.start), reference_instant(tz, date, dh.end));
            for t in [s - Duration::seconds(1), s, e - Duration::seconds(1), e] {
                prop_assert_eq!(
                    availability(&h, &ov, true, tz, t).open,
                    reference_open(&h, &ov, tz, t),
                    "at {} in {}", t.with_timezone(&tz), tz
                );
            }
        }
        prop_assert_eq!(a.open, a.opens_at.is_none() && a.reason == AvailabilityReason::Open);
        prop_assert!(!a.open || a.opens_at.is_none());
        prop_assert!(a.open || a.closes_at.is_none());
        // Offline wins whatever the hours say.
        let off = availability(&h, &ov, false, tz, at);
        prop_assert!(!off.open && off.reason == AvailabilityReason::Offline && off.opens_at.is_none() && off.closes_at.is_none());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// (2) When closed, `opens_at` is the next instant it is open, in the zone's offset at that instant.
    #[test]
    fn opens_at_is_the_next_opening((h, ov, tz, at) in case()) {
        let a = availability(&h, &ov, true, tz, at);
        prop_assume!(!a.open);
        match a.opens_at {
            Some(o) => {
                prop_assert_eq!(*o.offset(), o.with_timezone(&tz).offset().fix());
                let o = o.with_timezone(&Utc);
                prop_assert!(o > at);
                prop_assert!(reference_open(&h, &ov, tz, o), "not open at opens_at {}", o.with_timezone(&tz));
                if o - at <= scan_limit() {
                    for m in minutes_between(at, o) {
                        prop_assert!(!reference_open(&h, &ov, tz, m), "open at {} before opens_at {}", m.with_timezone(&tz), o.with_timezone(&tz));
                    }
                }
            }
            None => {
                // No opening on any of the next 366 local dates.
                let date = at.with_timezone(&tz).date_naive();
                for k in 0..=366u64 {
                    let d = date + Days::new(k);
                    if let DaySchedule::Open(dh) = day_schedule(&h, &ov, d) {
                        let (s, e) = (reference_instant(tz, d, dh.start), reference_instant(tz, d, dh.end));
                        prop_assert!(s >= e || s <= at, "opens {} on {}", s.with_timezone(&tz), d);
                    }
                }
            }
        }
    }

    /// (3) When open, `closes_at` is the first instant it is closed; `None` means open for the next 366 days.
    #[test]
    fn closes_at_is_the_end_of_the_open_run((h, ov, tz, at) in case()) {
        let a = availability(&h, &ov, true, tz, at);
        prop_assume!(a.open);
        match a.closes_at {
            Some(c) => {
                prop_assert_eq!(*c.offset(), c.with_timezone(&tz).offset().fix());
                let c = c.with_timezone(&Utc);
                prop_assert!(c > at);
                prop_assert!(!reference_open(&h, &ov, tz, c), "still open at closes_at {}", c.with_timezone(&tz));
                if c - at <= scan_limit() {
                    for m in minutes_between(at, c) {
                        prop_assert!(reference_open(&h, &ov, tz, m), "closed at {} before closes_at {}", m.with_timezone(&tz), c.with_timezone(&tz));
                    }
                }
            }
            None => {
                for k in 0..=365 {
                    for extra in [0, 7 * 60, 13 * 60, 23 * 60 + 59] {
                        let t = at + Duration::days(k) + Duration::minutes(extra);
                        prop_assert!(reference_open(&h, &ov, tz, t), "closed at {}", t.with_timezone(&tz));
                    }
                }
            }
        }
    }
}
