//! Grant patterns, defined once: which HTTP hosts, Kafka topics, object-store locations
//! and directories a grant's entries name, and when one list of entries covers another
//! (how a tenant's grant bounds its pipelines'). The runtime checks every call with the
//! `allows` functions; the tenant checks use the `covers` ones.

use crate::confined::normalize;
use std::path::{Path, PathBuf};

/// Whether `host` on `port` is named by one of `patterns` (`host`, `host:port` or
/// `*.domain`); without a port a pattern names only `default_port`, the URL scheme's.
pub fn host_allows(patterns: &[String], host: &str, port: u16, default_port: u16) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    patterns.iter().any(|grant| {
        let (name, granted_port) = split_port(grant);
        let port_ok = match granted_port {
            Some(p) => p == port,
            None => port == default_port,
        };
        let name = name.trim_start_matches('[').trim_end_matches(']');
        // Bytes, not `str` slices: a host beyond ASCII must not split a character.
        let (host_bytes, name_ok) = (host.as_bytes(), name.eq_ignore_ascii_case(host));
        let name_ok = name_ok
            || name.strip_prefix("*.").is_some_and(|domain| {
                let at = host_bytes.len().wrapping_sub(domain.len());
                host_bytes.len() > domain.len() + 1
                    && host_bytes[at..].eq_ignore_ascii_case(domain.as_bytes())
                    && host_bytes[at - 1] == b'.'
            });
        port_ok && name_ok
    })
}

/// Whether everything the host pattern `pattern` names is named by `patterns`.
pub fn host_covers(patterns: &[String], pattern: &str) -> bool {
    let (name, port) = split_port(pattern);
    // A pattern without a port means 80 and 443.
    let ports: Vec<(u16, u16)> = match port {
        Some(p) => vec![(p, if p == 80 || p == 443 { p } else { 0 })],
        None => vec![(80, 80), (443, 443)],
    };
    match name.strip_prefix("*.") {
        // Only a wildcard for the same domain or a parent covers a wildcard.
        Some(domain) => patterns.iter().any(|grant| {
            let (granted, granted_port) = split_port(grant);
            let port_ok = match (granted_port, port) {
                (Some(g), Some(p)) => g == p,
                (None, None) => true,
                (None, Some(p)) => p == 80 || p == 443,
                (Some(_), None) => false,
            };
            port_ok
                && granted.strip_prefix("*.").is_some_and(|parent| {
                    let (d, p) = (domain.to_ascii_lowercase(), parent.to_ascii_lowercase());
                    d == p || d.ends_with(&format!(".{p}"))
                })
        }),
        None => ports
            .iter()
            .all(|&(port, default)| host_allows(patterns, name, port, default)),
    }
}

/// `host:port`, `[v6]:port`, or a bare host (a bare IPv6 address has colons but no port).
fn split_port(grant: &str) -> (&str, Option<u16>) {
    if let Some(rest) = grant.strip_prefix('[') {
        return match rest.split_once("]:") {
            Some((h, p)) => (h, p.parse().ok()),
            None => (grant, None),
        };
    }
    match grant.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse().ok()),
        _ => (grant, None),
    }
}

/// Whether topic `topic` is named by one of `patterns` (names, or globs with `*` and `?`).
pub fn topic_allows(patterns: &[String], topic: &str) -> bool {
    patterns
        .iter()
        .any(|t| t == topic || glob::Pattern::new(t).is_ok_and(|p| p.matches(topic)))
}

/// Whether every topic `pattern` names is named by `patterns`. A pattern needs the same
/// pattern (or `*`): which names it will match is not known in advance.
pub fn topic_covers(patterns: &[String], pattern: &str) -> bool {
    if pattern.contains(['*', '?', '[', '^']) {
        patterns.iter().any(|t| t == pattern || t == "*")
    } else {
        topic_allows(patterns, pattern)
    }
}

/// Whether the store location `here` (`s3://bucket/prefix`) is `granted` or below it, by
/// whole path segments.
pub fn location_covers(granted: &str, here: &str) -> bool {
    let (here, granted) = (here.trim_end_matches('/'), granted.trim_end_matches('/'));
    granted.starts_with("s3://") && (here == granted || here.starts_with(&format!("{granted}/")))
}

/// Whether directory `path` (absolute) lies in the granted directory `granted`: lexically,
/// as `granted` is written or where it resolves, and also where `path` leads on disk now,
/// so that a link inside `granted` does not lead elsewhere.
pub fn dir_covers(granted: &Path, path: &Path) -> bool {
    let root = granted
        .canonicalize()
        .unwrap_or_else(|_| normalize(granted));
    (path.starts_with(normalize(granted)) || path.starts_with(&root))
        && resolve_existing(path).starts_with(&root)
}

/// `path` with its longest existing prefix resolved (symlinks, `.`), the rest appended:
/// where creating the missing part would land.
fn resolve_existing(path: &Path) -> PathBuf {
    let mut missing = Vec::new();
    let mut at = path;
    loop {
        if let Ok(real) = at.canonicalize() {
            return missing.iter().rev().fold(real, |p, part| p.join(part));
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_owned());
                at = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}
