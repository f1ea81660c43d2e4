//! Property tests of what untrusted input reaches in the runtime: spans a guest returns,
//! grant patterns a tenant or pipeline writes and the names a plugin asks for, object keys,
//! client settings. Cases and seed come from `PROPTEST_CASES` and `PROPTEST_RNG_SEED`
//! (`scripts/test.sh` fixes the seed); failures found are kept as regression tests.

use crate::bindings::weir::connector::types::{Header, Records, Span};
use crate::io::ClientPolicy;
use crate::io::http::HttpGrant;
use crate::io::kafka::KafkaGrant;
use proptest::prelude::*;

fn span(max: u32) -> impl Strategy<Value = Span> {
    (0..max, 0..max).prop_map(|(offset, len)| Span { offset, len })
}

prop_compose! {
    /// Records as a guest might return them: spans anywhere, in range or not.
    fn records()(data in prop::collection::vec(any::<u8>(), 0..64),
                 headers in prop::collection::vec((span(80), span(80)), 0..6),
                 items in prop::collection::vec(
                     (prop::option::of(span(80)), prop::option::of(span(80)), span(8), 0..6u32),
                     0..6),
                 torn in 0..2usize,
    ) -> Records {
        let pair = |s: Span| (s.offset, s.len);
        let mut bytes = Vec::new();
        for (key, value, headers, op) in items {
            weir_wire::Item {
                key: key.map(pair),
                value: value.map(pair),
                headers: pair(headers),
                op,
                timestamp_ms: None,
            }
            .write(&mut bytes);
        }
        // Now and then an entry cut short.
        bytes.truncate(bytes.len().saturating_sub(torn * 7));
        Records {
            data,
            headers: headers.into_iter().map(|(key, value)| Header { key, value }).collect(),
            items: bytes,
        }
    }
}

/// Host names and patterns from a small alphabet that reaches the edge cases: wildcards,
/// ports, brackets, dots, case, and bytes beyond ASCII.
fn host_text() -> impl Strategy<Value = String> {
    prop::string::string_regex("(\\*\\.)?[aAbé.\\[\\]:1-9]{0,10}(:(80|443|8080|1))?").unwrap()
}

fn topic_text() -> impl Strategy<Value = String> {
    prop::string::string_regex("[ab.*?^\\[\\]-]{0,6}").unwrap()
}

fn http(hosts: Vec<String>) -> HttpGrant {
    HttpGrant {
        hosts,
        max_response_bytes: 0,
    }
}

fn kafka(topics: Vec<String>) -> KafkaGrant {
    KafkaGrant {
        brokers: String::new(),
        group: String::new(),
        topics,
        properties: Default::default(),
    }
}

proptest! {
    /// Records that pass the check can be read whole; the rest are refused, never a panic.
    #[test]
    fn checked_records_read_within_their_data(records in records()) {
        if records.check().is_ok() {
            for record in records.iter() {
                let _ = (record.key(), record.value());
                for (_, value) in record.headers() {
                    prop_assert!(value.len() <= records.data.len());
                }
            }
        }
    }

    /// A tenant's HTTP grant bounds its pipelines: whatever a covered pattern lets a plugin
    /// reach, the tenant's grant lets it reach too.
    #[test]
    fn http_cover_is_sound(tenant in prop::collection::vec(host_text(), 0..4),
                           pattern in host_text(),
                           host in host_text(),
                           port in prop::sample::select(vec![80u16, 443, 8080, 1]),
                           default in prop::sample::select(vec![80u16, 443])) {
        let tenant = http(tenant);
        let pipeline = http(vec![pattern.clone()]);
        if tenant.covers(&pattern) && pipeline.allows(&host, port, default) {
            prop_assert!(tenant.allows(&host, port, default), "{pattern} covered, {host}:{port} not");
        }
    }

    /// The same for Kafka topics.
    #[test]
    fn kafka_cover_is_sound(tenant in prop::collection::vec(topic_text(), 0..4),
                            pattern in topic_text(),
                            topic in topic_text()) {
        let tenant = kafka(tenant);
        if tenant.covers(&pattern) && kafka(vec![pattern.clone()]).allows(&topic) {
            prop_assert!(tenant.allows(&topic), "{pattern} covered, {topic} not");
        }
    }

    /// An accepted object key never climbs out of the granted prefix.
    #[test]
    fn object_keys_stay_below_the_prefix(key in "[a./]{0,12}") {
        if let Ok(path) = crate::io::objects::key(&key) {
            let text = path.as_ref();
            prop_assert!(!text.starts_with('/'));
            prop_assert!(text.split('/').all(|part| part != ".." && part != "." ));
        }
    }

    /// A PostgreSQL URL that passes the policy carries only pipeline-safe parameters and no
    /// socket path; no input panics it.
    #[test]
    fn sql_urls_that_pass_carry_only_safe_parameters(url in "postgres://[a-z@%2F/:]{0,12}(\\?[a-z_=&/]{0,30})?") {
        if ClientPolicy::default().check_sql_url(&url).is_ok() {
            let query = url.split_once('?').map_or("", |(_, q)| q);
            for key in query.split('&').filter(|p| !p.is_empty()).map(|p| p.split('=').next().unwrap_or(p)) {
                prop_assert!(!["host", "hostaddr", "port", "user", "password", "dbname", "options"].contains(&key), "{url}");
            }
        }
    }
}

mod found {
    //! Inputs the properties above found, kept as plain tests.
    use super::*;

    #[test]
    fn a_wildcard_against_a_host_beyond_ascii_does_not_panic() {
        let grant = http(vec!["*.a".into()]);
        assert!(!grant.allows("xé", 443, 443));
        assert!(!grant.covers("xé"));
    }
}
