//! Packed records as the host handles them: it counts them and, since it is the trust
//! boundary between two guests, checks every span a source returns before a sink sees it.

use crate::bindings::weir::connector::types::{Header, Record, Records, Span};

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
                key: self.put(k.as_bytes()),
                value: self.put(v),
            };
            self.headers.push(header);
        }
        self.items.push(Record {
            key,
            value,
            headers: Span {
                offset: first,
                len: headers.len() as u32,
            },
            timestamp_ms,
            op: None,
        });
    }

    fn put(&mut self, bytes: &[u8]) -> Span {
        let span = Span {
            offset: self.data.len() as u32,
            len: bytes.len() as u32,
        };
        self.data.extend_from_slice(bytes);
        span
    }

    /// The records in place; only for records that passed [`Records::check`].
    pub(crate) fn iter(&self) -> impl Iterator<Item = View<'_>> {
        self.items.iter().map(move |record| View {
            records: self,
            record,
        })
    }

    fn bytes(&self, span: Span) -> &[u8] {
        &self.data[span.offset as usize..(span.offset + span.len) as usize]
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Every span within `data` (and every header range within `headers`), or what is not.
    pub(crate) fn check(&self) -> Result<(), String> {
        let within = |span: Span, len: usize, what: &dyn Fn() -> String| {
            let end = u64::from(span.offset) + u64::from(span.len);
            if end > len as u64 {
                Err(format!("{} ends at {end}, past {len}", what()))
            } else {
                Ok(())
            }
        };
        let data = self.data.len();
        for (i, h) in self.headers.iter().enumerate() {
            within(h.key, data, &|| format!("header {i} key"))?;
            within(h.value, data, &|| format!("header {i} value"))?;
        }
        for (i, r) in self.items.iter().enumerate() {
            if let Some(key) = r.key {
                within(key, data, &|| format!("record {i} key"))?;
            }
            if let Some(value) = r.value {
                within(value, data, &|| format!("record {i} value"))?;
            }
            within(r.headers, self.headers.len(), &|| {
                format!("record {i} headers")
            })?;
        }
        Ok(())
    }
}

pub(crate) struct View<'a> {
    records: &'a Records,
    record: &'a Record,
}

impl<'a> View<'a> {
    pub(crate) fn key(&self) -> Option<&'a [u8]> {
        self.record.key.map(|s| self.records.bytes(s))
    }

    pub(crate) fn value(&self) -> Option<&'a [u8]> {
        self.record.value.map(|s| self.records.bytes(s))
    }

    #[cfg(any(feature = "kafka", test))]
    pub(crate) fn timestamp_ms(&self) -> Option<i64> {
        self.record.timestamp_ms
    }

    /// Header keys (lossy UTF-8) and values.
    #[cfg(any(feature = "kafka", test))]
    pub(crate) fn headers(&self) -> impl Iterator<Item = (String, &'a [u8])> + 'a {
        let records = self.records;
        let Span { offset, len } = self.record.headers;
        records.headers[offset as usize..(offset + len) as usize]
            .iter()
            .map(move |h| {
                (
                    String::from_utf8_lossy(records.bytes(h.key)).into_owned(),
                    records.bytes(h.value),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use crate::bindings::weir::connector::types::{Header, Record, Records, Span};

    fn span(offset: u32, len: u32) -> Span {
        Span { offset, len }
    }

    fn records(value: Span, headers: Span) -> Records {
        Records {
            data: b"abcdef".to_vec(),
            headers: vec![Header {
                key: span(0, 1),
                value: span(1, 2),
            }],
            items: vec![Record {
                key: None,
                value: Some(value),
                headers,
                timestamp_ms: None,
                op: None,
            }],
        }
    }

    #[test]
    fn spans_inside_pass() {
        assert_eq!(records(span(0, 6), span(0, 1)).check(), Ok(()));
        assert_eq!(records(span(6, 0), span(1, 0)).check(), Ok(()));
    }

    #[test]
    fn spans_outside_are_named() {
        let err = records(span(4, 3), span(0, 1)).check().unwrap_err();
        assert_eq!(err, "record 0 value ends at 7, past 6");
        let err = records(span(0, 1), span(0, 2)).check().unwrap_err();
        assert_eq!(err, "record 0 headers ends at 2, past 1");
        let err = records(span(u32::MAX, 2), span(0, 0)).check().unwrap_err();
        assert!(err.contains("past 6"), "no overflow: {err}");
    }
}
