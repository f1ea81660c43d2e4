pub use crate::wit::weir::connector::sql::{
    Connection, Replication, Statement, Value, WalMessage, WalRead,
};

/// A WAL position as PostgreSQL prints it (`16/B374D848`), for checkpoints people read.
pub fn lsn_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// A WAL position from its text (`16/B374D848`).
pub fn lsn_parse(text: &str) -> Option<u64> {
    let (high, low) = text.trim().split_once('/')?;
    let (high, low) = (
        u64::from_str_radix(high, 16).ok()?,
        u64::from_str_radix(low, 16).ok()?,
    );
    (high <= u64::from(u32::MAX) && low <= u64::from(u32::MAX)).then_some(high << 32 | low)
}

/// `"name"`, quoted for SQL: identifiers from a config must never be spliced in raw.
/// `schema.table` quotes each part.
pub fn ident(name: &str) -> String {
    name.split('.')
        .map(|part| format!("\"{}\"", part.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    #[test]
    fn positions_read_back_as_printed() {
        assert_eq!(super::lsn_parse("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(super::lsn_text(0x16_B374_D848), "16/B374D848");
        assert_eq!(super::lsn_parse("0/0"), Some(0));
        for bad in ["", "1", "x/1", "1/100000000"] {
            assert_eq!(super::lsn_parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn identifiers_are_quoted_part_by_part() {
        assert_eq!(super::ident("orders"), "\"orders\"");
        assert_eq!(super::ident("public.orders"), "\"public\".\"orders\"");
        assert_eq!(super::ident("a\"; drop"), "\"a\"\"; drop\"");
    }
}
