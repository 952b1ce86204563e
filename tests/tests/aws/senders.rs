//! The alert senders: `AwsSender` against moto's SES v2 and SNS (read back through `/moto-api/data.json`),
//! and the in-process `RecordingSender` and `FaultySender`.
//!
//! moto's data is global to its server and the tests run in parallel: every test uses recipients of its
//! own (a ULID in the address or number) and looks only at those. Nothing here resets moto.

use std::time::Duration;

use adapters::senders::{AwsSender, FaultySender, RecordingSender, SentAlert};
use aws_config::BehaviorVersion;
use chrono::{DateTime, TimeZone, Utc};
use domain::alert::{AlertKind, AlertSender, Delivery, DeliveryChannel, SendError};
use domain::conversation::{AlertId, ConversationId};
use domain::identity::DepartmentId;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------------------
// Support
// ---------------------------------------------------------------------------------------------------------

fn moto_endpoint() -> String {
    match std::env::var("MOTO_ENDPOINT") {
        Ok(v) if !v.is_empty() => v.trim_end_matches('/').to_owned(),
        _ => panic!(
            "moto is not running: run `scripts/test` (starts it and runs every test) or \
             `scripts/test --services-only` and export what it prints"
        ),
    }
}

async fn sdk() -> aws_config::SdkConfig {
    moto_endpoint();
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

fn unique() -> String {
    ulid::Ulid::new().to_string().to_lowercase()
}

/// A North American number no other test uses: +1 202 555 and seven digits from a fresh ULID.
fn unique_phone() -> String {
    let n = ulid::Ulid::new().random() % 10_000_000;
    format!("+1202{n:07}")
}

/// Registers `email` as an SES identity (moto then counts it as verified).
async fn create_identity(sdk: &aws_config::SdkConfig, email: &str) {
    aws_sdk_sesv2::Client::new(sdk)
        .create_email_identity()
        .email_identity(email)
        .send()
        .await
        .expect("CreateEmailIdentity");
}

/// A sender whose address is a verified SES identity.
async fn verified_sender() -> (AwsSender, String) {
    let sdk = sdk().await;
    let from = format!("alerts-{}@vetchat.example", unique());
    create_identity(&sdk, &from).await;
    (AwsSender::new(&sdk, from.clone()), from)
}

fn email(to: &str) -> Delivery {
    Delivery {
        alert_id: AlertId(format!("alr_{}", unique())),
        kind: AlertKind::NewConversation,
        channel: DeliveryChannel::Email,
        to: to.to_owned(),
        subject: "New conversation in Grooming".into(),
        text: "A new conversation in Grooming needs attention.\n\nClient: Ana — «Rex»\n".into(),
        html: Some(
            "<p>A new conversation in Grooming needs attention.</p><p>Ana &mdash; «Rex»</p>".into(),
        ),
        department_id: DepartmentId("dep_grooming".into()),
        conversation_ids: vec![ConversationId("cnv_1".into())],
        idempotency_key: format!("alr_{}:email:{to}", unique()),
    }
}

fn sms(to: &str) -> Delivery {
    Delivery {
        alert_id: AlertId(format!("alr_{}", unique())),
        kind: AlertKind::Transfer,
        channel: DeliveryChannel::Sms,
        to: to.to_owned(),
        subject: "Conversation transferred to Grooming".into(),
        text: "Happy Paws: chat transferred to Grooming from Ana https://dash.example/conversations/cnv_2"
            .into(),
        html: None,
        department_id: DepartmentId("dep_grooming".into()),
        conversation_ids: vec![ConversationId("cnv_2".into())],
        idempotency_key: format!("alr_{}:sms:{to}", unique()),
    }
}

async fn moto_data() -> Value {
    reqwest::get(format!("{}/moto-api/data.json", moto_endpoint()))
        .await
        .expect("GET /moto-api/data.json")
        .error_for_status()
        .expect("moto-api status")
        .json()
        .await
        .expect("moto-api JSON")
}

/// The emails moto took for `to`.
async fn ses_messages_to(to: &str) -> Vec<Value> {
    let data = moto_data().await;
    let messages = data["ses"]["Message"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    messages
        .into_iter()
        .filter(|m| {
            m["destinations"]["ToAddresses"]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v == to))
        })
        .collect()
}

/// The texts moto took for `phone`.
async fn sms_to(phone: &str) -> Vec<Value> {
    let data = moto_data().await;
    let messages = data["sns"]["SMS"].as_array().cloned().unwrap_or_default();
    messages
        .into_iter()
        .filter(|m| m["phone_number"] == phone)
        .collect()
}

// ---------------------------------------------------------------------------------------------------------
// AwsSender on moto
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn email_goes_through_ses_from_the_sender_to_the_recipient() {
    let (sender, from) = verified_sender().await;
    let to = format!("desk-{}@happypaws.example", unique());
    let delivery = email(&to);

    sender.send(&delivery).await.expect("sent");

    let messages = ses_messages_to(&to).await;
    assert_eq!(messages.len(), 1, "one email to {to}: {messages:#?}");
    let m = &messages[0];
    assert_eq!(m["source"], from.as_str());
    assert_eq!(m["destinations"]["ToAddresses"], json!([to]));
    assert_eq!(
        m["destinations"]
            .get("CcAddresses")
            .map_or(0, |v| v.as_array().map_or(0, Vec::len)),
        0
    );
    assert_eq!(m["subject"], delivery.subject.as_str());
    // moto keeps only the HTML part when both are sent.
    assert_eq!(m["body"], delivery.html.as_deref().unwrap());
}

#[tokio::test]
async fn email_without_html_sends_the_text_part() {
    let (sender, _) = verified_sender().await;
    let to = format!("vet-{}@happypaws.example", unique());
    let delivery = Delivery {
        html: None,
        ..email(&to)
    };

    sender.send(&delivery).await.expect("sent");

    let messages = ses_messages_to(&to).await;
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert_eq!(messages[0]["body"], delivery.text.as_str());
}

#[tokio::test]
async fn sms_goes_through_sns_to_the_number() {
    let (sender, _) = verified_sender().await;
    let phone = unique_phone();
    let delivery = sms(&phone);

    sender.send(&delivery).await.expect("sent");

    let texts = sms_to(&phone).await;
    assert_eq!(texts.len(), 1, "one text to {phone}: {texts:#?}");
    assert_eq!(texts[0]["message"], delivery.text.as_str());
}

#[tokio::test]
async fn each_send_is_one_message_and_only_to_its_recipient() {
    let (sender, _) = verified_sender().await;
    let a = format!("a-{}@happypaws.example", unique());
    let b = format!("b-{}@happypaws.example", unique());

    sender.send(&email(&a)).await.expect("sent a");
    sender.send(&email(&a)).await.expect("sent a again");
    sender.send(&email(&b)).await.expect("sent b");

    // The sender itself never deduplicates: that is the dispatcher's job, by the idempotency key.
    assert_eq!(ses_messages_to(&a).await.len(), 2);
    assert_eq!(ses_messages_to(&b).await.len(), 1);
}

#[tokio::test]
async fn unverified_sender_is_transient_and_sends_nothing() {
    // The sender's identity is configuration, not the recipient's fault: the alert stays pending until the
    // identity is fixed, and then goes out.
    let sdk = sdk().await;
    let from = format!("alerts@{}.unverified.example", unique());
    let sender = AwsSender::new(&sdk, from.clone());
    let to = format!("desk-{}@happypaws.example", unique());
    let delivery = email(&to);

    let err = sender
        .send(&delivery)
        .await
        .expect_err("moto rejects an unverified sender");
    assert!(matches!(err, SendError::Transient(_)), "{err:?}");
    assert!(err.to_string().contains("MessageRejected"), "{err}");
    assert!(ses_messages_to(&to).await.is_empty());

    create_identity(&sdk, &from).await;
    sender
        .send(&delivery)
        .await
        .expect("sent once the identity exists");
    assert_eq!(ses_messages_to(&to).await.len(), 1);
}

#[tokio::test]
async fn invalid_email_address_is_permanent() {
    let (sender, _) = verified_sender().await;
    let to = format!("no-domain-{}", unique());

    let err = sender.send(&email(&to)).await.expect_err("refused");
    assert!(matches!(err, SendError::Permanent(_)), "{err:?}");
}

#[tokio::test]
async fn invalid_phone_number_is_permanent() {
    let (sender, _) = verified_sender().await;
    let phone = format!("call-me-{}", unique());

    let err = sender.send(&sms(&phone)).await.expect_err("refused");
    assert!(matches!(err, SendError::Permanent(_)), "{err:?}");
    assert!(err.to_string().contains("InvalidParameter"), "{err}");
    assert!(sms_to(&phone).await.is_empty());
}

/// An SDK configuration with every endpoint at `url` and none of the environment's endpoint variables.
fn sdk_at(url: &str) -> aws_config::SdkConfig {
    use aws_sdk_sesv2::config::{Credentials, SharedCredentialsProvider};
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "local", "local", None, None, "test",
        )))
        .endpoint_url(url)
        .build()
}

#[tokio::test]
async fn unreachable_provider_is_transient() {
    // A port nobody listens on: connection refused on every attempt (the SDK retries, then gives up).
    let sender = AwsSender::new(
        &sdk_at("http://127.0.0.1:9"),
        "alerts@vetchat.example".into(),
    );

    let email_err = sender
        .send(&email("desk@happypaws.example"))
        .await
        .expect_err("no server");
    let sms_err = sender
        .send(&sms("+12025550100"))
        .await
        .expect_err("no server");

    assert!(
        matches!(email_err, SendError::Transient(_)),
        "{email_err:?}"
    );
    assert!(matches!(sms_err, SendError::Transient(_)), "{sms_err:?}");
}

#[tokio::test]
async fn a_provider_that_never_answers_is_transient_within_the_operation_timeout() {
    // Accepts connections and never answers: every attempt times out, and the whole send (retries
    // included) ends at the operation timeout.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let sender = AwsSender::new(&sdk_at(&url), "alerts@vetchat.example".into());

    let (e, t) = (email("desk@happypaws.example"), sms("+12025550100"));
    let started = std::time::Instant::now();
    let (email_res, sms_res) = tokio::join!(sender.send(&e), sender.send(&t));
    let took = started.elapsed();
    hold.abort();

    assert!(
        matches!(email_res, Err(SendError::Transient(_))),
        "{email_res:?}"
    );
    assert!(
        matches!(sms_res, Err(SendError::Transient(_))),
        "{sms_res:?}"
    );
    assert!(
        took >= adapters::senders::ATTEMPT_TIMEOUT,
        "gave up after {took:?}"
    );
    assert!(
        took < adapters::senders::OPERATION_TIMEOUT + Duration::from_secs(3),
        "took {took:?}"
    );
}

/// A one-request HTTP server on a thread: answers `status` + `body` and hands back the request it read.
fn capture_one_request(
    status: u16,
    body: &'static str,
) -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = socket.read(&mut buf).unwrap();
            request.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&request).to_string();
            if let Some(head_end) = text.find("\r\n\r\n") {
                let length = text[..head_end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_owned())
                    })
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                if request.len() >= head_end + 4 + length || n == 0 {
                    break;
                }
            } else if n == 0 {
                break;
            }
        }
        let response = format!(
            "HTTP/1.1 {status} OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(response.as_bytes()).unwrap();
        tx.send(String::from_utf8_lossy(&request).to_string())
            .unwrap();
    });
    (url, rx)
}

#[tokio::test]
async fn email_carries_the_idempotency_key_in_a_header() {
    // moto does not keep headers, so this looks at the request itself.
    let (url, request) = capture_one_request(200, r#"{"MessageId":"m-1"}"#);
    let sender = AwsSender::new(&sdk_at(&url), "alerts@vetchat.example".into());
    let delivery = email("desk@happypaws.example");

    sender.send(&delivery).await.expect("sent");

    let request = request.recv_timeout(Duration::from_secs(5)).unwrap();
    let body: Value =
        serde_json::from_str(&request[request.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(body["FromEmailAddress"], "alerts@vetchat.example");
    assert_eq!(
        body["Destination"]["ToAddresses"],
        json!(["desk@happypaws.example"])
    );
    let simple = &body["Content"]["Simple"];
    assert_eq!(
        simple["Headers"],
        json!([{"Name": "X-Vetchat-Alert-Key", "Value": delivery.idempotency_key}])
    );
    assert_eq!(simple["Subject"]["Data"], delivery.subject.as_str());
    assert_eq!(simple["Body"]["Text"]["Data"], delivery.text.as_str());
    assert_eq!(
        simple["Body"]["Html"]["Data"],
        delivery.html.as_deref().unwrap()
    );
}

#[tokio::test]
async fn sms_is_sent_as_transactional() {
    let (url, request) = capture_one_request(
        200,
        "<PublishResponse><PublishResult><MessageId>m-1</MessageId></PublishResult></PublishResponse>",
    );
    let sender = AwsSender::new(&sdk_at(&url), "alerts@vetchat.example".into());

    sender.send(&sms("+12025550100")).await.expect("sent");

    let request = request.recv_timeout(Duration::from_secs(5)).unwrap();
    let form = &request[request.find("\r\n\r\n").unwrap() + 4..];
    let fields: std::collections::BTreeMap<String, String> = form
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(fields["Action"], "Publish");
    assert_eq!(fields["PhoneNumber"], "%2B12025550100");
    let entry = fields
        .iter()
        .find(|(k, v)| {
            k.starts_with("MessageAttributes.entry.")
                && k.ends_with(".Name")
                && *v == "AWS.SNS.SMS.SMSType"
        })
        .map(|(k, _)| k.trim_end_matches(".Name").to_owned())
        .expect("the SMSType attribute");
    assert_eq!(fields[&format!("{entry}.Value.DataType")], "String");
    assert_eq!(
        fields[&format!("{entry}.Value.StringValue")],
        "Transactional"
    );
}

// ---------------------------------------------------------------------------------------------------------
// RecordingSender
// ---------------------------------------------------------------------------------------------------------

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 17, minute, 0).unwrap()
}

#[tokio::test]
async fn recording_sender_keeps_entries_in_the_local_sent_shape_oldest_first() {
    let clock = std::sync::atomic::AtomicU32::new(0);
    let recorder = RecordingSender::with_clock(move || {
        at(clock.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
    });
    let first = email("desk@happypaws.example");
    let second = sms("+12025550123");

    recorder.send(&first).await.unwrap();
    recorder.send(&second).await.unwrap();

    let sent = recorder.sent();
    assert_eq!(
        sent,
        vec![
            SentAlert {
                kind: AlertKind::NewConversation,
                channel: DeliveryChannel::Email,
                to: "desk@happypaws.example".into(),
                subject: first.subject.clone(),
                body: first.text.clone(),
                department_id: first.department_id.clone(),
                conversation_ids: first.conversation_ids.clone(),
                at: at(0),
            },
            SentAlert {
                kind: AlertKind::Transfer,
                channel: DeliveryChannel::Sms,
                to: "+12025550123".into(),
                subject: second.subject.clone(),
                body: second.text.clone(),
                department_id: second.department_id.clone(),
                conversation_ids: second.conversation_ids.clone(),
                at: at(1),
            },
        ]
    );
    assert_eq!(
        serde_json::to_value(&sent[1]).unwrap(),
        json!({
            "kind": "transfer", "channel": "sms", "to": "+12025550123", "subject": second.subject,
            "body": second.text, "department_id": "dep_grooming", "conversation_ids": ["cnv_2"],
            "at": "2026-11-21T17:01:00Z"
        })
    );
    assert_eq!(recorder.deliveries(), vec![first, second]);
}

#[tokio::test]
async fn recording_sender_counts_sends_per_idempotency_key_across_clones() {
    let recorder = RecordingSender::new();
    let shared = recorder.clone();
    let a = email("a@happypaws.example");
    let b = email("b@happypaws.example");

    recorder.send(&a).await.unwrap();
    shared.send(&b).await.unwrap();
    assert_eq!(recorder.sent_count(&a.idempotency_key), 1);
    assert!(recorder.repeated_keys().is_empty());

    shared.send(&a).await.unwrap();
    assert_eq!(recorder.sent_count(&a.idempotency_key), 2);
    assert_eq!(recorder.sent_count(&b.idempotency_key), 1);
    assert_eq!(recorder.sent_count("never-sent"), 0);
    assert_eq!(recorder.repeated_keys(), vec![a.idempotency_key.clone()]);
    assert_eq!(shared.sent().len(), 3);

    let before = adapters::now();
    recorder.clear();
    assert!(shared.sent().is_empty());
    shared.send(&b).await.unwrap();
    assert!(recorder.sent()[0].at >= before);
    assert_eq!(recorder.sent_count(&a.idempotency_key), 0);
}

// ---------------------------------------------------------------------------------------------------------
// FaultySender
// ---------------------------------------------------------------------------------------------------------

fn transient() -> SendError {
    SendError::Transient("throttled (injected)".into())
}

#[tokio::test]
async fn faulty_sender_fails_the_first_calls_then_passes_through() {
    let recorder = RecordingSender::new();
    let faulty = FaultySender::new(recorder.clone()).fail_first(2, transient());
    let d = email("desk@happypaws.example");

    assert_eq!(faulty.send(&d).await, Err(transient()));
    assert_eq!(faulty.send(&d).await, Err(transient()));
    assert_eq!(recorder.sent_count(&d.idempotency_key), 0);
    assert_eq!(faulty.send(&d).await, Ok(()));
    assert_eq!(recorder.sent_count(&d.idempotency_key), 1);
    assert_eq!((faulty.calls(), faulty.passed()), (3, 1));

    faulty.fail_next(1, SendError::Permanent("bounced".into()));
    assert!(matches!(
        faulty.send(&d).await,
        Err(SendError::Permanent(_))
    ));
    assert_eq!(faulty.send(&d).await, Ok(()));
}

#[tokio::test]
async fn faulty_sender_refuses_one_recipient_and_passes_the_others() {
    let recorder = RecordingSender::new();
    let faulty = FaultySender::new(recorder.clone()).refuse("bad@happypaws.example");

    let bad = email("bad@happypaws.example");
    let good = email("good@happypaws.example");
    assert!(matches!(
        faulty.send(&bad).await,
        Err(SendError::Permanent(_))
    ));
    assert!(matches!(
        faulty.send(&bad).await,
        Err(SendError::Permanent(_))
    ));
    assert_eq!(faulty.send(&good).await, Ok(()));
    assert_eq!(
        recorder
            .sent()
            .iter()
            .map(|s| s.to.as_str())
            .collect::<Vec<_>>(),
        ["good@happypaws.example"]
    );
}

#[tokio::test]
async fn faulty_sender_outage_switches_at_run_time_through_a_clone() {
    let recorder = RecordingSender::new();
    let faulty = FaultySender::new(recorder.clone());
    let handed_out: std::sync::Arc<dyn AlertSender> = std::sync::Arc::new(faulty.clone());
    let d = sms("+12025550123");

    faulty.outage(true);
    assert!(matches!(
        handed_out.send(&d).await,
        Err(SendError::Transient(_))
    ));
    assert!(matches!(
        handed_out.send(&d).await,
        Err(SendError::Transient(_))
    ));
    assert!(recorder.sent().is_empty());

    faulty.outage(false);
    assert_eq!(handed_out.send(&d).await, Ok(()));
    assert_eq!(recorder.sent_count(&d.idempotency_key), 1);
    assert_eq!((faulty.calls(), faulty.passed()), (3, 1));
}

#[tokio::test]
async fn faulty_sender_crash_after_send_delivers_but_reports_transient() {
    let recorder = RecordingSender::new();
    let faulty = FaultySender::new(recorder.clone()).crash_after_send(1);
    let d = email("desk@happypaws.example");

    // The message went out, but the caller hears a failure (as if the process died before recording it).
    assert!(matches!(
        faulty.send(&d).await,
        Err(SendError::Transient(_))
    ));
    assert_eq!(recorder.sent_count(&d.idempotency_key), 1);
    // The retry sends it again: the repeat the idempotency key lets a receiver spot.
    assert_eq!(faulty.send(&d).await, Ok(()));
    assert_eq!(recorder.sent_count(&d.idempotency_key), 2);
    assert_eq!(recorder.repeated_keys(), vec![d.idempotency_key.clone()]);

    faulty.crash_next(1);
    assert!(matches!(
        faulty.send(&d).await,
        Err(SendError::Transient(_))
    ));
    assert_eq!(faulty.passed(), 3);
}

#[tokio::test]
async fn faulty_sender_scripted_failures_do_not_reach_the_inner_sender() {
    // Failures before the send (scripted, refused, outage) never send; a crash always does.
    let recorder = RecordingSender::new();
    let faulty = FaultySender::new(recorder.clone())
        .fail_first(1, transient())
        .crash_after_send(1)
        .delay(Duration::from_millis(20));
    let d = email("desk@happypaws.example");

    let started = std::time::Instant::now();
    assert_eq!(faulty.send(&d).await, Err(transient()));
    assert!(started.elapsed() >= Duration::from_millis(20));
    assert_eq!(recorder.sent_count(&d.idempotency_key), 0);
    assert!(matches!(
        faulty.send(&d).await,
        Err(SendError::Transient(_))
    ));
    assert_eq!(recorder.sent_count(&d.idempotency_key), 1);
    assert_eq!(faulty.send(&d).await, Ok(()));
    assert_eq!(recorder.sent_count(&d.idempotency_key), 2);
}
