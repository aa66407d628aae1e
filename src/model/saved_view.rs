//! A saved view: a named set of rows (tables and a predicate on their values) and the filters its
//! timeline shows it through, and the `rowtrail://view?…` link that carries it to another machine.

use serde::{Deserialize, Serialize};
use url::Url;

use super::{TableName, TableNameError};

/// What a view is: the rows of `tables` for which `predicate` holds (the set), and which of the
/// changes that moved rows into, out of or within the set its timeline shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedView {
    pub name: String,
    pub tables: Vec<TableName>,
    /// The predicate as the user wrote it (`history::view::Predicate` parses it).
    pub predicate: String,
    /// Only changes whose context has these field values (`user=ann`).
    #[serde(default)]
    pub context: Vec<(String, String)>,
    /// Only changes that changed one of these columns (entering and leaving always show).
    #[serde(default)]
    pub changed: Vec<String>,
}

/// The cache a link was made from: a view only means the same on a cache of the same source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSource {
    pub system_identifier: String,
    pub database: String,
}

/// The text is not a view link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewLinkError {
    #[error(
        "'{0}' is not a rowtrail view link: it starts with rowtrail://view? (copy it with Copy link in the app or rowtrail view --save)"
    )]
    NotALink(String),
    #[error("the view link has no {0}: copy the whole link")]
    Missing(&'static str),
    #[error("the view link names table '{table}': {error}")]
    BadTable {
        table: String,
        error: TableNameError,
    },
    #[error("the view link's context filter '{0}' is not FIELD=VALUE")]
    BadContext(String),
}

const SCHEME: &str = "rowtrail";

impl SavedView {
    /// `rowtrail://view?name=…&table=…&where=…[&context=K=V…][&changed=C…]&source=SYSID/DB`.
    pub fn link(&self, source: &LinkSource) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("name", &self.name);
        for table in &self.tables {
            query.append_pair("table", &table.quoted());
        }
        query.append_pair("where", &self.predicate);
        for (field, value) in &self.context {
            query.append_pair("context", &format!("{field}={value}"));
        }
        for column in &self.changed {
            query.append_pair("changed", column);
        }
        query.append_pair(
            "source",
            &format!("{}/{}", source.system_identifier, source.database),
        );
        format!("{SCHEME}://view?{}", query.finish())
    }

    /// The view a link carries and the source it was made from.
    pub fn parse_link(text: &str) -> Result<(SavedView, LinkSource), ViewLinkError> {
        let text = text.trim();
        let not_a_link = || ViewLinkError::NotALink(text.to_owned());
        let link = Url::parse(text).map_err(|_| not_a_link())?;
        if link.scheme() != SCHEME || link.host_str() != Some("view") {
            return Err(not_a_link());
        }
        let mut name = None;
        let mut predicate = None;
        let mut source = None;
        let mut tables = Vec::new();
        let mut context = Vec::new();
        let mut changed = Vec::new();
        for (key, value) in link.query_pairs() {
            let value = value.into_owned();
            match key.as_ref() {
                "name" => name = Some(value),
                "where" => predicate = Some(value),
                "table" => tables.push(TableName::parse(&value).map_err(|error| {
                    ViewLinkError::BadTable {
                        table: value.clone(),
                        error,
                    }
                })?),
                "context" => {
                    let (field, wanted) = value
                        .split_once('=')
                        .ok_or_else(|| ViewLinkError::BadContext(value.clone()))?;
                    context.push((field.to_owned(), wanted.to_owned()));
                }
                "changed" => changed.push(value),
                "source" => source = Some(value),
                // Parameters of later versions are left for them.
                _ => {}
            }
        }
        let (system_identifier, database) = source
            .as_deref()
            .and_then(|source| source.split_once('/'))
            .ok_or(ViewLinkError::Missing("source"))?;
        if tables.is_empty() {
            return Err(ViewLinkError::Missing("table"));
        }
        Ok((
            SavedView {
                name: name.ok_or(ViewLinkError::Missing("name"))?,
                tables,
                predicate: predicate.ok_or(ViewLinkError::Missing("where"))?,
                context,
                changed,
            },
            LinkSource {
                system_identifier: system_identifier.to_owned(),
                database: database.to_owned(),
            },
        ))
    }

    /// True when the text looks like a view link (to tell it from a file name).
    pub fn is_link(text: &str) -> bool {
        text.trim_start().starts_with("rowtrail://")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> LinkSource {
        LinkSource {
            system_identifier: "7312345678901234567".into(),
            database: "shop".into(),
        }
    }

    #[test]
    fn a_link_carries_the_whole_view_and_its_source() {
        let view = SavedView {
            name: "Pro & rich / 2".into(),
            tables: vec![
                TableName::new("public", "customers"),
                TableName::new("Sales", "old customers"),
            ],
            predicate: "plan = 'pro' and balance > 100 and note like '50%&more#'".into(),
            context: vec![("user".into(), "ann=b".into())],
            changed: vec!["plan".into(), "balance".into()],
        };
        let link = view.link(&source());
        assert!(link.starts_with("rowtrail://view?name="), "{link}");
        assert!(SavedView::is_link(&link));
        assert_eq!(SavedView::parse_link(&link), Ok((view, source())));
    }

    #[test]
    fn what_is_not_a_link_is_said_plainly() {
        for text in [
            "shop.rowtrail",
            "https://view?name=a",
            "rowtrail://other?name=a",
        ] {
            assert!(matches!(
                SavedView::parse_link(text),
                Err(ViewLinkError::NotALink(_))
            ));
        }
        assert_eq!(
            SavedView::parse_link("rowtrail://view?name=a&table=t&where=x%3D1"),
            Err(ViewLinkError::Missing("source"))
        );
        assert_eq!(
            SavedView::parse_link("rowtrail://view?name=a&where=x%3D1&source=1/db"),
            Err(ViewLinkError::Missing("table"))
        );
        assert!(matches!(
            SavedView::parse_link(
                "rowtrail://view?name=a&table=t&where=x&context=nofield&source=1/db"
            ),
            Err(ViewLinkError::BadContext(_))
        ));
    }
}
