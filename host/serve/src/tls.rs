//! The API over TLS (rustls), and the rule that tokens never cross a network in the clear:
//! without a certificate, `weir serve` listens on loopback addresses only, unless the
//! operator says `--insecure-http` (a TLS-terminating proxy in front, say).

use anyhow::{Context, Result, bail};
use axum::Router;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A certificate chain and its key, PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How long a client may take to finish the handshake before its connection is dropped.
const HANDSHAKE: Duration = Duration::from_secs(10);

impl TlsFiles {
    pub fn acceptor(&self) -> Result<TlsAcceptor> {
        let certs = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .with_context(|| {
                format!(
                    "--tls-cert {}: not a PEM certificate chain",
                    self.cert.display()
                )
            })?;
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .with_context(|| format!("--tls-key {}: not a PEM private key", self.key.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("--tls-cert and --tls-key do not make a usable certificate")?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// Refuses a plain-HTTP listener on anything but loopback addresses, where a bearer token
/// would cross the network readable.
pub async fn check_plain(listen: &str, insecure_http: bool) -> Result<()> {
    if insecure_http {
        return Ok(());
    }
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host(listen)
        .await
        .with_context(|| format!("cannot resolve {listen}"))?
        .collect();
    if let Some(open) = addresses.iter().find(|a| !a.ip().is_loopback()) {
        bail!(
            "refusing to serve the API over plain HTTP on {open}: tokens would cross the \
             network readable. Give --tls-cert and --tls-key, listen on a loopback address, \
             or say --insecure-http (e.g. behind a TLS-terminating proxy)"
        );
    }
    Ok(())
}

/// Serves `router` over TLS on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (acceptor, router) = (acceptor.clone(), router.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let service = hyper_util::service::TowerToHyperService::new(router);
            let served = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}
