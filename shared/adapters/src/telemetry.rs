//! Tracing: JSON lines for CloudWatch in Lambda, readable text locally.

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

pub fn init(config: &Config) {
    let filter = EnvFilter::try_new(&config.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // try_init: tests and the local server may call this more than once per process.
    let _ = match config.log_format {
        LogFormat::Json => builder
            .json()
            .with_current_span(false)
            .without_time()
            .try_init(),
        LogFormat::Text => builder.compact().try_init(),
    };
}
