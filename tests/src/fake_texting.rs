//! A small fake of the two AWS End User Messaging send APIs, speaking their wire protocols, because moto has
//! neither service:
//!
//! - SMS (`sms-voice`, crate `aws-sdk-pinpointsmsvoicev2`): awsJson1_0, `POST /` with
//!   `X-Amz-Target: PinpointSMSVoiceV2.SendTextMessage`, answering `{"MessageId"}`;
//! - WhatsApp (`social-messaging`, crate `aws-sdk-socialmessaging`): restJson1, `POST /v1/whatsapp/send` with
//!   `{"originationPhoneNumberId", "metaApiVersion", "message": <base64 of Meta's message JSON>}`, answering
//!   `{"messageId"}`.
//!
//! It records every request it got (decoded), answers each destination as told (throttling, the opted-out
//! refusal `ConflictException` / `DESTINATION_PHONE_NUMBER_OPTED_OUT`, a 5xx, a stall), and can fail the next
//! few requests whatever their destination (an outage). Point the real SDK clients at it with the SDKs' own
//! `AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2` and `AWS_ENDPOINT_URL_SOCIALMESSAGING` (see [`FakeTexting::env`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

/// How the fake answers a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// 200 with a new message id.
    Accept,
    /// The service's throttling error (SMS `ThrottlingException`, WhatsApp `ThrottledRequestException`).
    Throttle,
    /// SMS: 400 `ConflictException` with reason `DESTINATION_PHONE_NUMBER_OPTED_OUT` (the number sent STOP
    /// to the provider). WhatsApp has no such refusal: answered as `Accept`.
    OptedOut,
    /// SMS: 400 `ValidationException` (reason `INVALID_PARAMETER`): a number the provider refuses for good.
    /// WhatsApp: 400 `InvalidParametersException`.
    Invalid,
    /// 500 (SMS `InternalServerException`, WhatsApp `InternalServiceException`).
    ServerError,
    /// Takes the request, then answers only after 60 s (longer than any client waits): the send's outcome is
    /// unknown to the caller although the fake recorded it.
    Stall,
}

/// One `SendTextMessage` request as the fake decoded it.
#[derive(Debug, Clone, PartialEq)]
pub struct SmsRequest {
    pub destination: String,
    pub origination: Option<String>,
    pub body: Option<String>,
    pub message_type: Option<String>,
    pub configuration_set: Option<String>,
    /// The `Context` pairs, which the provider echoes into the delivery events.
    pub context: BTreeMap<String, String>,
    /// The message id the fake answered with (None when it answered an error or stalled).
    pub message_id: Option<String>,
    pub signed: bool,
    /// When the request reached the fake (what the reply-latency benchmark measures to).
    pub received_at: chrono::DateTime<chrono::Utc>,
}

/// One `SendWhatsAppMessage` request as the fake decoded it.
#[derive(Debug, Clone, PartialEq)]
pub struct WhatsAppRequest {
    pub origination_phone_number_id: String,
    pub meta_api_version: Option<String>,
    /// Meta's message object (decoded from the base64 blob): `{"messaging_product", "to", "type", "text"}`.
    pub message: Value,
    pub message_id: Option<String>,
    pub signed: bool,
}

impl WhatsAppRequest {
    /// The recipient as Meta's message names it (digits, maybe with a `+`).
    pub fn to(&self) -> Option<&str> {
        self.message.get("to").and_then(Value::as_str)
    }

    /// The text of a free-form text message.
    pub fn text(&self) -> Option<&str> {
        self.message.pointer("/text/body").and_then(Value::as_str)
    }
}

#[derive(Default)]
struct Inner {
    /// Per destination (an E.164 number; for WhatsApp the message's `to`, with or without `+`).
    behaviours: HashMap<String, Behaviour>,
    /// An outage: the next requests, whatever their destination, answer this (consumed one per request).
    outage: Vec<Behaviour>,
    sms: Vec<SmsRequest>,
    whatsapp: Vec<WhatsAppRequest>,
    /// Requests the fake could not make sense of (an unknown target or path, a body that is not the shape).
    rejected: Vec<String>,
    next_id: u64,
}

impl Inner {
    fn behaviour_for(&mut self, destination: &str) -> Behaviour {
        if !self.outage.is_empty() {
            return self.outage.remove(0);
        }
        let bare = destination.trim_start_matches('+');
        self.behaviours
            .get(destination)
            .or_else(|| self.behaviours.get(bare))
            .or_else(|| self.behaviours.get(&format!("+{bare}")))
            .copied()
            .unwrap_or(Behaviour::Accept)
    }

    fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{:012}", self.next_id)
    }
}

/// The fake server, on a loopback port of its own.
#[derive(Clone)]
pub struct FakeTexting {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeTexting {
    pub async fn start() -> FakeTexting {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/", post(sms_voice))
            .route("/v1/whatsapp/send", post(send_whatsapp))
            .fallback(unknown)
            .with_state(inner.clone());
        let url = crate::serve_on_loopback(app).await;
        FakeTexting { url, inner }
    }

    /// The SDKs' endpoint variables that send both services' requests here.
    pub fn env(&self) -> [(&'static str, String); 2] {
        [
            ("AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2", self.url.clone()),
            ("AWS_ENDPOINT_URL_SOCIALMESSAGING", self.url.clone()),
        ]
    }

    /// Sends to `destination` are answered as `behaviour` from now on (default: `Accept`).
    pub fn set(&self, destination: &str, behaviour: Behaviour) {
        self.inner
            .lock()
            .unwrap()
            .behaviours
            .insert(destination.to_owned(), behaviour);
    }

    /// The service's own sender (`adapters::texting::AwsTextSender`, the real SDK clients) sending here,
    /// with the configuration set `vetchat-replies`.
    pub async fn aws_sender(&self) -> adapters::texting::AwsTextSender {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_pinpointsmsvoicev2::config::Credentials::new(
                "local", "local", None, None, "test",
            ))
            .endpoint_url(&self.url)
            .load()
            .await;
        adapters::texting::AwsTextSender::new(&sdk, Some("vetchat-replies".into()))
    }

    /// The next `requests` sends, whatever their destination, are answered as `behaviour`.
    pub fn outage(&self, behaviour: Behaviour, requests: usize) {
        self.inner
            .lock()
            .unwrap()
            .outage
            .extend(std::iter::repeat_n(behaviour, requests));
    }

    /// Every SendTextMessage request so far, in order (also the refused and stalled ones).
    pub fn sms(&self) -> Vec<SmsRequest> {
        self.inner.lock().unwrap().sms.clone()
    }

    /// Every SendWhatsAppMessage request so far, in order.
    pub fn whatsapp(&self) -> Vec<WhatsAppRequest> {
        self.inner.lock().unwrap().whatsapp.clone()
    }

    /// Requests that were neither operation's shape (a test usually asserts this is empty).
    pub fn rejected(&self) -> Vec<String> {
        self.inner.lock().unwrap().rejected.clone()
    }
}

fn signed(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("AWS4-HMAC-SHA256"))
}

/// An error as both protocols carry it: the type in `x-amzn-errortype` (restJson1) and `__type` (awsJson1_0).
fn error(status: StatusCode, kind: &str, fields: Value) -> Response {
    let mut body = json!({"__type": kind, "message": format!("fake {kind}")});
    if let (Some(body), Some(fields)) = (body.as_object_mut(), fields.as_object()) {
        body.extend(fields.clone());
    }
    (
        status,
        [
            ("x-amzn-errortype", kind),
            ("content-type", "application/x-amz-json-1.0"),
        ],
        body.to_string(),
    )
        .into_response()
}

fn field(body: &Value, name: &str) -> Option<String> {
    body.get(name).and_then(Value::as_str).map(str::to_owned)
}

async fn sms_voice(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let (Some(parsed), "PinpointSMSVoiceV2.SendTextMessage") = (parsed, target.as_str()) else {
        inner.lock().unwrap().rejected.push(format!(
            "sms-voice {target}: {}",
            String::from_utf8_lossy(&body)
        ));
        return error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            json!({}),
        );
    };
    let Some(destination) = field(&parsed, "DestinationPhoneNumber") else {
        inner
            .lock()
            .unwrap()
            .rejected
            .push(format!("SendTextMessage without a destination: {parsed}"));
        return error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            json!({"Reason": "MISSING_PARAMETER"}),
        );
    };
    let context = parsed
        .get("Context")
        .and_then(Value::as_object)
        .map(|pairs| {
            pairs
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let (behaviour, message_id) = {
        let mut inner = inner.lock().unwrap();
        let behaviour = inner.behaviour_for(&destination);
        let message_id = (behaviour == Behaviour::Accept).then(|| inner.new_id("sms"));
        inner.sms.push(SmsRequest {
            destination,
            origination: field(&parsed, "OriginationIdentity"),
            body: field(&parsed, "MessageBody"),
            message_type: field(&parsed, "MessageType"),
            configuration_set: field(&parsed, "ConfigurationSetName"),
            context,
            message_id: message_id.clone(),
            signed: signed(&headers),
            received_at: chrono::Utc::now(),
        });
        (behaviour, message_id)
    };
    match behaviour {
        Behaviour::Accept => (
            StatusCode::OK,
            [("content-type", "application/x-amz-json-1.0")],
            json!({"MessageId": message_id}).to_string(),
        )
            .into_response(),
        Behaviour::Throttle => error(StatusCode::BAD_REQUEST, "ThrottlingException", json!({})),
        Behaviour::OptedOut => error(
            StatusCode::BAD_REQUEST,
            "ConflictException",
            json!({
                "Reason": "DESTINATION_PHONE_NUMBER_OPTED_OUT",
                "ResourceType": "opt-out-list",
                "ResourceId": "Default",
            }),
        ),
        Behaviour::Invalid => error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            json!({"Reason": "INVALID_PARAMETER"}),
        ),
        Behaviour::ServerError => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerException",
            json!({}),
        ),
        Behaviour::Stall => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerException",
                json!({}),
            )
        }
    }
}

async fn send_whatsapp(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    use base64::Engine as _;
    let decoded = serde_json::from_slice::<Value>(&body).ok().and_then(|b| {
        let origination = field(&b, "originationPhoneNumberId")?;
        let blob = base64::engine::general_purpose::STANDARD
            .decode(b.get("message")?.as_str()?)
            .ok()?;
        let message: Value = serde_json::from_slice(&blob).ok()?;
        Some((origination, field(&b, "metaApiVersion"), message))
    });
    let Some((origination, meta_api_version, message)) = decoded else {
        inner.lock().unwrap().rejected.push(format!(
            "SendWhatsAppMessage of another shape: {}",
            String::from_utf8_lossy(&body)
        ));
        return error(StatusCode::BAD_REQUEST, "ValidationException", json!({}));
    };
    let to = message
        .get("to")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let (behaviour, message_id) = {
        let mut inner = inner.lock().unwrap();
        let behaviour = match inner.behaviour_for(&to) {
            Behaviour::OptedOut => Behaviour::Accept,
            other => other,
        };
        let message_id = (behaviour == Behaviour::Accept).then(|| inner.new_id("wa"));
        inner.whatsapp.push(WhatsAppRequest {
            origination_phone_number_id: origination,
            meta_api_version,
            message,
            message_id: message_id.clone(),
            signed: signed(&headers),
        });
        (behaviour, message_id)
    };
    match behaviour {
        Behaviour::Accept | Behaviour::OptedOut => (
            StatusCode::OK,
            [("content-type", "application/json")],
            json!({"messageId": message_id}).to_string(),
        )
            .into_response(),
        Behaviour::Throttle => error(
            StatusCode::TOO_MANY_REQUESTS,
            "ThrottledRequestException",
            json!({}),
        ),
        Behaviour::Invalid => error(
            StatusCode::BAD_REQUEST,
            "InvalidParametersException",
            json!({}),
        ),
        Behaviour::ServerError => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServiceException",
            json!({}),
        ),
        Behaviour::Stall => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServiceException",
                json!({}),
            )
        }
    }
}

async fn unknown(State(inner): State<Arc<Mutex<Inner>>>, uri: axum::http::Uri) -> Response {
    inner
        .lock()
        .unwrap()
        .rejected
        .push(format!("unknown path {uri}"));
    error(
        StatusCode::NOT_FOUND,
        "UnknownOperationException",
        json!({}),
    )
}
