//! A real S3-compatible server per test: moto's server on a free loopback port
//! (`scripts/setup.sh` installs it from PyPI), with one bucket, `weir`.

use crate::ports::free_port;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct S3 {
    child: Child,
    pub endpoint: String,
    store: object_store::aws::AmazonS3,
    runtime: tokio::runtime::Runtime,
}

impl S3 {
    pub fn start() -> S3 {
        // A free port can be taken by another test's server before ours binds it: then
        // ours exits, and we try another port.
        let (child, endpoint) = (0..5)
            .find_map(|_| spawn(free_port()))
            .expect("moto_server did not start on any of 5 ports");
        // Creating a bucket is the one call that needs no signature.
        ureq::put(format!("{endpoint}/weir"))
            .send_empty()
            .expect("create the bucket");
        // A signed client of its own, as a user of the bucket would have.
        let store = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name("weir")
            .with_region("us-east-1")
            .with_endpoint(&endpoint)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_access_key_id("weir-test")
            .with_secret_access_key("weir-test-secret")
            .build()
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        S3 {
            child,
            endpoint,
            store,
            runtime,
        }
    }

    pub fn put(&self, key: &str, body: &[u8]) {
        use object_store::ObjectStoreExt;
        self.runtime
            .block_on(self.store.put(&key.into(), body.to_vec().into()))
            .unwrap();
    }

    pub fn get(&self, key: &str) -> Vec<u8> {
        use object_store::ObjectStoreExt;
        self.runtime
            .block_on(async { self.store.get(&key.into()).await?.bytes().await })
            .unwrap()
            .to_vec()
    }

    /// Keys under `prefix`, in order.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        use futures::TryStreamExt;
        use object_store::ObjectStore;
        let prefix = object_store::path::Path::from(prefix.trim_end_matches('/'));
        let mut keys: Vec<String> = self
            .runtime
            .block_on(self.store.list(Some(&prefix)).try_collect::<Vec<_>>())
            .unwrap()
            .into_iter()
            .map(|m| m.location.to_string())
            .collect();
        keys.sort();
        keys
    }

    /// `grants.objects` rooted at `prefix`, with the keys read from files next to the
    /// pipeline (moto takes any).
    pub fn grant(&self, prefix: &str) -> String {
        format!(
            r#"grants.objects = {{ url = "s3://weir/{prefix}", endpoint = "{}", access_key_id = {{ file = "s3-key" }}, secret_access_key = {{ file = "s3-secret" }} }}"#,
            self.endpoint
        )
    }
}

/// moto's server on `port`, once it answers there; None if it exited (port taken).
fn spawn(port: u16) -> Option<(Child, String)> {
    let mut child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect(
            "moto_server is missing: scripts/setup.sh installs it (pip install 'moto[server]')",
        );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            // Ours, not a neighbour's: it is still running.
            std::thread::sleep(Duration::from_millis(100));
            if child.try_wait().unwrap().is_none() {
                return Some((child, format!("http://127.0.0.1:{port}")));
            }
            return None;
        }
        assert!(Instant::now() < deadline, "moto_server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}
