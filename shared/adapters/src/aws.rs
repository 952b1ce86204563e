//! AWS SDK clients, built once per cold start. Endpoints for local emulators come from the SDK's own
//! `AWS_ENDPOINT_URL_<SERVICE>` variables, so there is no endpoint plumbing here.
//!
//! # Retries and timeouts (chosen here, for every client built from [`sdk_config`])
//!
//! A function answers behind API Gateway (30 s integration timeout) with a Lambda timeout of 10 s
//! (`template.yaml`), and one request makes two or three DynamoDB calls in sequence. So one DynamoDB
//! operation, retries included, must end well inside a few seconds, and a store that keeps failing must
//! turn into a 503 `unavailable` long before Lambda kills the invocation:
//!
//! | setting | value | why |
//! |---|---|---|
//! | retry mode | standard | retries throttling (`ThrottlingException`, `ProvisionedThroughputExceededException`), 5xx and timeouts, with a retry quota (token bucket) that stops retrying when most calls fail |
//! | max attempts | [`MAX_ATTEMPTS`] (4) | three retries absorb a short throttling burst |
//! | backoff | full jitter from [`INITIAL_BACKOFF`] (50 ms) doubling up to [`MAX_BACKOFF`] (1 s) | DynamoDB throttling clears in tens of milliseconds; waiting seconds would only eat the request's budget |
//! | connect timeout | [`CONNECT_TIMEOUT`] (1 s) | in-region connects take milliseconds |
//! | attempt timeout | [`ATTEMPT_TIMEOUT`] (1.5 s) | a DynamoDB call takes milliseconds; a stuck attempt is abandoned and retried |
//! | operation timeout | [`OPERATION_TIMEOUT`] (4 s) | the whole call, retries included: two in a row still fit the Lambda's 10 s |
//!
//! Retrying a write is safe: `TransactWriteItems` carries a `ClientRequestToken` the SDK fills once per
//! operation (so every attempt repeats it), and the store recognises its own earlier write when a
//! conditional write finds it already applied (`tests/tests/api/faults.rs` drives all of this through a proxy
//! that throttles, fails and drops responses on purpose). The alert senders keep their own, longer
//! timeouts (`senders::ATTEMPT_TIMEOUT`, `senders::OPERATION_TIMEOUT`) and this retry policy.
//!
//! # Trusted certificate authorities
//!
//! The functions speak HTTPS to AWS only (DynamoDB, SES, SNS, STS), and every AWS endpoint's certificate
//! chains to an Amazon Trust Services root. So the HTTPS client trusts those five roots
//! (`certs/amazon-trust-services.pem`, compiled in) instead of the platform's ~150: a certificate from any
//! other authority is refused, and a cold start no longer reads and decodes the system bundle, which was a
//! third of a function's init (BENCHMARKS.md §1). `AWS_CA_BUNDLE` (the AWS CLI's variable) replaces them
//! with a PEM file, for an HTTPS endpoint signed by another authority (a TLS-inspecting proxy, an emulator
//! served over HTTPS). The default client's `HTTPS_PROXY` support is not carried over: Lambda reaches AWS
//! directly or through VPC endpoints.

use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

use crate::config::{Config, ConfigError};
use crate::store::DynamoStore;

/// Attempts of one SDK operation (the first and three retries).
pub const MAX_ATTEMPTS: u32 = 4;
/// The first retry waits up to this (full jitter), each further one up to twice as long...
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(50);
/// ...but never more than this.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// The longest a new connection may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest one attempt may take, from sending the request to reading the whole response.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1500);
/// The longest one operation may take, every attempt and backoff included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(4);

/// The retry policy of every client (see the table above).
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(INITIAL_BACKOFF)
        .with_max_backoff(MAX_BACKOFF)
}

/// The timeouts of every client (see the table above).
pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// The root certificates of Amazon Trust Services (Amazon Root CA 1–4, Starfield Services Root G2).
pub const AMAZON_TRUST_SERVICES_ROOTS: &[u8] = include_bytes!("../certs/amazon-trust-services.pem");

/// The HTTPS client of every SDK client (and of the credentials providers): rustls on aws-lc, as the SDK's
/// default, trusting [`AMAZON_TRUST_SERVICES_ROOTS`] or the PEM bundle of `AWS_CA_BUNDLE`.
pub fn https_client(config: &Config) -> Result<SharedHttpClient, ConfigError> {
    let roots = match &config.ca_bundle {
        None => AMAZON_TRUST_SERVICES_ROOTS.to_vec(),
        Some(path) => {
            let bad =
                |why: String| ConfigError::new(format!("AWS_CA_BUNDLE={}: {why}", path.display()));
            let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            check_trust_anchors(&pem).map_err(bad)?;
            pem
        }
    };
    let trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(roots);
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|e| ConfigError::new(format!("TLS settings: {e}")))?;
    let client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context)
        .build_https();
    Ok(SharedHttpClient::new(ConnectorOnFirstRequest(client)))
}

/// The SDK's HTTPS client, its connectors built when a request first needs one and kept (per timeout
/// settings), as the SDK does, but without the warm-up it adds at every SDK client's construction:
/// `validate_base_client_config` builds a whole TLS connector and drops it, so that the platform's roots load
/// at start. Here the roots are compiled in, and each of those throwaway connectors decoded the five PEM
/// roots again: a quarter of alert-dispatcher's start-up instructions with three clients (BENCHMARKS.md §1).
#[derive(Debug)]
struct ConnectorOnFirstRequest(SharedHttpClient);

impl HttpClient for ConnectorOnFirstRequest {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

/// At least one certificate, each usable as a trust anchor: what the HTTPS client will need of the bundle.
fn check_trust_anchors(pem: &[u8]) -> Result<(), String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("not a PEM certificate bundle ({e})"))?;
        roots
            .add(cert)
            .map_err(|e| format!("a certificate that cannot be trusted ({e})"))?;
    }
    if roots.is_empty() {
        return Err("no PEM certificate in the file".to_owned());
    }
    Ok(())
}

/// The shared SDK configuration: region, credentials and endpoints from the environment, the retry and
/// timeout settings from here (they win over `AWS_MAX_ATTEMPTS` / `AWS_RETRY_MODE`), the HTTPS client of
/// [`https_client`].
pub async fn sdk_config(config: &Config) -> Result<SdkConfig, ConfigError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client(config)?)
        .retry_config(retry_config())
        .timeout_config(timeout_config());
    // Where the environment has them (Lambda always sets both), the default chains would take them from
    // there first anyway; naming that provider spares the cold start building the chains' other providers
    // (profile files, web identity with its STS client, ECS, IMDS): ~0.25 ms of a ~2.7 ms init
    // (BENCHMARKS.md §1).
    if config.credentials_in_environment {
        loader = loader.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        );
    }
    if config.region_in_environment {
        loader = loader.region(aws_config::environment::EnvironmentVariableRegionProvider::new());
    }
    Ok(loader.load().await)
}

/// The DynamoDB store on the configured table. Each function keeps it as the store traits its IAM policy
/// lets it use (`Arc<dyn SettingsStore>`, ...).
pub async fn dynamo_store(
    sdk: &SdkConfig,
    config: &Config,
) -> Result<Arc<DynamoStore>, ConfigError> {
    let table = config.require_table()?;
    let client = aws_sdk_dynamodb::Client::new(sdk);
    Ok(Arc::new(DynamoStore::new(client, table)))
}
