//! Property tests: `availability` and `reminder_instant` against a brute-force reference written here with
//! chrono-tz directly, over random weekly hours of 1 to 4 windows a day (split shifts, overnight stretches
//! to 24:00 and from 00:00), random non-overlapping overrides (working ones with windows of their own), every
//! IANA zone, and instants biased towards each zone's DST transitions. `opened_between` (what tells one closed
//! period from the next, for the after-hours text) against the same reference.

use std::sync::OnceLock;

use chrono::{DateTime, Days, Duration, LocalResult, NaiveDate, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use domain::schedule::{
    availability, day_schedule, fresh_seconds, next_change, opened_between, reminder_instant,
    validate_hours, validate_overrides, AvailabilityReason, DateOverride, DayHours, DaySchedule,
    OverrideKind, TimeOfDay, WeeklyHours, Window, MAX_WINDOWS,
};
use proptest::prelude::*;

/// Zones with well-known moves, drawn as often as all the others together: 60- and 30-minute DST moves on
/// either hemisphere, a half-hour zone with DST, and two without.
const NAMED_ZONES: [Tz; 8] = [
    chrono_tz::America::New_York,
    chrono_tz::Europe::London,
    chrono_tz::Australia::Sydney,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::America::St_Johns,
    chrono_tz::America::Santiago, // moves at midnight
    chrono_tz::Asia::Kolkata,
    chrono_tz::UTC,
];

/// A zone's edges in 2026-2027 (its offset changes, or a few local midnights for a zone without any) and the
/// local times of day around its offset changes (at, and 15 and 30 minutes either side of, the wall-clock
/// times before and after each jump), so that windows start and end inside gaps and folds.
struct Edges {
    instants: Vec<DateTime<Utc>>,
    near: Vec<u16>,
}

fn edges(tz: Tz) -> &'static Edges {
    static ALL: OnceLock<Vec<(Tz, Edges)>> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        chrono_tz::TZ_VARIANTS
            .iter()
            .map(|&tz| {
                let found = transitions(tz);
                let minute_of = |t: DateTime<Utc>| {
                    let l = t.with_timezone(&tz);
                    (l.hour() * 60 + l.minute()) as i32
                };
                let mut near: Vec<u16> = found
                    .iter()
                    .flat_map(|&t| {
                        // The wall clock just before the jump reads `before`, just after it `after`.
                        let before = minute_of(t - Duration::seconds(1)) + 1;
                        let after = minute_of(t);
                        [before, after].into_iter().flat_map(|m| {
                            [-30, -15, 0, 15, 30].map(|d| (m + d).clamp(0, 1440) as u16)
                        })
                    })
                    .collect();
                near.sort_unstable();
                near.dedup();
                let instants = if found.is_empty() {
                    ["2026-11-23", "2027-01-01"]
                        .iter()
                        .map(|d| reference_instant(tz, d.parse().unwrap(), TimeOfDay::MIDNIGHT))
                        .collect()
                } else {
                    found
                };
                (tz, Edges { instants, near })
            })
            .collect()
    });
    &all.iter().find(|(z, _)| *z == tz).expect("every zone").1
}

fn transitions(tz: Tz) -> Vec<DateTime<Utc>> {
    let offset = |t: DateTime<Utc>| t.with_timezone(&tz).offset().fix();
    let mut found = Vec::new();
    let mut t = rfc3339("2026-01-01T00:00:00Z");
    let end = rfc3339("2028-01-01T00:00:00Z");
    while t < end {
        let next = t + Duration::hours(6);
        if offset(t) != offset(next) {
            let (mut lo, mut hi) = (t, next);
            while hi - lo > Duration::seconds(1) {
                let mid = lo + (hi - lo) / 2;
                if offset(mid) == offset(lo) {
                    lo = mid
                } else {
                    hi = mid
                }
            }
            found.push(hi);
        }
        t = next;
    }
    found
}

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

/// Open at `at`: one of the local date's windows (after overrides), as instants, contains `at`.
fn reference_open(h: &WeeklyHours, ov: &[DateOverride], tz: Tz, at: DateTime<Utc>) -> bool {
    let date = at.with_timezone(&tz).date_naive();
    match day_schedule(h, ov, date) {
        DaySchedule::Open(windows) => windows.iter().any(|w| {
            reference_instant(tz, date, w.start) <= at && at < reference_instant(tz, date, w.end)
        }),
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

/// A window boundary, biased to the edges (00:00, 24:00: overnight stretches), to the small hours where DST
/// moves happen, and to the late evening.
fn boundary(near: &'static [u16]) -> impl Strategy<Value = u16> {
    let near = if near.is_empty() {
        &[0u16, 1440][..]
    } else {
        near
    };
    prop_oneof![
        2 => Just(0u16),
        2 => Just(1440u16),
        4 => 0u16..=1440,
        4 => (0u16..=20).prop_map(|q| q * 15), // 00:00 to 05:00
        1 => (88u16..=96).prop_map(|q| q * 15), // 22:00 to 24:00
        6 => prop::sample::select(near),        // around the zone's DST moves
    ]
}

/// 1 to 4 windows, in order, neither overlapping nor touching: 2k distinct sorted boundaries, paired.
fn day_hours(near: &'static [u16]) -> impl Strategy<Value = DayHours> {
    (1..=MAX_WINDOWS)
        .prop_flat_map(move |k| prop::collection::btree_set(boundary(near), 2 * k))
        .prop_map(|set| {
            let b: Vec<u16> = set.into_iter().collect();
            DayHours::new(
                b.chunks(2)
                    .map(|w| Window::new(time_of_day(w[0]), time_of_day(w[1])))
                    .collect(),
            )
        })
}

fn weekly_hours(near: &'static [u16]) -> impl Strategy<Value = WeeklyHours> {
    let day = || prop::option::weighted(0.7, day_hours(near));
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
    let every_day = |h: Option<DayHours>, sunday: bool| WeeklyHours {
        mon: h.clone(),
        tue: h.clone(),
        wed: h.clone(),
        thu: h.clone(),
        fri: h.clone(),
        sat: h.clone(),
        sun: if sunday { h } else { None },
    };
    let all_day = DayHours::one(TimeOfDay::MIDNIGHT, TimeOfDay::END_OF_DAY);
    let night = DayHours::new(vec![
        Window::new(TimeOfDay::MIDNIGHT, time_of_day(6 * 60)),
        Window::new(time_of_day(22 * 60), TimeOfDay::END_OF_DAY),
    ]);
    prop_oneof![
        8 => random,
        1 => Just(WeeklyHours { mon: None, tue: None, wed: None, thu: None, fri: None, sat: None, sun: None }),
        // Open round the clock, sometimes with Sunday off.
        1 => prop::bool::weighted(0.8).prop_map(move |sunday| every_day(Some(all_day.clone()), sunday)),
        // The emergency team: 22:00 to 06:00 every night, sometimes with Sunday off.
        1 => prop::bool::weighted(0.8).prop_map(move |sunday| every_day(Some(night.clone()), sunday)),
    ]
}

fn an_override(near: &'static [u16]) -> impl Strategy<Value = (u64, u64, DateOverride)> {
    // (days after the previous one, length in days, the override with placeholder dates)
    let kind = prop_oneof![
        1 => Just((OverrideKind::NonWorking, None)),
        1 => Just((OverrideKind::Working, None)),
        2 => day_hours(near).prop_map(|h| (OverrideKind::Working, Some(h))),
    ];
    (0u64..40, 1u64..10, kind).prop_map(|(gap, len, (kind, hours))| {
        let d = NaiveDate::MIN;
        (
            gap,
            len,
            DateOverride {
                start_date: d,
                end_date: d,
                kind,
                hours,
            },
        )
    })
}

/// Non-overlapping overrides laid out from late 2025 on, in shuffled order.
fn overrides(near: &'static [u16]) -> impl Strategy<Value = Vec<DateOverride>> {
    (0u64..200, prop::collection::vec(an_override(near), 0..14))
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

/// Any instant of 2026-2027, or one within four hours of one of the zone's edges (within 90 minutes of it,
/// the hour that a DST move stretches or skips, half of those times).
fn instant(edges: &'static [DateTime<Utc>]) -> impl Strategy<Value = DateTime<Utc>> {
    let start = rfc3339("2026-01-01T00:00:00Z");
    let span = Duration::days(730).num_seconds();
    let anywhere = (0..span).prop_map(move |s| start + Duration::seconds(s));
    let near_edge = (
        prop::sample::select(edges),
        prop_oneof![-4 * 60i64..=4 * 60, -90i64..=90],
        0i64..60,
    )
        .prop_map(|(t, m, s)| t + Duration::minutes(m) + Duration::seconds(s));
    prop_oneof![1 => anywhere, 1 => near_edge]
}

/// The same windows every day, drawn only from the times around the zone's DST moves (and 00:00, 24:00),
/// so that gaps and folds fall inside windows, between two windows and at midnight.
fn dst_week(near: &'static [u16]) -> impl Strategy<Value = WeeklyHours> {
    let near = if near.is_empty() {
        &[0u16, 1440][..]
    } else {
        near
    };
    let edge = prop_oneof![1 => Just(0u16), 1 => Just(1440u16), 6 => prop::sample::select(near)];
    (1..=MAX_WINDOWS)
        // Never ask for more distinct times than there are.
        .prop_flat_map(move |k| {
            prop::collection::btree_set(edge.clone(), 2..=(2 * k).min(near.len()))
        })
        .prop_map(|set| {
            let b: Vec<u16> = set.into_iter().collect();
            let windows: Vec<Window> = b
                .chunks_exact(2)
                .map(|w| Window::new(time_of_day(w[0]), time_of_day(w[1])))
                .collect();
            let day = Some(DayHours::new(windows));
            WeeklyHours {
                mon: day.clone(),
                tue: day.clone(),
                wed: day.clone(),
                thu: day.clone(),
                fri: day.clone(),
                sat: day.clone(),
                sun: day,
            }
        })
}

/// A named zone half the time, any IANA zone the other half.
fn zone() -> impl Strategy<Value = Tz> {
    prop_oneof![
        prop::sample::select(NAMED_ZONES.to_vec()),
        prop::sample::select(chrono_tz::TZ_VARIANTS.to_vec()),
    ]
}

fn case() -> impl Strategy<Value = (WeeklyHours, Vec<DateOverride>, Tz, DateTime<Utc>)> {
    zone().prop_flat_map(|tz| {
        let e = edges(tz);
        let hours = prop_oneof![2 => weekly_hours(&e.near), 1 => dst_week(&e.near)];
        (hours, overrides(&e.near), Just(tz), instant(&e.instants))
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
        // The edges of the day's windows themselves: an opening instant is open, a closing one is not
        // (unless the next window starts there).
        if let DaySchedule::Open(windows) = day_schedule(&h, &ov, date) {
            for w in windows {
                let (s, e) = (reference_instant(tz, date, w.start), reference_instant(tz, date, w.end));
                for t in [s - Duration::seconds(1), s, e - Duration::seconds(1), e] {
                    prop_assert_eq!(
                        availability(&h, &ov, true, tz, t).open,
                        reference_open(&h, &ov, tz, t),
                        "at {} in {}", t.with_timezone(&tz), tz
                    );
                }
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
    #![proptest_config(ProptestConfig::with_cases(512))]

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
                    if let DaySchedule::Open(windows) = day_schedule(&h, &ov, d) {
                        for w in windows {
                            let (s, e) = (reference_instant(tz, d, w.start), reference_instant(tz, d, w.end));
                            prop_assert!(s >= e || s <= at, "opens {} on {}", s.with_timezone(&tz), d);
                        }
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// (4) Without an explicit time, the reminder of a date goes 30 real minutes before the end of its last
    /// window (not before the date's 00:00), else at 17:30; it always lies within that local date.
    #[test]
    fn the_reminder_goes_half_an_hour_before_the_last_window_ends((h, ov, tz, at) in case()) {
        let date = at.with_timezone(&tz).date_naive();
        let r = reminder_instant(&h, &ov, None, tz, date);
        let day_start = reference_instant(tz, date, TimeOfDay::MIDNIGHT);
        let expected = match day_schedule(&h, &ov, date) {
            DaySchedule::Open([.., last]) => {
                (reference_instant(tz, date, last.end) - Duration::minutes(30)).max(day_start)
            }
            _ => reference_instant(tz, date, "17:30".parse().unwrap()),
        };
        prop_assert_eq!(r, expected, "on {} in {}", date, tz);
        prop_assert_eq!(r.with_timezone(&tz).date_naive(), date, "{} in {}", r, tz);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// (cache) An answer is kept `max-age` seconds ([`fresh_seconds`] of [`next_change`]): at every whole
    /// second of that time, and at its last millisecond, a fresh answer says exactly the same (open, reason,
    /// opens_at, closes_at), so now + max-age never passes the next opening, closing or change of reason.
    /// Half the cases start within 40 s before the change itself, where the rounding matters.
    #[test]
    fn a_cached_answer_never_outlives_the_next_change((h, ov, tz, at) in case(), back_ms in 0i64..40_000, near in any::<bool>()) {
        let first = availability(&h, &ov, true, tz, at);
        let now = match (near, next_change(&first, tz, at)) {
            (true, Some(c)) if c - Duration::milliseconds(back_ms) > at => c - Duration::milliseconds(back_ms),
            _ => at,
        };
        let a = availability(&h, &ov, true, tz, now);
        let change = next_change(&a, tz, now);
        let n = fresh_seconds(change, now);
        prop_assert!(n <= 30);
        if let Some(c) = change {
            prop_assert!(c > now);
            prop_assert!(now + Duration::seconds(n.into()) <= c, "max-age {} passes the change at {}", n, c);
        }
        let kept = (0..i64::from(n)).map(|k| now + Duration::seconds(k))
            .chain((n > 0).then(|| now + Duration::seconds(n.into()) - Duration::milliseconds(1)));
        for t in kept {
            let b = availability(&h, &ov, true, tz, t);
            prop_assert_eq!(&b, &a, "answer at {} differs from the one at {} kept for {} s", t.with_timezone(&tz), now.with_timezone(&tz), n);
        }
        // Offline is kept the cap, whatever the hours.
        let off = availability(&h, &ov, false, tz, now);
        prop_assert_eq!(fresh_seconds(next_change(&off, tz, now), now), 30);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// (after hours) From a closed instant, a new closed period has begun by `until` exactly when the
    /// department was open at some instant in between: the after-hours text goes once per closed period
    /// (a client texting five times in one night gets one, the next night one again), across split shifts,
    /// overnight stretches, overrides and DST.
    #[test]
    fn a_new_closed_period_begins_exactly_when_the_hours_opened_in_between(
        (h, ov, tz, at) in case(),
        span_minutes in 1i64..(3 * 24 * 60),
    ) {
        prop_assume!(!reference_open(&h, &ov, tz, at));
        let until = at + Duration::minutes(span_minutes);
        // Windows open and close on minute boundaries: an open stretch after `at` holds one.
        let was_open = minutes_between(at, until)
            .chain(std::iter::once(until))
            .any(|t| reference_open(&h, &ov, tz, t));
        prop_assert_eq!(
            opened_between(&h, &ov, tz, at, until),
            was_open,
            "from {} to {} in {}", at.with_timezone(&tz), until.with_timezone(&tz), tz
        );
        // Nothing opens in an empty or backwards span.
        prop_assert!(!opened_between(&h, &ov, tz, at, at));
        prop_assert!(!opened_between(&h, &ov, tz, until, at));
    }
}
