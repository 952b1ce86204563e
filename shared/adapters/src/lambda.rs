//! What every Lambda entry does once per cold start, written once: configuration from the environment,
//! telemetry, the shared SDK configuration, the DynamoDB store and, for the entries that send alerts, the
//! SES/SNS sender; then serving the runtime's invocations, every one of them with what was built here.
//!
//! ```ignore
//! let start = ColdStart::new().await?;
//! start.serve_http(config_api::router(start.store())).await          // an HTTP function
//! serve_events(state, |state, event: SnsEvent| handle(state, event)).await   // any other trigger
//! ```

use std::future::Future;
use std::sync::Arc;

use aws_config::SdkConfig;
use axum::Router;
use lambda_http::lambda_runtime::{self, service_fn, LambdaEvent};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::{Config, ConfigError};
use crate::senders::AwsSender;
use crate::store::DynamoStore;

/// What an entry's `main` and handlers fail with (the runtime reports it as the invocation's error).
pub use lambda_runtime::Error;

/// What a Lambda entry builds before its first invocation. Each entry keeps the store as the traits of
/// `domain::store` its IAM policy in `template.yaml` lets it use.
pub struct ColdStart {
    pub config: Config,
    /// Region, credentials, endpoints, retries, timeouts and trusted authorities of every AWS client.
    pub sdk: SdkConfig,
    store: Arc<DynamoStore>,
}

impl ColdStart {
    /// Reads the configuration (`DYNAMODB_TABLE` is required), starts telemetry, loads the SDK
    /// configuration and builds the store.
    pub async fn new() -> Result<Self, ConfigError> {
        let config = Config::from_env()?;
        crate::telemetry::init(&config);
        let sdk = crate::aws::sdk_config(&config).await?;
        let store = crate::aws::dynamo_store(&sdk, &config).await?;
        Ok(ColdStart { config, sdk, store })
    }

    /// The store on the configured table (one client for the process, shared by every invocation).
    pub fn store(&self) -> Arc<DynamoStore> {
        self.store.clone()
    }

    /// What an entry that sends alerts holds: `store`, email through SES v2 and SMS through SNS from
    /// `SENDER_EMAIL` (required), and the dashboard's address for the links.
    pub fn alerting<S: ?Sized>(&self, store: Arc<S>) -> Result<Alerting<S>, ConfigError> {
        let from = self.config.require_sender_email()?;
        Ok(Alerting {
            store,
            sender: AwsSender::new(&self.sdk, from.to_owned()),
            dashboard_url: self.config.dashboard_url.clone(),
        })
    }

    /// The SMS and WhatsApp sender of text replies (retries off; `SMS_CONFIGURATION_SET` when set).
    pub fn text_sender(&self) -> crate::texting::AwsTextSender {
        crate::texting::AwsTextSender::new(&self.sdk, self.config.sms_configuration_set.clone())
    }

    /// Serves an HTTP function's router behind API Gateway (HTTP API, payload 2.0), identity from the JWT
    /// authorizer's claims (or local tokens under `cargo lambda watch`, see `auth::lambda_router`).
    pub async fn serve_http(&self, router: Router) -> Result<(), Error> {
        lambda_http::run(crate::auth::lambda_router(router, &self.config)).await
    }
}

/// The state of an entry that sends alerts (alert-dispatcher, eod-reminder).
pub struct Alerting<S: ?Sized> {
    /// The store, as the traits the entry's IAM policy lets it use.
    pub store: Arc<S>,
    pub sender: AwsSender,
    /// The base of the links in alerts (`DASHBOARD_URL`).
    pub dashboard_url: String,
}

/// Serves an entry of another trigger (SNS, a DynamoDB stream, an EventBridge schedule): each event,
/// deserialised as `E`, is handed to `handle` with `state`. The state is built once and lives as long as
/// the process, so handlers borrow it. An event that is not an `E` is refused as an invocation error.
pub async fn serve_events<S, E, R, F, Fut>(state: S, handle: F) -> Result<(), Error>
where
    S: Send + Sync + 'static,
    E: DeserializeOwned,
    R: Serialize,
    F: Fn(&'static S, E) -> Fut,
    Fut: Future<Output = Result<R, Error>>,
{
    let state: &'static S = Box::leak(Box::new(state));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<E>| {
        handle(state, event.payload)
    }))
    .await
}
