//! Kinesis's JSON API over the host's HTTP client, signed with SigV4 by `object_store`'s
//! signer: both are already in the host for HTTP and object storage, so Kinesis adds no
//! SDK (the AWS SDK for Rust would add some 80 crates to the build).

use crate::bindings::weir::connector::types::Error;
use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::client::HttpRequestBody;
use serde_json::Value;
use std::time::Duration;

/// A GetRecords answer is at most 10 MiB of data, a third more as base64: anything past
/// this is not Kinesis, and is not read into the host's memory.
const MAX_RESPONSE_BYTES: usize = 32 << 20;

pub struct Client {
    url: reqwest::Url,
    region: String,
    credential: AwsCredential,
    /// The stream set and where, for messages: `kinesis (us-east-1, http://127.0.0.1:4568)`.
    pub describe: String,
}

/// What a call to the service came to, when not a success.
#[derive(Debug)]
pub enum Failure {
    /// The service answered with an error: its type (`ExpiredIteratorException`) and message.
    Service {
        status: u16,
        kind: String,
        message: String,
    },
    /// No answer: refused, reset, timed out.
    Network(String),
    /// An answer that is not the API's.
    Invalid(String),
}

impl Failure {
    pub fn kind(&self) -> Option<&str> {
        match self {
            Failure::Service { kind, .. } => Some(kind),
            _ => None,
        }
    }

    /// Throttling: the caller backs off and tries again.
    pub fn is_throttled(&self) -> bool {
        matches!(
            self.kind(),
            Some(
                "ProvisionedThroughputExceededException"
                    | "KMSThrottlingException"
                    | "LimitExceededException"
                    | "ThrottlingException"
            )
        )
    }

    /// The contract's error, `at` saying which call on what.
    pub(crate) fn error(&self, at: &str) -> Error {
        match self {
            Failure::Service {
                status,
                kind,
                message,
            } => {
                let text = format!("{at}: {kind}: {message}");
                match kind.as_str() {
                    // Credentials, permissions, a stream or shard that is not there, a
                    // request the API refuses: retrying will not help.
                    "ResourceNotFoundException"
                    | "InvalidArgumentException"
                    | "ValidationException"
                    | "AccessDeniedException"
                    | "UnrecognizedClientException"
                    | "InvalidSignatureException"
                    | "IncompleteSignatureException"
                    | "MissingAuthenticationTokenException"
                    | "MissingAuthenticationToken"
                    | "ExpiredTokenException"
                    | "InvalidClientTokenId"
                    | "KMSAccessDeniedException"
                    | "KMSDisabledException"
                    | "KMSNotFoundException"
                    | "KMSInvalidStateException"
                    | "KMSOptInRequired" => Error::Config(text),
                    _ if *status >= 500 || self.is_throttled() => Error::Transient(text),
                    // A stream being updated, an expired iterator: passing.
                    "ResourceInUseException" | "ExpiredIteratorException" => Error::Transient(text),
                    _ => Error::Fatal(text),
                }
            }
            Failure::Network(e) => Error::Transient(format!("{at}: {e}")),
            Failure::Invalid(e) => Error::Fatal(format!("{at}: {e}")),
        }
    }
}

impl Client {
    pub fn new(
        region: &str,
        endpoint: Option<&str>,
        access_key_id: &str,
        secret_access_key: &str,
        session_token: Option<&str>,
    ) -> Result<Client, String> {
        let url = match endpoint {
            Some(e) => e.to_string(),
            None => format!("https://kinesis.{region}.amazonaws.com"),
        };
        let describe = format!("kinesis ({region}, {url})");
        let url: reqwest::Url = url
            .parse()
            .map_err(|e| format!("endpoint `{url}` is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("endpoint `{url}` is not http:// or https://"));
        }
        Ok(Client {
            url,
            region: region.to_string(),
            credential: AwsCredential {
                key_id: access_key_id.to_string(),
                secret_key: secret_access_key.to_string(),
                token: session_token.map(str::to_string),
            },
            describe,
        })
    }

    /// Calls `action` (`GetRecords`) with `body`; its answer, within `timeout`.
    pub async fn call(
        &self,
        action: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, Failure> {
        let payload = serde_json::to_vec(body).map_err(|e| Failure::Invalid(e.to_string()))?;
        let mut request = http::Request::builder()
            .method("POST")
            .uri(self.url.as_str())
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", format!("Kinesis_20131202.{action}"))
            .body(HttpRequestBody::from(payload.clone()))
            .map_err(|e| Failure::Invalid(e.to_string()))?;
        AwsAuthorizer::new(&self.credential, "kinesis", &self.region)
            .try_authorize(&mut request, None)
            .map_err(|e| Failure::Invalid(format!("cannot sign the request: {e}")))?;
        let mut builder = crate::io::http::client()
            .post(self.url.clone())
            .timeout(timeout)
            .body(payload);
        for (name, value) in request.headers() {
            builder = builder.header(name, value);
        }
        let mut response = builder.send().await.map_err(network)?;
        let status = response.status().as_u16();
        let mut answer = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(network)? {
            if answer.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(Failure::Invalid(format!(
                    "the answer is larger than {MAX_RESPONSE_BYTES} bytes"
                )));
            }
            answer.extend_from_slice(&chunk);
        }
        let parsed: Option<Value> = serde_json::from_slice(&answer).ok();
        if (200..300).contains(&status) {
            // Actions with nothing to say (CreateStream, SplitShard) answer with no body.
            if answer.is_empty() {
                return Ok(Value::Object(Default::default()));
            }
            return parsed.ok_or_else(|| {
                Failure::Invalid(format!("HTTP {status} with a body that is not JSON"))
            });
        }
        let field = |name: &str| {
            parsed
                .as_ref()
                .and_then(|v| v.get(name))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        // `__type` may carry a namespace: `com.amazonaws.kinesis.v20131202#Kind`.
        let kind = field("__type")
            .map(|t| t.rsplit('#').next().unwrap_or_default().to_string())
            .unwrap_or_else(|| format!("HTTP {status}"));
        let message = field("message")
            .or_else(|| field("Message"))
            .unwrap_or_default();
        Err(Failure::Service {
            status,
            kind,
            message,
        })
    }
}

fn network(e: reqwest::Error) -> Failure {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    Failure::Network(message)
}
