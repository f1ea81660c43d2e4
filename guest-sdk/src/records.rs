//! Building and reading packed [`Records`]: every key, value and header of a batch lives in
//! one buffer, and each record is a fixed-size entry of `items` (the layout is `weir-wire`'s),
//! so a batch crosses the boundary in a few block copies however many records it holds.

use crate::wit::weir::connector::types::{ChangeOp, Header, Records, Span};
use weir_wire::{ITEM, Item};

/// A record as a connector sees it: borrowed from the batch's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub key: Option<&'a [u8]>,
    /// `None` for a tombstone.
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(&'a str, &'a [u8])],
    pub timestamp_ms: Option<i64>,
    pub op: Option<ChangeOp>,
}

impl<'a> RecordRef<'a> {
    /// A record carrying only a value.
    pub fn value(value: &'a [u8]) -> Self {
        RecordRef {
            key: None,
            value: Some(value),
            headers: &[],
            timestamp_ms: None,
            op: None,
        }
    }
}

impl Default for Records {
    fn default() -> Self {
        Records::new()
    }
}

impl Records {
    pub fn new() -> Self {
        Records {
            data: Vec::new(),
            headers: Vec::new(),
            items: Vec::new(),
        }
    }

    /// Room for `records` records of `bytes` bytes in all.
    pub fn with_capacity(records: usize, bytes: usize) -> Self {
        Records {
            data: Vec::with_capacity(bytes),
            headers: Vec::new(),
            items: Vec::with_capacity(records * ITEM),
        }
    }

    pub fn len(&self) -> usize {
        self.items.len() / ITEM
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Appends a record holding only a value.
    pub fn push_value(&mut self, value: &[u8]) {
        let value = Some(self.put(value));
        Item {
            value,
            ..Item::default()
        }
        .write(&mut self.items);
    }

    /// Appends a record, copying its bytes into the buffer.
    pub fn push(&mut self, record: RecordRef<'_>) {
        let headers = record.headers.iter().map(|(k, v)| (k.as_bytes(), *v));
        self.append(
            record.key,
            record.value,
            headers,
            record.timestamp_ms,
            record.op,
        );
    }

    /// Appends a record like `like` (its key, headers, timestamp and op) with `value`:
    /// what a transform emits for a record it rewrites.
    pub fn push_like(&mut self, like: &RecordView<'_>, value: Option<&[u8]>) {
        self.push_from(like, like.key(), value)
    }

    /// As [`Records::push_like`], with a new key too.
    pub fn push_keyed_like(&mut self, like: &RecordView<'_>, key: &[u8], value: &[u8]) {
        self.push_from(like, Some(key), Some(value))
    }

    fn push_from(&mut self, like: &RecordView<'_>, key: Option<&[u8]>, value: Option<&[u8]>) {
        let from = like.records;
        let (first, count) = like.item.headers;
        let headers = from.headers[first as usize..(first + count) as usize]
            .iter()
            .map(|h| (from.bytes(pair(h.key)), from.bytes(pair(h.value))));
        self.append(key, value, headers, like.item.timestamp_ms, like.op());
    }

    fn append<'h>(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: impl ExactSizeIterator<Item = (&'h [u8], &'h [u8])>,
        timestamp_ms: Option<i64>,
        op: Option<ChangeOp>,
    ) {
        let key = key.map(|k| self.put(k));
        let value = value.map(|v| self.put(v));
        let first = self.headers.len();
        let count = headers.len();
        for (k, v) in headers {
            let (key, value) = (self.put(k), self.put(v));
            self.headers.push(Header {
                key: span(key),
                value: span(value),
            });
        }
        Item {
            key,
            value,
            headers: (index(first), index(count)),
            op: match op {
                None => 0,
                Some(ChangeOp::Create) => 1,
                Some(ChangeOp::Update) => 2,
                Some(ChangeOp::Delete) => 3,
                Some(ChangeOp::Snapshot) => 4,
            },
            timestamp_ms,
        }
        .write(&mut self.items);
    }

    fn put(&mut self, bytes: &[u8]) -> (u32, u32) {
        let at = (index(self.data.len()), index(bytes.len()));
        self.data.extend_from_slice(bytes);
        at
    }

    /// The records, in order.
    pub fn iter(&self) -> impl Iterator<Item = RecordView<'_>> + '_ {
        (0..self.len()).map(|i| RecordView {
            records: self,
            item: Item::read(&self.items, i),
        })
    }

    fn bytes(&self, (offset, len): (u32, u32)) -> &[u8] {
        &self.data[offset as usize..(offset + len) as usize]
    }
}

fn span((offset, len): (u32, u32)) -> Span {
    Span { offset, len }
}

fn pair(s: Span) -> (u32, u32) {
    (s.offset, s.len)
}

/// One record of a batch, read in place.
#[derive(Clone, Copy)]
pub struct RecordView<'a> {
    records: &'a Records,
    item: Item,
}

impl<'a> RecordView<'a> {
    pub fn key(&self) -> Option<&'a [u8]> {
        self.item.key.map(|s| self.records.bytes(s))
    }

    /// `None` for a tombstone.
    pub fn value(&self) -> Option<&'a [u8]> {
        self.item.value.map(|s| self.records.bytes(s))
    }

    pub fn timestamp_ms(&self) -> Option<i64> {
        self.item.timestamp_ms
    }

    pub fn op(&self) -> Option<ChangeOp> {
        match self.item.op {
            1 => Some(ChangeOp::Create),
            2 => Some(ChangeOp::Update),
            3 => Some(ChangeOp::Delete),
            4 => Some(ChangeOp::Snapshot),
            _ => None,
        }
    }

    /// Header keys (lossy UTF-8) and values.
    pub fn headers(&self) -> impl Iterator<Item = (std::borrow::Cow<'a, str>, &'a [u8])> + 'a {
        let records = self.records;
        let (first, count) = self.item.headers;
        records.headers[first as usize..(first + count) as usize]
            .iter()
            .map(move |h| {
                (
                    String::from_utf8_lossy(records.bytes(pair(h.key))),
                    records.bytes(pair(h.value)),
                )
            })
    }
}

fn index(n: usize) -> u32 {
    u32::try_from(n).expect("a batch holds less than 4 GiB")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_the_buffer() {
        let mut records = Records::new();
        records.push_value(b"{\"a\":1}");
        records.push(RecordRef {
            key: Some(b"k"),
            value: None,
            headers: &[("trace", b"abc"), ("n", b"1")],
            timestamp_ms: Some(42),
            op: Some(ChangeOp::Delete),
        });
        records.push_value(b"");
        assert_eq!(records.len(), 3);

        let all: Vec<RecordView<'_>> = records.iter().collect();
        assert_eq!(all[0].value(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(all[0].key(), None);
        assert_eq!(all[0].headers().count(), 0);
        assert_eq!(all[1].key(), Some(&b"k"[..]));
        assert_eq!(all[1].value(), None, "a tombstone");
        assert_eq!(all[1].timestamp_ms(), Some(42));
        assert_eq!(all[1].op(), Some(ChangeOp::Delete));
        let headers: Vec<_> = all[1]
            .headers()
            .map(|(k, v)| (k.into_owned(), v.to_vec()))
            .collect();
        assert_eq!(
            headers,
            [
                ("trace".to_string(), b"abc".to_vec()),
                ("n".into(), b"1".to_vec())
            ]
        );
        assert_eq!(all[2].value(), Some(&b""[..]));

        // A transform's output keeps everything but the value it replaces.
        let mut out = Records::new();
        out.push_like(&all[1], Some(b"new"));
        out.push_like(&all[0], None);
        let again: Vec<RecordView<'_>> = out.iter().collect();
        assert_eq!(again[0].key(), Some(&b"k"[..]));
        assert_eq!(again[0].value(), Some(&b"new"[..]));
        assert_eq!(again[0].timestamp_ms(), Some(42));
        assert_eq!(again[0].op(), Some(ChangeOp::Delete));
        assert_eq!(again[0].headers().count(), 2);
        assert_eq!(again[0].headers().nth(1).unwrap().1, b"1");
        assert_eq!(again[1].value(), None);
        assert_eq!(again[1].headers().count(), 0);
    }
}
