//! What a schema change did to a table, read off two schema versions.

use std::fmt;

use super::{RelationSchema, TableName};

/// One difference between two schema versions of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaEdit {
    Renamed {
        from: TableName,
        to: TableName,
    },
    ColumnAdded {
        name: String,
        type_name: String,
    },
    ColumnDropped {
        name: String,
    },
    ColumnRenamed {
        from: String,
        to: String,
    },
    TypeChanged {
        column: String,
        from: String,
        to: String,
    },
    /// The key columns, by name; empty for a table without a key.
    KeyChanged {
        from: Vec<String>,
        to: Vec<String>,
    },
    IdentityChanged {
        from: String,
        to: String,
    },
    ForeignKeyAdded {
        name: String,
    },
    ForeignKeyDropped {
        name: String,
    },
}

impl fmt::Display for SchemaEdit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = |columns: &[String]| match columns.is_empty() {
            true => "none".to_owned(),
            false => format!("({})", columns.join(", ")),
        };
        match self {
            Self::Renamed { from, to } => write!(f, "renamed from {from} to {to}"),
            Self::ColumnAdded { name, type_name } => write!(f, "added column {name} {type_name}"),
            Self::ColumnDropped { name } => write!(f, "dropped column {name}"),
            Self::ColumnRenamed { from, to } => write!(f, "renamed column {from} to {to}"),
            Self::TypeChanged { column, from, to } => write!(f, "column {column}: {from} → {to}"),
            Self::KeyChanged { from, to } => write!(f, "key {} → {}", key(from), key(to)),
            Self::IdentityChanged { from, to } => {
                write!(f, "replica identity {from} → {to}")
            }
            Self::ForeignKeyAdded { name } => write!(f, "added foreign key {name}"),
            Self::ForeignKeyDropped { name } => write!(f, "dropped foreign key {name}"),
        }
    }
}

/// The differences from `before` to `after`, columns matched by `attnum` where both know it (so a
/// rename is a rename, not a drop and an add), else by name.
pub fn schema_edits(before: &RelationSchema, after: &RelationSchema) -> Vec<SchemaEdit> {
    let mut edits = Vec::new();
    if before.table != after.table {
        edits.push(SchemaEdit::Renamed {
            from: before.table.clone(),
            to: after.table.clone(),
        });
    }
    for column in &before.columns {
        match after
            .matching_column(column)
            .map(|index| &after.columns[index])
        {
            None => edits.push(SchemaEdit::ColumnDropped {
                name: column.name.clone(),
            }),
            Some(new) => {
                if new.name != column.name {
                    edits.push(SchemaEdit::ColumnRenamed {
                        from: column.name.clone(),
                        to: new.name.clone(),
                    });
                }
                if new.type_name != column.type_name {
                    edits.push(SchemaEdit::TypeChanged {
                        column: new.name.clone(),
                        from: column.type_name.clone(),
                        to: new.type_name.clone(),
                    });
                }
            }
        }
    }
    for column in &after.columns {
        if before.matching_column(column).is_none() {
            edits.push(SchemaEdit::ColumnAdded {
                name: column.name.clone(),
                type_name: column.type_name.clone(),
            });
        }
    }
    let key_names = |schema: &RelationSchema| -> Vec<String> {
        schema.key_column_names().map(str::to_owned).collect()
    };
    let (old_key, new_key) = (key_names(before), key_names(after));
    if old_key != new_key {
        edits.push(SchemaEdit::KeyChanged {
            from: old_key,
            to: new_key,
        });
    }
    if before.replica_identity != after.replica_identity {
        edits.push(SchemaEdit::IdentityChanged {
            from: before.replica_identity.as_sql().to_owned(),
            to: after.replica_identity.as_sql().to_owned(),
        });
    }
    for key in &after.foreign_keys {
        if !before.foreign_keys.iter().any(|old| old.name == key.name) {
            edits.push(SchemaEdit::ForeignKeyAdded {
                name: key.name.clone(),
            });
        }
    }
    for key in &before.foreign_keys {
        if !after.foreign_keys.iter().any(|new| new.name == key.name) {
            edits.push(SchemaEdit::ForeignKeyDropped {
                name: key.name.clone(),
            });
        }
    }
    edits
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;
    use crate::model::{Column, ReplicaIdentity};

    fn column(name: &str, type_name: &str, attnum: i16) -> Column {
        Column {
            name: name.into(),
            type_oid: 25,
            base_type_oid: 25,
            type_modifier: -1,
            type_name: type_name.into(),
            in_replica_identity: false,
            identity: None,
            attnum: Some(attnum),
        }
    }

    fn schema(columns: Vec<Column>, key: Vec<usize>) -> RelationSchema {
        RelationSchema {
            oid: 1,
            table: TableName::new("public", "t"),
            replica_identity: ReplicaIdentity::Full,
            columns,
            key,
            foreign_keys: Vec::new(),
            key_read_later: false,
        }
    }

    #[test]
    fn renames_adds_drops_types_and_keys_are_told_apart() {
        let before = schema(
            vec![
                column("id", "integer", 1),
                column("name", "text", 2),
                column("legacy", "text", 3),
                column("price", "integer", 4),
            ],
            vec![],
        );
        let after = schema(
            vec![
                column("id", "integer", 1),
                column("title", "text", 2),
                column("price", "numeric(12,2)", 4),
                column("note", "text", 5),
            ],
            vec![0],
        );
        let edits: Vec<String> = schema_edits(&before, &after)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            edits,
            vec![
                "renamed column name to title",
                "dropped column legacy",
                "column price: integer → numeric(12,2)",
                "added column note text",
                "key none → (id)",
            ]
        );
        assert!(schema_edits(&before, &before).is_empty());
    }

    #[test]
    fn without_attnums_columns_match_by_name() {
        let mut before = schema(vec![column("a", "text", 1)], vec![]);
        let mut after = schema(vec![column("b", "text", 1)], vec![]);
        before.columns[0].attnum = None;
        after.columns[0].attnum = None;
        let edits: Vec<String> = schema_edits(&before, &after)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(edits, vec!["dropped column a", "added column b text"]);
    }
}
