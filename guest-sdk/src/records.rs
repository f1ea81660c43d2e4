//! Building and reading packed [`Records`]: every key, value and header of a batch lives in
//! one buffer, so a batch crosses the boundary in a few copies however many records it holds.

use crate::wit::weir::connector::types::{ChangeOp, Header, Record, Records, Span};

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

    /// Room for `records` records holding `bytes` bytes in all.
    pub fn with_capacity(records: usize, bytes: usize) -> Self {
        Records {
            data: Vec::with_capacity(bytes),
            headers: Vec::new(),
            items: Vec::with_capacity(records),
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Appends a record carrying only a value.
    pub fn push_value(&mut self, value: &[u8]) {
        let value = Some(self.put(value));
        self.items.push(Record {
            key: None,
            value,
            headers: Span { offset: 0, len: 0 },
            timestamp_ms: None,
            op: None,
        });
    }

    /// Appends a record, copying its bytes into the batch's buffer.
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

    /// Appends a record that is `like` (its key, headers, timestamp and op) with another
    /// value: what a transform that rewrites values emits.
    pub fn push_like(&mut self, like: &RecordView<'_>, value: Option<&[u8]>) {
        self.push_from(like, like.key(), value)
    }

    /// As [`Records::push_like`], with another key too.
    pub fn push_keyed_like(&mut self, like: &RecordView<'_>, key: &[u8], value: &[u8]) {
        self.push_from(like, Some(key), Some(value))
    }

    fn push_from(&mut self, like: &RecordView<'_>, key: Option<&[u8]>, value: Option<&[u8]>) {
        let from = like.records;
        let Span { offset, len } = like.record.headers;
        let headers = from.headers[offset as usize..(offset + len) as usize]
            .iter()
            .map(|h| (from.bytes(h.key), from.bytes(h.value)));
        self.append(
            key,
            value,
            headers,
            like.record.timestamp_ms,
            like.record.op,
        );
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
            let header = Header {
                key: self.put(k),
                value: self.put(v),
            };
            self.headers.push(header);
        }
        self.items.push(Record {
            key,
            value,
            headers: Span {
                offset: index(first),
                len: index(count),
            },
            timestamp_ms,
            op,
        });
    }

    fn put(&mut self, bytes: &[u8]) -> Span {
        let span = Span {
            offset: index(self.data.len()),
            len: index(bytes.len()),
        };
        self.data.extend_from_slice(bytes);
        span
    }

    /// The records, borrowed from the buffer. The host checks every span of a batch before
    /// it reaches a sink, so the slicing here cannot fail on what the host delivers.
    pub fn iter(&self) -> impl Iterator<Item = RecordView<'_>> + '_ {
        self.items.iter().map(|r| RecordView {
            records: self,
            record: r,
        })
    }

    fn bytes(&self, span: Span) -> &[u8] {
        &self.data[span.offset as usize..(span.offset + span.len) as usize]
    }
}

/// One record of a [`Records`], read in place.
#[derive(Clone, Copy)]
pub struct RecordView<'a> {
    records: &'a Records,
    record: &'a Record,
}

impl<'a> RecordView<'a> {
    pub fn key(&self) -> Option<&'a [u8]> {
        self.record.key.map(|s| self.records.bytes(s))
    }

    /// `None` for a tombstone.
    pub fn value(&self) -> Option<&'a [u8]> {
        self.record.value.map(|s| self.records.bytes(s))
    }

    pub fn timestamp_ms(&self) -> Option<i64> {
        self.record.timestamp_ms
    }

    pub fn op(&self) -> Option<ChangeOp> {
        self.record.op
    }

    /// Header keys and values; a key that is not UTF-8 is read lossily.
    pub fn headers(&self) -> impl Iterator<Item = (std::borrow::Cow<'a, str>, &'a [u8])> + 'a {
        let records = self.records;
        let Span { offset, len } = self.record.headers;
        records.headers[offset as usize..(offset + len) as usize]
            .iter()
            .map(move |h| {
                (
                    String::from_utf8_lossy(records.bytes(h.key)),
                    records.bytes(h.value),
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
