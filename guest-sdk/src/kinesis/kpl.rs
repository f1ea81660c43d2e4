//! Records aggregated by the Kinesis Producer Library: many user records in one Kinesis
//! record, as a magic prefix, a protobuf `AggregatedRecord`, and the MD5 of that protobuf
//! (awslabs/amazon-kinesis-producer, `aggregation-format.md`). Parsed here, in the
//! sandbox, since the bytes are whatever a producer put into the stream.

use md5::{Digest, Md5};

pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DIGEST: usize = 16;

/// One user record of an aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord<'a> {
    pub partition_key: &'a str,
    pub data: &'a [u8],
}

/// The user records of `data` if it is a whole, intact aggregate; None for anything else,
/// which is then a plain record (as the KCL takes it).
pub fn deaggregate(data: &[u8]) -> Option<Vec<UserRecord<'_>>> {
    let body = data.strip_prefix(&MAGIC)?;
    let (message, digest) = body.split_at_checked(body.len().checked_sub(DIGEST)?)?;
    if Md5::digest(message).as_slice() != digest {
        return None;
    }
    let mut keys = Vec::new();
    let mut records = Vec::new();
    for field in Fields(message) {
        match field? {
            (1, Value::Bytes(key)) => keys.push(std::str::from_utf8(key).ok()?),
            (3, Value::Bytes(record)) => records.push(record),
            _ => {} // explicit hash keys, and what later versions add
        }
    }
    records
        .into_iter()
        .map(|record| {
            let (mut key, mut data) = (None, None);
            for field in Fields(record) {
                match field? {
                    (1, Value::Varint(i)) => key = Some(*keys.get(usize::try_from(i).ok()?)?),
                    (3, Value::Bytes(bytes)) => data = Some(bytes),
                    _ => {}
                }
            }
            Some(UserRecord {
                partition_key: key?,
                data: data?,
            })
        })
        .collect()
}

/// Aggregates `records` as the KPL does: what a test puts into a stream.
pub fn aggregate(records: &[UserRecord<'_>]) -> Vec<u8> {
    let mut keys: Vec<&str> = Vec::new();
    let mut message = Vec::new();
    for r in records {
        if !keys.contains(&r.partition_key) {
            keys.push(r.partition_key);
            bytes_field(&mut message, 1, r.partition_key.as_bytes());
        }
    }
    for r in records {
        let index = keys.iter().position(|k| *k == r.partition_key).unwrap_or(0);
        let mut record = Vec::new();
        varint(&mut record, 1 << 3);
        varint(&mut record, index as u64);
        bytes_field(&mut record, 3, r.data);
        bytes_field(&mut message, 3, &record);
    }
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&message);
    out.extend_from_slice(&Md5::digest(&message));
    out
}

fn bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    varint(out, (field << 3) | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// A protobuf message's fields in order; None where it is malformed.
struct Fields<'a>(&'a [u8]);

impl<'a> Iterator for Fields<'a> {
    type Item = Option<(u64, Value<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let field = (|| {
            let tag = read_varint(&mut self.0)?;
            let value = match tag & 7 {
                0 => Value::Varint(read_varint(&mut self.0)?),
                1 => Value::Fixed.skip(&mut self.0, 8)?,
                2 => {
                    let len = usize::try_from(read_varint(&mut self.0)?).ok()?;
                    let (bytes, rest) = self.0.split_at_checked(len)?;
                    self.0 = rest;
                    Value::Bytes(bytes)
                }
                5 => Value::Fixed.skip(&mut self.0, 4)?,
                _ => return None,
            };
            Some((tag >> 3, value))
        })();
        if field.is_none() {
            self.0 = &[]; // nothing after a malformed field can be trusted
        }
        Some(field)
    }
}

impl<'a> Value<'a> {
    fn skip(self, input: &mut &'a [u8], n: usize) -> Option<Self> {
        *input = input.get(n..)?;
        Some(self)
    }
}

fn read_varint(input: &mut &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for (i, &byte) in input.iter().enumerate().take(10) {
        n |= u64::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            *input = &input[i + 1..];
            return Some(n);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(partition_key: &'static str, data: &'static [u8]) -> UserRecord<'static> {
        UserRecord {
            partition_key,
            data,
        }
    }

    #[test]
    fn an_aggregate_comes_apart_into_its_records_in_order() {
        let records = [user("a", b"one"), user("b", b""), user("a", &[0xF3; 300])];
        let blob = aggregate(&records);
        assert_eq!(deaggregate(&blob).unwrap(), records);
    }

    #[test]
    fn anything_but_an_intact_aggregate_is_a_plain_record() {
        let blob = aggregate(&[user("a", b"one")]);
        assert_eq!(deaggregate(b"{\"plain\":1}"), None);
        assert_eq!(deaggregate(&MAGIC), None, "no digest");
        let mut flipped = blob.clone();
        flipped[6] ^= 1;
        assert_eq!(deaggregate(&flipped), None, "digest mismatch");
        assert_eq!(deaggregate(&blob[..blob.len() - 1]), None, "truncated");
    }

    #[test]
    fn a_record_pointing_past_the_key_table_is_not_an_aggregate() {
        let mut record = Vec::new();
        varint(&mut record, 1 << 3);
        varint(&mut record, 7);
        bytes_field(&mut record, 3, b"x");
        let mut message = Vec::new();
        bytes_field(&mut message, 1, b"only-key");
        bytes_field(&mut message, 3, &record);
        let mut blob = MAGIC.to_vec();
        blob.extend_from_slice(&message);
        blob.extend_from_slice(&Md5::digest(&message));
        assert_eq!(deaggregate(&blob), None);
    }
}
