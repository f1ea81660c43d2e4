//! `weir:connector/http`: outgoing HTTP(S) through reqwest, confined to the pipeline's HTTP
//! grant. A request in flight holds no thread.
//!
//! The grant is checked against the URL the host itself connects to, parsed once by the
//! parser the client uses: the plugin cannot set `Host`, redirects are never followed (a
//! granted server could otherwise bounce the request to one that is not), and environment
//! proxies are ignored, so the name checked is the name connected to.

use crate::bindings::weir::connector::http::{Host, Request, Response};
use crate::bindings::weir::connector::types::Error;
use crate::patterns;
use crate::sandbox::CallDeadline;
use reqwest::{Method, Url};
use std::sync::OnceLock;
use std::time::Duration;

/// What a pipeline side may reach over HTTP.
#[derive(Debug, Clone)]
pub struct HttpGrant {
    /// `host`, `host:port` or `*.domain` patterns. Without a port, only the scheme's default
    /// port (80 or 443) is granted.
    pub hosts: Vec<String>,
    /// Larger response bodies fail the call instead of filling the host's memory.
    pub max_response_bytes: u64,
}

pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 64 << 20;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

impl HttpGrant {
    /// Whether `host` on `port` is granted; `default_port` is the URL scheme's.
    pub fn allows(&self, host: &str, port: u16, default_port: u16) -> bool {
        patterns::host_allows(&self.hosts, host, port, default_port)
    }

    /// Whether every host `pattern` (a grant entry of the same form) names is granted
    /// here.
    pub fn covers(&self, pattern: &str) -> bool {
        patterns::host_covers(&self.hosts, pattern)
    }
}

pub(crate) fn client() -> &'static reqwest::Client {
    // One client per process: its connection pool is shared, its settings are the same for
    // every plugin, and grants are checked per request before it is used.
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent("weir")
            .build()
            .expect("an HTTP client")
    })
}

/// The HTTP capability of one instance: its grant and how long a request may take.
pub(crate) struct HttpCtx {
    pub(crate) grant: Option<HttpGrant>,
    /// A request ends before the deadline of the guest call that made it.
    pub(crate) deadline: CallDeadline,
}

impl Host for HttpCtx {
    async fn send(&mut self, request: Request) -> Result<Response, Error> {
        let grant = self
            .grant
            .as_ref()
            .ok_or_else(|| Error::Config("this plugin has no HTTP grant".into()))?;
        let url: Url = request
            .url
            .parse()
            .map_err(|e| Error::Config(format!("invalid URL `{}`: {e}", request.url)))?;
        let default_port = match url.scheme() {
            "http" => 80,
            "https" => 443,
            _ => {
                return Err(Error::Config(format!(
                    "URL `{}` is not http:// or https://",
                    request.url
                )));
            }
        };
        let host = url.host_str().unwrap_or_default();
        let port = url.port().unwrap_or(default_port);
        if !grant.allows(host, port, default_port) {
            return Err(Error::Config(format!(
                "host `{host}:{port}` is not granted to this plugin (granted: {})",
                grant.hosts.join(", ")
            )));
        }
        let method: Method = request
            .method
            .parse()
            .map_err(|_| Error::Config(format!("invalid HTTP method `{}`", request.method)))?;
        // A host wait is out of the epoch deadline's reach: the request's own timeout
        // (connect to last body byte) must end it before the plugin's call deadline.
        let timeout = self.deadline.left(
            request
                .timeout_ms
                .map(|ms| Duration::from_millis(ms.into()))
                .unwrap_or(DEFAULT_TIMEOUT),
        );
        let mut builder = client().request(method, url).timeout(timeout);
        for (name, value) in &request.headers {
            if name.eq_ignore_ascii_case("host") {
                return Err(Error::Config("the `host` header cannot be set".into()));
            }
            builder = builder.header(name, value);
        }
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let at = &request.url;
        let failed = |e| failed(at, timeout, e);
        let mut response = builder.send().await.map_err(failed)?;
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let status = response.status().as_u16();
        let limit = grant.max_response_bytes;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(Error::Fatal(format!(
                    "{at}: the response body is larger than the grant's limit of {limit} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

fn failed(url: &str, timeout: Duration, e: reqwest::Error) -> Error {
    if e.is_timeout() {
        return Error::Transient(format!(
            "{url}: timeout: no complete response within {timeout:?}"
        ));
    }
    // The client's own message is generic; the cause (refused, reset, a bad header) is in
    // its sources.
    let mut message = format!("{url}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    if e.is_builder() {
        Error::Config(message)
    } else {
        // Connection refused, DNS, TLS, timeouts: a server away or slow, worth a retry.
        Error::Transient(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(hosts: &[&str]) -> HttpGrant {
        HttpGrant {
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    #[test]
    fn ports_must_match() {
        let g = grant(&["127.0.0.1:8080", "api.example.com"]);
        assert!(g.allows("127.0.0.1", 8080, 80));
        assert!(!g.allows("127.0.0.1", 8081, 80));
        assert!(g.allows("api.example.com", 443, 443));
        assert!(
            !g.allows("api.example.com", 8443, 443),
            "no port: default only"
        );
        assert!(
            !g.allows("localhost", 8080, 80),
            "names are not resolved to match"
        );
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        let g = grant(&["*.example.com"]);
        assert!(g.allows("a.example.com", 443, 443));
        assert!(g.allows("A.B.Example.com", 443, 443));
        assert!(!g.allows("example.com", 443, 443));
        assert!(!g.allows("evilexample.com", 443, 443));
        assert!(!g.allows("a.example.com.evil.net", 443, 443));
    }

    #[test]
    fn a_tenant_grant_covers_narrower_patterns_only() {
        let tenant = grant(&["api.example.com", "*.data.example.com", "127.0.0.1:8080"]);
        assert!(tenant.covers("api.example.com"));
        assert!(tenant.covers("api.example.com:443"));
        assert!(!tenant.covers("api.example.com:8443"));
        assert!(tenant.covers("x.data.example.com"));
        assert!(tenant.covers("*.data.example.com"));
        assert!(tenant.covers("*.eu.data.example.com"));
        assert!(!tenant.covers("*.example.com"));
        assert!(!tenant.covers("evil.com"));
        assert!(tenant.covers("127.0.0.1:8080"));
        assert!(!tenant.covers("127.0.0.1"));
        assert!(!tenant.covers("127.0.0.1:9090"));
    }

    #[test]
    fn ipv6() {
        let g = grant(&["[::1]:9000", "::2"]);
        assert!(g.allows("[::1]", 9000, 80));
        assert!(g.allows("::2", 80, 80));
        assert!(!g.allows("::1", 9001, 80));
    }
}
