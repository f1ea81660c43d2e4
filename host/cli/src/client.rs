//! The CLI side of the management API: `weir tenant|plugin|pipeline ...` against a
//! running `weir serve`.

use anyhow::{Context, Result, bail};
use std::path::Path;

pub struct Client {
    server: String,
    token: String,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(server: &str, token: Option<String>, ca_file: Option<&Path>) -> Result<Client> {
        let token = token
            .or_else(|| std::env::var("WEIR_TOKEN").ok())
            .filter(|t| !t.is_empty())
            .context(
                "no token: set WEIR_TOKEN (a tenant's token, or the admin token) or pass --token",
            )?;
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None);
        if let Some(ca) = ca_file {
            config = config.tls_config(trusting(ca)?);
        }
        let agent = config.build().new_agent();
        Ok(Client {
            server: server.trim_end_matches('/').to_string(),
            token,
            agent,
        })
    }

    /// Sends the request and prints the JSON reply; a non-2xx reply is an error carrying
    /// the server's message.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<serde_json::Value> {
        let url = format!("{}{path}", self.server);
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Authorization", format!("Bearer {}", self.token));
        let (request, bytes) = match body {
            Some((content_type, bytes)) => (request.header("Content-Type", content_type), bytes),
            None => (request, Vec::new()),
        };
        let request = request.body(bytes)?;
        let mut response = self
            .agent
            .run(request)
            .with_context(|| format!("cannot reach weir serve at {}", self.server))?;
        let status = response.status();
        let text = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .unwrap_or_default();
        let value: serde_json::Value =
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        if !status.is_success() {
            let message = value["error"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            bail!("{method} {path}: {status}: {message}");
        }
        Ok(value)
    }
}

/// TLS that verifies the server against the CA certificates in `file` (PEM) alone.
fn trusting(file: &Path) -> Result<ureq::tls::TlsConfig> {
    use ureq::tls::{PemItem, RootCerts, TlsConfig, parse_pem};
    let pem =
        std::fs::read(file).with_context(|| format!("cannot read --ca-file {}", file.display()))?;
    let certs: Vec<_> = parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(cert)) => Some(Ok(cert)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<_, _>>()
        .with_context(|| format!("--ca-file {}: not PEM", file.display()))?;
    if certs.is_empty() {
        bail!("--ca-file {}: no certificate in it", file.display());
    }
    Ok(TlsConfig::builder()
        .root_certs(RootCerts::Specific(std::sync::Arc::new(certs)))
        .build())
}

pub fn print(value: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A file's content type for the API: JSON by extension, TOML otherwise.
pub fn read_definition(path: &Path) -> Result<(&'static str, Vec<u8>)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let json = path.extension().is_some_and(|e| e == "json");
    Ok((
        if json {
            "application/json"
        } else {
            "application/toml"
        },
        bytes,
    ))
}

/// A file's text as JSON, read as TOML or as JSON by its extension (`.toml`, `.json`);
/// any other extension is TOML when `toml_by_default`.
pub fn document(path: &Path, text: &str, toml_by_default: bool) -> Result<serde_json::Value> {
    let toml = match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => true,
        Some("json") => false,
        _ => toml_by_default,
    };
    if toml {
        let table: toml::Table =
            toml::from_str(text).with_context(|| format!("{} is not TOML", path.display()))?;
        Ok(serde_json::to_value(table)?)
    } else {
        serde_json::from_str(text).with_context(|| format!("{} is not JSON", path.display()))
    }
}

/// The `name` a pipeline definition file gives (JSON, or TOML).
pub fn definition_name(path: &Path, bytes: &[u8]) -> Result<String> {
    let text =
        std::str::from_utf8(bytes).with_context(|| format!("{} is not UTF-8", path.display()))?;
    document(path, text, true)?["name"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("{} names no pipeline (`name = ...`)", path.display()))
}
