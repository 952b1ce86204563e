//! The fake End User Messaging server (`vetchat_tests::fake_texting`) as the real SDK clients see it: the
//! requests it records are the ones the clients made, and each refusal it answers arrives as the SDK's own
//! typed error (so code written against the fake handles what AWS answers).

use std::time::Duration;

use aws_sdk_pinpointsmsvoicev2::operation::send_text_message::SendTextMessageError;
use aws_sdk_pinpointsmsvoicev2::types::{ConflictExceptionReason, MessageType};
use aws_sdk_socialmessaging::operation::send_whats_app_message::SendWhatsAppMessageError;
use aws_smithy_types::Blob;
use serde_json::json;
use vetchat_tests::fake_texting::{Behaviour, FakeTexting};

async fn sdk_config(fake: &FakeTexting, attempts: u32) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_pinpointsmsvoicev2::config::Credentials::new(
            "local", "local", None, None, "test",
        ))
        .endpoint_url(&fake.url)
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(attempts))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_millis(500))
                .build(),
        )
        .load()
        .await
}

fn send_sms(
    client: &aws_sdk_pinpointsmsvoicev2::Client,
    to: &str,
) -> aws_sdk_pinpointsmsvoicev2::operation::send_text_message::builders::SendTextMessageFluentBuilder
{
    client
        .send_text_message()
        .destination_phone_number(to)
        .origination_identity("+12015550100")
        .message_body("Rex is ready to go home.")
        .message_type(MessageType::Transactional)
        .configuration_set_name("vetchat-replies")
        .context("message", "PRACTICE#p1/CONV#c1/7")
}

#[tokio::test]
async fn sms_sends_are_recorded_as_the_sdk_made_them() {
    let fake = FakeTexting::start().await;
    let client = aws_sdk_pinpointsmsvoicev2::Client::new(&sdk_config(&fake, 1).await);

    let sent = send_sms(&client, "+12015550123")
        .send()
        .await
        .expect("sent");

    let requests = fake.sms();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.destination, "+12015550123");
    assert_eq!(request.origination.as_deref(), Some("+12015550100"));
    assert_eq!(request.body.as_deref(), Some("Rex is ready to go home."));
    assert_eq!(request.message_type.as_deref(), Some("TRANSACTIONAL"));
    assert_eq!(
        request.configuration_set.as_deref(),
        Some("vetchat-replies")
    );
    assert_eq!(request.context["message"], "PRACTICE#p1/CONV#c1/7");
    assert!(request.signed, "the SDK signs its requests");
    assert_eq!(sent.message_id(), request.message_id.as_deref());
    assert!(fake.rejected().is_empty(), "{:?}", fake.rejected());
}

#[tokio::test]
async fn sms_refusals_arrive_as_the_sdks_typed_errors() {
    let fake = FakeTexting::start().await;
    let client = aws_sdk_pinpointsmsvoicev2::Client::new(&sdk_config(&fake, 1).await);
    fake.set("+12015550001", Behaviour::OptedOut);
    fake.set("+12015550002", Behaviour::Throttle);
    fake.set("+12015550003", Behaviour::ServerError);
    fake.set("+12015550004", Behaviour::Invalid);

    let opted_out = send_sms(&client, "+12015550001").send().await.unwrap_err();
    match opted_out.into_service_error() {
        SendTextMessageError::ConflictException(e) => assert_eq!(
            e.reason(),
            Some(&ConflictExceptionReason::DestinationPhoneNumberOptedOut)
        ),
        other => panic!("expected the opted-out conflict, got {other:?}"),
    }
    let throttled = send_sms(&client, "+12015550002").send().await.unwrap_err();
    assert!(
        matches!(
            throttled.into_service_error(),
            SendTextMessageError::ThrottlingException(_)
        ),
        "throttling"
    );
    let failed = send_sms(&client, "+12015550003").send().await.unwrap_err();
    assert!(matches!(
        failed.into_service_error(),
        SendTextMessageError::InternalServerException(_)
    ));
    let invalid = send_sms(&client, "+12015550004").send().await.unwrap_err();
    assert!(matches!(
        invalid.into_service_error(),
        SendTextMessageError::ValidationException(_)
    ));
    // Each refused request is recorded once, without a message id.
    assert_eq!(fake.sms().len(), 4);
    assert!(fake.sms().iter().all(|r| r.message_id.is_none()));
}

#[tokio::test]
async fn an_outage_fails_the_next_requests_and_the_sdks_retry_gets_through_after_it() {
    let fake = FakeTexting::start().await;
    let client = aws_sdk_pinpointsmsvoicev2::Client::new(&sdk_config(&fake, 3).await);
    fake.outage(Behaviour::ServerError, 2);

    let sent = send_sms(&client, "+12015550123")
        .send()
        .await
        .expect("sent on the third attempt");

    let requests = fake.sms();
    assert_eq!(requests.len(), 3, "two failed attempts, then the one taken");
    assert_eq!(requests[2].message_id.as_deref(), sent.message_id());
}

#[tokio::test]
async fn a_stalled_send_times_out_at_the_client_though_the_fake_took_it() {
    let fake = FakeTexting::start().await;
    let client = aws_sdk_pinpointsmsvoicev2::Client::new(&sdk_config(&fake, 1).await);
    fake.set("+12015550123", Behaviour::Stall);

    let error = send_sms(&client, "+12015550123").send().await.unwrap_err();

    assert!(
        matches!(
            error,
            aws_sdk_pinpointsmsvoicev2::error::SdkError::TimeoutError(_)
        ),
        "{error:?}"
    );
    // The ambiguous case a sender must record as unconfirmed: the provider has the request.
    assert_eq!(fake.sms().len(), 1);
}

#[tokio::test]
async fn whatsapp_sends_are_decoded_and_refusals_typed() {
    let fake = FakeTexting::start().await;
    let client = aws_sdk_socialmessaging::Client::new(&sdk_config(&fake, 1).await);
    let message = json!({
        "messaging_product": "whatsapp",
        "to": "+12015550123",
        "type": "text",
        "text": {"body": "Rex is ready to go home."},
    });
    let send = |client: &aws_sdk_socialmessaging::Client| {
        client
            .send_whats_app_message()
            .origination_phone_number_id("phone-number-id-0123456789abcdef0123456789abcdef")
            .meta_api_version("v20.0")
            .message(Blob::new(message.to_string().into_bytes()))
    };

    let sent = send(&client).send().await.expect("sent");
    fake.set("+12015550123", Behaviour::Throttle);
    let throttled = send(&client).send().await.unwrap_err();

    let requests = fake.whatsapp();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].origination_phone_number_id,
        "phone-number-id-0123456789abcdef0123456789abcdef"
    );
    assert_eq!(requests[0].meta_api_version.as_deref(), Some("v20.0"));
    assert_eq!(requests[0].to(), Some("+12015550123"));
    assert_eq!(requests[0].text(), Some("Rex is ready to go home."));
    assert_eq!(requests[0].message_id.as_deref(), sent.message_id());
    assert!(requests[0].signed);
    assert!(matches!(
        throttled.into_service_error(),
        SendWhatsAppMessageError::ThrottledRequestException(_)
    ));
    assert!(fake.rejected().is_empty(), "{:?}", fake.rejected());
}
