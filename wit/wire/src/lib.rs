//! The byte layout of `records.items` in `wit/connector.wit`: one fixed-size entry per
//! record, little-endian, so a batch crosses the component boundary as block copies (a
//! `list<u8>`), where a list of WIT records is lifted field by field. The host and the Rust
//! SDK both use this crate; the Python and JavaScript SDKs write the same bytes (their
//! glue, with tests against the same examples).
//!
//! An entry, 36 bytes:
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | key: offset, length in `data` (length `0xFFFF_FFFF`: no key) |
//! | 8..16 | value: offset, length (`0xFFFF_FFFF`: none, a tombstone) |
//! | 16..24 | headers: index of the first in `headers`, count |
//! | 24..28 | op: 0 none, then `change-op`'s cases from 1 (create, update, delete, snapshot) |
//! | 28..36 | timestamp, milliseconds since the Unix epoch (`i64::MIN`: none) |

/// Bytes per entry.
pub const ITEM: usize = 36;
const ABSENT: u32 = u32::MAX;
const NO_TIME: i64 = i64::MIN;
/// The largest op code a valid entry holds.
pub const MAX_OP: u32 = 4;

/// One record's entry: where its bytes are, not the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Item {
    /// Offset and length in `data`.
    pub key: Option<(u32, u32)>,
    pub value: Option<(u32, u32)>,
    /// Index of the first header in `headers`, and how many.
    pub headers: (u32, u32),
    /// 0, or a `change-op` case counted from 1.
    pub op: u32,
    pub timestamp_ms: Option<i64>,
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}

impl Item {
    /// How many entries `items` holds; `None` when it is not a whole number of them.
    pub fn count(items: &[u8]) -> Option<usize> {
        items
            .len()
            .is_multiple_of(ITEM)
            .then_some(items.len() / ITEM)
    }

    /// Entry `i` of `items` (which must hold it).
    pub fn read(items: &[u8], i: usize) -> Item {
        let e = &items[i * ITEM..(i + 1) * ITEM];
        let span = |at: usize| {
            let len = u32_at(e, at + 4);
            (len != ABSENT).then(|| (u32_at(e, at), len))
        };
        let time = i64::from_le_bytes(e[28..36].try_into().expect("eight bytes"));
        Item {
            key: span(0),
            value: span(8),
            headers: (u32_at(e, 16), u32_at(e, 20)),
            op: u32_at(e, 24),
            timestamp_ms: (time != NO_TIME).then_some(time),
        }
    }

    /// Appends this entry to `items`.
    pub fn write(&self, items: &mut Vec<u8>) {
        let span = |s: Option<(u32, u32)>| s.unwrap_or((0, ABSENT));
        let (key, value) = (span(self.key), span(self.value));
        for n in [
            key.0,
            key.1,
            value.0,
            value.1,
            self.headers.0,
            self.headers.1,
            self.op,
        ] {
            items.extend_from_slice(&n.to_le_bytes());
        }
        items.extend_from_slice(&self.timestamp_ms.unwrap_or(NO_TIME).to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes the Python and JavaScript SDK tests expect for the same entries.
    #[test]
    fn entries_have_the_documented_bytes() {
        let mut items = Vec::new();
        Item {
            key: Some((1, 2)),
            value: None,
            headers: (3, 4),
            op: 3,
            timestamp_ms: Some(-5),
        }
        .write(&mut items);
        Item {
            value: Some((0, 0)),
            ..Item::default()
        }
        .write(&mut items);
        let hex: String = items.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "0100000002000000\
             00000000ffffffff\
             0300000004000000\
             03000000\
             fbffffffffffffff\
             00000000ffffffff\
             0000000000000000\
             0000000000000000\
             00000000\
             0000000000000080"
        );
        assert_eq!(Item::count(&items), Some(2));
        assert_eq!(Item::read(&items, 0).timestamp_ms, Some(-5));
        assert_eq!(Item::read(&items, 0).value, None);
        assert_eq!(Item::read(&items, 1).value, Some((0, 0)));
        assert_eq!(Item::read(&items, 1).key, None);
        assert_eq!(Item::read(&items, 1).timestamp_ms, None);
        assert_eq!(Item::count(&items[1..]), None);
    }
}
