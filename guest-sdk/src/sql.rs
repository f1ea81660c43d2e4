pub use crate::wit::weir::connector::sql::{Connection, Statement, Value};

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
    fn identifiers_are_quoted_part_by_part() {
        assert_eq!(super::ident("orders"), "\"orders\"");
        assert_eq!(super::ident("public.orders"), "\"public\".\"orders\"");
        assert_eq!(super::ident("a\"; drop"), "\"a\"\"; drop\"");
    }
}
