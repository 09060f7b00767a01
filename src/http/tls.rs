//! TLS (`--tls-cert`, `--tls-key`): rustls with ring, HTTP/1.1 and HTTP/2 chosen by ALPN
//! on the same port (gRPC: `h2`), and the certificate files read again when they change
//! (cert-manager rotates them in place): new handshakes get the new certificate, open
//! connections keep theirs. A pair that does not load (a half-written rotation, a key that
//! does not match) is logged and the previous one kept.

use std::convert::Infallible;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use hyper::body::{Body, Incoming};
use hyper::server::conn::{http1, http2};
use hyper::service::HttpService;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ServerConfig;
use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::conn::Graceful;
use super::negotiate::Builders;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Largest certificate chain or key file read (they are a few KB).
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// The certificate and key files, and the pair loaded from them.
#[derive(Debug)]
pub struct Certs {
    cert: PathBuf,
    key: PathBuf,
    current: ArcSwap<CertifiedKey>,
    /// The files' modification times and sizes when last loaded.
    seen: std::sync::Mutex<[(Option<SystemTime>, u64); 2]>,
}

fn stamp(path: &Path) -> (Option<SystemTime>, u64) {
    std::fs::metadata(path).map_or((None, 0), |m| (m.modified().ok(), m.len()))
}

fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("{what} {}: {e}", path.display()))?
        .len();
    if len > MAX_PEM_BYTES {
        return Err(format!(
            "{what} {} is {len} bytes: a PEM file of a certificate chain or key is a few KB",
            path.display()
        ));
    }
    std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

/// Loads and checks the pair: a PEM chain and the PEM private key that matches its first
/// certificate.
fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read_pem(cert, "--tls-cert")?)
            .collect::<Result<_, _>>()
            .map_err(|e| {
                format!(
                    "--tls-cert {}: not a PEM certificate chain: {e}",
                    cert.display()
                )
            })?;
    if chain.is_empty() {
        return Err(format!(
            "--tls-cert {}: no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)",
            cert.display()
        ));
    }
    let der = PrivateKeyDer::from_pem_slice(&read_pem(key, "--tls-key")?).map_err(|e| {
        format!(
            "--tls-key {}: not a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
            key.display()
        )
    })?;
    let provider = default_provider();
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    let pair = CertifiedKey::new(chain, signing);
    pair.keys_match().map_err(|e| {
        format!(
            "--tls-key {} does not match the certificate in --tls-cert {}: {e}",
            key.display(),
            cert.display()
        )
    })?;
    Ok(pair)
}

impl Certs {
    /// Loads the pair, or says in one line what is wrong with it.
    pub fn open(cert: &Path, key: &Path) -> Result<Self, String> {
        let seen = [stamp(cert), stamp(key)];
        let pair = load(cert, key)?;
        Ok(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: ArcSwap::from_pointee(pair),
            seen: std::sync::Mutex::new(seen),
        })
    }

    /// Loads the pair again if either file changed since it was last loaded; keeps the
    /// current one if the new one does not load (and says why). Whether it changed.
    pub fn refresh(&self) -> Result<bool, String> {
        let now = [stamp(&self.cert), stamp(&self.key)];
        let mut seen = self.seen.lock().expect("tls stamps lock");
        if *seen == now {
            return Ok(false);
        }
        let pair = load(&self.cert, &self.key)?;
        self.current.store(Arc::new(pair));
        *seen = now;
        Ok(true)
    }

    /// An acceptor serving this pair, offering `alpn` (most preferred first).
    pub(super) fn acceptor(self: &Arc<Self>, alpn: &[&[u8]]) -> TlsAcceptor {
        TlsAcceptor::from(self.server_config(alpn))
    }

    /// A rustls configuration serving this pair, offering `alpn` (most preferred first).
    pub fn server_config(self: &Arc<Self>, alpn: &[&[u8]]) -> Arc<ServerConfig> {
        let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Checks the files every second on a thread of its own, for as long as the process runs.
pub fn follow(certs: Arc<Certs>) {
    let spawned = std::thread::Builder::new()
        .name("tls-files".into())
        .spawn(move || {
            let mut failing = false;
            loop {
                std::thread::sleep(Duration::from_secs(1));
                match certs.refresh() {
                    Ok(true) => {
                        failing = false;
                        tracing::info!(cert = %certs.cert.display(), "TLS certificate reloaded");
                    }
                    Ok(false) => {}
                    // Said once per failing streak: a rotation may be half written.
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "TLS files changed but do not load; serving the previous certificate");
                    }
                    Err(_) => {}
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the TLS file watcher; certificates will not be reloaded");
    }
}

/// What a TLS connection's service is: either protocol's handler.
pub(super) trait TlsService:
    HttpService<
        Incoming,
        Error = Infallible,
        Future: Send + 'static,
        ResBody: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
    >
{
}

impl<S> TlsService for S where
    S: HttpService<
            Incoming,
            Error = Infallible,
            Future: Send + 'static,
            ResBody: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
        >
{
}

type Io = TokioIo<TlsStream<TcpStream>>;

pin_project_lite::pin_project! {
    /// A TLS connection: the handshake, then HTTP/1.1 or HTTP/2 as ALPN chose (HTTP/2
    /// only, for gRPC). The handshake is bounded by the connection's head timeout.
    #[project = ServingProj]
    pub(super) enum Serving<S: TlsService> {
        Handshake {
            #[pin]
            accept: tokio_rustls::Accept<TcpStream>,
            service: Option<S>,
            builders: Arc<Builders>,
            h2_only: bool,
            closing: bool,
        },
        H1 { #[pin] conn: http1::Connection<Io, S> },
        H2 { #[pin] conn: http2::Connection<Io, S, TokioExecutor> },
    }
}

impl<S: TlsService> Serving<S> {
    /// Serves `stream` with `service` once its handshake with `acceptor` completes.
    pub(super) fn new(
        acceptor: &TlsAcceptor,
        stream: TcpStream,
        service: S,
        builders: Arc<Builders>,
        h2_only: bool,
    ) -> Self {
        Serving::Handshake {
            accept: acceptor.accept(stream),
            service: Some(service),
            builders,
            h2_only,
            closing: false,
        }
    }
}

impl<S: TlsService> Future for Serving<S> {
    type Output = Result<(), BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project() {
                ServingProj::H1 { conn } => return conn.poll(cx).map_err(Into::into),
                ServingProj::H2 { conn } => return conn.poll(cx).map_err(Into::into),
                ServingProj::Handshake {
                    accept,
                    service,
                    builders,
                    h2_only,
                    closing,
                } => {
                    if *closing {
                        return Poll::Ready(Ok(()));
                    }
                    let tls = match accept.poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                        Poll::Ready(Ok(tls)) => tls,
                    };
                    let h2 = *h2_only || tls.get_ref().1.alpn_protocol() == Some(b"h2");
                    let service = service.take().expect("the handshake holds the service");
                    let io = TokioIo::new(tls);
                    if h2 {
                        Serving::H2 {
                            conn: builders.http2.serve_connection(io, service),
                        }
                    } else {
                        Serving::H1 {
                            conn: builders.http1.serve_connection(io, service),
                        }
                    }
                }
            };
            self.set(next);
        }
    }
}

impl<S: TlsService> Graceful for Serving<S> {
    fn graceful_shutdown(self: Pin<&mut Self>) {
        match self.project() {
            ServingProj::Handshake { closing, .. } => *closing = true,
            ServingProj::H1 { conn } => conn.graceful_shutdown(),
            ServingProj::H2 { conn } => conn.graceful_shutdown(),
        }
    }
}
