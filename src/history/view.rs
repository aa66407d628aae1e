//! Views over a filtered set: a predicate on a table's row values (`plan = 'pro' and balance >
//! 100`), and the changes that move rows into the set, out of it, or within it — the way an event
//! feed over a set reports add, remove and update.
//!
//! Comparisons are typed by the column: numbers numerically, times as times, booleans as
//! booleans, everything else as text. A NULL (or a value the cache does not know) makes a
//! comparison unknown, and an unknown predicate does not hold, as in SQL.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::model::{LoggedChange, Op, RelationSchema, Row, Value, key_of};

/// A predicate that could not be read, or names what the table never had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PredicateError {
    #[error(
        "--where '{text}' does not parse at '{at}': {what}; write it like \"plan = 'pro' and balance > 100\""
    )]
    Syntax {
        text: String,
        at: String,
        what: String,
    },
    #[error("table {table} never had a column {column}; it has {known}")]
    UnknownColumn {
        table: String,
        column: String,
        known: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    And(Box<Predicate>, Box<Predicate>),
    Or(Box<Predicate>, Box<Predicate>),
    Not(Box<Predicate>),
    Compare {
        column: String,
        op: Comparison,
        literal: Literal,
    },
    In {
        column: String,
        list: Vec<Literal>,
        negated: bool,
    },
    IsNull {
        column: String,
        negated: bool,
    },
    Like {
        column: String,
        pattern: String,
        negated: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Number(String),
    Text(String),
    Bool(bool),
}

impl Literal {
    fn text(&self) -> String {
        match self {
            Self::Number(text) | Self::Text(text) => text.clone(),
            Self::Bool(true) => "true".to_owned(),
            Self::Bool(false) => "false".to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Number(String),
    Text(String),
    Symbol(&'static str),
}

fn tokenize(text: &str) -> Result<Vec<(Token, usize)>, (usize, String)> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut tokens = Vec::new();
    let mut index = 0;
    while index < chars.len() {
        let (at, c) = chars[index];
        if c.is_whitespace() {
            index += 1;
        } else if c == '\'' {
            let mut value = String::new();
            index += 1;
            loop {
                match chars.get(index) {
                    None => return Err((at, "a quoted text is not closed".to_owned())),
                    Some((_, '\'')) if chars.get(index + 1).is_some_and(|(_, c)| *c == '\'') => {
                        value.push('\'');
                        index += 2;
                    }
                    Some((_, '\'')) => {
                        index += 1;
                        break;
                    }
                    Some((_, c)) => {
                        value.push(*c);
                        index += 1;
                    }
                }
            }
            tokens.push((Token::Text(value), at));
        } else if c.is_ascii_digit()
            || (c == '-'
                && chars
                    .get(index + 1)
                    .is_some_and(|(_, c)| c.is_ascii_digit()))
        {
            let start = index;
            index += 1;
            while chars
                .get(index)
                .is_some_and(|(_, c)| c.is_ascii_digit() || *c == '.' || *c == 'e' || *c == 'E')
            {
                index += 1;
            }
            let number: String = chars[start..index].iter().map(|(_, c)| c).collect();
            tokens.push((Token::Number(number), at));
        } else if c.is_alphanumeric() || c == '_' || c == '"' {
            let mut word = String::new();
            if c == '"' {
                index += 1;
                loop {
                    match chars.get(index) {
                        None => return Err((at, "a quoted name is not closed".to_owned())),
                        Some((_, '"')) => {
                            index += 1;
                            break;
                        }
                        Some((_, c)) => {
                            word.push(*c);
                            index += 1;
                        }
                    }
                }
                tokens.push((Token::Word(format!("\"{word}")), at));
                continue;
            }
            while chars
                .get(index)
                .is_some_and(|(_, c)| c.is_alphanumeric() || *c == '_')
            {
                word.push(chars[index].1);
                index += 1;
            }
            tokens.push((Token::Word(word), at));
        } else {
            let two: String = chars[index..(index + 2).min(chars.len())]
                .iter()
                .map(|(_, c)| c)
                .collect();
            let symbol = ["<=", ">=", "<>", "!="]
                .into_iter()
                .find(|symbol| two == *symbol)
                .or_else(|| {
                    ["=", "<", ">", "(", ")", ","]
                        .into_iter()
                        .find(|symbol| symbol.starts_with(c))
                })
                .ok_or_else(|| (at, format!("'{c}' is not part of a predicate")))?;
            index += symbol.len();
            tokens.push((Token::Symbol(symbol), at));
        }
    }
    Ok(tokens)
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<(Token, usize)>,
    next: usize,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> PredicateError {
        let at = self
            .tokens
            .get(self.next)
            .map_or("the end".to_owned(), |(_, at)| {
                self.text[*at..].chars().take(20).collect()
            });
        PredicateError::Syntax {
            text: self.text.to_owned(),
            at,
            what: what.to_owned(),
        }
    }

    fn peek_word(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.next), Some((Token::Word(found), _)) if found.eq_ignore_ascii_case(word))
    }

    fn take_word(&mut self, word: &str) -> bool {
        let found = self.peek_word(word);
        if found {
            self.next += 1;
        }
        found
    }

    fn take_symbol(&mut self, symbol: &str) -> bool {
        let found = matches!(self.tokens.get(self.next), Some((Token::Symbol(found), _)) if *found == symbol);
        if found {
            self.next += 1;
        }
        found
    }

    fn or(&mut self) -> Result<Predicate, PredicateError> {
        let mut left = self.and()?;
        while self.take_word("or") {
            left = Predicate::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Predicate, PredicateError> {
        let mut left = self.not()?;
        while self.take_word("and") {
            left = Predicate::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Predicate, PredicateError> {
        if self.take_word("not") {
            return Ok(Predicate::Not(Box::new(self.not()?)));
        }
        self.term()
    }

    fn term(&mut self) -> Result<Predicate, PredicateError> {
        if self.take_symbol("(") {
            let inner = self.or()?;
            if !self.take_symbol(")") {
                return Err(self.error("a '(' is not closed"));
            }
            return Ok(inner);
        }
        let column = match self.tokens.get(self.next) {
            Some((Token::Word(word), _))
                if !["and", "or", "not"]
                    .iter()
                    .any(|kw| word.eq_ignore_ascii_case(kw)) =>
            {
                self.next += 1;
                word.strip_prefix('"')
                    .map_or_else(|| word.to_lowercase(), str::to_owned)
            }
            _ => return Err(self.error("a column name is expected")),
        };
        if self.take_word("is") {
            let negated = self.take_word("not");
            if !self.take_word("null") {
                return Err(self.error("IS must be followed by NULL or NOT NULL"));
            }
            return Ok(Predicate::IsNull { column, negated });
        }
        let negated = self.take_word("not");
        if self.take_word("in") {
            if !self.take_symbol("(") {
                return Err(self.error("IN takes a list in parentheses"));
            }
            let mut list = vec![self.literal()?];
            while self.take_symbol(",") {
                list.push(self.literal()?);
            }
            if !self.take_symbol(")") {
                return Err(self.error("the IN list is not closed"));
            }
            return Ok(Predicate::In {
                column,
                list,
                negated,
            });
        }
        if self.take_word("like") {
            return match self.literal()? {
                Literal::Text(pattern) => Ok(Predicate::Like {
                    column,
                    pattern,
                    negated,
                }),
                _ => Err(self.error("LIKE takes a quoted pattern")),
            };
        }
        if negated {
            return Err(self.error("NOT here must be followed by IN or LIKE"));
        }
        let op = match self.tokens.get(self.next) {
            Some((Token::Symbol(symbol), _)) => match *symbol {
                "=" => Comparison::Eq,
                "!=" | "<>" => Comparison::Ne,
                "<" => Comparison::Lt,
                "<=" => Comparison::Le,
                ">" => Comparison::Gt,
                ">=" => Comparison::Ge,
                _ => {
                    return Err(self.error(
                        "a comparison (=, <>, <, <=, >, >=, IN, LIKE, IS NULL) is expected",
                    ));
                }
            },
            _ => {
                return Err(
                    self.error("a comparison (=, <>, <, <=, >, >=, IN, LIKE, IS NULL) is expected")
                );
            }
        };
        self.next += 1;
        let literal = self.literal()?;
        Ok(Predicate::Compare {
            column,
            op,
            literal,
        })
    }

    fn literal(&mut self) -> Result<Literal, PredicateError> {
        let literal = match self.tokens.get(self.next) {
            Some((Token::Number(number), _)) => Literal::Number(number.clone()),
            Some((Token::Text(text), _)) => Literal::Text(text.clone()),
            Some((Token::Word(word), _)) if word.eq_ignore_ascii_case("true") => {
                Literal::Bool(true)
            }
            Some((Token::Word(word), _)) if word.eq_ignore_ascii_case("false") => {
                Literal::Bool(false)
            }
            _ => {
                return Err(
                    self.error("a value is expected: a number, 'quoted text', true or false")
                );
            }
        };
        self.next += 1;
        Ok(literal)
    }
}

impl Predicate {
    /// Reads a predicate: comparisons of columns with values (`=`, `<>`, `!=`, `<`, `<=`, `>`,
    /// `>=`), `IN (…)`, `LIKE '…'`, `IS [NOT] NULL`, joined by `and`, `or`, `not` and parentheses.
    pub fn parse(text: &str) -> Result<Self, PredicateError> {
        let tokens = tokenize(text).map_err(|(at, what)| PredicateError::Syntax {
            text: text.to_owned(),
            at: text[at..].chars().take(20).collect(),
            what,
        })?;
        let mut parser = Parser {
            text,
            tokens,
            next: 0,
        };
        let predicate = parser.or()?;
        if parser.next < parser.tokens.len() {
            return Err(parser.error("the predicate should end here"));
        }
        Ok(predicate)
    }

    /// The columns the predicate reads.
    pub fn columns(&self) -> Vec<&str> {
        match self {
            Self::And(a, b) | Self::Or(a, b) => {
                let mut columns = a.columns();
                columns.extend(b.columns());
                columns
            }
            Self::Not(inner) => inner.columns(),
            Self::Compare { column, .. }
            | Self::In { column, .. }
            | Self::IsNull { column, .. }
            | Self::Like { column, .. } => vec![column.as_str()],
        }
    }

    /// What one change did to the set, judged from its own before and after images alone: the
    /// same answer as `View::feed` gives after every earlier change, whenever the images hold
    /// every value the predicate reads (a stored before-image is the whole row as it was). `None`
    /// when they do not, or when the change empties its table (what that did depends on the
    /// whole set); `Some(None)` when it moved no row of the set.
    pub fn judge_alone(&self, change: &LoggedChange) -> Option<Option<Movement>> {
        let op = change.change.op;
        if op.empties_table() {
            return None;
        }
        if !op.changes_rows() {
            return Some(None);
        }
        let schema = &change.schema;
        let columns = self.columns();
        let inside = |row: &Option<Row>| -> Option<bool> {
            let row = row.as_ref()?;
            let readable = columns.iter().all(|column| {
                schema
                    .column_index(column)
                    .is_none_or(|index| row.get(index).is_some_and(Value::is_available))
            });
            readable.then(|| self.eval(schema, row) == Some(true))
        };
        let was_inside = match op {
            Op::Insert | Op::Snapshot => false,
            _ => inside(&change.change.before)?,
        };
        let is_inside = match op {
            Op::Delete => false,
            _ => inside(&change.change.after)?,
        };
        Some(match (was_inside, is_inside) {
            (false, true) => Some(Movement::Enter),
            (true, false) => Some(Movement::Leave),
            (true, true) => Some(Movement::Update),
            (false, false) => None,
        })
    }

    /// Whether the row is in the set: `Some(true)`, `Some(false)`, or `None` when unknown.
    pub fn eval(&self, schema: &RelationSchema, row: &Row) -> Option<bool> {
        let value = |column: &str| {
            let index = schema.column_index(column)?;
            Some((schema.columns[index].type_name.as_str(), row.get(index)?))
        };
        match self {
            Self::And(a, b) => match (a.eval(schema, row), b.eval(schema, row)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            Self::Or(a, b) => match (a.eval(schema, row), b.eval(schema, row)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            Self::Not(inner) => inner.eval(schema, row).map(|value| !value),
            Self::Compare {
                column,
                op,
                literal,
            } => {
                let (kind, value) = value(column)?;
                let ordering = compare(kind, value, &literal.text())?;
                Some(match op {
                    Comparison::Eq => ordering == Ordering::Equal,
                    Comparison::Ne => ordering != Ordering::Equal,
                    Comparison::Lt => ordering == Ordering::Less,
                    Comparison::Le => ordering != Ordering::Greater,
                    Comparison::Gt => ordering == Ordering::Greater,
                    Comparison::Ge => ordering != Ordering::Less,
                })
            }
            Self::In {
                column,
                list,
                negated,
            } => {
                let (kind, value) = value(column)?;
                let mut unknown = false;
                for literal in list {
                    match compare(kind, value, &literal.text()) {
                        Some(Ordering::Equal) => return Some(!negated),
                        Some(_) => {}
                        None => unknown = true,
                    }
                }
                (!unknown).then_some(*negated)
            }
            Self::IsNull { column, negated } => match value(column)? {
                (_, Value::Null) => Some(!negated),
                (_, Value::Unavailable) => None,
                _ => Some(*negated),
            },
            Self::Like {
                column,
                pattern,
                negated,
            } => match value(column)? {
                (_, Value::Text(text)) => Some(like(text, pattern) != *negated),
                _ => None,
            },
        }
    }
}

/// Compares a stored value with a literal by the column's type; `None` for NULL, an unknown
/// value, or text that is not of the column's type.
fn compare(type_name: &str, value: &Value, literal: &str) -> Option<Ordering> {
    let Value::Text(text) = value else {
        return None;
    };
    let base = type_name
        .split(['(', '['])
        .next()
        .unwrap_or_default()
        .trim();
    match base {
        "smallint" | "integer" | "bigint" | "numeric" | "real" | "double precision" | "oid"
        | "money" => {
            let number = |text: &str| text.trim().replace(['$', ','], "").parse::<f64>().ok();
            number(text)?.partial_cmp(&number(literal)?)
        }
        "timestamp with time zone" | "timestamp without time zone" | "date" => {
            Some(time(text)?.cmp(&time(literal)?))
        }
        "boolean" => {
            let truth = |text: &str| match text.trim().to_ascii_lowercase().as_str() {
                "t" | "true" | "yes" | "on" | "1" => Some(true),
                "f" | "false" | "no" | "off" | "0" => Some(false),
                _ => None,
            };
            Some(truth(text)?.cmp(&truth(literal)?))
        }
        _ => Some(text.as_str().cmp(literal)),
    }
}

/// A time as PostgreSQL prints it, or as people type it (a date, `YYYY-MM-DD HH:MM[:SS]`, with
/// or without an offset; without one, UTC).
fn time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z") {
        return Some(time.with_timezone(&Utc));
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S%.f",
    ] {
        if let Ok(time) = NaiveDateTime::parse_from_str(text, format) {
            return Some(time.and_utc());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|time| time.and_utc())
}

/// SQL `LIKE`: `%` any run, `_` one character, `\` escapes.
fn like(text: &str, pattern: &str) -> bool {
    fn matches(text: &[char], pattern: &[char]) -> bool {
        match pattern.split_first() {
            None => text.is_empty(),
            Some(('%', rest)) => (0..=text.len()).any(|skip| matches(&text[skip..], rest)),
            Some(('_', rest)) => !text.is_empty() && matches(&text[1..], rest),
            Some(('\\', rest)) if !rest.is_empty() => {
                text.first() == rest.first() && matches(&text[1..], &rest[1..])
            }
            Some((c, rest)) => text.first() == Some(c) && matches(&text[1..], rest),
        }
    }
    let text: Vec<char> = text.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    matches(&text, &pattern)
}

/// A record of a view's tables: the cache's table id and the key (or whole row, without one).
type RecordId = (i64, Vec<Value>);

/// A record's last known row under its schema version, and whether it is in the set.
type KnownRow = (Arc<RelationSchema>, Row, bool);

/// What a change did to the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Movement {
    Enter,
    Leave,
    Update,
}

impl Movement {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enter => "enter",
            Self::Leave => "leave",
            Self::Update => "update",
        }
    }
}

/// The view's timeline, fed the table's changes in commit order.
#[derive(Debug)]
pub struct View {
    predicate: Predicate,
    /// The last known row of every record (by table and key), and whether it is in the set now.
    rows: HashMap<RecordId, KnownRow>,
}

impl View {
    pub fn new(predicate: Predicate) -> Self {
        Self {
            predicate,
            rows: HashMap::new(),
        }
    }

    /// Takes one change (after every earlier one of its table); says how it moved the view, or
    /// `None` when it touched no row of the set.
    pub fn feed(&mut self, change: &LoggedChange) -> Option<Movement> {
        let schema = &change.schema;
        if change.change.op.empties_table() {
            let mut any = false;
            for ((table, _), (_, _, inside)) in self.rows.iter_mut() {
                if *table == change.table_id {
                    any |= *inside;
                    *inside = false;
                }
            }
            return any.then_some(Movement::Leave);
        }
        if !change.change.op.changes_rows() {
            return None;
        }
        let key_now = |row: &Row| match schema.has_key() {
            true => (change.table_id, key_of(schema, row)),
            false => (change.table_id, row.clone()),
        };
        let old_key = change
            .change
            .old_key(schema)
            .map(|key| (change.table_id, key))
            .or_else(|| change.change.before.as_ref().map(key_now))
            .or_else(|| change.change.after.as_ref().map(key_now))?;
        let was_inside = self
            .rows
            .get(&old_key)
            .is_some_and(|(_, _, inside)| *inside);
        let after = change.change.after.as_ref().map(|after| {
            // Values the stream did not send stay as last known.
            match self.rows.get(&old_key) {
                Some((known_schema, known, _)) => schema
                    .columns
                    .iter()
                    .zip(after)
                    .map(|(column, value)| match value.is_available() {
                        true => value.clone(),
                        false => known_schema
                            .column_index(&column.name)
                            .and_then(|index| known.get(index).cloned())
                            .unwrap_or(Value::Unavailable),
                    })
                    .collect::<Row>(),
                None => after.clone(),
            }
        });
        self.rows.remove(&old_key);
        let is_inside = match (&after, change.change.op) {
            (Some(after), Op::Insert | Op::Update | Op::Snapshot) => {
                let inside = self.predicate.eval(schema, after) == Some(true);
                self.rows
                    .insert(key_now(after), (schema.clone(), after.clone(), inside));
                inside
            }
            _ => false,
        };
        match (was_inside, is_inside) {
            (false, true) => Some(Movement::Enter),
            (true, false) => Some(Movement::Leave),
            (true, true) => Some(Movement::Update),
            (false, false) => None,
        }
    }

    /// The rows in the set now, as (schema version, row).
    pub fn members(&self) -> Vec<(Arc<RelationSchema>, Row)> {
        let mut members: Vec<(Arc<RelationSchema>, Row)> = self
            .rows
            .values()
            .filter(|(_, _, inside)| *inside)
            .map(|(schema, row, _)| (schema.clone(), row.clone()))
            .collect();
        members.sort_by(|a, b| {
            let order = |(schema, row): &(Arc<RelationSchema>, Row)| {
                let key: Vec<String> = key_of(schema, row)
                    .iter()
                    .map(|value| value.display().into_owned())
                    .collect();
                (schema.table.clone(), key)
            };
            order(a).cmp(&order(b))
        });
        members
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;
    use crate::model::{Column, ReplicaIdentity, TableName};

    fn schema() -> RelationSchema {
        let column = |name: &str, type_name: &str| Column {
            name: name.to_owned(),
            type_oid: 25,
            base_type_oid: 25,
            type_modifier: -1,
            type_name: type_name.to_owned(),
            in_replica_identity: false,
            identity: None,
            attnum: None,
        };
        RelationSchema {
            oid: 1,
            table: TableName::new("public", "customers"),
            replica_identity: ReplicaIdentity::Full,
            columns: vec![
                column("id", "integer"),
                column("plan", "text"),
                column("balance", "numeric(10,2)"),
                column("since", "timestamp with time zone"),
                column("vip", "boolean"),
            ],
            key: vec![0],
            foreign_keys: vec![],
            key_read_later: false,
        }
    }

    fn row(values: &[Option<&str>]) -> Row {
        values.iter().map(|value| Value::from(*value)).collect()
    }

    fn holds(predicate: &str, values: &[Option<&str>]) -> Option<bool> {
        Predicate::parse(predicate)
            .unwrap()
            .eval(&schema(), &row(values))
    }

    #[test]
    fn comparisons_are_typed_by_the_column() {
        let row = [
            Some("1"),
            Some("pro"),
            Some("100.50"),
            Some("2026-11-20 10:00:00+00"),
            Some("t"),
        ];
        assert_eq!(
            holds("balance > 100", &row),
            Some(true),
            "numerically, not as text"
        );
        assert_eq!(holds("balance > 99.9", &row), Some(true));
        assert_eq!(holds("balance >= 1000", &row), Some(false));
        assert_eq!(holds("since < '2026-11-21'", &row), Some(true), "as times");
        assert_eq!(holds("since > '2026-11-20 11:00:00+02'", &row), Some(true));
        assert_eq!(
            holds("since = '2026-11-20 12:00:00+02'", &row),
            Some(true),
            "the same moment"
        );
        assert_eq!(holds("vip = true", &row), Some(true));
        assert_eq!(holds("plan = 'pro' and balance > 100", &row), Some(true));
        assert_eq!(holds("plan in ('free', 'pro')", &row), Some(true));
        assert_eq!(holds("plan not in ('free')", &row), Some(true));
        assert_eq!(holds("plan like 'p%'", &row), Some(true));
        assert_eq!(
            holds("not (plan = 'pro' or vip = false)", &row),
            Some(false)
        );
        assert_eq!(holds("\"plan\" <> 'free'", &row), Some(true));
    }

    #[test]
    fn null_makes_a_comparison_unknown_as_in_sql() {
        let row = [Some("1"), None, Some("5"), None, None];
        assert_eq!(holds("plan = 'pro'", &row), None);
        assert_eq!(holds("plan is null", &row), Some(true));
        assert_eq!(holds("plan is not null", &row), Some(false));
        assert_eq!(holds("plan = 'pro' or balance > 1", &row), Some(true));
        assert_eq!(holds("plan = 'pro' and balance > 1", &row), None);
    }

    #[test]
    fn bad_predicates_say_where() {
        for bad in [
            "plan =",
            "plan = 'pro",
            "(plan = 'x'",
            "plan ~ 'x'",
            "= 3",
            "plan is 3",
            "plan = 'a' b",
        ] {
            let error = Predicate::parse(bad).unwrap_err().to_string();
            assert!(
                error.starts_with(&format!("--where '{bad}' does not parse at")),
                "{error}"
            );
        }
    }

    /// A change of customer `id` from `before` to `after` (plans), with whole images.
    fn plan_change(
        number: i64,
        op: Op,
        id: u64,
        before: Option<&str>,
        after: Option<&str>,
    ) -> LoggedChange {
        use crate::model::{Change, ChangeId, Lsn, TransactionInfo};
        let image =
            |plan: &str| row(&[Some(&id.to_string()), Some(plan), Some("1.00"), None, None]);
        LoggedChange {
            id: ChangeId(number),
            lsn: Lsn(number as u64),
            tx: TransactionInfo {
                id: number,
                xid: None,
                commit_lsn: Lsn(number as u64),
                committed_at: chrono::DateTime::from_timestamp(number, 0).unwrap(),
                origin: None,
                is_baseline: false,
                change_count: 1,
            },
            table_id: 1,
            table: TableName::new("public", "customers"),
            schema: Arc::new(schema()),
            change: Change {
                op,
                before: before.map(image),
                after: after.map(image),
            },
            context: None,
            schema_change: None,
            gap_from: None,
        }
    }

    #[test]
    fn a_change_judged_alone_moves_the_view_as_the_fold_says() {
        let predicate = Predicate::parse("plan in ('pro', 'team') and balance > 0").unwrap();
        let mut view = View::new(predicate.clone());
        let plans = ["free", "pro", "team", "gone"];
        // Customer id → its plan now; a deterministic walk of inserts, updates and deletes.
        let mut rows: HashMap<u64, &str> = HashMap::new();
        let mut seed = 7u64;
        let mut next = || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            seed >> 33
        };
        let mut judged = 0;
        for number in 1..=2_000 {
            let id = next() % 20;
            let plan = plans[(next() % 3) as usize];
            let change = match rows.get(&id).copied() {
                None => {
                    rows.insert(id, plan);
                    let op = if number < 30 {
                        Op::Snapshot
                    } else {
                        Op::Insert
                    };
                    plan_change(number, op, id, None, Some(plan))
                }
                Some(old) if next() % 5 == 0 => {
                    rows.remove(&id);
                    plan_change(number, Op::Delete, id, Some(old), None)
                }
                Some(old) => {
                    rows.insert(id, plan);
                    plan_change(number, Op::Update, id, Some(old), Some(plan))
                }
            };
            let alone = predicate
                .judge_alone(&change)
                .expect("whole images are judged alone");
            assert_eq!(alone, view.feed(&change), "change {number}");
            judged += usize::from(alone.is_some());
        }
        assert!(judged > 200, "the walk moved the view often: {judged}");
        // A value the images do not hold, or a truncate, needs the fold.
        let mut unknown = plan_change(1, Op::Update, 1, Some("pro"), Some("free"));
        unknown.change.before.as_mut().unwrap()[1] = Value::Unavailable;
        assert_eq!(predicate.judge_alone(&unknown), None);
        let mut truncate = plan_change(2, Op::Truncate, 1, None, None);
        truncate.change.after = None;
        assert_eq!(predicate.judge_alone(&truncate), None);
    }
}
