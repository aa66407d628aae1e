//! A link between two tables: a foreign key, or one a user added where the schema has none.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{ForeignKey, TableName};

/// Rows of `from` point at rows of `to`: `from.columns` hold the values of `to.to_columns`.
/// A foreign key, or a link the user added where the schema has none.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Link {
    pub from: TableName,
    pub columns: Vec<String>,
    pub to: TableName,
    pub to_columns: Vec<String>,
}

impl Link {
    pub fn from_foreign_key(table: &TableName, key: &ForeignKey) -> Self {
        Self {
            from: table.clone(),
            columns: key.columns.clone(),
            to: key.referenced_table.clone(),
            to_columns: key.referenced_columns.clone(),
        }
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}({}) → {}({})",
            self.from.short(),
            self.columns.join(", "),
            self.to.short(),
            self.to_columns.join(", ")
        )
    }
}
