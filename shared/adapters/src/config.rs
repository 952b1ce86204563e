//! Configuration, read from the environment in this one place.

use std::env;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for CloudWatch.
    Json,
    /// Human-readable, for a terminal.
    Text,
}

/// Where the local server's alerts go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertSenderKind {
    /// Recorded in memory and shown at `GET /_local/sent` (the default).
    Record,
    /// Sent through SES v2 and SNS (endpoints from the SDK's `AWS_ENDPOINT_URL_*` variables).
    Aws,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// DynamoDB table. The Lambda functions need it; the local server uses the embedded store without it.
    pub table_name: Option<String>,
    /// Local server port (`PORT`, default 3000).
    pub port: u16,
    /// `LOCAL_JWT_SECRET` as set: the HS256 secret local tokens are signed with. The local server falls back
    /// to [`DEFAULT_LOCAL_JWT_SECRET`]; a Lambda function verifies local tokens only when it is set
    /// (`cargo lambda watch`, see Cargo.toml), never on AWS, where the template does not set it.
    pub local_jwt_secret: Option<String>,
    /// Sender address of alert emails (`SENDER_EMAIL`).
    pub sender_email: Option<String>,
    /// Base URL of the staff dashboard, for links in alerts (`DASHBOARD_URL`).
    pub dashboard_url: String,
    pub log_format: LogFormat,
    /// `ALERT_SENDER`: `record` (default) or `aws`.
    pub alert_sender: AlertSenderKind,
    /// `RUST_LOG`-style filter.
    pub log_filter: String,
    /// `AWS_CA_BUNDLE`: a PEM file of the certificate authorities the AWS clients trust instead of Amazon
    /// Trust Services' roots (see [`crate::aws`]).
    pub ca_bundle: Option<PathBuf>,
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` are set (always, in Lambda).
    pub credentials_in_environment: bool,
    /// `AWS_REGION` or `AWS_DEFAULT_REGION` is set (always, in Lambda).
    pub region_in_environment: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        ConfigError(message.into())
    }
}

pub const DEFAULT_LOCAL_JWT_SECRET: &str = "local-dev-secret";

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        let var = |name: &str| env::var(name).ok().filter(|v| !v.trim().is_empty());
        let port = match var("PORT") {
            None => 3000,
            Some(p) => p
                .parse()
                .map_err(|_| ConfigError(format!("PORT={p:?} is not a port number")))?,
        };
        let in_lambda = var("AWS_LAMBDA_FUNCTION_NAME").is_some();
        let log_format = match var("LOG_FORMAT").as_deref() {
            Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(other) => {
                return Err(ConfigError(format!(
                    "LOG_FORMAT={other:?}: use json or text"
                )))
            }
            None if in_lambda => LogFormat::Json,
            None => LogFormat::Text,
        };
        let alert_sender = match var("ALERT_SENDER").as_deref() {
            None | Some("record") => AlertSenderKind::Record,
            Some("aws") => AlertSenderKind::Aws,
            Some(other) => {
                return Err(ConfigError(format!(
                    "ALERT_SENDER={other:?}: use record or aws"
                )))
            }
        };
        Ok(Config {
            table_name: var("DYNAMODB_TABLE"),
            port,
            local_jwt_secret: var("LOCAL_JWT_SECRET"),
            sender_email: var("SENDER_EMAIL"),
            dashboard_url: var("DASHBOARD_URL")
                .unwrap_or_else(|| "http://localhost:3000/dashboard".to_owned()),
            log_format,
            alert_sender,
            log_filter: var("RUST_LOG").unwrap_or_else(|| "info".to_owned()),
            ca_bundle: var("AWS_CA_BUNDLE").map(PathBuf::from),
            credentials_in_environment: var("AWS_ACCESS_KEY_ID").is_some()
                && var("AWS_SECRET_ACCESS_KEY").is_some(),
            region_in_environment: var("AWS_REGION").is_some()
                || var("AWS_DEFAULT_REGION").is_some(),
        })
    }

    /// The secret the local server signs and verifies its tokens with.
    pub fn local_server_jwt_secret(&self) -> &str {
        self.local_jwt_secret
            .as_deref()
            .unwrap_or(DEFAULT_LOCAL_JWT_SECRET)
    }

    /// The sender address of alert emails, required by the functions that send alerts.
    pub fn require_sender_email(&self) -> Result<&str, ConfigError> {
        self.sender_email
            .as_deref()
            .ok_or_else(|| ConfigError("SENDER_EMAIL is not set".into()))
    }

    /// The table name, required by the Lambda functions.
    pub fn require_table(&self) -> Result<&str, ConfigError> {
        self.table_name
            .as_deref()
            .ok_or_else(|| ConfigError("DYNAMODB_TABLE is not set".into()))
    }
}
