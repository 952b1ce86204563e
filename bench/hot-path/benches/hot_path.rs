//! The domain's hot path, per call: availability (what `GET /public/.../availability` computes per
//! department, and what every new conversation's admission computes), the routing decision
//! (`conversation::admit`) and alert composition (`alert::text::compose`).
//!
//! `cargo bench -p vetchat-hot-path` (criterion; `-- --quick` for a fast pass). Results in BENCHMARKS.md.

use std::hint::black_box;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::America::New_York;
use criterion::{criterion_group, criterion_main, Criterion};
use domain::alert::text::compose;
use domain::alert::{AlertSubject, ConversationAlert, PendingAlert, ReminderDigest, TransferAlert};
use domain::conversation::{
    admit, AlertId, Channel, Conversation, ConversationId, ConversationStatus, Transfer,
};
use domain::department::{Department, DepartmentSettings};
use domain::identity::{DepartmentId, PracticeId};
use domain::practice::Practice;
use domain::schedule::{
    availability, DateOverride, DayHours, OverrideKind, TimeOfDay, WeeklyHours, Window,
};

fn t(h: u16, m: u16) -> TimeOfDay {
    TimeOfDay::from_hm(h, m).expect("a valid time")
}

fn hours(start: TimeOfDay, end: TimeOfDay) -> Option<DayHours> {
    Some(DayHours::one(start, end))
}

/// Four windows (the most a day may hold), from `(start, end)` pairs of whole and half hours.
fn four_windows(w: [(u16, u16, u16, u16); 4]) -> DayHours {
    DayHours::new(
        w.iter()
            .map(|&(sh, sm, eh, em)| Window::new(t(sh, sm), t(eh, em)))
            .collect(),
    )
}

/// Split shifts every day but Sunday: 07:00–09:00, 10:00–12:00, 13:00–16:00, 17:00–20:00.
fn split_shifts() -> WeeklyHours {
    let day = || {
        Some(four_windows([
            (7, 0, 9, 0),
            (10, 0, 12, 0),
            (13, 0, 16, 0),
            (17, 0, 20, 0),
        ]))
    };
    WeeklyHours {
        mon: day(),
        tue: day(),
        wed: day(),
        thu: day(),
        fri: day(),
        sat: day(),
        sun: None,
    }
}

/// The fullest department the rules allow: 400 one-date overrides from `from`, every tenth a holiday, the
/// others working with four windows of their own (so every date of the horizon has an override).
fn most_overrides_with_windows(from: NaiveDate) -> Vec<DateOverride> {
    (0..400)
        .map(|d| {
            let date = from + Duration::days(d);
            let (kind, hours) = if d % 10 == 0 {
                (OverrideKind::NonWorking, None)
            } else {
                let w = [
                    (7, 30, 9, 0),
                    (10, 0, 12, 0),
                    (13, 0, 15, 0),
                    (16, 0, 18, 30),
                ];
                (OverrideKind::Working, Some(four_windows(w)))
            };
            DateOverride {
                start_date: date,
                end_date: date,
                kind,
                hours,
            }
        })
        .collect()
}

/// 09:00–18:00 Monday to Friday, Saturday morning, closed Sunday.
fn typical() -> WeeklyHours {
    let day = || hours(t(9, 0), t(18, 0));
    WeeklyHours {
        mon: day(),
        tue: day(),
        wed: day(),
        thu: day(),
        fri: day(),
        sat: hours(t(9, 0), t(13, 0)),
        sun: None,
    }
}

/// 00:00–24:00 every day: open all the time, so `closes_at` has to look through the whole 366-day horizon.
fn always() -> WeeklyHours {
    let day = || hours(TimeOfDay::MIDNIGHT, TimeOfDay::END_OF_DAY);
    WeeklyHours {
        mon: day(),
        tue: day(),
        wed: day(),
        thu: day(),
        fri: day(),
        sat: day(),
        sun: day(),
    }
}

/// A year of overrides from `from`, one per date (the heaviest a department can hold within the
/// horizon): every Sunday a working morning, every tenth date a holiday, the other dates working with
/// shortened hours.
fn year_of_overrides(from: NaiveDate) -> Vec<DateOverride> {
    (0..365)
        .map(|d| {
            let date = from + Duration::days(d);
            let (kind, hours) = if d % 10 == 0 {
                (OverrideKind::NonWorking, None)
            } else if d % 7 == 6 {
                (OverrideKind::Working, self::hours(t(10, 0), t(14, 0)))
            } else {
                (OverrideKind::Working, self::hours(t(8, 30), t(17, 30)))
            };
            DateOverride {
                start_date: date,
                end_date: date,
                kind,
                hours,
            }
        })
        .collect()
}

/// About a year of real holidays: 12 closures, some spanning several dates.
fn holidays(from: NaiveDate) -> Vec<DateOverride> {
    [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334]
        .iter()
        .enumerate()
        .map(|(i, &d)| DateOverride {
            start_date: from + Duration::days(d),
            end_date: from + Duration::days(d + (i as i64 % 3)),
            kind: OverrideKind::NonWorking,
            hours: None,
        })
        .collect()
}

fn ny(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    New_York
        .with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("not a DST edge")
        .with_timezone(&Utc)
}

fn practice() -> Practice {
    let id = PracticeId("prc_bench".into());
    Practice {
        default_department_id: DepartmentId::default_for(&id),
        id,
        name: "Happy Paws".into(),
        timezone: New_York,
        country: "US".into(),
        sms_numbers: vec!["+12015550100".into()],
        whatsapp_numbers: Vec::new(),
        created_at: ny(2026, 1, 5, 9, 0),
        updated_at: ny(2026, 1, 5, 9, 0),
        version: 1,
    }
}

fn department(practice: &Practice, hours: WeeklyHours, overrides: Vec<DateOverride>) -> Department {
    let mut settings = DepartmentSettings::defaults("Grooming".into());
    settings.visible_in_app = true;
    settings.hours = hours;
    settings.date_overrides = overrides;
    settings.chat.greeting = Some("Hi! Grooming here, how can we help?".into());
    settings.alerts.enabled = true;
    settings.alerts.emails = vec![
        "desk@happypaws.example".into(),
        "groomer@happypaws.example".into(),
    ];
    settings.alerts.sms_numbers = vec!["+12015550123".into()];
    Department {
        id: DepartmentId("dep_grooming".into()),
        practice_id: practice.id.clone(),
        is_default: false,
        settings,
        open_conversations: 3,
        version: 4,
        next_reminder_at: None,
        created_at: practice.created_at,
        updated_at: practice.created_at,
    }
}

fn bench_availability(c: &mut Criterion) {
    let monday_10 = ny(2026, 11, 23, 10, 0);
    let friday_20 = ny(2026, 11, 27, 20, 0);
    let from = NaiveDate::from_ymd_opt(2026, 11, 1).expect("a date");
    let year = year_of_overrides(from);
    let few = holidays(from);
    let fullest = most_overrides_with_windows(from);
    let mut g = c.benchmark_group("availability");
    // The last two beside "365 overrides, open/closed" (one window a day): split shifts must stay within 2×.
    let cases: [(&str, WeeklyHours, &[DateOverride], DateTime<Utc>); 9] = [
        ("typical hours, open (Mon 10:00)", typical(), &[], monday_10),
        (
            "typical hours, closed (Fri 20:00 → Sat)",
            typical(),
            &[],
            friday_20,
        ),
        (
            "typical hours + 12 holidays, closed",
            typical(),
            &few,
            friday_20,
        ),
        (
            "24/7, open (closes_at: whole horizon)",
            always(),
            &[],
            monday_10,
        ),
        ("365 overrides, open", typical(), &year, monday_10),
        ("365 overrides, closed", typical(), &year, friday_20),
        ("24/7 + 365 overrides, open", always(), &year, monday_10),
        (
            "4 windows a day + 400 overrides of 4 windows, open",
            split_shifts(),
            &fullest,
            monday_10,
        ),
        (
            "4 windows a day + 400 overrides of 4 windows, closed",
            split_shifts(),
            &fullest,
            friday_20,
        ),
    ];
    for (name, hours, overrides, at) in &cases {
        g.bench_function(*name, |b| {
            b.iter(|| {
                availability(
                    black_box(hours),
                    black_box(overrides),
                    true,
                    New_York,
                    black_box(*at),
                )
            })
        });
    }
    g.bench_function("offline", |b| {
        // The hours are built outside the loop: a day's windows are a Vec now, and building them is not the
        // call being measured.
        let hours = typical();
        b.iter(|| availability(black_box(&hours), &year, false, New_York, monday_10))
    });
    g.finish();
}

fn bench_admit(c: &mut Criterion) {
    let p = practice();
    let from = NaiveDate::from_ymd_opt(2026, 11, 1).expect("a date");
    let typical_dep = department(&p, typical(), holidays(from));
    let heavy = department(&p, typical(), year_of_overrides(from));
    let mut offline = typical_dep.clone();
    offline.settings.online = false;
    let monday_10 = ny(2026, 11, 23, 10, 0);
    let friday_20 = ny(2026, 11, 27, 20, 0);
    let mut g = c.benchmark_group("admit (routing decision)");
    g.bench_function("text, open", |b| {
        b.iter(|| {
            admit(
                &p,
                black_box(&typical_dep),
                Channel::Sms,
                black_box(monday_10),
            )
        })
    });
    g.bench_function("app chat, open, greeting", |b| {
        b.iter(|| {
            admit(
                &p,
                black_box(&typical_dep),
                Channel::App,
                black_box(monday_10),
            )
        })
    });
    g.bench_function("web chat, closed, after-hours message", |b| {
        b.iter(|| {
            admit(
                &p,
                black_box(&typical_dep),
                Channel::Web,
                black_box(friday_20),
            )
        })
    });
    g.bench_function("web chat, offline, refused (409 body)", |b| {
        b.iter(|| admit(&p, black_box(&offline), Channel::Web, black_box(monday_10)))
    });
    g.bench_function("app chat, 365 overrides, closed", |b| {
        b.iter(|| admit(&p, black_box(&heavy), Channel::App, black_box(friday_20)))
    });
    g.finish();
}

fn conversation(p: &Practice, d: &Department, n: usize) -> Conversation {
    let at = ny(2026, 11, 23, 9, 0) + Duration::minutes(n as i64);
    Conversation {
        id: ConversationId(format!("cnv_{n:04}")),
        practice_id: p.id.clone(),
        department_id: d.id.clone(),
        client_id: format!("+1201555{n:04}"),
        channel: Channel::Sms,
        status: ConversationStatus::Open,
        started_at: at,
        last_message_at: at,
        resolved_at: None,
        department_name: d.settings.name.clone(),
        last_seq: 1,
        sms_opted_out_at: None,
        after_hours_replied_at: None,
        reply_from: None,
        last_whatsapp_at: None,
    }
}

/// An alert about conversation 1 of `d`, created when it started.
fn alert(p: &Practice, d: &Department, subject: AlertSubject) -> PendingAlert {
    PendingAlert {
        id: AlertId("alr_bench".into()),
        practice_id: p.id.clone(),
        department_id: d.id.clone(),
        created_at: conversation(p, d, 1).started_at,
        subject,
    }
}

fn quoted(p: &Practice, d: &Department) -> ConversationAlert {
    let c = conversation(p, d, 1);
    ConversationAlert {
        conversation_id: c.id.clone(),
        client_id: c.client_id.clone(),
        channel: c.channel,
        preview: "Is Rex ready for pickup? He had his bath at ten and the nails trimmed".into(),
    }
}

fn bench_compose(c: &mut Criterion) {
    let p = practice();
    let d = department(&p, typical(), Vec::new());
    let url = "https://dashboard.example/app";
    let new = alert(&p, &d, AlertSubject::NewConversation(quoted(&p, &d)));
    let transfer = alert(
        &p,
        &d,
        AlertSubject::Transfer(TransferAlert {
            conversation: quoted(&p, &d),
            transfer: Transfer {
                from: DepartmentId("dep_team".into()),
                to: d.id.clone(),
                by: "usr_staff_demo".into(),
                at: ny(2026, 11, 23, 9, 30),
                note: Some("Nail trim question for Grooming".into()),
            },
        }),
    );
    let reminder = alert(
        &p,
        &d,
        AlertSubject::UnresolvedReminder {
            reminder: ReminderDigest {
                date: NaiveDate::from_ymd_opt(2026, 11, 23).expect("a date"),
                conversations: (0..20).map(|n| conversation(&p, &d, n)).collect(),
            },
        },
    );
    let mut g = c.benchmark_group("compose (alert deliveries)");
    g.bench_function("new conversation, 2 emails + 1 SMS", |b| {
        b.iter(|| compose(black_box(&new), &p, black_box(&d), url))
    });
    g.bench_function("transfer with note, 2 emails + 1 SMS", |b| {
        b.iter(|| compose(black_box(&transfer), &p, black_box(&d), url))
    });
    g.bench_function("reminder listing 20 conversations, 2 emails", |b| {
        b.iter(|| compose(black_box(&reminder), &p, black_box(&d), url))
    });
    g.finish();
}

criterion_group!(benches, bench_availability, bench_admit, bench_compose);
criterion_main!(benches);
