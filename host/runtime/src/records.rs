//! Packed records as the host handles them: it counts them and, since it is the trust
//! boundary between two guests, checks every span a source returns before a sink sees it.

use crate::bindings::weir::connector::types::{Header, Records, Span};
use weir_wire::{ITEM, Item, MAX_OP};

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

    /// Appends a record, copying its bytes into the buffer (host-supplied sources).
    pub fn push(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, &[u8])],
        timestamp_ms: Option<i64>,
    ) {
        let key = key.map(|k| self.put(k));
        let value = value.map(|v| self.put(v));
        let first = self.headers.len() as u32;
        for (k, v) in headers {
            let header = Header {
                key: span(self.put(k.as_bytes())),
                value: span(self.put(v)),
            };
            self.headers.push(header);
        }
        Item {
            key,
            value,
            headers: (first, headers.len() as u32),
            op: 0,
            timestamp_ms,
        }
        .write(&mut self.items);
    }

    fn put(&mut self, bytes: &[u8]) -> (u32, u32) {
        let at = (self.data.len() as u32, bytes.len() as u32);
        self.data.extend_from_slice(bytes);
        at
    }

    /// The records in place. Panics on a span outside the batch: only for records the host
    /// made or checked (every batch an instance returns).
    pub fn iter(&self) -> impl Iterator<Item = View<'_>> {
        (0..self.len()).map(move |i| View {
            records: self,
            item: Item::read(&self.items, i),
        })
    }

    fn bytes(&self, (offset, len): (u32, u32)) -> &[u8] {
        &self.data[offset as usize..(offset + len) as usize]
    }

    pub fn len(&self) -> usize {
        self.items.len() / ITEM
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whole entries, every span within `data` (and every header range within `headers`),
    /// known ops; or what is not.
    pub(crate) fn check(&self) -> Result<(), String> {
        let within = |(offset, len): (u32, u32), limit: usize, what: &dyn Fn() -> String| {
            let end = u64::from(offset) + u64::from(len);
            if end > limit as u64 {
                Err(format!("{} ends at {end}, past {limit}", what()))
            } else {
                Ok(())
            }
        };
        let count = Item::count(&self.items).ok_or_else(|| {
            format!(
                "the entries are {} bytes, not a multiple of {ITEM}",
                self.items.len()
            )
        })?;
        let data = self.data.len();
        for (i, h) in self.headers.iter().enumerate() {
            within((h.key.offset, h.key.len), data, &|| {
                format!("header {i} key")
            })?;
            within((h.value.offset, h.value.len), data, &|| {
                format!("header {i} value")
            })?;
        }
        for i in 0..count {
            let r = Item::read(&self.items, i);
            if let Some(key) = r.key {
                within(key, data, &|| format!("record {i} key"))?;
            }
            if let Some(value) = r.value {
                within(value, data, &|| format!("record {i} value"))?;
            }
            within(r.headers, self.headers.len(), &|| {
                format!("record {i} headers")
            })?;
            if r.op > MAX_OP {
                return Err(format!(
                    "record {i} has op {}, which is none of the ops",
                    r.op
                ));
            }
        }
        Ok(())
    }
}

fn span((offset, len): (u32, u32)) -> Span {
    Span { offset, len }
}

pub struct View<'a> {
    records: &'a Records,
    item: Item,
}

impl<'a> View<'a> {
    pub fn key(&self) -> Option<&'a [u8]> {
        self.item.key.map(|s| self.records.bytes(s))
    }

    pub fn value(&self) -> Option<&'a [u8]> {
        self.item.value.map(|s| self.records.bytes(s))
    }

    pub fn timestamp_ms(&self) -> Option<i64> {
        self.item.timestamp_ms
    }

    /// Header keys (lossy UTF-8) and values.
    pub fn headers(&self) -> impl Iterator<Item = (String, &'a [u8])> + 'a {
        let records = self.records;
        let (first, count) = self.item.headers;
        records.headers[first as usize..(first + count) as usize]
            .iter()
            .map(move |h| {
                (
                    String::from_utf8_lossy(records.bytes((h.key.offset, h.key.len))).into_owned(),
                    records.bytes((h.value.offset, h.value.len)),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use crate::bindings::weir::connector::types::{Header, Records, Span};
    use weir_wire::Item;

    fn records(value: (u32, u32), headers: (u32, u32), op: u32) -> Records {
        let mut items = Vec::new();
        Item {
            value: Some(value),
            headers,
            op,
            ..Item::default()
        }
        .write(&mut items);
        Records {
            data: b"abcdef".to_vec(),
            headers: vec![Header {
                key: Span { offset: 0, len: 1 },
                value: Span { offset: 1, len: 2 },
            }],
            items,
        }
    }

    #[test]
    fn spans_inside_pass() {
        assert_eq!(records((0, 6), (0, 1), 0).check(), Ok(()));
        assert_eq!(records((6, 0), (1, 0), 4).check(), Ok(()));
    }

    #[test]
    fn spans_outside_are_named() {
        let err = records((4, 3), (0, 1), 0).check().unwrap_err();
        assert_eq!(err, "record 0 value ends at 7, past 6");
        let err = records((0, 1), (0, 2), 0).check().unwrap_err();
        assert_eq!(err, "record 0 headers ends at 2, past 1");
        let err = records((u32::MAX, 2), (0, 0), 0).check().unwrap_err();
        assert!(err.contains("past 6"), "no overflow: {err}");
    }

    #[test]
    fn torn_entries_and_unknown_ops_are_named() {
        let mut torn = records((0, 1), (0, 0), 0);
        torn.items.pop();
        assert_eq!(
            torn.check().unwrap_err(),
            "the entries are 35 bytes, not a multiple of 36"
        );
        let err = records((0, 1), (0, 0), 5).check().unwrap_err();
        assert_eq!(err, "record 0 has op 5, which is none of the ops");
    }
}
