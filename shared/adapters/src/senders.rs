//! The alert senders behind `domain::alert::AlertSender`:
//!
//! - [`AwsSender`]: email through SES v2 `SendEmail`, SMS through SNS `Publish` (the Lambda functions);
//! - [`RecordingSender`]: records every delivery instead of sending it (the local server's default, and the
//!   source of `GET /_local/sent`);
//! - `FaultySender` (feature `test-support`): wraps another sender and fails on purpose, by a script
//!   (fault-injection tests).

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_sesv2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sns::operation::publish::PublishError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use chrono::{DateTime, Utc};
use domain::alert::{AlertKind, AlertSender, Delivery, DeliveryChannel, SendError};
use domain::conversation::{Channel, ConversationId, MessageId};
use domain::identity::DepartmentId;
use domain::store::TextRef;
use domain::texting::{OutboundText, SendOutcome, TextSender};
use serde::{Deserialize, Serialize};

/// The email header that carries a delivery's idempotency key, so a receiver can recognise a repeat.
pub const ALERT_KEY_HEADER: &str = "X-Vetchat-Alert-Key";

/// The longest one send may take, the SDK's own retries (standard mode: 3 attempts with backoff) included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest one attempt of a send may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(4);

// ---------------------------------------------------------------------------------------------------------
// AWS
// ---------------------------------------------------------------------------------------------------------

/// Email through SES v2 and SMS through SNS. Built once per cold start; cheap to clone. Each client is
/// built on its first send (an SDK client costs a share of a cold start, BENCHMARKS.md §1, and an invocation
/// of the alert dispatcher that carries only text replies, or only emails, needs one or none of them).
#[derive(Debug, Clone)]
pub struct AwsSender {
    sdk: SdkConfig,
    ses: Arc<OnceLock<aws_sdk_sesv2::Client>>,
    sns: Arc<OnceLock<aws_sdk_sns::Client>>,
    sender_email: String,
}

impl AwsSender {
    /// A sender on the shared SDK configuration (region, credentials, endpoints, the default retry
    /// config), the time of one send bounded by [`OPERATION_TIMEOUT`].
    pub fn new(sdk: &SdkConfig, sender_email: String) -> Self {
        AwsSender {
            sdk: sdk.clone(),
            ses: Default::default(),
            sns: Default::default(),
            sender_email,
        }
    }

    /// The shared timeouts with a send's own bounds.
    fn timeouts(&self) -> aws_config::timeout::TimeoutConfig {
        self.sdk
            .timeout_config()
            .map(|t| t.to_builder())
            .unwrap_or_default()
            .operation_timeout(OPERATION_TIMEOUT)
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .build()
    }

    fn ses(&self) -> &aws_sdk_sesv2::Client {
        self.ses.get_or_init(|| {
            let config = aws_sdk_sesv2::config::Builder::from(&self.sdk)
                .timeout_config(self.timeouts())
                .build();
            aws_sdk_sesv2::Client::from_conf(config)
        })
    }

    fn sns(&self) -> &aws_sdk_sns::Client {
        self.sns.get_or_init(|| {
            let config = aws_sdk_sns::config::Builder::from(&self.sdk)
                .timeout_config(self.timeouts())
                .build();
            aws_sdk_sns::Client::from_conf(config)
        })
    }

    /// The address alerts are sent from.
    pub fn sender_email(&self) -> &str {
        &self.sender_email
    }

    async fn send_email(&self, delivery: &Delivery) -> Result<(), SendError> {
        use aws_sdk_sesv2::types::{
            Body, Content, Destination, EmailContent, Message, MessageHeader,
        };

        let content = |data: &str| {
            Content::builder()
                .data(data)
                .charset("UTF-8")
                .build()
                .map_err(|e| {
                    SendError::Transient(format!("SES SendEmail: building the request: {e}"))
                })
        };
        let mut body = Body::builder().text(content(&delivery.text)?);
        if let Some(html) = &delivery.html {
            body = body.html(content(html)?);
        }
        // A header value is one line: keys are ours and never hold control characters, but be sure.
        let key: String = delivery
            .idempotency_key
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        let header = MessageHeader::builder()
            .name(ALERT_KEY_HEADER)
            .value(key)
            .build()
            .map_err(|e| {
                SendError::Transient(format!("SES SendEmail: building the request: {e}"))
            })?;
        let message = Message::builder()
            .subject(content(&delivery.subject)?)
            .body(body.build())
            .headers(header)
            .build();

        self.ses()
            .send_email()
            .from_email_address(&self.sender_email)
            .destination(Destination::builder().to_addresses(&delivery.to).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|err| {
                classify("SES SendEmail", err, |e| {
                    ses_refuses_recipient(e, &self.sender_email)
                })
            })
    }

    async fn send_sms(&self, delivery: &Delivery) -> Result<(), SendError> {
        use aws_sdk_sns::types::MessageAttributeValue;

        let transactional = MessageAttributeValue::builder()
            .data_type("String")
            .string_value("Transactional")
            .build()
            .map_err(|e| SendError::Transient(format!("SNS Publish: building the request: {e}")))?;
        self.sns()
            .publish()
            .phone_number(&delivery.to)
            .message(&delivery.text)
            .message_attributes("AWS.SNS.SMS.SMSType", transactional)
            .send()
            .await
            .map(|_| ())
            .map_err(|err| classify("SNS Publish", err, sns_refuses_recipient))
    }
}

#[async_trait::async_trait]
impl AlertSender for AwsSender {
    async fn send(&self, delivery: &Delivery) -> Result<(), SendError> {
        match delivery.channel {
            DeliveryChannel::Email => self.send_email(delivery).await,
            DeliveryChannel::Sms => self.send_sms(delivery).await,
        }
    }
}

// Error classification.
//
// `Permanent` means "this recipient or this message will never be accepted": the dispatcher records the
// delivery as failed and never tries it again. So it is kept for refusals that are about THIS delivery —
// an invalid address or phone number, a rejected message. Everything else is `Transient` and the alert stays
// pending: throttling, 5xx, timeouts, connection errors (the SDK has already retried those within the send),
// and also account- or configuration-level refusals (account suspended or sending paused, MAIL FROM domain or
// sender identity not verified, missing permissions, KMS, unknown error codes). Those are not the
// recipient's fault and every delivery would fail the same way; dropping them all would lose every alert
// until an operator noticed, while keeping them pending means they go out once the account is fixed (and the
// stuck alerts are the signal that something is wrong).

/// Maps an SDK error to a `SendError`: `Permanent` only for a service error that `refuses_recipient` says is
/// about this delivery.
fn classify<E>(
    op: &str,
    err: SdkError<E, HttpResponse>,
    refuses_recipient: impl FnOnce(&E) -> bool,
) -> SendError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let permanent = match &err {
        SdkError::ServiceError(service) => refuses_recipient(service.err()),
        // Timeouts, connection and I/O failures, unreadable responses, a request that could not be built.
        _ => false,
    };
    let what = format!("{op}: {}", DisplayErrorContext(&err));
    if permanent {
        SendError::Permanent(what)
    } else {
        SendError::Transient(what)
    }
}

/// SES refuses this recipient or this message for good.
fn ses_refuses_recipient(err: &SendEmailError, sender_email: &str) -> bool {
    let about_this_delivery = match err {
        // An invalid address or content (SES v2's 400 for bad input), or a message SES will not send
        // (content, a recipient not verified while the account is in the sandbox).
        SendEmailError::BadRequestException(_) | SendEmailError::MessageRejected(_) => true,
        SendEmailError::AccountSuspendedException(_)
        | SendEmailError::SendingPausedException(_)
        | SendEmailError::MailFromDomainNotVerifiedException(_)
        | SendEmailError::LimitExceededException(_)
        | SendEmailError::TooManyRequestsException(_)
        | SendEmailError::NotFoundException(_) => false,
        // SES v1's code for an invalid address (moto answers SES v2 with it too).
        other => other.code() == Some("InvalidParameterValue"),
    };
    // The same codes also say "the sender identity is not verified" (MessageRejected: "Email address is not
    // verified… sender@…") or "the From address is invalid": that is our configuration, not this recipient.
    // The error carries no field for it, so this is the one place that reads the message.
    about_this_delivery && !names(err.message(), sender_email)
}

/// SNS refuses this phone number or this message for good.
fn sns_refuses_recipient(err: &PublishError) -> bool {
    // Publish with an invalid (or, where SNS reports it, opted-out) number is `InvalidParameter`. Throttling,
    // `InternalError`, `AuthorizationError` (including the SMS sandbox), KMS and the rest are not.
    matches!(
        err,
        PublishError::InvalidParameterException(_)
            | PublishError::InvalidParameterValueException(_)
            | PublishError::ValidationException(_)
            | PublishError::EndpointDisabledException(_)
    )
}

fn names(message: Option<&str>, address: &str) -> bool {
    !address.is_empty()
        && message.is_some_and(|m| m.to_lowercase().contains(&address.to_lowercase()))
}

// ---------------------------------------------------------------------------------------------------------
// Recording
// ---------------------------------------------------------------------------------------------------------

/// One delivery as the recording sender took it: an entry of `GET /_local/sent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentAlert {
    pub kind: AlertKind,
    pub channel: DeliveryChannel,
    pub to: String,
    pub subject: String,
    /// The text part (the whole SMS).
    pub body: String,
    pub department_id: DepartmentId,
    pub conversation_ids: Vec<ConversationId>,
    /// When it was recorded.
    pub at: DateTime<Utc>,
}

/// One text to a client as the recording sender took it: a `kind: "reply"` entry of `GET /_local/sent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentReply {
    /// Always `"reply"`.
    pub kind: String,
    pub channel: Channel,
    pub to: String,
    pub from: String,
    pub body: String,
    pub department_id: DepartmentId,
    pub conversation_ids: Vec<ConversationId>,
    pub message_id: MessageId,
    /// Where the text is stored and its attempt, as the send's context carries them (what a status event
    /// names); not part of the documented entry.
    #[serde(skip)]
    pub text: Option<(TextRef, u32)>,
    pub at: DateTime<Utc>,
}

type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

#[derive(Default)]
struct Recorded {
    sent: Vec<SentAlert>,
    replies: Vec<SentReply>,
    /// What the tests inspect besides: every delivery as handed over, and how often each key was sent.
    #[cfg(feature = "test-support")]
    deliveries: Vec<Delivery>,
    #[cfg(feature = "test-support")]
    counts: std::collections::HashMap<String, usize>,
}

/// Records every delivery instead of sending it, oldest first. Clones share one record.
#[derive(Clone)]
pub struct RecordingSender {
    recorded: Arc<Mutex<Recorded>>,
    clock: Clock,
}

impl RecordingSender {
    /// Stamps each entry with the service clock (`adapters::now()`).
    pub fn new() -> Self {
        RecordingSender {
            recorded: Arc::default(),
            clock: Arc::new(crate::now),
        }
    }

    /// Stamps each entry with `clock()` (a test's fixed or stepped clock).
    #[cfg(feature = "test-support")]
    pub fn with_clock(clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        RecordingSender {
            clock: Arc::new(clock),
            ..Self::new()
        }
    }

    /// Every delivery taken, oldest first, in the shape of `GET /_local/sent`.
    pub fn sent(&self) -> Vec<SentAlert> {
        self.lock().sent.clone()
    }

    /// Every text to a client taken, oldest first (the `reply` entries of `GET /_local/sent`).
    pub fn replies(&self) -> Vec<SentReply> {
        self.lock().replies.clone()
    }

    /// Every delivery taken, as the dispatcher handed it over (HTML part and idempotency key included).
    #[cfg(feature = "test-support")]
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.lock().deliveries.clone()
    }

    /// How many times a delivery with this idempotency key was taken.
    #[cfg(feature = "test-support")]
    pub fn sent_count(&self, idempotency_key: &str) -> usize {
        self.lock()
            .counts
            .get(idempotency_key)
            .copied()
            .unwrap_or(0)
    }

    /// The idempotency keys taken more than once, sorted: empty when nothing was ever sent twice.
    #[cfg(feature = "test-support")]
    pub fn repeated_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .lock()
            .counts
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        keys
    }

    /// Forgets everything taken so far.
    #[cfg(feature = "test-support")]
    pub fn clear(&self) {
        *self.lock() = Recorded::default();
    }

    fn lock(&self) -> MutexGuard<'_, Recorded> {
        // Nothing panics while holding the lock; a poisoned one still holds consistent data.
        self.recorded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Default for RecordingSender {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for RecordingSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingSender")
            .field("sent", &self.lock().sent.len())
            .finish()
    }
}

#[async_trait::async_trait]
impl AlertSender for RecordingSender {
    async fn send(&self, delivery: &Delivery) -> Result<(), SendError> {
        let at = (self.clock)();
        let mut recorded = self.lock();
        recorded.sent.push(SentAlert {
            kind: delivery.kind,
            channel: delivery.channel,
            to: delivery.to.clone(),
            subject: delivery.subject.clone(),
            body: delivery.text.clone(),
            department_id: delivery.department_id.clone(),
            conversation_ids: delivery.conversation_ids.clone(),
            at,
        });
        #[cfg(feature = "test-support")]
        {
            recorded.deliveries.push(delivery.clone());
            *recorded
                .counts
                .entry(delivery.idempotency_key.clone())
                .or_default() += 1;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl TextSender for RecordingSender {
    async fn send(&self, text: &OutboundText) -> SendOutcome {
        let at = (self.clock)();
        self.lock().replies.push(SentReply {
            kind: "reply".into(),
            channel: text.channel,
            to: text.to.clone(),
            from: text.from.clone(),
            body: text.body.clone(),
            department_id: text.department_id.clone(),
            conversation_ids: vec![text.conversation_id.clone()],
            message_id: text.message_id.clone(),
            text: Some((text.text.clone(), text.attempt)),
            at,
        });
        SendOutcome::Sent {
            provider_id: Some(format!("local-{}", text.message_id)),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Fault injection
// ---------------------------------------------------------------------------------------------------------
#[cfg(feature = "test-support")]
pub use faulty::FaultySender;

#[cfg(feature = "test-support")]
mod faulty {
    use std::collections::{HashSet, VecDeque};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex, MutexGuard};
    use std::time::Duration;

    use domain::alert::{AlertSender, Delivery, SendError};

    #[derive(Default)]
    struct Script {
        /// Failures handed out to the next calls, in order, without calling the inner sender.
        fail_next: VecDeque<SendError>,
        /// Recipients refused for good.
        refused: HashSet<String>,
        /// How many of the next sends that reach the inner sender are then reported as failed.
        crash_next: usize,
        /// How long each call waits before doing anything.
        delay: Option<Duration>,
    }

    /// Wraps another sender and fails on purpose, by a script. Clones share the script, so a test keeps one
    /// clone to steer the one it handed to the dispatcher.
    ///
    /// Each call, in this order: waits the [`delay`](Self::delay); fails `Transient` during an
    /// [`outage`](Self::outage); fails `Permanent` for a [refused](Self::refuse) recipient; hands out the next
    /// scripted failure ([`fail_first`](Self::fail_first)); otherwise sends through the inner sender, and then,
    /// while [`crash_after_send`](Self::crash_after_send) has some left, reports `Transient` although the message
    /// went out (as if the process died before recording the outcome).
    #[derive(Clone)]
    pub struct FaultySender {
        inner: Arc<dyn AlertSender>,
        script: Arc<Mutex<Script>>,
        outage: Arc<AtomicBool>,
        calls: Arc<AtomicUsize>,
        passed: Arc<AtomicUsize>,
    }

    impl FaultySender {
        pub fn new(inner: impl AlertSender + 'static) -> Self {
            Self::wrap(Arc::new(inner))
        }

        pub fn wrap(inner: Arc<dyn AlertSender>) -> Self {
            FaultySender {
                inner,
                script: Arc::default(),
                outage: Arc::default(),
                calls: Arc::default(),
                passed: Arc::default(),
            }
        }

        /// The next `n` calls fail with `error` (after any failures already scripted).
        pub fn fail_first(self, n: usize, error: SendError) -> Self {
            self.fail_next(n, error);
            self
        }

        /// Every send to `to` fails `Permanent`.
        pub fn refuse(self, to: impl Into<String>) -> Self {
            self.lock().refused.insert(to.into());
            self
        }

        /// The next `n` sends that reach the inner sender go out, and are then reported `Transient`.
        pub fn crash_after_send(self, n: usize) -> Self {
            self.crash_next(n);
            self
        }

        /// Each call waits `delay` first (a slow provider).
        pub fn delay(self, delay: Duration) -> Self {
            self.lock().delay = Some(delay);
            self
        }

        /// Switches an outage on or off: while on, every call fails `Transient` and nothing reaches the inner
        /// sender.
        pub fn outage(&self, on: bool) {
            self.outage.store(on, Ordering::SeqCst);
        }

        /// At run time: the next `n` calls fail with `error`.
        pub fn fail_next(&self, n: usize, error: SendError) {
            self.lock().fail_next.extend(std::iter::repeat_n(error, n));
        }

        /// At run time: the next `n` sends that reach the inner sender are reported `Transient` after going out.
        pub fn crash_next(&self, n: usize) {
            self.lock().crash_next += n;
        }

        /// How many times `send` was called.
        pub fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }

        /// How many sends reached the inner sender and succeeded there (crashes included).
        pub fn passed(&self) -> usize {
            self.passed.load(Ordering::SeqCst)
        }

        fn lock(&self) -> MutexGuard<'_, Script> {
            self.script
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }
    }

    impl std::fmt::Debug for FaultySender {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("FaultySender")
                .field("calls", &self.calls())
                .field("passed", &self.passed())
                .field("outage", &self.outage.load(Ordering::SeqCst))
                .finish_non_exhaustive()
        }
    }

    #[async_trait::async_trait]
    impl AlertSender for FaultySender {
        async fn send(&self, delivery: &Delivery) -> Result<(), SendError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let delay = self.lock().delay;
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            if self.outage.load(Ordering::SeqCst) {
                return Err(SendError::Transient("provider outage (injected)".into()));
            }
            {
                let mut script = self.lock();
                if script.refused.contains(&delivery.to) {
                    return Err(SendError::Permanent(format!(
                        "{} refused (injected)",
                        delivery.to
                    )));
                }
                if let Some(error) = script.fail_next.pop_front() {
                    return Err(error);
                }
            }
            self.inner.send(delivery).await?;
            self.passed.fetch_add(1, Ordering::SeqCst);
            let mut script = self.lock();
            if script.crash_next > 0 {
                script.crash_next -= 1;
                return Err(SendError::Transient(
                    "crashed after sending, before recording (injected)".into(),
                ));
            }
            Ok(())
        }
    }
}
