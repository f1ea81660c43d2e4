//! Loopback ports for the servers tests and benches start.

/// A loopback port nothing listens on (yet). Another process may take it before the
/// caller binds it: callers that start a server retry on another port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
