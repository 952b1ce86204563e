//! The text sender behind `domain::texting::TextSender` on AWS: SMS through End User Messaging SMS
//! (`SendTextMessage`, from the practice number, with the configuration set whose event destination reports
//! delivery), WhatsApp through End User Messaging Social (`SendWhatsAppMessage`, Meta's message JSON).
//!
//! Neither API takes an idempotency token, so a send is made once: the clients' retries are off, and every
//! answer is sorted into what it means for the owner. A timeout, a 5xx or an unreadable answer may follow a
//! send the provider took: `unconfirmed`, never repeated without a staff retry. A refusal is `failed` with
//! its reason (the opted-out `ConflictException` as `opted_out`). The SMS send's `Context` and the WhatsApp
//! message's `biz_opaque_callback_data` carry the text's address and attempt, which the provider echoes
//! into the delivery events and statuses.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_pinpointsmsvoicev2::error::SdkError;
use aws_sdk_pinpointsmsvoicev2::operation::send_text_message::SendTextMessageError;
use aws_sdk_pinpointsmsvoicev2::types::{ConflictExceptionReason, MessageType};
use aws_sdk_socialmessaging::operation::send_whats_app_message::SendWhatsAppMessageError;
use aws_sdk_socialmessaging::primitives::Blob;
use domain::conversation::{Channel, FailureReason};
use domain::texting::{OutboundText, SendOutcome, TextSender};
use serde_json::json;

/// The longest one send may take; past it the outcome is unknown (`unconfirmed`).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// The Meta Graph API version the WhatsApp messages are written for.
const META_API_VERSION: &str = "v20.0";

/// The `Context` keys of an SMS send (echoed into its delivery events), the domain's.
pub use domain::texting::context;

/// SMS and WhatsApp replies. Cheap to clone. Its two SDK clients are built on the first send, once per
/// process: the alert dispatcher and the sweep, which hold one, mostly run without sending a text, and a
/// client's construction is a measurable part of a cold start's init (BENCHMARKS.md §1).
#[derive(Debug, Clone)]
pub struct AwsTextSender {
    sdk: SdkConfig,
    clients: std::sync::Arc<std::sync::OnceLock<Clients>>,
    configuration_set: Option<String>,
}

#[derive(Debug)]
struct Clients {
    sms: aws_sdk_pinpointsmsvoicev2::Client,
    whatsapp: aws_sdk_socialmessaging::Client,
}

impl Clients {
    /// From the shared SDK configuration, with retries off (a send is made once) and the time of a send
    /// bounded by [`SEND_TIMEOUT`].
    fn new(sdk: &SdkConfig) -> Self {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .operation_timeout(SEND_TIMEOUT)
            .operation_attempt_timeout(SEND_TIMEOUT)
            .build();
        let once = aws_config::retry::RetryConfig::disabled();
        let sms = aws_sdk_pinpointsmsvoicev2::config::Builder::from(sdk)
            .retry_config(once.clone())
            .timeout_config(timeouts.clone())
            .build();
        let whatsapp = aws_sdk_socialmessaging::config::Builder::from(sdk)
            .retry_config(once)
            .timeout_config(timeouts)
            .build();
        Clients {
            sms: aws_sdk_pinpointsmsvoicev2::Client::from_conf(sms),
            whatsapp: aws_sdk_socialmessaging::Client::from_conf(whatsapp),
        }
    }
}

impl AwsTextSender {
    /// A sender on the shared SDK configuration (its clients built on the first send).
    pub fn new(sdk: &SdkConfig, configuration_set: Option<String>) -> Self {
        AwsTextSender {
            sdk: sdk.clone(),
            clients: Default::default(),
            configuration_set,
        }
    }

    fn clients(&self) -> &Clients {
        self.clients.get_or_init(|| Clients::new(&self.sdk))
    }

    async fn send_sms(&self, text: &OutboundText) -> SendOutcome {
        let answer = self
            .clients()
            .sms
            .send_text_message()
            .destination_phone_number(&text.to)
            .origination_identity(&text.from)
            .message_body(&text.body)
            .message_type(MessageType::Transactional)
            .set_configuration_set_name(self.configuration_set.clone())
            .context(context::PRACTICE, text.text.practice_id.as_str())
            .context(context::CONVERSATION, text.text.conversation_id.0.as_str())
            .context(context::SEQ, text.text.seq.to_string())
            .context(context::ATTEMPT, text.attempt.to_string())
            .send()
            .await;
        match answer {
            Ok(out) => SendOutcome::Sent {
                provider_id: out.message_id,
            },
            Err(err) => {
                let outcome = sorted(&err, |e| match e {
                    SendTextMessageError::ConflictException(c)
                        if c.reason()
                            == Some(&ConflictExceptionReason::DestinationPhoneNumberOptedOut) =>
                    {
                        Some(SendOutcome::Refused(FailureReason::OptedOut))
                    }
                    SendTextMessageError::ThrottlingException(_) => {
                        Some(SendOutcome::Refused(FailureReason::ThrottledTooLong))
                    }
                    SendTextMessageError::ValidationException(_) => {
                        Some(SendOutcome::Refused(FailureReason::InvalidNumber))
                    }
                    SendTextMessageError::InternalServerException(_) => {
                        Some(SendOutcome::Unconfirmed)
                    }
                    _ => None,
                });
                tracing::warn!(error = %aws_sdk_pinpointsmsvoicev2::error::DisplayErrorContext(&err), ?outcome, "SMS reply not sent");
                outcome
            }
        }
    }

    async fn send_whatsapp(&self, text: &OutboundText) -> SendOutcome {
        let message = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": text.to,
            "type": "text",
            "text": {"preview_url": false, "body": text.body},
            // Echoed by Meta into every status of this message: the reply's address and attempt.
            "biz_opaque_callback_data": domain::whatsapp::callback_data(text),
        });
        let answer = self
            .clients()
            .whatsapp
            .send_whats_app_message()
            .origination_phone_number_id(&text.from)
            .meta_api_version(META_API_VERSION)
            .message(Blob::new(message.to_string().into_bytes()))
            .send()
            .await;
        match answer {
            Ok(out) => SendOutcome::Sent {
                provider_id: out.message_id,
            },
            Err(err) => {
                let outcome = sorted(&err, |e| match e {
                    SendWhatsAppMessageError::ThrottledRequestException(_) => {
                        Some(SendOutcome::Refused(FailureReason::ThrottledTooLong))
                    }
                    SendWhatsAppMessageError::InvalidParametersException(_) => {
                        Some(SendOutcome::Refused(FailureReason::InvalidNumber))
                    }
                    SendWhatsAppMessageError::InternalServiceException(_) => {
                        Some(SendOutcome::Unconfirmed)
                    }
                    _ => None,
                });
                tracing::warn!(error = %aws_sdk_socialmessaging::error::DisplayErrorContext(&err), ?outcome, "WhatsApp reply not sent");
                outcome
            }
        }
    }
}

/// What a failed call means for the owner: the service's error as `service` sorts it (any other refusal:
/// `provider_error`); a timeout or an unreadable answer: unknown; a request that never left: refused.
fn sorted<E, R>(
    err: &SdkError<E, R>,
    service: impl FnOnce(&E) -> Option<SendOutcome>,
) -> SendOutcome {
    match err {
        SdkError::ServiceError(se) => {
            service(se.err()).unwrap_or(SendOutcome::Refused(FailureReason::ProviderError))
        }
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => SendOutcome::Unconfirmed,
        SdkError::DispatchFailure(d) if d.is_timeout() || d.is_io() => SendOutcome::Unconfirmed,
        _ => SendOutcome::Refused(FailureReason::ProviderError),
    }
}

#[async_trait::async_trait]
impl TextSender for AwsTextSender {
    async fn send(&self, text: &OutboundText) -> SendOutcome {
        match text.channel {
            Channel::Sms => self.send_sms(text).await,
            Channel::Whatsapp => self.send_whatsapp(text).await,
            // Only texted conversations carry a delivery.
            Channel::App | Channel::Web => SendOutcome::Refused(FailureReason::ProviderError),
        }
    }
}
