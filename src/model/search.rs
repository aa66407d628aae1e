//! What people type into search, and what it matches: `column:value` and `table.column:value`
//! (a value of that column, exactly), keys as the timeline shows them (`id=42`,
//! `order_id=7,line=2`), and free text (a key or value that contains it). Terms combine with AND.
//! Values with spaces are quoted: `name:"Ann Lee"`; quoting a whole term makes it free text, for
//! text that holds `:` or `=` (`"http://shop"`).
//!
//! The store turns a [`Search`] into SQL; the app uses the same terms to highlight what matched.

use std::ops::Range;

use super::TableName;

/// A parsed search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Search {
    pub terms: Vec<Term>,
}

/// One search term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// A value of `column` (in `table`, if named) whose text is exactly `value`, before or after.
    Column {
        table: Option<TableName>,
        column: String,
        value: String,
    },
    /// Key columns and their values, as in `order_id=7,line=2`: records whose key has them.
    Key(Vec<(String, String)>),
    /// Text that a key or a value contains (case-insensitive for ASCII).
    Text(String),
}

/// A search that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    #[error("search term '{0}' has no value after ':': write it like customer_id:42")]
    NoValue(String),
    #[error(
        "search term '{0}' has no column before ':': write it like customer_id:42, or quote it to search for the text"
    )]
    NoColumn(String),
    #[error(
        "search term '{0}' is not a key like id=42 or order_id=7,line=2: quote it to search for the text"
    )]
    BadKey(String),
    #[error("search has an unclosed quote: close it with \"")]
    OpenQuote,
}

/// One whitespace-separated token, with its quoted parts joined in (`name:"Ann Lee"`).
struct Token {
    text: String,
    /// The whole token was in quotes.
    quoted: bool,
}

fn tokens(text: &str) -> Result<Vec<Token>, SearchError> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut quoted_from_start = false;
    let mut unquoted_chars = false;
    for c in text.chars() {
        match c {
            '"' => {
                if !in_quotes && current.is_empty() && !unquoted_chars {
                    quoted_from_start = true;
                }
                in_quotes = !in_quotes;
            }
            c if c.is_whitespace() && !in_quotes => {
                if !current.is_empty() || quoted_from_start {
                    tokens.push(Token {
                        text: std::mem::take(&mut current),
                        quoted: quoted_from_start && !unquoted_chars,
                    });
                }
                quoted_from_start = false;
                unquoted_chars = false;
            }
            c => {
                if !in_quotes {
                    unquoted_chars = true;
                }
                current.push(c);
            }
        }
    }
    if in_quotes {
        return Err(SearchError::OpenQuote);
    }
    if !current.is_empty() {
        tokens.push(Token {
            text: current,
            quoted: quoted_from_start && !unquoted_chars,
        });
    }
    Ok(tokens)
}

/// A plain column name: letters, digits, `_` and `$`, not starting with a digit.
fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|first| first.is_alphabetic() || first == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '$')
}

impl Search {
    /// Reads what the user typed; empty text is an empty search.
    pub fn parse(text: &str) -> Result<Self, SearchError> {
        let mut terms = Vec::new();
        for token in tokens(text)? {
            if token.quoted {
                if !token.text.is_empty() {
                    terms.push(Term::Text(token.text));
                }
                continue;
            }
            terms.push(term(&token.text)?);
        }
        Ok(Self { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Byte ranges of `text` to highlight: `text` is shown for `column` of `table` (`None` for a
    /// key, a context or other text that is not one column's value).
    pub fn highlights(
        &self,
        table: &TableName,
        column: Option<&str>,
        text: &str,
    ) -> Vec<Range<usize>> {
        let mut ranges = Vec::new();
        for term in &self.terms {
            match term {
                Term::Column {
                    table: wanted,
                    column: name,
                    value,
                } => {
                    let table_fits = wanted.as_ref().is_none_or(|wanted| wanted == table);
                    if table_fits && column == Some(name.as_str()) && text == value {
                        ranges.push(0..text.len());
                    }
                }
                Term::Key(pairs) if column.is_none() => {
                    for (name, value) in pairs {
                        let shown = format!("{name}={value}");
                        ranges.extend(exact_occurrences(text, &shown));
                    }
                }
                Term::Key(_) => {}
                Term::Text(needle) => ranges.extend(occurrences(text, needle)),
            }
        }
        merge(ranges)
    }

    /// True when `column` of `table` is named by a `column:value` term (to mark it in lists of
    /// changed columns).
    pub fn names_column(&self, table: &TableName, column: &str) -> bool {
        self.terms.iter().any(|term| match term {
            Term::Column {
                table: wanted,
                column: name,
                ..
            } => name == column && wanted.as_ref().is_none_or(|wanted| wanted == table),
            _ => false,
        })
    }

    /// The search as it would be typed, terms separated by spaces.
    pub fn text(&self) -> String {
        self.terms
            .iter()
            .map(Term::text)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Term {
    /// The term as it would be typed.
    pub fn text(&self) -> String {
        let value_text = |value: &str| match value.is_empty()
            || value.contains(|c: char| c.is_whitespace() || c == '"')
        {
            true => format!("\"{}\"", value.replace('"', "")),
            false => value.to_owned(),
        };
        match self {
            Term::Column {
                table,
                column,
                value,
            } => {
                let table = table
                    .as_ref()
                    .map_or(String::new(), |table| format!("{}.", table.short()));
                format!("{table}{column}:{}", value_text(value))
            }
            Term::Key(pairs) => pairs
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join(","),
            Term::Text(text) => {
                match text.contains(|c: char| c.is_whitespace() || c == ':' || c == '=') {
                    true => format!("\"{}\"", text.replace('"', "")),
                    false => text.clone(),
                }
            }
        }
    }
}

fn term(text: &str) -> Result<Term, SearchError> {
    if let Some((name, value)) = text.split_once(':') {
        // `http://…` and other text with a colon past a non-name are free text.
        let parts: Vec<&str> = name.split('.').collect();
        let url = value.starts_with("//");
        if !url && parts.iter().all(|part| is_name(part)) && parts.len() <= 3 {
            if value.is_empty() {
                return Err(SearchError::NoValue(text.to_owned()));
            }
            let (table, column) = match parts.as_slice() {
                [column] => (None, *column),
                [table, column] => (Some(TableName::new("public", *table)), *column),
                [schema, table, column] => (Some(TableName::new(*schema, *table)), *column),
                _ => return Err(SearchError::NoColumn(text.to_owned())),
            };
            return Ok(Term::Column {
                table,
                column: column.to_owned(),
                value: value.to_owned(),
            });
        }
        if name.is_empty() {
            return Err(SearchError::NoColumn(text.to_owned()));
        }
    }
    if let Some((first, _)) = text.split_once('=')
        && is_name(first)
    {
        let pairs = text
            .split(',')
            .map(|pair| match pair.split_once('=') {
                Some((name, value)) if is_name(name) => Ok((name.to_owned(), value.to_owned())),
                _ => Err(SearchError::BadKey(text.to_owned())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Term::Key(pairs));
    }
    Ok(Term::Text(text.to_owned()))
}

/// Where `needle` occurs in `text`, ignoring ASCII case.
fn occurrences(text: &str, needle: &str) -> Vec<Range<usize>> {
    if needle.is_empty() {
        return Vec::new();
    }
    let haystack = text.to_ascii_lowercase();
    let needle = needle.to_ascii_lowercase();
    haystack
        .match_indices(&needle)
        .map(|(start, found)| start..start + found.len())
        .collect()
}

/// Where `needle` occurs in `text` as a whole item of a comma-separated list.
fn exact_occurrences(text: &str, needle: &str) -> Vec<Range<usize>> {
    text.match_indices(needle)
        .filter(|(start, found)| {
            let end = start + found.len();
            (*start == 0 || text[..*start].ends_with(','))
                && (end == text.len() || text[end..].starts_with(','))
        })
        .map(|(start, found)| start..start + found.len())
        .collect()
}

/// Sorted, non-overlapping ranges.
fn merge(mut ranges: Vec<Range<usize>>) -> Vec<Range<usize>> {
    ranges.sort_by_key(|range| (range.start, range.end));
    let mut merged: Vec<Range<usize>> = Vec::new();
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    merged
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<Term> {
        Search::parse(text).unwrap().terms
    }

    #[test]
    fn terms_are_columns_keys_or_text() {
        assert_eq!(
            parse(
                r#"customer_id:42 orders.status:paid shop.orders.total:"3.00" id=7 order_id=7,line=2 ann "a:b" "Ann Lee""#
            ),
            vec![
                Term::Column {
                    table: None,
                    column: "customer_id".into(),
                    value: "42".into()
                },
                Term::Column {
                    table: Some(TableName::new("public", "orders")),
                    column: "status".into(),
                    value: "paid".into()
                },
                Term::Column {
                    table: Some(TableName::new("shop", "orders")),
                    column: "total".into(),
                    value: "3.00".into()
                },
                Term::Key(vec![("id".into(), "7".into())]),
                Term::Key(vec![
                    ("order_id".into(), "7".into()),
                    ("line".into(), "2".into())
                ]),
                Term::Text("ann".into()),
                Term::Text("a:b".into()),
                Term::Text("Ann Lee".into()),
            ]
        );
        assert_eq!(
            parse(r#"name:"Ann Lee""#),
            vec![Term::Column {
                table: None,
                column: "name".into(),
                value: "Ann Lee".into()
            }]
        );
        assert_eq!(parse("http://shop"), vec![Term::Text("http://shop".into())]);
        assert_eq!(parse("   "), vec![]);
    }

    #[test]
    fn malformed_terms_say_how_to_write_them() {
        assert_eq!(
            Search::parse("status:").unwrap_err(),
            SearchError::NoValue("status:".into())
        );
        assert_eq!(
            Search::parse(":paid").unwrap_err(),
            SearchError::NoColumn(":paid".into())
        );
        assert_eq!(
            Search::parse("id=7,oops").unwrap_err(),
            SearchError::BadKey("id=7,oops".into())
        );
        assert_eq!(
            Search::parse("name:\"Ann").unwrap_err(),
            SearchError::OpenQuote
        );
    }

    #[test]
    fn highlights_follow_the_terms() {
        let search = Search::parse("customer_id:42 id=4 ACME").unwrap();
        let orders = TableName::new("public", "orders");
        assert_eq!(
            search.highlights(&orders, Some("customer_id"), "42"),
            vec![0..2]
        );
        assert!(
            search
                .highlights(&orders, Some("customer_id"), "420")
                .is_empty()
        );
        assert!(search.highlights(&orders, Some("total"), "42").is_empty());
        assert_eq!(
            search.highlights(&orders, None, "id=4"),
            vec![0..4],
            "the key as shown"
        );
        assert!(
            search.highlights(&orders, None, "id=42").is_empty(),
            "id=4 is not id=42"
        );
        assert_eq!(
            search.highlights(&orders, Some("name"), "Acme Inc"),
            vec![0..4]
        );
        assert!(search.names_column(&orders, "customer_id"));
        assert!(!search.names_column(&orders, "total"));
    }

    #[test]
    fn a_search_is_written_back_as_typed() {
        let text = r#"orders.status:paid name:"Ann Lee" id=7,line=2 "a:b" ann"#;
        let search = Search::parse(text).unwrap();
        assert_eq!(search.text(), text);
        assert_eq!(Search::parse(&search.text()).unwrap(), search);
    }
}
