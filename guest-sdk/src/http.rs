pub use crate::wit::weir::connector::http::{Request, Response, send};

/// A request with no headers, body or timeout of its own.
pub fn request(method: &str, url: &str) -> Request {
    Request {
        method: method.to_string(),
        url: url.to_string(),
        headers: Vec::new(),
        body: None,
        timeout_ms: None,
    }
}

/// `GET url`: any status is an `Ok` response; only a failure to get one is an error.
pub fn get(url: &str) -> crate::Result<Response> {
    send(&request("GET", url))
}
