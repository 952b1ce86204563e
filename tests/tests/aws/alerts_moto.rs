//! The whole alert path over the real wire protocols: a text starts a conversation (its alert written in the
//! same transaction), the dispatcher delivers it through `AwsSender` to moto's SES v2 and SNS, and what moto
//! received is read back. On DynamoDB Local, so every part but AWS itself is real.

use std::sync::Arc;

use adapters::senders::AwsSender;
use aws_config::BehaviorVersion;
use domain::alert::dispatch::dispatch_alert;
use domain::identity::Role;
use domain::store::Store;
use http::{Method, StatusCode};
use serde_json::{json, Value};

use vetchat_tests::api::{self, Api};

fn moto_endpoint() -> String {
    match std::env::var("MOTO_ENDPOINT") {
        Ok(v) if !v.is_empty() => v.trim_end_matches('/').to_owned(),
        _ => panic!(
            "moto is not running: run `scripts/test` (starts it and runs every test) or \
             `scripts/test --services-only` and export what it prints"
        ),
    }
}

async fn moto_data() -> Value {
    reqwest::get(format!("{}/moto-api/data.json", moto_endpoint()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn unique() -> String {
    ulid::Ulid::new().to_string().to_lowercase()
}

#[tokio::test]
async fn a_new_conversation_alert_reaches_ses_and_sns_once() {
    moto_endpoint();
    let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let from = format!("alerts-{}@vetchat.example", unique());
    aws_sdk_sesv2::Client::new(&sdk)
        .create_email_identity()
        .email_identity(&from)
        .send()
        .await
        .unwrap();
    let sender = AwsSender::new(&sdk, from.clone());

    let api = Api::dynamo().await;
    let p = Api::practice_id();
    let default_id = api.setup_practice(&p).await;
    let desk = format!("desk-{}@happypaws.example", unique());
    // A valid North American number no other test uses: the exchange starts with 2-9.
    let r = ulid::Ulid::new().random();
    let phone = format!("+1202{}{:06}", 2 + r % 8, (r / 8) % 1_000_000);
    let r = api
        .admin(
            &p,
            Method::PATCH,
            &format!("/departments/{default_id}"),
            Some(json!({"alerts": {"enabled": true, "emails": [desk], "sms_numbers": [phone]}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = api
        .call(&p, Role::Integration, Method::POST, "/inbound", Some(json!({"channel": "sms", "from": "+12015550111", "body": "Is Rex ready for pickup?"})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let conversation_id = r.body["conversation_id"].as_str().unwrap().to_owned();

    let store: Arc<dyn Store> = api.store.clone();
    let ids = store.pending_alert_ids(1000).await.unwrap();
    let mine: Vec<_> = {
        let mut mine = Vec::new();
        for id in ids {
            let record = store.get_alert(&id).await.unwrap().unwrap();
            if record
                .alert
                .subject
                .conversation()
                .is_some_and(|about| about.conversation_id.as_str() == conversation_id)
            {
                mine.push(id);
            }
        }
        mine
    };
    assert_eq!(mine.len(), 1, "one pending alert for the new conversation");
    let report = dispatch_alert(
        &*store,
        &sender,
        &mine[0],
        chrono::Utc::now(),
        api::DASHBOARD,
    )
    .await
    .unwrap();
    assert_eq!(
        (report.sent, report.failed, report.pending, report.done),
        (2, 0, 0, true)
    );
    // A replayed stream record sends nothing again.
    let again = dispatch_alert(
        &*store,
        &sender,
        &mine[0],
        chrono::Utc::now(),
        api::DASHBOARD,
    )
    .await
    .unwrap();
    assert_eq!((again.sent, again.done), (0, true));

    let data = moto_data().await;
    let emails: Vec<&Value> = data["ses"]["Message"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| {
            m["destinations"]["ToAddresses"]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v == desk.as_str()))
        })
        .collect();
    assert_eq!(emails.len(), 1, "exactly one email");
    assert_eq!(emails[0]["source"], from.as_str());
    assert_eq!(emails[0]["subject"], "New conversation in Happy Paws Team");
    let body = emails[0]["body"].as_str().unwrap();
    assert!(body.contains("Is Rex ready for pickup?"), "{body}");
    assert!(body.contains(&conversation_id), "{body}");
    let texts: Vec<&Value> = data["sns"]["SMS"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["phone_number"] == phone.as_str())
        .collect();
    assert_eq!(texts.len(), 1, "exactly one SMS");
    let text = texts[0]["message"].as_str().unwrap();
    assert!(text.contains("Happy Paws"), "{text}");
    assert!(text.chars().count() <= 160, "one segment: {text}");
}
