//! Line formats that file-like sources share: JSON Lines and CSV (rows as JSON objects
//! keyed by the header, RFC 4180 quoting via csv-core).

use std::io::BufRead;

use csv_core::{ReadRecordResult, Reader};

/// A CSV header row: the names that turn later rows into JSON objects.
pub struct Header {
    names: Vec<String>,
}

impl Header {
    pub fn parse(line: &[u8]) -> Result<Header, String> {
        let names = fields(line)?;
        if names.iter().any(String::is_empty) {
            return Err("a column has no name".into());
        }
        Ok(Header { names })
    }

    /// `{"column": "value", ...}`; values stay strings, as CSV does not type them.
    pub fn to_json(&self, row: &[u8]) -> Result<Vec<u8>, String> {
        let values = fields(row)?;
        if values.len() != self.names.len() {
            return Err(format!(
                "{} fields where the header has {}",
                values.len(),
                self.names.len()
            ));
        }
        let object: serde_json::Map<String, serde_json::Value> = self
            .names
            .iter()
            .cloned()
            .zip(values.into_iter().map(serde_json::Value::String))
            .collect();
        serde_json::to_vec(&object).map_err(|e| e.to_string())
    }
}

fn fields(record: &[u8]) -> Result<Vec<String>, String> {
    let mut reader = Reader::new();
    let mut out = vec![0u8; record.len() + 1];
    let mut ends = vec![0usize; record.len() + 1];
    // Feeding the record and then end-of-input makes csv-core finish the last field.
    let (result, _, nout, nend) = reader.read_record(record, &mut out, &mut ends);
    let (nout, nend) = match result {
        ReadRecordResult::Record => (nout, nend),
        ReadRecordResult::InputEmpty | ReadRecordResult::End => {
            let (r, _, o, e) = reader.read_record(&[], &mut out[nout..], &mut ends[nend..]);
            if !matches!(r, ReadRecordResult::Record) {
                return Err("empty record".into());
            }
            // csv-core counts field ends from the start of the record, across calls.
            (nout + o, nend + e)
        }
        ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull => {
            return Err("record larger than expected".into());
        }
    };
    let out = &out[..nout];
    let mut start = 0;
    ends[..nend]
        .iter()
        .map(|&end| {
            let field = std::str::from_utf8(&out[start..end])
                .map(str::to_owned)
                .map_err(|_| "a field is not UTF-8".to_string());
            start = end;
            field
        })
        .collect()
}

/// Reads one record including its newline; for CSV a quoted field may span lines.
pub fn read_record(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    csv: bool,
) -> std::io::Result<usize> {
    let mut total = reader.read_until(b'\n', buf)?;
    if csv {
        while buf.iter().filter(|&&b| b == b'"').count() % 2 == 1 && buf.last() == Some(&b'\n') {
            let more = reader.read_until(b'\n', buf)?;
            if more == 0 {
                break;
            }
            total += more;
        }
    }
    Ok(total)
}

/// The line without its `\n` or `\r\n`.
pub fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_and_embedded_commas() {
        let header = Header::parse(b"id,name,note").unwrap();
        let json = header.to_json(br#"7,"Smith, Jo","said ""hi""""#).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["id"], "7");
        assert_eq!(value["name"], "Smith, Jo");
        assert_eq!(value["note"], "said \"hi\"");
    }

    #[test]
    fn field_count_mismatch_is_an_error() {
        let header = Header::parse(b"a,b").unwrap();
        assert!(header.to_json(b"1,2,3").unwrap_err().contains("3 fields"));
    }

    #[test]
    fn empty_last_field() {
        let header = Header::parse(b"a,b").unwrap();
        let value: serde_json::Value =
            serde_json::from_slice(&header.to_json(b"1,").unwrap()).unwrap();
        assert_eq!(value["b"], "");
    }
}
