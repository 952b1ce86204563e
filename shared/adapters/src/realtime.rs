//! Frames to API Gateway WebSocket connections: `PostToConnection` on the WebSocket API's `@connections`
//! endpoint (`aws-sdk-apigatewaymanagement`), the client built once per cold start, on the first post.
//!
//! Frames are nudges (the REST cursor is the truth), so a post gets one retry at most and a short
//! timeout: a stalled connection must not hold up the others, nor the stream batch. A `GoneException`
//! (410) is [`PostOutcome::Gone`], and the domain deletes that connection; anything else is logged and
//! dropped.

use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_apigatewaymanagement::error::DisplayErrorContext;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use domain::realtime::{ConnectionId, ConnectionPoster, PostOutcome};

/// One post, its retry included.
pub const POST_TIMEOUT: Duration = Duration::from_secs(2);
/// One attempt of a post.
pub const POST_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(900);

/// `@connections` through the SDK. The client is built on the first post: a fanout batch that concerns no
/// open connection (most, in a practice with nobody online) never needs it, and an SDK client is a share of
/// a cold start (BENCHMARKS.md §1).
pub struct ApiGatewayPoster {
    sdk: SdkConfig,
    callback_url: Option<String>,
    client: std::sync::OnceLock<aws_sdk_apigatewaymanagement::Client>,
}

impl ApiGatewayPoster {
    /// `callback_url` is the WebSocket API's `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`;
    /// `None` leaves the endpoint to the SDK (`AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI`).
    pub fn new(sdk: &SdkConfig, callback_url: Option<&str>) -> Self {
        ApiGatewayPoster {
            sdk: sdk.clone(),
            callback_url: callback_url.map(str::to_owned),
            client: std::sync::OnceLock::new(),
        }
    }

    fn client(&self) -> &aws_sdk_apigatewaymanagement::Client {
        self.client.get_or_init(|| {
            let mut conf = aws_sdk_apigatewaymanagement::config::Builder::from(&self.sdk)
                .retry_config(crate::aws::retry_config().with_max_attempts(2))
                .timeout_config(
                    aws_config::timeout::TimeoutConfig::builder()
                        .connect_timeout(crate::aws::CONNECT_TIMEOUT)
                        .operation_attempt_timeout(POST_ATTEMPT_TIMEOUT)
                        .operation_timeout(POST_TIMEOUT)
                        .build(),
                );
            if let Some(url) = &self.callback_url {
                conf = conf.endpoint_url(url);
            }
            aws_sdk_apigatewaymanagement::Client::from_conf(conf.build())
        })
    }
}

#[async_trait]
impl ConnectionPoster for ApiGatewayPoster {
    async fn post(&self, connection: &ConnectionId, frame: &str) -> PostOutcome {
        let result = self
            .client()
            .post_to_connection()
            .connection_id(connection.as_str())
            .data(Blob::new(frame.as_bytes()))
            .send()
            .await;
        match result {
            Ok(_) => PostOutcome::Delivered,
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(PostToConnectionError::GoneException(_))
                ) =>
            {
                PostOutcome::Gone
            }
            Err(e) => {
                tracing::warn!(connection = %connection, error = %DisplayErrorContext(&e), "a frame was not posted (frames are nudges: not retried)");
                PostOutcome::Failed(e.to_string())
            }
        }
    }
}
