//! Bad input: generated JSON bodies for departments and inbound messages through the real router (body
//! parsing, deserialisation, validation, the store), and generated hours and date overrides through the
//! real deserialise + validate path into the availability rules, in every time zone over two centuries.
//! Each case must answer one of the contract's statuses with the contract's error shape, never panic,
//! never hang (every request has a 10 s deadline, every availability computation 2 s), and leave the store
//! consistent with what was accepted.
//!
//! Size of a run (one knob for all three targets):
//!
//! - default: `FUZZ_CASES` cases per target (48 unless set), the quick version in `scripts/test`;
//! - `FUZZ_SECONDS=N`: each target runs new random cases for N seconds (`scripts/fuzz`), and its figures
//!   are appended to `$FUZZ_REPORT` when that is set.
//!
//! A failure is shrunk by proptest and printed with the smallest body that fails.

use std::cell::RefCell;
use std::fmt::Debug;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use domain::identity::Role;
use domain::schedule::{availability, validate_hours, validate_overrides, AvailabilityReason};
use http::{Method, StatusCode};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use serde_json::{json, Map, Value};
use vetchat_tests::api::{self, Api, Reply};

/// The longest one request may take before it counts as a hang (they take milliseconds; the margin is for
/// a loaded 2-core machine running the three targets side by side).
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// The longest one availability computation may take before it counts as a hang (it takes microseconds to
/// a few milliseconds).
const AVAILABILITY_DEADLINE: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------------------------
// The runner: a case count, or a fixed time
// ---------------------------------------------------------------------------------------------------------

/// Runs `test` on values of `strategy` for the configured budget; panics with the shrunk failure.
fn fuzz<S>(target: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: Debug,
{
    let seconds: Option<u64> = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok());
    let cases: u32 = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(48);
    let started = Instant::now();
    let tried = std::cell::Cell::new(0u64);
    let slowest = std::cell::Cell::new(Duration::ZERO);
    let counted = |v: S::Value| {
        tried.set(tried.get() + 1);
        let t = Instant::now();
        let out = test(v);
        slowest.set(slowest.get().max(t.elapsed()));
        out
    };
    loop {
        // Each batch has a fresh random seed; a failure ends the run.
        let batch = if seconds.is_some() { 200 } else { cases };
        let mut runner = TestRunner::new(Config {
            cases: batch,
            failure_persistence: None,
            max_shrink_iters: 2_000,
            ..Config::default()
        });
        match runner.run(&strategy, counted) {
            Ok(()) => {}
            Err(TestError::Fail(reason, value)) => {
                panic!("{target}: {reason}\nsmallest failing input: {value:#?}")
            }
            Err(TestError::Abort(reason)) => panic!("{target}: aborted: {reason}"),
        }
        match seconds {
            Some(s) if started.elapsed() < Duration::from_secs(s) => continue,
            _ => break,
        }
    }
    let line = format!(
        "{target}: {} cases in {:.1} s, slowest case {} ms, no failure",
        tried.get(),
        started.elapsed().as_secs_f64(),
        slowest.get().as_millis()
    );
    eprintln!("{line}");
    if let Ok(path) = std::env::var("FUZZ_REPORT") {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open FUZZ_REPORT");
        writeln!(f, "{line}").expect("write FUZZ_REPORT");
    }
}

// ---------------------------------------------------------------------------------------------------------
// Generators: the contract's shapes with hostile values, and anything at all
// ---------------------------------------------------------------------------------------------------------

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        Just(json!(u64::MAX)),
        nasty_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Strings that break naive code: empty, blank, long, control characters, other scripts, emoji.
fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "\\PC{0,24}",
        1 => Just(String::new()),
        1 => "[ \t\n\r]{1,4}",
        1 => "[\\x00-\\x1f\\x7f]{1,6}",
        1 => Just("x".repeat(4001)),
        1 => Just("é".repeat(2100)),
        1 => Just("🐶🐱".repeat(30)),
        1 => Just("Grooming".to_owned()),
        1 => Just("  grooming ".to_owned()),
    ]
}

fn hhmm(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// Valid hours of one day: `start < end`, `end` up to 24:00.
fn valid_day() -> impl Strategy<Value = Value> {
    (0u16..1440)
        .prop_flat_map(|start| (Just(start), start + 1..=1440))
        .prop_map(|(s, e)| json!({"start": hhmm(s), "end": hhmm(e)}))
}

/// A time of day as a client might send it: valid, edge, malformed, or not a string at all.
fn time_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        12 => (0u16..=1440).prop_map(|m| json!(hhmm(m))),
        2 => (0u16..=24, 0u16..60).prop_map(|(h, m)| json!(format!("{h:02}:{m:02}"))),
        1 => Just(json!("24:00")),
        1 => Just(json!("00:00")),
        1 => Just(json!("23:59")),
        1 => prop_oneof![Just("24:01"), Just("23:60"), Just("9:00"), Just("-1:00"), Just("12:5"), Just(""), Just("12:00:00"), Just("٠٩:٠٠")].prop_map(|s| json!(s)),
        1 => "[0-9:]{0,6}".prop_map(|s| json!(s)),
        1 => any_json(),
    ]
}

/// Valid split shifts: 2 to 4 windows in order, neither overlapping nor touching (distinct sorted boundaries).
fn valid_windows() -> impl Strategy<Value = Value> {
    (2usize..=4)
        .prop_flat_map(|k| prop::collection::btree_set(0u16..=1440, 2 * k))
        .prop_map(|b| {
            let b: Vec<u16> = b.into_iter().collect();
            Value::Array(
                b.chunks(2)
                    .map(|w| json!({"start": hhmm(w[0]), "end": hhmm(w[1])}))
                    .collect(),
            )
        })
}

/// A list of windows as a client might send it: any number (empty, more than 4), any order, any times.
fn hostile_windows() -> impl Strategy<Value = Value> {
    prop::collection::vec(
        prop_oneof![
            4 => (time_value(), time_value()).prop_map(|(s, e)| json!({"start": s, "end": e})),
            1 => valid_day(),
            1 => any_json(),
        ],
        0..7,
    )
    .prop_map(Value::Array)
}

fn day_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => Just(Value::Null),
        24 => valid_day(),
        8 => valid_windows(),
        3 => hostile_windows(),
        2 => (time_value(), time_value()).prop_map(|(s, e)| json!({"start": s, "end": e})),
        1 => (time_value(), any_json()).prop_map(|(s, x)| json!({"start": s, "end": "18:00", "extra": x})),
        1 => time_value().prop_map(|s| json!({"start": s})),
        1 => any_json(),
    ]
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn hours_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => prop::collection::vec((prop::sample::select(DAYS.to_vec()), day_value()), 0..8)
            .prop_map(|days| Value::Object(days.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        1 => (day_value()).prop_map(|d| json!({"monday": d})),
        1 => any_json(),
    ]
}

/// A date: valid (1900..2200, leap days included), impossible, malformed, or not a string.
fn date_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => (1900i32..2200, 1u32..=12, 1u32..=31).prop_map(|(y, m, d)| json!(format!("{y:04}-{m:02}-{d:02}"))),
        1 => prop_oneof![Just("2026-02-29"), Just("2028-02-29"), Just("2026-13-01"), Just("2026-00-10"), Just("26-1-1"), Just("+002026-01-01"), Just("2026-12-24T00:00:00Z")].prop_map(|s| json!(s)),
        1 => any_json(),
    ]
}

/// A valid override: a run of 1 to 10 dates from 2025 to 2028, closed, or open with or without hours.
fn valid_override() -> impl Strategy<Value = Value> {
    (
        0i64..(4 * 366),
        0i64..10,
        prop_oneof![
            Just(None),
            Just(Some(None)),
            valid_day().prop_map(|d| Some(Some(d))),
            valid_windows().prop_map(|w| Some(Some(w)))
        ],
    )
        .prop_map(|(from, days, kind)| {
            let start = chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap() + chrono::Days::new(from as u64);
            let end = start + chrono::Days::new(days as u64);
            let mut o = json!({"start_date": start.to_string(), "end_date": end.to_string(), "kind": "non_working"});
            if let Some(hours) = kind {
                o["kind"] = json!("working");
                match hours {
                    Some(list @ Value::Array(_)) => o["windows"] = list,
                    Some(h) => {
                        o["start"] = h["start"].clone();
                        o["end"] = h["end"].clone();
                    }
                    None => {}
                }
            }
            o
        })
}

fn override_value() -> impl Strategy<Value = Value> {
    prop_oneof![8 => valid_override(), 1 => hostile_override()]
}

fn hostile_override() -> impl Strategy<Value = Value> {
    (
        date_value(),
        prop_oneof![Just(None), date_value().prop_map(Some)],
        prop_oneof![
            Just(json!("working")),
            Just(json!("non_working")),
            any_json()
        ],
        prop_oneof![Just(None), time_value().prop_map(Some)],
        prop_oneof![Just(None), time_value().prop_map(Some)],
        prop_oneof![3 => Just(None), 1 => hostile_windows().prop_map(Some), 1 => valid_windows().prop_map(Some)],
    )
        .prop_map(|(start_date, end_date, kind, start, end, windows)| {
            let mut o = Map::new();
            o.insert(
                "end_date".into(),
                end_date.clone().unwrap_or(start_date.clone()),
            );
            o.insert("start_date".into(), start_date);
            o.insert("kind".into(), kind);
            if let Some(s) = start {
                o.insert("start".into(), s);
            }
            if let Some(e) = end {
                o.insert("end".into(), e);
            }
            if let Some(w) = windows {
                o.insert("windows".into(), w);
            }
            Value::Object(o)
        })
}

fn overrides_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        12 => prop::collection::vec(override_value(), 0..4).prop_map(Value::Array),
        1 => prop::collection::vec(valid_override(), 40..60).prop_map(Value::Array),
        1 => any_json(),
    ]
}

fn emails_value() -> impl Strategy<Value = Value> {
    let one = prop_oneof![
        12 => "[a-z]{1,8}@[a-z]{1,8}\\.example".prop_map(Value::String),
        1 => prop_oneof![Just("not-an-email"), Just("a@b"), Just("@x.example"), Just("a@@x.example"), Just("")].prop_map(|s| json!(s)),
        1 => nasty_string().prop_map(Value::String),
    ];
    prop_oneof![
        8 => prop::collection::vec(one.clone(), 0..4).prop_map(Value::Array),
        4 => prop::collection::vec("[a-z]{1,6}@[a-z]{1,6}\\.example", 0..4).prop_map(|v| json!(v.join(" , "))),
        1 => one,
        1 => any_json(),
    ]
}

fn phone_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => (0u32..100).prop_map(|n| json!(format!("+1201555{:04}", 100 + n))),
        3 => (0u32..100).prop_map(|n| json!(format!("(201) 555-{:04}", 100 + n))),
        2 => (200u32..999, 0u32..10_000).prop_map(|(a, n)| json!(format!("+1{a}555{n:04}"))),
        1 => prop_oneof![Just("+447700900123"), Just("+12015550100"), Just("+1"), Just("12345"), Just("+999999999999999999999"), Just("")].prop_map(|s| json!(s)),
        1 => "[+0-9 ()-]{0,20}".prop_map(Value::String),
        1 => any_json(),
    ]
}

fn alerts_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        12 => (bool_value(), emails_value(),
              prop_oneof![8 => prop::collection::vec(phone_value(), 0..3).prop_map(Value::Array), 1 => any_json()])
            .prop_map(|(enabled, emails, sms)| json!({"enabled": enabled, "emails": emails, "sms_numbers": sms})),
        1 => any_json(),
    ]
}

fn bool_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        16 => any::<bool>().prop_map(Value::Bool),
        1 => any_json()
    ]
}

/// A department body (POST or merge PATCH): a random subset of the contract's fields, each with a
/// hostile value, now and then an unknown field or a read-only one.
fn department_body() -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        12 => "[A-Z][a-z]{2,10}( [A-Z][a-z]{2,8})?".prop_map(Value::String),
        2 => nasty_string().prop_map(Value::String),
        1 => any_json(),
    ];
    let text = prop_oneof![
        8 => "[A-Za-z!?,. ]{1,60}".prop_map(Value::String),
        2 => nasty_string().prop_map(Value::String),
        1 => Just(Value::Null),
    ];
    let fields = (
        prop::option::weighted(0.9, name),
        prop::option::of(bool_value()),
        prop::option::of(bool_value()),
        prop::option::of(alerts_value()),
        prop::option::of(
            (bool_value(), prop::option::of(time_value()))
                .prop_map(|(e, at)| match at {
                    Some(at) => json!({"enabled": e, "at": at}),
                    None => json!({"enabled": e}),
                }),
        ),
        prop::option::of(hours_value()),
        prop::option::of(overrides_value()),
        prop::option::of(
            (text.clone(), bool_value(), text)
                .prop_map(|(g, a, m)| json!({"greeting": g, "allow_messages_after_hours": a, "after_hours_message": m})),
        ),
        prop::option::weighted(0.1, ("[a-z_]{1,12}", any_json())),
    );
    prop_oneof![
        12 => fields.prop_map(|(name, visible, online, alerts, reminder, hours, overrides, chat, extra)| {
            let mut o = Map::new();
            let mut put = |k: &str, v: Option<Value>| {
                if let Some(v) = v {
                    o.insert(k.to_owned(), v);
                }
            };
            put("name", name);
            put("visible_in_app", visible);
            put("online", online);
            put("alerts", alerts);
            put("unresolved_reminder", reminder);
            put("hours", hours);
            put("date_overrides", overrides);
            put("chat", chat);
            if let Some((k, v)) = extra {
                o.insert(k, v);
            }
            Value::Object(o)
        }),
        1 => any_json(),
    ]
}

/// A request body as bytes: mostly the JSON of `body`, sometimes cut short or not JSON at all.
fn raw_body(body: impl Strategy<Value = Value>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        24 => body.prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
        1 => (department_body(), 0usize..40).prop_map(|(v, cut)| {
            let s = v.to_string().into_bytes();
            s[..s.len().saturating_sub(cut + 1)].to_vec()
        }),
    ]
}

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    prop_oneof![
        // Two centuries, to the second.
        2 => (0i64..4_102_444_800).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap()),
        // Around now, where real requests are.
        3 => (1_780_000_000i64..1_830_000_000).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap()),
    ]
}

fn any_zone() -> impl Strategy<Value = Tz> {
    prop::sample::select(chrono_tz::TZ_VARIANTS.to_vec())
}

// ---------------------------------------------------------------------------------------------------------
// Checks shared by the HTTP targets
// ---------------------------------------------------------------------------------------------------------

/// Runs a target on a thread with a large stack: the generated values nest deeply, and the router's futures
/// are large in debug builds.
fn on_a_big_stack(target: fn()) {
    let outcome = std::thread::Builder::new()
        .name("fuzz".into())
        .stack_size(256 << 20)
        .spawn(target)
        .expect("a fuzz thread")
        .join();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// One request with a deadline: a hang is a failure.
async fn send(
    api: &Api,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Result<Reply, TestCaseError> {
    let body = body.map(|b| String::from_utf8_lossy(&b).into_owned());
    tokio::time::timeout(
        REQUEST_DEADLINE,
        api.raw(method.clone(), path, headers, body),
    )
    .await
    .map_err(|_| {
        TestCaseError::fail(format!(
            "{method} {path} took longer than {REQUEST_DEADLINE:?}"
        ))
    })
}

/// A status the contract names for this kind of request, and the contract's error shape.
fn contract_answer(r: &Reply, allowed: &[StatusCode]) -> Result<(), TestCaseError> {
    prop_assert!(
        allowed.contains(&r.status),
        "status {} not among {:?}: {}",
        r.status,
        allowed,
        r.body
    );
    if !r.status.is_success() {
        let code = r.body["error"]["code"].as_str().unwrap_or("");
        prop_assert!(
            !code.is_empty() && code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "error code {:?} in {}",
            code,
            r.body
        );
        prop_assert!(r.body["error"]["message"].is_string(), "{}", r.body);
    }
    Ok(())
}

/// What a stored department must look like, whatever was sent.
fn valid_department(d: &Value) -> Result<(), TestCaseError> {
    let name = d["name"].as_str().unwrap_or("");
    prop_assert!(
        !name.trim().is_empty() && name.trim() == name,
        "name {:?}",
        name
    );
    for day in DAYS {
        let h = &d["hours"][day];
        if !h.is_null() {
            valid_windows_of(h)?;
        }
    }
    for o in d["date_overrides"].as_array().into_iter().flatten() {
        prop_assert!(
            o["start_date"].as_str() <= o["end_date"].as_str(),
            "override {o}"
        );
        if let Some(w) = o.get("windows") {
            prop_assert!(
                o.get("start").is_none() && o["kind"] == "working",
                "override {o}"
            );
            valid_windows_of(w)?;
        }
    }
    for e in d["alerts"]["emails"].as_array().into_iter().flatten() {
        prop_assert!(e.as_str().is_some_and(|e| e.contains('@')), "email {e}");
    }
    for n in d["alerts"]["sms_numbers"].as_array().into_iter().flatten() {
        prop_assert!(
            n.as_str().is_some_and(|n| n.starts_with("+1")),
            "number {n}"
        );
    }
    Ok(())
}

/// One window as an object, or 2 to 4 in a list: each `start < end`, in order, neither overlapping nor
/// touching.
fn valid_windows_of(h: &Value) -> Result<(), TestCaseError> {
    let windows = match h.as_array() {
        Some(list) => {
            prop_assert!(
                (2..=4).contains(&list.len()),
                "a list of 2 to 4 (one is an object): {h}"
            );
            list.clone()
        }
        None => vec![h.clone()],
    };
    let mut previous_end = "";
    for w in &windows {
        let (s, e) = (
            w["start"].as_str().unwrap_or(""),
            w["end"].as_str().unwrap_or(""),
        );
        prop_assert!(s.len() == 5 && e.len() == 5 && s < e, "{h}");
        prop_assert!(previous_end < s, "in order, not touching: {h}");
        previous_end = e;
    }
    Ok(())
}

/// The public availability of the practice at `at`: 200, and every department's fields agree.
async fn check_availability(api: &Api, p: &str, at: DateTime<Utc>) -> Result<(), TestCaseError> {
    let at_text = at.to_rfc3339().replace('+', "%2B");
    let r = send(
        api,
        Method::GET,
        &format!("/public/practices/{p}/availability?at={at_text}"),
        &[],
        None,
    )
    .await?;
    prop_assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for d in r.body["departments"].as_array().into_iter().flatten() {
        let open = d["open"].as_bool().unwrap_or(false);
        let reason = d["reason"].as_str().unwrap_or("");
        prop_assert!(
            ["open", "outside_hours", "non_working_day", "offline"].contains(&reason),
            "{d}"
        );
        prop_assert_eq!(open, reason == "open", "{}", d);
        let parse = |v: &Value| {
            v.as_str()
                .map(|s| DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)))
        };
        match parse(&d["opens_at"]) {
            Some(Ok(t)) => prop_assert!(!open && t > at, "{d}"),
            Some(Err(e)) => prop_assert!(false, "opens_at {e}: {d}"),
            None => {}
        }
        match parse(&d["closes_at"]) {
            Some(Ok(t)) => prop_assert!(open && t > at, "{d}"),
            Some(Err(e)) => prop_assert!(false, "closes_at {e}: {d}"),
            None => {}
        }
        prop_assert!(d.get("alerts").is_none(), "no recipients in public: {d}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Target 1: department bodies (POST, PATCH with and without If-Match), then availability
// ---------------------------------------------------------------------------------------------------------

#[test]
fn department_bodies() {
    on_a_big_stack(department_bodies_target);
}

fn department_bodies_target() {
    let rt = runtime();
    let api = rt.block_on(Api::memory());
    let p = Api::practice_id();
    let team = rt.block_on(api.setup_practice(&p));
    let auth = format!("Bearer {}", Api::token(&p, Role::Admin));
    let accepted = RefCell::new(0u64);
    let answers = RefCell::new(std::collections::BTreeMap::<String, u64>::new());
    let strategy = (
        raw_body(department_body()),
        raw_body(department_body()),
        0u8..4,
        any::<bool>(),
        instant(),
    );
    fuzz(
        "department bodies",
        strategy,
        |(post, patch, if_match, patch_default, at)| {
            rt.block_on(async {
                let headers = [("authorization", auth.as_str())];
                let created =
                    send(&api, Method::POST, "/departments", &headers, Some(post)).await?;
                contract_answer(
                    &created,
                    &[
                        StatusCode::CREATED,
                        StatusCode::BAD_REQUEST,
                        StatusCode::UNPROCESSABLE_ENTITY,
                    ],
                )?;
                *answers
                    .borrow_mut()
                    .entry(format!(
                        "POST {} {}",
                        created.status.as_u16(),
                        created.code()
                    ))
                    .or_insert(0) += 1;
                let created_id = created.body["id"].as_str().map(str::to_owned);
                if created.status == StatusCode::CREATED {
                    valid_department(&created.body)?;
                    *accepted.borrow_mut() += 1;
                }
                let target = match (&created_id, patch_default) {
                    (Some(id), false) => id.clone(),
                    _ => team.clone(),
                };
                let path = format!("/departments/{target}");
                let current = send(&api, Method::GET, &path, &headers, None).await?;
                prop_assert_eq!(current.status, StatusCode::OK);
                let etag = current.body["etag"].as_str().unwrap_or("").to_owned();
                let stale = "\"dep_stale-1\"".to_owned();
                let mut patch_headers = vec![("authorization", auth.as_str())];
                match if_match {
                    1 => patch_headers.push(("if-match", etag.as_str())),
                    2 => patch_headers.push(("if-match", stale.as_str())),
                    3 => patch_headers.push(("if-match", "*")),
                    _ => {}
                }
                let patched = send(&api, Method::PATCH, &path, &patch_headers, Some(patch)).await?;
                contract_answer(
                    &patched,
                    &[
                        StatusCode::OK,
                        StatusCode::BAD_REQUEST,
                        StatusCode::PRECONDITION_FAILED,
                        StatusCode::UNPROCESSABLE_ENTITY,
                        StatusCode::CONFLICT,
                    ],
                )?;
                *answers
                    .borrow_mut()
                    .entry(format!(
                        "PATCH {} {}",
                        patched.status.as_u16(),
                        patched.code()
                    ))
                    .or_insert(0) += 1;
                if if_match == 2 {
                    prop_assert!(patched.status != StatusCode::OK, "a stale etag never wins");
                }
                let after = send(&api, Method::GET, &path, &headers, None).await?;
                prop_assert_eq!(after.status, StatusCode::OK);
                valid_department(&after.body)?;
                if patched.status == StatusCode::OK {
                    prop_assert_eq!(&patched.body, &after.body, "the answer is what is stored");
                } else {
                    prop_assert_eq!(
                        &current.body,
                        &after.body,
                        "a refused PATCH changes nothing"
                    );
                }
                check_availability(&api, &p, at).await?;
                if let Some(id) = created_id {
                    let deleted = send(
                        &api,
                        Method::DELETE,
                        &format!("/departments/{id}"),
                        &headers,
                        None,
                    )
                    .await?;
                    prop_assert_eq!(deleted.status, StatusCode::NO_CONTENT);
                }
                Ok(())
            })
        },
    );
    eprintln!("department bodies accepted (201): {}", accepted.borrow());
    eprintln!("department answers: {:?}", answers.borrow());
    // The practice is still whole: its default department and nothing else.
    let list = rt.block_on(api.admin(&p, Method::GET, "/departments", None));
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body.as_array().map(Vec::len), Some(1), "{}", list.body);
}

// ---------------------------------------------------------------------------------------------------------
// Target 2: inbound bodies, from clients and the texting gateway
// ---------------------------------------------------------------------------------------------------------

fn inbound_body(departments: Vec<String>) -> impl Strategy<Value = Value> {
    let channel = prop_oneof![
        16 => prop::sample::select(vec!["app", "web", "sms", "whatsapp"]).prop_map(|c| json!(c)),
        1 => prop_oneof![Just(json!("SMS")), Just(json!("email")), Just(json!(1)), Just(Value::Null)],
    ];
    let department = prop_oneof![
        2 => Just(None),
        4 => prop::sample::select(departments).prop_map(|d| Some(json!(d))),
        1 => any_json().prop_map(Some),
    ];
    let from = prop_oneof![
        1 => Just(None),
        12 => (0u32..6).prop_map(|n| Some(json!(format!("+1201555{:04}", 100 + n)))),
        2 => (0u32..6).prop_map(|n| Some(json!(format!("(201) 555-{:04}", 100 + n)))),
        1 => phone_value().prop_map(Some),
    ];
    let body = prop_oneof![
        16 => "[a-zA-Z ?!]{1,40}".prop_map(|s| json!(s)),
        1 => Just(json!("y".repeat(4000))),
        1 => nasty_string().prop_map(|s| json!(s)),
        1 => any_json(),
    ];
    let extra = prop::option::weighted(0.05, ("[a-z_]{1,10}", any_json()));
    prop_oneof![
        24 => (channel, department, from, prop::option::weighted(0.95, body), extra).prop_map(|(c, d, f, b, x)| {
            let mut o = Map::new();
            o.insert("channel".into(), c);
            if let Some(d) = d { o.insert("department_id".into(), d); }
            if let Some(f) = f { o.insert("from".into(), f); }
            if let Some(b) = b { o.insert("body".into(), b); }
            if let Some((k, v)) = x { o.insert(k, v); }
            Value::Object(o)
        }),
        1 => any_json(),
    ]
}

#[test]
fn inbound_bodies() {
    on_a_big_stack(inbound_bodies_target);
}

fn inbound_bodies_target() {
    let rt = runtime();
    let api = rt.block_on(Api::memory());
    let p = Api::practice_id();
    let team = rt.block_on(api.setup_practice(&p));
    let day = json!({"start": "00:00", "end": "24:00"});
    let always =
        json!({"mon": day, "tue": day, "wed": day, "thu": day, "fri": day, "sat": day, "sun": day});
    rt.block_on(api.admin(
        &p,
        Method::PATCH,
        &format!("/departments/{team}"),
        Some(json!({"hours": always})),
    ));
    let visible_closed = rt.block_on(api.add_department(
        &p,
        json!({"name": "Boarding", "visible_in_app": true, "hours": {},
               "chat": {"allow_messages_after_hours": false}}),
    ))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let hidden = rt.block_on(api.add_department(&p, json!({"name": "Back Office"})))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let departments = vec![team.clone(), visible_closed, hidden, "dep_nope".to_owned()];
    let started = RefCell::new(0u64);
    let stored = RefCell::new(0u64);
    let strategy = (
        raw_body(inbound_body(departments)),
        prop::bool::weighted(0.1),
        0u8..6,
        prop::bool::weighted(0.3),
    );
    fuzz(
        "inbound bodies",
        strategy,
        |(body, wrong_role, client, end_after)| {
            rt.block_on(async {
                let text = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v["channel"].as_str().map(|c| c == "sms" || c == "whatsapp"))
                    .unwrap_or(false);
                let token = if text != wrong_role {
                    Api::token(&p, Role::Integration)
                } else {
                    local::sign_token(
                        api::SECRET,
                        &p,
                        Role::Client,
                        &format!("owner-{client}"),
                        chrono::Utc::now().timestamp(),
                        3600,
                    )
                };
                let auth = format!("Bearer {token}");
                let r = send(
                    &api,
                    Method::POST,
                    "/inbound",
                    &[("authorization", &auth)],
                    Some(body),
                )
                .await?;
                contract_answer(
                    &r,
                    &[
                        StatusCode::OK,
                        StatusCode::CREATED,
                        StatusCode::BAD_REQUEST,
                        StatusCode::FORBIDDEN,
                        StatusCode::CONFLICT,
                        StatusCode::UNPROCESSABLE_ENTITY,
                    ],
                )?;
                if r.status.is_success() {
                    *stored.borrow_mut() += 1;
                    prop_assert_eq!(
                        r.body["new_conversation"].as_bool(),
                        Some(r.status == StatusCode::CREATED)
                    );
                    let id = r.body["conversation_id"].as_str().unwrap_or("").to_owned();
                    prop_assert!(id.starts_with("cnv_"), "{}", r.body);
                    if r.status == StatusCode::CREATED {
                        *started.borrow_mut() += 1;
                    }
                    if end_after {
                        let ended = api
                            .call(
                                &p,
                                Role::Staff,
                                Method::POST,
                                &format!("/conversations/{id}/end"),
                                None,
                            )
                            .await;
                        prop_assert_eq!(ended.status, StatusCode::OK);
                    }
                }
                if r.status == StatusCode::CONFLICT {
                    let code = r.code();
                    prop_assert!(["after_hours", "offline"].contains(&code), "{}", r.body);
                    prop_assert!(
                        r.body["error"]["after_hours_message"].is_string()
                            || r.body["after_hours_message"].is_string(),
                        "{}",
                        r.body
                    );
                }
                Ok(())
            })
        },
    );

    // Afterwards: one conversation per 201, and the open counts are the open conversations.
    let (listed, open_by_department) = rt.block_on(async {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/conversations?cursor={c}"),
                None => "/conversations".to_owned(),
            };
            let r = api.call(&p, Role::Staff, Method::GET, &path, None).await;
            assert_eq!(r.status, StatusCode::OK);
            all.extend(r.body["conversations"].as_array().unwrap().iter().cloned());
            match r.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        let departments = api.admin(&p, Method::GET, "/departments", None).await.body;
        let counts: Vec<(String, u64)> = departments
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["id"].as_str().unwrap().to_owned(),
                    d["open_conversations"].as_u64().unwrap(),
                )
            })
            .collect();
        (all, counts)
    });
    eprintln!(
        "inbound bodies stored: {} messages, {} conversations started",
        stored.borrow(),
        started.borrow()
    );
    assert_eq!(
        listed.len() as u64,
        *started.borrow(),
        "one conversation per 201"
    );
    for (d, count) in open_by_department {
        let truth = listed
            .iter()
            .filter(|c| c["department_id"] == d.as_str() && c["status"] == "open")
            .count() as u64;
        assert_eq!(count, truth, "open_conversations of {d}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// Target 3: availability rules, from JSON through deserialise + validate, in every zone
// ---------------------------------------------------------------------------------------------------------

#[test]
fn availability_rules() {
    on_a_big_stack(availability_rules_target);
}

fn availability_rules_target() {
    let accepted = RefCell::new(0u64);
    let strategy = (
        hours_value(),
        overrides_value(),
        any_zone(),
        instant(),
        any::<bool>(),
    );
    fuzz(
        "availability rules",
        strategy,
        |(hours, overrides, tz, at, online)| {
            let Ok(hours) = serde_json::from_value(hours) else {
                return Ok(());
            };
            let Ok(overrides) = serde_json::from_value::<Vec<_>>(overrides) else {
                return Ok(());
            };
            if validate_hours(&hours).is_err() || validate_overrides(&overrides).is_err() {
                return Ok(());
            }
            *accepted.borrow_mut() += 1;
            let started = Instant::now();
            let a = availability(&hours, &overrides, online, tz, at);
            let took = started.elapsed();
            prop_assert!(took < AVAILABILITY_DEADLINE, "took {:?} in {}", took, tz);
            prop_assert_eq!(a.open, a.reason == AvailabilityReason::Open);
            if !online {
                prop_assert_eq!(a.reason, AvailabilityReason::Offline);
            }
            if let Some(o) = a.opens_at {
                prop_assert!(
                    !a.open && o.with_timezone(&Utc) > at,
                    "opens_at {} at {} in {}",
                    o,
                    at,
                    tz
                );
                // It is open then.
                let then = availability(&hours, &overrides, online, tz, o.with_timezone(&Utc));
                prop_assert!(then.open, "not open at its opens_at {} in {}", o, tz);
            }
            if let Some(c) = a.closes_at {
                prop_assert!(
                    a.open && c.with_timezone(&Utc) > at,
                    "closes_at {} at {} in {}",
                    c,
                    at,
                    tz
                );
                let then = availability(&hours, &overrides, online, tz, c.with_timezone(&Utc));
                prop_assert!(!then.open, "still open at its closes_at {} in {}", c, tz);
            }
            Ok(())
        },
    );
    eprintln!(
        "availability rules: {} valid schedules evaluated",
        accepted.borrow()
    );
    assert!(
        *accepted.borrow() > 0,
        "the generators made no valid schedule"
    );
}
