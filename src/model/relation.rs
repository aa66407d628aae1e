//! Tables and the shape of their rows at one moment (a relation schema version).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Oid;

/// A schema-qualified table name, exactly as stored in the catalog (no case folding, no quotes).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TableName {
    pub schema: String,
    pub name: String,
}

impl TableName {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            schema: schema.into(),
            name: name.into(),
        }
    }

    /// The name as SQL: both parts quoted, safe for any characters.
    /// The name as people read it in lists: without the schema when it is `public`, since an
    /// unqualified name means `public` wherever rowtrail reads one.
    pub fn short(&self) -> String {
        match self.schema.as_str() {
            "public" => self.name.clone(),
            _ => self.to_string(),
        }
    }

    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    /// Parses a table name as a user types it: `orders`, `sales.orders`, `"Order Items"`,
    /// `sales."Weird.Name"`. Unquoted parts fold to lower case as in SQL; a missing schema means `public`.
    pub fn parse(text: &str) -> Result<Self, TableNameError> {
        let parts = split_identifier_path(text)?;
        match parts.as_slice() {
            [name] => Ok(Self::new("public", name.clone())),
            [schema, name] => Ok(Self::new(schema.clone(), name.clone())),
            _ => Err(TableNameError(text.to_owned())),
        }
    }

    /// Parses a comma-separated list of table names (see [`TableName::parse`]); quoted parts may hold commas.
    pub fn parse_list(text: &str) -> Result<Vec<Self>, TableNameError> {
        let mut names = Vec::new();
        let mut current = String::new();
        let mut in_quotes = false;
        for c in text.chars() {
            match c {
                '"' => {
                    in_quotes = !in_quotes;
                    current.push(c);
                }
                ',' if !in_quotes => names.push(std::mem::take(&mut current)),
                _ => current.push(c),
            }
        }
        names.push(current);
        names
            .iter()
            .filter(|name| !name.trim().is_empty())
            .map(|name| Self::parse(name))
            .collect()
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// A table name that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not a table name: write table or schema.table, with double quotes around names that have capitals, dots or spaces"
)]
pub struct TableNameError(pub String);

fn split_identifier_path(text: &str) -> Result<Vec<String>, TableNameError> {
    let error = || TableNameError(text.to_owned());
    let mut parts = Vec::new();
    let mut chars = text.trim().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    Some('"') => break,
                    Some(c) => part.push(c),
                    None => return Err(error()),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                if c == '"' || c.is_whitespace() {
                    return Err(error());
                }
                part.extend(c.to_lowercase());
                chars.next();
            }
        }
        if part.is_empty() {
            return Err(error());
        }
        parts.push(part);
        match chars.next() {
            None => return Ok(parts),
            Some('.') => continue,
            Some(_) => return Err(error()),
        }
    }
}

/// Quotes an SQL identifier: `a"b` becomes `"a""b"`. Always quotes, so keywords and case survive.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// What the source sends as the old row of an update or delete (`ALTER TABLE ... REPLICA IDENTITY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplicaIdentity {
    /// The primary key columns (the default).
    Default,
    /// Nothing: updates and deletes cannot be told apart by key.
    Nothing,
    /// Every column: complete before-images.
    Full,
    /// The columns of a chosen unique index.
    Index,
}

impl ReplicaIdentity {
    /// Reads the catalog code (`pg_class.relreplident`) that pgoutput also sends.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            b'd' => Some(Self::Default),
            b'n' => Some(Self::Nothing),
            b'f' => Some(Self::Full),
            b'i' => Some(Self::Index),
            _ => None,
        }
    }

    pub fn as_sql(self) -> &'static str {
        match self {
            Self::Default => "DEFAULT",
            Self::Nothing => "NOTHING",
            Self::Full => "FULL",
            Self::Index => "USING INDEX",
        }
    }
}

/// How an identity column produces values (`GENERATED ALWAYS` needs `OVERRIDING SYSTEM VALUE` to insert).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    Always,
    ByDefault,
}

/// One column of a relation schema version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub type_oid: Oid,
    /// The type under any domains (`type_oid` itself for a plain type): decides the text form.
    pub base_type_oid: Oid,
    pub type_modifier: i32,
    /// The type as SQL, as `format_type` prints it (`numeric(12,4)`, `text[]`, `public.mood`).
    pub type_name: String,
    /// Part of the replica identity sent for updates and deletes.
    pub in_replica_identity: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityKind>,
    /// The column's number in the table (`pg_attribute.attnum`), which survives renames: how a
    /// column is recognised across schema versions. `None` when it could not be learned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attnum: Option<i16>,
}

#[cfg(test)]
impl Column {
    /// A `text` column with nothing else known, for tests.
    pub(crate) fn text_for_tests(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            type_oid: 25,
            base_type_oid: 25,
            type_modifier: -1,
            type_name: "text".to_owned(),
            in_replica_identity: false,
            identity: None,
            attnum: None,
        }
    }
}

/// A foreign key from this table to another, by column names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    pub name: String,
    pub columns: Vec<String>,
    pub referenced_table: TableName,
    pub referenced_columns: Vec<String>,
}

/// The shape of a table's rows for a stretch of its history. A new version starts whenever the
/// source reports different columns, types or keys (for example after `ALTER TABLE`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationSchema {
    pub oid: Oid,
    pub table: TableName,
    pub replica_identity: ReplicaIdentity,
    pub columns: Vec<Column>,
    /// Indexes into `columns` of the columns that identify a record: the primary key, else the
    /// replica identity index; empty when the table has neither.
    pub key: Vec<usize>,
    pub foreign_keys: Vec<ForeignKey>,
    /// The key was read from the catalog when capture decoded the change, which may be later than
    /// the change itself: under `REPLICA IDENTITY FULL` the stream does not say which columns
    /// were the key, and no schema change record (rowtrail's event trigger) said so either.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub key_read_later: bool,
}

impl RelationSchema {
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|column| column.name == name)
    }

    /// The index of the column in this version that is `column` of another version of the same
    /// table: the same `attnum` when both know it, else the same name.
    pub fn matching_column(&self, column: &Column) -> Option<usize> {
        match column.attnum {
            Some(attnum) if self.columns.iter().all(|own| own.attnum.is_some()) => self
                .columns
                .iter()
                .position(|own| own.attnum == Some(attnum)),
            _ => self.column_index(&column.name),
        }
    }

    /// True when the two versions have the same columns (names and types, in order) and key.
    pub fn same_shape(&self, other: &RelationSchema) -> bool {
        self.key == other.key
            && self.columns.len() == other.columns.len()
            && self.columns.iter().zip(&other.columns).all(|(a, b)| {
                a.name == b.name && a.type_oid == b.type_oid && a.type_modifier == b.type_modifier
            })
    }

    pub fn key_column_names(&self) -> impl Iterator<Item = &str> {
        self.key
            .iter()
            .filter_map(|&index| self.columns.get(index))
            .map(|column| column.name.as_str())
    }

    /// True when a record can be identified by key columns rather than by all of its values.
    pub fn has_key(&self) -> bool {
        !self.key.is_empty()
    }

    /// What the table's replica identity costs its history, and the fix; `None` when the source
    /// sends complete before-images.
    pub fn identity_note(&self) -> Option<String> {
        let fix = format!(
            "For complete history: ALTER TABLE {} REPLICA IDENTITY FULL;",
            self.table.quoted()
        );
        let cost = match self.replica_identity {
            ReplicaIdentity::Full => return None,
            ReplicaIdentity::Default | ReplicaIdentity::Index => {
                "PostgreSQL sends no old values for updates and only the key of a deleted row. rowtrail fills them in from the history it captured, but values it never saw stay unavailable."
            }
            ReplicaIdentity::Nothing => {
                "PostgreSQL sends nothing about the old row, so updates and deletes cannot be tied to a record."
            }
        };
        Some(format!(
            "REPLICA IDENTITY {}: {cost} {fix}",
            self.replica_identity.as_sql()
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    #[test]
    fn table_names_parse_like_sql() {
        let cases = [
            ("orders", ("public", "orders")),
            ("Orders", ("public", "orders")),
            ("sales.orders", ("sales", "orders")),
            ("\"Order Items\"", ("public", "Order Items")),
            ("sales.\"Weird.Name\"", ("sales", "Weird.Name")),
            ("\"a\"\"b\".c", ("a\"b", "c")),
            ("  spaced  ", ("public", "spaced")),
        ];
        for (text, (schema, name)) in cases {
            assert_eq!(
                TableName::parse(text).unwrap(),
                TableName::new(schema, name),
                "{text}"
            );
        }
        for bad in ["", "a.b.c", "a..b", "\"open", "two words", ".x", "x."] {
            assert!(TableName::parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn table_lists_split_on_commas_outside_quotes() {
        let names = TableName::parse_list("orders, sales.items,\"a,b\"").unwrap();
        assert_eq!(
            names,
            vec![
                TableName::new("public", "orders"),
                TableName::new("sales", "items"),
                TableName::new("public", "a,b"),
            ]
        );
    }

    #[test]
    fn identifiers_are_always_quoted() {
        assert_eq!(quote_ident("order"), "\"order\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(TableName::new("s p", "t").quoted(), "\"s p\".\"t\"");
    }
}
