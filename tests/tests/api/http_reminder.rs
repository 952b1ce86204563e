//! The end-of-day reminder through the local server (docs/api.md, Local server only: `POST /_local/eod-reminder`
//! with an EventBridge scheduled event, `GET /_local/sent`), on both stores. Settings and conversations go
//! through the HTTP API at the wall clock; the run is for the event's `time`, read off the department's
//! next reminder instant.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use domain::identity::{DepartmentId, PracticeId, Role};
use http::{Method, StatusCode};
use serde_json::{json, Value};
use vetchat_tests::api::{self, Api, DASHBOARD};

vetchat_tests::on_every_store!(
    a_scheduled_event_runs_the_reminder_and_answers_its_summary,
    an_event_without_a_time_is_refused,
);

const DESK: &str = "desk@happypaws.example";
const VET: &str = "vet@happypaws.example";

/// An EventBridge scheduled event as the rule delivers it, for the instant `time`.
fn scheduled_event(time: Option<&str>) -> Value {
    let mut event = json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/vetchat-reminder"],
        "detail": {}
    });
    if let Some(time) = time {
        event["time"] = json!(time);
    }
    event
}

async fn eod_reminder(api: &Api, body: String) -> api::Reply {
    api.raw(Method::POST, "/_local/eod-reminder", &[], Some(body))
        .await
}

async fn run_at(api: &Api, at: DateTime<Utc>) -> Value {
    let time = at.to_rfc3339_opts(SecondsFormat::Secs, true);
    let r = eod_reminder(api, scheduled_event(Some(&time)).to_string()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

fn summary(at: DateTime<Utc>, counts: [usize; 5]) -> Value {
    let [due, departments_reminded, nothing_open, already_handled, failures] = counts;
    json!({
        "run_at": at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        "due": due,
        "departments_reminded": departments_reminded,
        "nothing_open": nothing_open,
        "already_handled": already_handled,
        "failures": failures,
    })
}

async fn sent(api: &Api) -> Vec<Value> {
    let r = api.raw(Method::GET, "/_local/sent", &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    r.body.as_array().unwrap().clone()
}

async fn a_scheduled_event_runs_the_reminder_and_answers_its_summary(api: Api) {
    let p = Api::practice_id();
    let team = api.setup_practice(&p).await;
    let desk = api
        .add_department(
            &p,
            json!({"name": "Front Desk",
                   "alerts": {"enabled": true, "emails": format!("{DESK}, {VET}")},
                   "unresolved_reminder": {"enabled": true, "at": "17:30"}}),
        )
        .await;
    let desk_id = desk["id"].as_str().unwrap().to_owned();
    let r = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            "/conversations",
            Some(json!({"department_id": desk_id, "client_id": "client-ann", "body": "Rex's results are in."})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let conversation = r.body["id"].as_str().unwrap().to_owned();
    // A texted conversation in the default department, whose reminder is off: not in any reminder.
    let r = api
        .call(
            &p,
            Role::Integration,
            Method::POST,
            "/inbound",
            Some(json!({"channel": "sms", "from": "+12015550111", "body": "Hello?"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    // The settings write put the department in the due list at its next 17:30 in New York.
    let due_at = api
        .store
        .practice_and_department(&PracticeId(p.clone()), &DepartmentId(desk_id.clone()))
        .await
        .unwrap()
        .1
        .unwrap()
        .next_reminder_at
        .expect("the reminder is on");
    let local = due_at.with_timezone(&chrono_tz::America::New_York);
    assert_eq!(local.format("%H:%M").to_string(), "17:30");
    assert!(due_at > Utc::now() - Duration::minutes(1));
    assert!(due_at <= Utc::now() + Duration::days(1));

    let before = due_at - Duration::seconds(1);
    assert_eq!(run_at(&api, before).await, summary(before, [0; 5]));
    assert!(sent(&api).await.is_empty());

    assert_eq!(run_at(&api, due_at).await, summary(due_at, [1, 1, 0, 0, 0]));
    // The same event again (EventBridge retries): nothing new.
    assert_eq!(run_at(&api, due_at).await, summary(due_at, [0; 5]));

    let sent = sent(&api).await;
    let to: Vec<&str> = sent.iter().map(|s| s["to"].as_str().unwrap()).collect();
    assert_eq!(to, [DESK, VET], "{sent:#?}");
    for s in &sent {
        assert_eq!(s["kind"], "unresolved_reminder");
        assert_eq!(s["channel"], "email");
        assert_eq!(s["department_id"], desk_id.as_str());
        assert_eq!(s["conversation_ids"], json!([conversation]));
        assert_eq!(s["subject"], "Front Desk: 1 open conversation to end today");
        let body = s["body"].as_str().unwrap();
        assert!(body.contains("client-ann (app)"), "{body}");
        assert!(
            body.contains(&format!("{DASHBOARD}/conversations/{conversation}")),
            "{body}"
        );
        assert!(!body.contains("+12015550111"), "{body}");
        assert!(s["at"].is_string());
    }
    assert_ne!(team, desk_id);
}

async fn an_event_without_a_time_is_refused(api: Api) {
    for body in [
        scheduled_event(None).to_string(),
        scheduled_event(Some("yesterday at six")).to_string(),
        json!({"time": 1_700_000_000}).to_string(),
    ] {
        let r = eod_reminder(&api, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        assert_eq!(r.code(), "malformed_request", "{}", r.body);
        assert_eq!(r.field(), "time", "{}", r.body);
    }
    // A range that is not one of the due index's shards: refused the same way, naming the field.
    for shards in [
        json!({"first": 8, "last": 32}),
        json!({"first": 9, "last": 8}),
        json!("0-7"),
    ] {
        let mut event = scheduled_event(Some("2031-06-09T21:30:00Z"));
        event["detail"] = json!({ "shards": shards });
        let r = eod_reminder(&api, event.to_string()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{shards}: {}", r.body);
        assert_eq!(r.code(), "malformed_request", "{}", r.body);
        assert_eq!(r.field(), "detail.shards", "{}", r.body);
    }
    let r = eod_reminder(&api, "{\"time\": ".to_owned()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.code(), "malformed_request");
    assert!(sent(&api).await.is_empty());
}
