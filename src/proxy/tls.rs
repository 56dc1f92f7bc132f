//! TLS to upstreams: a service whose protocol is https speaks HTTP/1.1 over rustls. As
//! Kong by default (tls_verify unset leaves nginx's proxy_ssl_verify off), the upstream's
//! certificate is not checked, though its handshake signature is; with tls_verify true
//! it must chain to the Mozilla roots (webpki-roots) and name the host. The SNI is the
//! host the upstream is sent in Host, as Kong's `proxy_ssl_name $upstream_host`.

use std::io;
use std::net::Ipv4Addr;
use std::sync::{Arc, LazyLock};

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::crypto::{self, CryptoProvider, WebPkiSupportedAlgorithms};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use tokio_rustls::TlsConnector;

/// How one request's upstream connection is secured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsTarget {
    /// The name sent as SNI and, when verifying, checked against the certificate. An IP
    /// address sends no SNI.
    pub server_name: ServerName<'static>,
    pub verify: bool,
    /// False when the name is the client's (a route that preserves Host): such
    /// connections are closed after use, so that clients sending ever new names cannot
    /// make this node hold ever more upstream connections.
    pub pooled: bool,
}

impl TlsTarget {
    /// For the host the upstream is sent (a Host value: a port, if any, comes off). A
    /// value that is neither a DNS name nor an address still gets TLS, never the clear:
    /// without SNI, and refused if verifying, since no certificate can name it.
    pub fn for_host(host: &str, verify: bool) -> TlsTarget {
        TlsTarget::named(host, verify).unwrap_or(TlsTarget { server_name: ServerName::IpAddress(Ipv4Addr::UNSPECIFIED.into()), verify, pooled: true })
    }

    /// As `for_host`, or None for a value that names nothing.
    pub fn named(host: &str, verify: bool) -> Option<TlsTarget> {
        let host = match host.rsplit_once(':') {
            Some((name, port)) if !name.ends_with(']') && !name.contains(':') && port.parse::<u16>().is_ok() => name,
            Some((name, port)) if name.ends_with(']') && port.parse::<u16>().is_ok() => name,
            _ => host,
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(host.to_owned()).ok().map(|server_name| TlsTarget { server_name, verify, pooled: true })
    }

    /// What tells its pooled connections apart from others to the same address.
    pub fn pool_key(&self, addr: &str) -> String {
        let name = match &self.server_name {
            ServerName::DnsName(name) => name.as_ref().to_owned(),
            other => format!("{other:?}"),
        };
        format!("https://{addr}#{name}#{}", if self.verify { "verify" } else { "trust" })
    }
}

/// ring's provider: it builds with a C compiler alone, where aws-lc-rs (rustls's choice
/// for post-quantum key exchange, hence ring's deprecation) needs cmake on every build
/// machine. Its classical suites are what Kong's nginx offers upstreams too.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(crypto::ring::default_provider())
}

fn config(verify: bool) -> Arc<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions().expect("ring supports the default versions");
    let mut config = if verify {
        let roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        let algorithms = provider().signature_verification_algorithms;
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyCertificate(algorithms))).with_no_client_auth()
    };
    // The exchange on top is ours, HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

static VERIFYING: LazyLock<TlsConnector> = LazyLock::new(|| TlsConnector::from(config(true)));
static TRUSTING: LazyLock<TlsConnector> = LazyLock::new(|| TlsConnector::from(config(false)));

/// The TLS handshake on a new upstream connection.
pub async fn handshake(tcp: TcpStream, target: &TlsTarget) -> io::Result<TlsStream<TcpStream>> {
    let connector = if target.verify { &*VERIFYING } else { &*TRUSTING };
    connector.connect(target.server_name.clone(), tcp).await
}

/// Kong's default: any certificate is taken, as nginx does without proxy_ssl_verify.
/// The handshake's signatures are still checked, so the peer holds the key it shows.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(&self, _: &CertificateDer<'_>, _: &[CertificateDer<'_>], _: &ServerName<'_>, _: &[u8], _: UnixTime) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, Error> {
        crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, Error> {
        crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
