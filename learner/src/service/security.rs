//! Who may talk to the learner: a shared bearer token checked on every call (UNAUTHENTICATED
//! otherwise, before any handler runs, so a stranger can neither read weights nor write data), and TLS
//! (rustls) with optional client-certificate verification (mutual TLS).

use spikerl_proto::AUTH_METADATA_KEY;
use std::path::PathBuf;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic::{Request, Status};

/// PEM files for the server side of TLS.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Clients must present a certificate signed by this CA (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    pub fn server_config(&self) -> anyhow::Result<ServerTlsConfig> {
        let read =
            |p: &PathBuf| std::fs::read(p).map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()));
        let mut cfg =
            ServerTlsConfig::new().identity(Identity::from_pem(read(&self.cert)?, read(&self.key)?));
        if let Some(ca) = &self.client_ca {
            cfg = cfg.client_ca_root(Certificate::from_pem(read(ca)?));
        }
        Ok(cfg)
    }
}

/// Checks the bearer token of every request (a no-op when no token is configured).
#[derive(Clone)]
pub struct TokenCheck {
    expected: Option<Vec<u8>>,
}

impl TokenCheck {
    pub fn new(token: Option<String>) -> Self {
        TokenCheck { expected: token.map(|t| format!("Bearer {t}").into_bytes()) }
    }
}

impl tonic::service::Interceptor for TokenCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.expected else { return Ok(request) };
        let presented = request.metadata().get(AUTH_METADATA_KEY).map(|v| v.as_bytes()).unwrap_or_default();
        if constant_time_eq(presented, expected) {
            Ok(request)
        } else {
            metrics::counter!(spikerl_metrics::learner::UNAUTHENTICATED_REQUESTS_TOTAL).increment(1);
            Err(Status::unauthenticated(
                "missing or wrong token (set the actor's --auth-token to the learner's)",
            ))
        }
    }
}

/// Compares without an early exit, so response timing does not reveal how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    fn request(auth: Option<&str>) -> Request<()> {
        let mut r = Request::new(());
        if let Some(a) = auth {
            r.metadata_mut().insert(AUTH_METADATA_KEY, a.parse().unwrap());
        }
        r
    }

    #[test]
    fn token_is_required_when_configured() {
        let mut check = TokenCheck::new(Some("s3cret".into()));
        assert!(check.call(request(Some("Bearer s3cret"))).is_ok());
        for bad in [None, Some("Bearer wrong"), Some("s3cret"), Some("Bearer s3cret ")] {
            let err = check.call(request(bad)).unwrap_err();
            assert_eq!(err.code(), tonic::Code::Unauthenticated, "{bad:?}");
        }
        assert!(TokenCheck::new(None).call(request(None)).is_ok());
    }
}
