//! Line formats that file-like sources share: JSON Lines and CSV (rows as JSON objects
//! keyed by the header, RFC 4180 quoting via csv-core, with the options users of other
//! CSV readers expect: delimiter, quote, null values, types).

use std::collections::BTreeMap;
use std::io::BufRead;

use csv_core::{ReadRecordResult, Reader, ReaderBuilder};
use schemars::JsonSchema;
use serde::Deserialize;

/// How CSV is read (a source's `csv` config).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CsvOptions {
    /// The one character between fields.
    pub delimiter: char,
    /// The one character that quotes a field (doubled inside one to stand for itself).
    pub quote: char,
    /// Values that become JSON `null`, e.g. `["NA", ""]`.
    pub null_values: Vec<String>,
    /// Values that read as a JSON number become numbers, `true` and `false` booleans; the
    /// rest stay strings (so `007` and `1e` stay text). Off: every value is a string.
    pub infer_types: bool,
    /// A type per column, over `infer_types`: `string`, `number` or `boolean`. A value
    /// that is not of its column's type makes a bad row, as a wrong field count does
    /// (file-source stops there naming the file and offset; object-source makes the row a
    /// dead letter).
    pub types: BTreeMap<String, ColumnType>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: ',',
            quote: '"',
            null_values: Vec::new(),
            infer_types: false,
            types: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    String,
    Number,
    Boolean,
}

impl CsvOptions {
    /// The quote as a byte, for [`read_record`]; an error (naming the field) for options
    /// that cannot work, so a source can refuse them at open as a `config` error.
    pub fn quote_byte(&self) -> Result<u8, String> {
        ascii(self.delimiter, "delimiter")?;
        ascii(self.quote, "quote")
    }
}

fn ascii(c: char, what: &str) -> Result<u8, String> {
    u8::try_from(c)
        .ok()
        .filter(u8::is_ascii)
        .ok_or_else(|| format!("csv.{what}: `{c}` is not one ASCII character"))
}

/// A CSV header row: the names that turn later rows into JSON objects, the type of each
/// column, and the parser the rows go through with its buffers (built once: building
/// csv-core's parser costs more than parsing a row).
pub struct Header {
    names: Vec<String>,
    /// Each name as a JSON key with its colon (`"name":`), escaped once.
    keys: Vec<Vec<u8>>,
    types: Vec<Option<ColumnType>>,
    null_values: Vec<String>,
    infer: bool,
    fields: Fields,
}

impl Header {
    pub fn parse(line: &[u8], options: &CsvOptions) -> Result<Header, String> {
        let reader = ReaderBuilder::new()
            .delimiter(ascii(options.delimiter, "delimiter")?)
            .quote(options.quote_byte()?)
            .build();
        let mut fields = Fields {
            reader,
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
        if let Some(unknown) = options.types.keys().find(|c| !names.contains(c)) {
            return Err(format!("csv.types: no column `{unknown}` in the header"));
        }
        Ok(Header {
            types: names
                .iter()
                .map(|n| options.types.get(n).copied())
                .collect(),
            keys: names
                .iter()
                .map(|n| {
                    let mut key = serde_json::to_vec(n).expect("a string serialises");
                    key.push(b':');
                    key
                })
                .collect(),
            names,
            null_values: options.null_values.clone(),
            infer: options.infer_types,
            fields,
        })
    }

    /// `{"column": value, ...}`: strings, unless a null value, a column's type or
    /// inference says otherwise.
    pub fn to_json(&mut self, row: &[u8]) -> Result<Vec<u8>, String> {
        let mut json = Vec::with_capacity(row.len() * 2 + 16 * self.names.len());
        self.write_json(row, &mut json)?;
        Ok(json)
    }

    /// [`Header::to_json`] into `json` (cleared first), so a reader can keep one buffer.
    pub fn write_json(&mut self, row: &[u8], json: &mut Vec<u8>) -> Result<(), String> {
        json.clear();
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
        json.push(b'{');
        for (i, (((name, key), value), ty)) in names
            .iter()
            .zip(&self.keys)
            .zip(values)
            .zip(&self.types)
            .enumerate()
        {
            if i > 0 {
                json.push(b',');
            }
            json.extend_from_slice(key);
            let value = value?;
            let typed = |want: ColumnType| -> Result<&[u8], String> {
                match want {
                    ColumnType::Number if is_number(value) => Ok(value.as_bytes()),
                    ColumnType::Boolean if value == "true" || value == "false" => {
                        Ok(value.as_bytes())
                    }
                    _ => Err(format!(
                        "column `{name}`: `{value}` is not a {}",
                        if want == ColumnType::Number {
                            "number"
                        } else {
                            "boolean (true or false)"
                        }
                    )),
                }
            };
            let raw: Option<&[u8]> = if self.null_values.iter().any(|n| n == value) {
                Some(b"null")
            } else {
                match ty {
                    Some(ColumnType::String) => None,
                    Some(want) => Some(typed(*want)?),
                    None if self.infer => typed(ColumnType::Number)
                        .or_else(|_| typed(ColumnType::Boolean))
                        .ok(),
                    None => None,
                }
            };
            match raw {
                Some(raw) => json.extend_from_slice(raw),
                None => serde_json::to_writer(&mut *json, value).map_err(|e| e.to_string())?,
            }
        }
        json.push(b'}');
        Ok(())
    }
}

/// Whether `text` is a JSON number as it stands (no sign but `-`, no leading zeros, no
/// spaces): written as it is, it keeps every digit.
fn is_number(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    match (b.get(i), b.get(i + 1)) {
        (Some(b'0'), Some(b'0'..=b'9')) => return false,
        (Some(b'0'..=b'9'), _) => {}
        _ => return false,
    }
    digits(&mut i);
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
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

/// Reads one record including its newline; for CSV (`quote` given) a quoted field may span
/// lines.
pub fn read_record(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    quote: Option<u8>,
) -> std::io::Result<usize> {
    let mut total = reader.read_until(b'\n', buf)?;
    if let Some(quote) = quote {
        while buf.iter().filter(|&&b| b == quote).count() % 2 == 1 && buf.last() == Some(&b'\n') {
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

    fn header(line: &[u8]) -> Header {
        Header::parse(line, &CsvOptions::default()).unwrap()
    }

    #[test]
    fn quoted_fields_and_embedded_commas() {
        let mut header = header(b"id,name,note");
        let json = header.to_json(br#"7,"Smith, Jo","said ""hi""""#).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["id"], "7");
        assert_eq!(value["name"], "Smith, Jo");
        assert_eq!(value["note"], "said \"hi\"");
    }

    #[test]
    fn field_count_mismatch_is_an_error() {
        let mut header = header(b"a,b");
        assert!(header.to_json(b"1,2,3").unwrap_err().contains("3 fields"));
    }

    #[test]
    fn empty_last_field() {
        let mut header = header(b"a,b");
        let value: serde_json::Value =
            serde_json::from_slice(&header.to_json(b"1,").unwrap()).unwrap();
        assert_eq!(value["b"], "");
    }

    /// The flights data set's shape: `;`-separated, `'`-quoted, `NA` for missing values.
    #[test]
    fn options_type_values_and_turn_null_values_into_null() {
        let options: CsvOptions = serde_json::from_value(serde_json::json!({
            "delimiter": ";",
            "quote": "'",
            "null_values": ["NA", ""],
            "infer_types": true,
            "types": { "zip": "string", "dep_delay": "number" },
        }))
        .unwrap();
        let mut header = Header::parse(b"year;carrier;dep_delay;zip;late;note", &options).unwrap();
        let row = |line: &[u8], header: &mut Header| -> serde_json::Value {
            serde_json::from_slice(&header.to_json(line).unwrap()).unwrap()
        };
        assert_eq!(
            row(b"2013;UA;-2.5;01234;true;'a; b'", &mut header),
            serde_json::json!({"year": 2013, "carrier": "UA", "dep_delay": -2.5, "zip": "01234", "late": true, "note": "a; b"})
        );
        assert_eq!(
            row(b"2013;NA;NA;;false;007", &mut header),
            serde_json::json!({"year": 2013, "carrier": null, "dep_delay": null, "zip": null, "late": false, "note": "007"})
        );
        let err = header.to_json(b"2013;UA;soon;1;true;x").unwrap_err();
        assert_eq!(err, "column `dep_delay`: `soon` is not a number");
        // Without options nothing is typed.
        let mut plain = super::tests::header(b"n,b");
        assert_eq!(
            row(b"1,true", &mut plain),
            serde_json::json!({"n": "1", "b": "true"})
        );
        // A type for a column the header lacks, or a delimiter of two characters: refused.
        let mut wrong = CsvOptions::default();
        wrong.types.insert("nope".into(), ColumnType::Number);
        let refused = |options: &CsvOptions| Header::parse(b"a", options).err().unwrap();
        assert!(refused(&wrong).contains("no column `nope`"));
        assert!(
            serde_json::from_value::<CsvOptions>(serde_json::json!({"delimiter": "ab"})).is_err()
        );
        let wide = CsvOptions {
            delimiter: 'é',
            ..CsvOptions::default()
        };
        assert!(refused(&wide).contains("csv.delimiter"));
    }

    #[test]
    fn json_numbers_are_told_from_text() {
        for yes in [
            "0",
            "-1",
            "12.5",
            "1e9",
            "-0.5E-3",
            "123456789012345678901234567890",
        ] {
            assert!(is_number(yes), "{yes}");
        }
        for no in [
            "", "-", "01", "1.", ".5", "+1", " 1", "1e", "NaN", "inf", "0x10", "1,5",
        ] {
            assert!(!is_number(no), "{no}");
        }
    }
}
