//! Line formats that file-like sources share: JSON Lines and CSV (rows as JSON objects
//! keyed by the header, RFC 4180 quoting via csv-core).

use std::io::BufRead;

use csv_core::{ReadRecordResult, Reader};

/// A CSV header row: the names that turn later rows into JSON objects, and the parser the
/// rows go through with its buffers (built once: building csv-core's parser costs more
/// than parsing a row).
pub struct Header {
    names: Vec<String>,
    fields: Fields,
}

impl Header {
    pub fn parse(line: &[u8]) -> Result<Header, String> {
        let mut fields = Fields {
            reader: Reader::new(),
            out: Vec::new(),
            ends: Vec::new(),
        };
        let names = fields
            .split(line)?
            .map(|f| f.map(str::to_owned))
            .collect::<Result<Vec<_>, _>>()?;
        if names.iter().any(String::is_empty) {
            return Err("a column has no name".into());
        }
        Ok(Header { names, fields })
    }

    /// `{"column": "value", ...}`; values stay strings, as CSV does not type them.
    pub fn to_json(&mut self, row: &[u8]) -> Result<Vec<u8>, String> {
        let names = &self.names;
        let values = self.fields.split(row)?;
        if values.len() != names.len() {
            return Err(format!(
                "{} fields where the header has {}",
                values.len(),
                names.len()
            ));
        }
        // Written straight out, keys and values escaped as JSON strings: no map, no copies.
        let mut json = Vec::with_capacity(row.len() * 2 + 16 * names.len());
        json.push(b'{');
        for (i, (name, value)) in names.iter().zip(values).enumerate() {
            if i > 0 {
                json.push(b',');
            }
            serde_json::to_writer(&mut json, name).map_err(|e| e.to_string())?;
            json.push(b':');
            serde_json::to_writer(&mut json, value?).map_err(|e| e.to_string())?;
        }
        json.push(b'}');
        Ok(json)
    }
}

/// csv-core's parser and the buffers it writes a record's fields into, reused row to row.
struct Fields {
    reader: Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
}

impl Fields {
    /// The fields of one record (quotes undone), each UTF-8 or an error.
    fn split(
        &mut self,
        record: &[u8],
    ) -> Result<impl ExactSizeIterator<Item = Result<&str, String>>, String> {
        self.reader.reset();
        self.out.clear();
        self.out.resize(record.len() + 1, 0);
        self.ends.clear();
        self.ends.resize(record.len() + 1, 0);
        let (out, ends) = (&mut self.out, &mut self.ends);
        // Feeding the record and then end-of-input makes csv-core finish the last field.
        let (result, _, nout, nend) = self.reader.read_record(record, out, ends);
        let (nout, nend) = match result {
            ReadRecordResult::Record => (nout, nend),
            ReadRecordResult::InputEmpty | ReadRecordResult::End => {
                let (r, _, o, e) =
                    self.reader
                        .read_record(&[], &mut out[nout..], &mut ends[nend..]);
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
        let (out, ends) = (&self.out[..nout], &self.ends[..nend]);
        Ok(ends.iter().enumerate().map(move |(i, &end)| {
            let start = if i == 0 { 0 } else { ends[i - 1] };
            std::str::from_utf8(&out[start..end]).map_err(|_| "a field is not UTF-8".to_string())
        }))
    }
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
        let mut header = Header::parse(b"id,name,note").unwrap();
        let json = header.to_json(br#"7,"Smith, Jo","said ""hi""""#).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["id"], "7");
        assert_eq!(value["name"], "Smith, Jo");
        assert_eq!(value["note"], "said \"hi\"");
    }

    #[test]
    fn field_count_mismatch_is_an_error() {
        let mut header = Header::parse(b"a,b").unwrap();
        assert!(header.to_json(b"1,2,3").unwrap_err().contains("3 fields"));
    }

    #[test]
    fn empty_last_field() {
        let mut header = Header::parse(b"a,b").unwrap();
        let value: serde_json::Value =
            serde_json::from_slice(&header.to_json(b"1,").unwrap()).unwrap();
        assert_eq!(value["b"], "");
    }
}
