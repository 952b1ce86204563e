//! Which certificate authorities the AWS clients trust (`adapters::aws`): Amazon Trust Services' roots,
//! compiled in, or the PEM bundle of `AWS_CA_BUNDLE` instead; never the platform's store.
//!
//! Checked over real TLS: a TLS front for DynamoDB Local serves a certificate of a test authority made
//! here, and the platform's store is made to trust that authority (`SSL_CERT_FILE`, which the SDK's
//! default client reads), so only the service's own trust store can refuse it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once, OnceLock};

use adapters::aws::{sdk_config, AMAZON_TRUST_SERVICES_ROOTS};
use adapters::config::Config;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// The test authority and a certificate it issued for `localhost`.
struct TestAuthority {
    ca_file: std::path::PathBuf,
    leaf: CertificateDer<'static>,
    leaf_key: Vec<u8>,
}

fn authority() -> &'static TestAuthority {
    static AUTHORITY: OnceLock<TestAuthority> = OnceLock::new();
    AUTHORITY.get_or_init(|| {
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "vetchat tls_trust test authority");
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key"))
            .expect("self-signed CA");
        let leaf_key = KeyPair::generate().expect("server key");
        let leaf = CertificateParams::new(vec!["localhost".to_owned()])
            .expect("server parameters")
            .signed_by(&leaf_key, &ca)
            .expect("server certificate");
        let ca_file = std::env::temp_dir().join(format!(
            "vetchat-test-ca-{}.pem",
            ulid::Ulid::new().to_string().to_lowercase()
        ));
        std::fs::write(&ca_file, ca.pem()).expect("write the test CA");
        TestAuthority {
            ca_file,
            leaf: leaf.der().clone(),
            leaf_key: leaf_key.serialize_der(),
        }
    })
}

/// The platform trusts the test authority from here on: the SDK's default client (rustls-native-certs)
/// honours `SSL_CERT_FILE`. Set once, before any client of this process is built.
fn platform_trusts_the_test_authority() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var("SSL_CERT_FILE", &authority().ca_file);
        std::env::remove_var("SSL_CERT_DIR");
        std::env::remove_var("AWS_CA_BUNDLE");
    });
}

/// A TLS front for DynamoDB Local on `https://localhost:<port>`, counting handshakes.
struct TlsFront {
    endpoint: String,
    completed: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
}

async fn tls_front() -> TlsFront {
    let upstream: SocketAddr = vetchat_tests::dynamo_endpoint()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("AWS_ENDPOINT_URL_DYNAMODB is http://<ip>:<port>");
    let a = authority();
    let config = ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![a.leaf.clone()],
        PrivateKeyDer::Pkcs8(a.leaf_key.clone().into()),
    )
    .expect("server certificate");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let (completed, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (done, no) = (Arc::clone(&completed), Arc::clone(&refused));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (acceptor, done, no) = (acceptor.clone(), Arc::clone(&done), Arc::clone(&no));
            tokio::spawn(async move {
                match acceptor.accept(client).await {
                    Ok(mut tls) => {
                        done.fetch_add(1, Ordering::SeqCst);
                        let mut ddb = TcpStream::connect(upstream).await.expect("DynamoDB Local");
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut ddb).await;
                    }
                    // The client refused the certificate (or gave up).
                    Err(_) => {
                        no.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    TlsFront {
        endpoint: format!("https://localhost:{port}"),
        completed,
        refused,
    }
}

async fn list_tables(
    sdk: &aws_config::SdkConfig,
    endpoint: &str,
) -> Result<
    (),
    aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::list_tables::ListTablesError>,
> {
    let conf = aws_sdk_dynamodb::config::Builder::from(sdk)
        .endpoint_url(endpoint)
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
        .list_tables()
        .limit(1)
        .send()
        .await
        .map(|_| ())
}

#[tokio::test]
async fn a_certificate_of_another_authority_is_refused_though_the_platform_trusts_it() {
    platform_trusts_the_test_authority();
    let front = tls_front().await;

    // The control: the SDK's default client trusts the platform's store, so it gets through.
    let default_sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    list_tables(&default_sdk, &front.endpoint)
        .await
        .expect("the SDK's default client trusts SSL_CERT_FILE's authority");
    assert_eq!(front.completed.load(Ordering::SeqCst), 1);

    // The service's clients trust Amazon Trust Services only.
    let config = Config::from_env().expect("configuration");
    let sdk = sdk_config(&config).await.expect("SDK configuration");
    let err = list_tables(&sdk, &front.endpoint)
        .await
        .expect_err("a certificate outside Amazon Trust Services must be refused");
    assert!(
        matches!(err, aws_sdk_dynamodb::error::SdkError::DispatchFailure(_)),
        "expected a connection failure, got {err:?}"
    );
    let chain = format!("{err:?}");
    assert!(
        chain.contains("UnknownIssuer"),
        "the failure names the certificate's issuer: {chain}"
    );
    assert!(front.refused.load(Ordering::SeqCst) >= 1);
    assert_eq!(
        front.completed.load(Ordering::SeqCst),
        1,
        "no handshake completed"
    );
}

#[tokio::test]
async fn aws_ca_bundle_replaces_the_trusted_authorities() {
    platform_trusts_the_test_authority();
    let front = tls_front().await;
    // As `AWS_CA_BUNDLE=<file>` sets it (the environment is left alone: tests of this file share it).
    let mut config = Config::from_env().expect("configuration");
    config.ca_bundle = Some(authority().ca_file.clone());

    let sdk = sdk_config(&config).await.expect("SDK configuration");
    list_tables(&sdk, &front.endpoint)
        .await
        .expect("the bundle's authority is trusted");
    assert_eq!(front.completed.load(Ordering::SeqCst), 1);
    assert_eq!(front.refused.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_unreadable_ca_bundle_is_a_configuration_error_at_start() {
    let mut config = Config::from_env().expect("configuration");
    config.ca_bundle = Some("/nonexistent/vetchat-ca.pem".into());
    let err = sdk_config(&config)
        .await
        .expect_err("a missing bundle stops the start");
    assert!(
        err.to_string()
            .contains("AWS_CA_BUNDLE=/nonexistent/vetchat-ca.pem"),
        "{err}"
    );
}

#[tokio::test]
async fn a_ca_bundle_without_usable_certificates_is_a_configuration_error_at_start() {
    let dir = std::env::temp_dir();
    for (name, content, expected) in [
        ("empty", "", "no PEM certificate in the file"),
        (
            "text",
            "not a certificate\n",
            "no PEM certificate in the file",
        ),
        (
            "garbled",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "a certificate that cannot be trusted",
        ),
    ] {
        let path = dir.join(format!(
            "vetchat-ca-{name}-{}.pem",
            ulid::Ulid::new().to_string().to_lowercase()
        ));
        std::fs::write(&path, content).expect("write the bundle");
        let mut config = Config::from_env().expect("configuration");
        config.ca_bundle = Some(path.clone());
        let err = sdk_config(&config)
            .await
            .expect_err("an unusable bundle stops the start");
        assert!(
            err.to_string()
                .contains(&format!("AWS_CA_BUNDLE={}", path.display()))
                && err.to_string().contains(expected),
            "{name}: {err}"
        );
        let _ = std::fs::remove_file(path);
    }
}

/// The compiled-in roots are exactly Amazon Trust Services' five, as published at
/// https://www.amazontrust.com/repository/ (SHA-256 fingerprints of the DER certificates).
#[test]
fn the_compiled_in_roots_are_amazon_trust_services() {
    let fingerprints: Vec<String> = CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES_ROOTS)
        .map(|cert| {
            let cert = cert.expect("a PEM certificate");
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &cert)
                .as_ref()
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect()
        })
        .collect();
    assert_eq!(
        fingerprints,
        [
            // Amazon Root CA 1
            "8ECDE6884F3D87B1125BA31AC3FCB13D7016DE7F57CC904FE1CB97C6AE98196E",
            // Amazon Root CA 2
            "1BA5B2AA8C65401A82960118F80BEC4F62304D83CEC4713A19C39C011EA46DB4",
            // Amazon Root CA 3
            "18CE6CFE7BF14E60B2E347B8DFE868CB31D02EBB3ADA271569F50343B46DB3A4",
            // Amazon Root CA 4
            "E35D28419ED02025CFA69038CD623962458DA5C695FBDEA3C22B0BFB25897092",
            // Starfield Services Root Certificate Authority - G2
            "568D6905A2C88708A4B3025190EDCFEDB1974A606A13C6E5290FCB2AE63EDAB5",
        ]
    );
}
