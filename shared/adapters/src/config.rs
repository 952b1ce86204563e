//! Configuration, read from the environment in this one place.

use std::env;
use std::path::PathBuf;

use domain::conversation::rate_limit::{ClientRateLimits, Limit};

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

/// The store the local server runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalStore {
    /// DynamoDB, this table (`DYNAMODB_TABLE`).
    Dynamo(String),
    /// The embedded store on a file in this data directory (the default).
    File(PathBuf),
    /// The embedded store in memory: gone when the server stops (`--in-memory`).
    InMemory,
}

/// The local server's command-line choice of store, which wins over `DATA_DIR`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreFlags {
    /// `--data-dir DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--in-memory`.
    pub in_memory: bool,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// DynamoDB table. The Lambda functions need it; the local server uses the embedded store without it.
    pub table_name: Option<String>,
    /// `DATA_DIR` as set: where the local server keeps its data on the embedded store.
    pub data_dir: Option<PathBuf>,
    /// Where it keeps it when `DATA_DIR` is not set: `$XDG_DATA_HOME/vetchat`, else
    /// `~/.local/share/vetchat` (`None` when neither `XDG_DATA_HOME` nor `HOME` is set).
    pub default_data_dir: Option<PathBuf>,
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
    /// `TEXT_SENDER`: where the local server's text replies go, `record` (default) or `aws` (End User
    /// Messaging SMS and Social, endpoints from `AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2` and
    /// `AWS_ENDPOINT_URL_SOCIALMESSAGING`).
    pub text_sender: AlertSenderKind,
    /// `SMS_CONFIGURATION_SET`: the configuration set SMS replies are sent with (its SNS event destination
    /// reports their delivery).
    pub sms_configuration_set: Option<String>,
    /// `RUST_LOG`-style filter.
    pub log_filter: String,
    /// `AWS_CA_BUNDLE`: a PEM file of the certificate authorities the AWS clients trust instead of Amazon
    /// Trust Services' roots (see [`crate::aws`]).
    pub ca_bundle: Option<PathBuf>,
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` are set (always, in Lambda).
    pub credentials_in_environment: bool,
    /// `AWS_REGION` or `AWS_DEFAULT_REGION` is set (always, in Lambda).
    pub region_in_environment: bool,
    /// `WEBSOCKET_URL`: where clients connect for live updates (the tickets name it). Default: the local
    /// server's `ws://127.0.0.1:$PORT/ws`.
    pub websocket_url: String,
    /// `WEBSOCKET_CALLBACK_URL`: the WebSocket API's `@connections` endpoint (`https://…/<stage>`), which the
    /// fanout posts frames to. The SDK's own `AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI`, when set, wins
    /// (tests point it at a fake).
    pub websocket_callback_url: Option<String>,
    /// `CORS_ALLOW_ORIGINS`: the origins whose pages may call the local server from a browser (the clinics'
    /// sites with the web-chat widget), comma-separated; `*` (the default) for any, as the template's
    /// `CorsAllowOrigins` parameter. On AWS API Gateway answers CORS itself.
    pub cors_allow_origins: Vec<String>,
    /// What a client's app and web chat may send (`CLIENT_NEW_CONVERSATIONS_MAX` in
    /// `CLIENT_NEW_CONVERSATIONS_WINDOW_SECONDS`, `CLIENT_MESSAGES_MAX` in `CLIENT_MESSAGES_WINDOW_SECONDS`;
    /// default 3 in 600 s and 30 in 60 s).
    pub client_rate_limits: ClientRateLimits,
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
        let text_sender = match var("TEXT_SENDER").as_deref() {
            None | Some("record") => AlertSenderKind::Record,
            Some("aws") => AlertSenderKind::Aws,
            Some(other) => {
                return Err(ConfigError(format!(
                    "TEXT_SENDER={other:?}: use record or aws"
                )))
            }
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
        let defaults = ClientRateLimits::default();
        let limit = |max: &str, window: &str, default: Limit| -> Result<Limit, ConfigError> {
            let number = |name: &str, default: u32| match var(name) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        ConfigError(format!("{name}={v:?} is not a whole number above 0"))
                    }),
            };
            Ok(Limit {
                max: number(max, default.max)?,
                window_secs: number(window, default.window_secs)?,
            })
        };
        let client_rate_limits = ClientRateLimits {
            new_conversations: limit(
                "CLIENT_NEW_CONVERSATIONS_MAX",
                "CLIENT_NEW_CONVERSATIONS_WINDOW_SECONDS",
                defaults.new_conversations,
            )?,
            messages: limit(
                "CLIENT_MESSAGES_MAX",
                "CLIENT_MESSAGES_WINDOW_SECONDS",
                defaults.messages,
            )?,
        };
        Ok(Config {
            client_rate_limits,
            table_name: var("DYNAMODB_TABLE"),
            data_dir: var("DATA_DIR").map(PathBuf::from),
            default_data_dir: default_data_dir(
                var("XDG_DATA_HOME").as_deref(),
                var("HOME").as_deref(),
            ),
            port,
            local_jwt_secret: var("LOCAL_JWT_SECRET"),
            sender_email: var("SENDER_EMAIL"),
            dashboard_url: var("DASHBOARD_URL")
                .unwrap_or_else(|| "http://localhost:3000/dashboard".to_owned()),
            log_format,
            alert_sender,
            text_sender,
            sms_configuration_set: var("SMS_CONFIGURATION_SET"),
            log_filter: var("RUST_LOG").unwrap_or_else(|| "info".to_owned()),
            ca_bundle: var("AWS_CA_BUNDLE").map(PathBuf::from),
            credentials_in_environment: var("AWS_ACCESS_KEY_ID").is_some()
                && var("AWS_SECRET_ACCESS_KEY").is_some(),
            region_in_environment: var("AWS_REGION").is_some()
                || var("AWS_DEFAULT_REGION").is_some(),
            websocket_url: var("WEBSOCKET_URL")
                .unwrap_or_else(|| format!("ws://127.0.0.1:{port}/ws")),
            websocket_callback_url: match var("AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI") {
                Some(_) => None,
                None => var("WEBSOCKET_CALLBACK_URL"),
            },
            cors_allow_origins: var("CORS_ALLOW_ORIGINS")
                .unwrap_or_else(|| "*".to_owned())
                .split(',')
                .map(|o| o.trim().trim_end_matches('/').to_owned())
                .filter(|o| !o.is_empty())
                .collect(),
        })
    }

    /// The secret the local server signs and verifies its tokens with.
    pub fn local_server_jwt_secret(&self) -> &str {
        self.local_jwt_secret
            .as_deref()
            .unwrap_or(DEFAULT_LOCAL_JWT_SECRET)
    }

    /// The local server's store: `--in-memory` or `--data-dir` if given (not both, and neither beside
    /// `DYNAMODB_TABLE`), else DynamoDB if `DYNAMODB_TABLE` is set, else a file in `DATA_DIR` or the
    /// per-user default directory.
    pub fn local_store(&self, flags: &StoreFlags) -> Result<LocalStore, ConfigError> {
        match (&flags.data_dir, flags.in_memory, &self.table_name) {
            (Some(_), true, _) => Err(ConfigError::new(
                "--data-dir and --in-memory: choose one",
            )),
            (Some(_), _, Some(_)) | (_, true, Some(_)) => Err(ConfigError::new(
                "DYNAMODB_TABLE is set, so the server would use DynamoDB: unset it to use --data-dir or \
                 --in-memory",
            )),
            (Some(dir), false, None) => Ok(LocalStore::File(dir.clone())),
            (None, true, None) => Ok(LocalStore::InMemory),
            (None, false, Some(table)) => Ok(LocalStore::Dynamo(table.clone())),
            (None, false, None) => self
                .data_dir
                .clone()
                .or_else(|| self.default_data_dir.clone())
                .map(LocalStore::File)
                .ok_or_else(|| {
                    ConfigError::new(
                        "no data directory: neither HOME nor XDG_DATA_HOME is set; set DATA_DIR (or \
                         --data-dir DIR), or use --in-memory",
                    )
                }),
        }
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

/// The XDG base directory rule for user data: `$XDG_DATA_HOME` when it is an absolute path (the spec
/// ignores a relative one), else `$HOME/.local/share`; our directory `vetchat` inside it.
pub fn default_data_dir(xdg_data_home: Option<&str>, home: Option<&str>) -> Option<PathBuf> {
    let base = match xdg_data_home.map(PathBuf::from) {
        Some(xdg) if xdg.is_absolute() => xdg,
        _ => PathBuf::from(home?).join(".local/share"),
    };
    Some(base.join("vetchat"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(table: Option<&str>, data_dir: Option<&str>) -> Config {
        let mut c = Config::from_env().expect("configuration");
        c.table_name = table.map(str::to_owned);
        c.data_dir = data_dir.map(PathBuf::from);
        c.default_data_dir = Some(PathBuf::from("/home/vet/.local/share/vetchat"));
        c
    }

    #[test]
    fn the_default_data_directory_follows_xdg() {
        assert_eq!(
            default_data_dir(Some("/data/xdg"), Some("/home/vet")),
            Some(PathBuf::from("/data/xdg/vetchat"))
        );
        assert_eq!(
            default_data_dir(None, Some("/home/vet")),
            Some(PathBuf::from("/home/vet/.local/share/vetchat"))
        );
        // A relative XDG_DATA_HOME is ignored, as the spec says.
        assert_eq!(
            default_data_dir(Some("relative/dir"), Some("/home/vet")),
            Some(PathBuf::from("/home/vet/.local/share/vetchat"))
        );
        assert_eq!(default_data_dir(None, None), None);
    }

    #[test]
    fn flags_win_over_data_dir_and_conflicts_are_refused() {
        let none = StoreFlags::default();
        let dir = StoreFlags {
            data_dir: Some(PathBuf::from("/tmp/chosen")),
            in_memory: false,
        };
        let memory = StoreFlags {
            data_dir: None,
            in_memory: true,
        };
        assert_eq!(
            config(None, None).local_store(&none).unwrap(),
            LocalStore::File(PathBuf::from("/home/vet/.local/share/vetchat"))
        );
        assert_eq!(
            config(None, Some("/srv/vetchat"))
                .local_store(&none)
                .unwrap(),
            LocalStore::File(PathBuf::from("/srv/vetchat"))
        );
        assert_eq!(
            config(None, Some("/srv/vetchat"))
                .local_store(&dir)
                .unwrap(),
            LocalStore::File(PathBuf::from("/tmp/chosen"))
        );
        assert_eq!(
            config(None, Some("/srv/vetchat"))
                .local_store(&memory)
                .unwrap(),
            LocalStore::InMemory
        );
        assert_eq!(
            config(Some("vetchat"), Some("/srv/vetchat"))
                .local_store(&none)
                .unwrap(),
            LocalStore::Dynamo("vetchat".into())
        );
        assert!(config(Some("vetchat"), None).local_store(&dir).is_err());
        assert!(config(Some("vetchat"), None).local_store(&memory).is_err());
        let both = StoreFlags {
            data_dir: Some(PathBuf::from("/tmp/x")),
            in_memory: true,
        };
        assert!(config(None, None).local_store(&both).is_err());
        let mut homeless = config(None, None);
        homeless.default_data_dir = None;
        let refused = homeless.local_store(&none).unwrap_err().to_string();
        assert!(refused.contains("DATA_DIR"), "{refused}");
    }
}
