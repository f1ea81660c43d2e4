//! A small real HTTP server on loopback for the HTTP connectors: a paged, filterable
//! collection (`GET /items`) and an ingest endpoint (`POST /ingest`) whose answers a test
//! can script.

use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
pub struct State {
    /// `{id, updated_at, name}`; served sorted by (updated_at, id).
    pub items: Vec<Value>,
    /// Bodies of every POST that was answered 2xx, in order.
    pub posted: Vec<Vec<u8>>,
    /// Statuses for the next POSTs; 200 once it is empty.
    pub answers: VecDeque<u16>,
    pub requests: usize,
    /// Slows every request, so a test can kill a run half-way.
    pub delay: Duration,
}

pub struct Web {
    pub addr: String,
    pub state: Arc<Mutex<State>>,
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Web {
    pub fn start() -> Web {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let addr = server.server_addr().to_ip().unwrap().to_string();
        let state = Arc::new(Mutex::new(State::default()));
        let thread = {
            let (server, state) = (server.clone(), state.clone());
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    serve(&state, request);
                }
            })
        };
        Web {
            addr,
            state,
            server,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Adds or replaces items `ids` with `updated_at`.
    pub fn upsert(&self, ids: impl IntoIterator<Item = u64>, updated_at: u64) {
        let mut state = self.state.lock().unwrap();
        for id in ids {
            let item = json!({"id": id, "updated_at": updated_at, "name": format!("item {id}")});
            match state.items.iter_mut().find(|i| i["id"] == id) {
                Some(existing) => *existing = item,
                None => state.items.push(item),
            }
        }
    }

    /// Every posted JSON array's elements, in order.
    pub fn posted_values(&self) -> Vec<Value> {
        let state = self.state.lock().unwrap();
        state
            .posted
            .iter()
            .flat_map(|b| serde_json::from_slice::<Vec<Value>>(b).unwrap())
            .collect()
    }
}

impl Drop for Web {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(state: &Mutex<State>, mut request: tiny_http::Request) {
    let url = request.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    let delay = state.lock().unwrap().delay;
    std::thread::sleep(delay);
    let (status, body) = match (request.method().as_str(), path) {
        ("GET", "/items") => {
            let mut state = state.lock().unwrap();
            state.requests += 1;
            let page: usize = param("page").and_then(|p| p.parse().ok()).unwrap_or(1);
            let per_page: usize = param("per_page").and_then(|p| p.parse().ok()).unwrap_or(50);
            let since: Option<u64> = param("updated_since").and_then(|p| p.parse().ok());
            let mut items: Vec<&Value> = state
                .items
                .iter()
                .filter(|i| since.is_none_or(|s| i["updated_at"].as_u64().unwrap() > s))
                .collect();
            items.sort_by_key(|i| (i["updated_at"].as_u64(), i["id"].as_u64()));
            let page: Vec<&Value> = items
                .into_iter()
                .skip((page.max(1) - 1) * per_page)
                .take(per_page)
                .collect();
            (200, json!({ "data": page }).to_string().into_bytes())
        }
        ("POST", "/ingest") => {
            let mut body = Vec::new();
            if request.as_reader().read_to_end(&mut body).is_err() {
                return; // the client went away mid-request (a test killed it)
            }
            let mut state = state.lock().unwrap();
            state.requests += 1;
            let status = state.answers.pop_front().unwrap_or(200);
            if status == 200 {
                state.posted.push(body);
            }
            (status, format!("answered {status}").into_bytes())
        }
        ("GET", "/moved") => {
            state.lock().unwrap().requests += 1;
            // Elsewhere on this server, under a name a grant may not list.
            let host = request
                .headers()
                .iter()
                .find(|h| h.field.equiv("Host"))
                .map(|h| h.value.to_string())
                .unwrap();
            let port = host.rsplit(':').next().unwrap();
            let location = format!("http://localhost:{port}/items");
            let header = tiny_http::Header::from_bytes("Location", location).unwrap();
            let response = tiny_http::Response::from_data(b"moved".to_vec())
                .with_status_code(302)
                .with_header(header);
            let _ = request.respond(response);
            return;
        }
        _ => (404, b"no such route".to_vec()),
    };
    let _ = request.respond(tiny_http::Response::from_data(body).with_status_code(status));
}
