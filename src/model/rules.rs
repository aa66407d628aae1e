//! Column rules: columns whose values never reach the cache as they are.
//!
//! A rule names columns by a pattern over `table.column` or `schema.table.column`, with `*` and
//! `?` wildcards (`customers.password_hash`, `*.ssn`, `public.*.email`), and says what happens to
//! their values before anything is stored:
//! - `exclude`: the value is not stored at all; the image holds it as unavailable, and readers
//!   say it was excluded.
//! - `hash`: a keyed hash (HMAC-SHA-256 under a key kept outside the cache) replaces the value,
//!   so equal values still compare equal and changes stay visible, but the value is not readable.
//! - `last4`: only the last four characters are kept (`****4242`).
//!
//! NULL stays NULL under every rule. Rules are fixed when a cache's history begins: a value
//! completed from an older image of the record is already masked, and masking it again would make
//! it differ from itself.

use std::fmt;

use ring::hmac;

use super::{RelationSchema, Row, TableName, Value};

/// What a rule does to a column's values.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Protection {
    /// Keeps the last four characters (the weakest protection).
    Last4,
    /// A keyed hash of the value.
    Hash,
    /// Nothing of the value (the strongest).
    Exclude,
}

impl Protection {
    pub fn name(self) -> &'static str {
        match self {
            Self::Last4 => "last4",
            Self::Hash => "hash",
            Self::Exclude => "exclude",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "last4" => Some(Self::Last4),
            "hash" => Some(Self::Hash),
            "exclude" => Some(Self::Exclude),
            _ => None,
        }
    }
}

/// One rule: a column pattern and what happens to the values of the columns it matches.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ColumnRule {
    pub pattern: String,
    pub protection: Protection,
}

/// A rule could not be read, or cannot apply to a table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error(
        "column pattern '{0}' is not table.column or schema.table.column (hint: '*' and '?' are wildcards, e.g. '*.password*')"
    )]
    BadPattern(String),
    #[error("mask '{0}' is not PATTERN=hash or PATTERN=last4 (hint: --mask customers.email=hash)")]
    BadMask(String),
    #[error(
        "rules file: {0} (hint: it holds exclude = [\"t.c\", ...] and [mask] \"t.c\" = \"hash\" | \"last4\")"
    )]
    BadFile(String),
    #[error(
        "rule '{pattern}' would {protection} key column {table}.{column}: records could no longer be told apart (hint: only 'hash' keeps a key column usable; narrow the pattern)"
    )]
    KeyColumn {
        pattern: String,
        protection: &'static str,
        table: String,
        column: String,
    },
}

impl ColumnRule {
    /// A rule from `--exclude PATTERN`.
    pub fn exclude(pattern: &str) -> Result<Self, RuleError> {
        Ok(Self {
            pattern: checked_pattern(pattern)?,
            protection: Protection::Exclude,
        })
    }

    /// A rule from `--mask PATTERN=hash|last4`.
    pub fn mask(spec: &str) -> Result<Self, RuleError> {
        let (pattern, how) = spec
            .rsplit_once('=')
            .ok_or_else(|| RuleError::BadMask(spec.to_owned()))?;
        let protection = match Protection::from_name(how.trim()) {
            Some(protection @ (Protection::Hash | Protection::Last4)) => protection,
            _ => return Err(RuleError::BadMask(spec.to_owned())),
        };
        Ok(Self {
            pattern: checked_pattern(pattern)?,
            protection,
        })
    }

    /// True when the rule names this column of this table.
    pub fn matches(&self, table: &TableName, column: &str) -> bool {
        let pattern = wildmatch::WildMatch::new_case_insensitive(&self.pattern);
        pattern.matches(&format!("{}.{column}", table.name))
            || pattern.matches(&format!("{}.{}.{column}", table.schema, table.name))
    }
}

impl fmt::Display for ColumnRule {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.protection {
            Protection::Exclude => write!(formatter, "exclude {}", self.pattern),
            protection => write!(formatter, "mask {}={}", self.pattern, protection.name()),
        }
    }
}

fn checked_pattern(pattern: &str) -> Result<String, RuleError> {
    let pattern = pattern.trim();
    let parts: Vec<&str> = pattern.split('.').collect();
    match (2..=3).contains(&parts.len()) && parts.iter().all(|part| !part.is_empty()) {
        true => Ok(pattern.to_owned()),
        false => Err(RuleError::BadPattern(pattern.to_owned())),
    }
}

/// A set of rules; a column matched by several takes the strongest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnRules(Vec<ColumnRule>);

/// The rules file (`--rules rules.toml`).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    mask: std::collections::BTreeMap<String, String>,
}

impl ColumnRules {
    pub fn new(mut rules: Vec<ColumnRule>) -> Self {
        rules.sort_by(|a, b| (&a.pattern, a.protection).cmp(&(&b.pattern, b.protection)));
        rules.dedup();
        Self(rules)
    }

    /// Rules from a TOML file: `exclude = ["customers.password_hash", "*.ssn"]` and a `[mask]`
    /// table of `"pattern" = "hash"` or `"last4"`.
    pub fn from_toml(text: &str) -> Result<Self, RuleError> {
        let file: RulesFile = toml::from_str(text)
            .map_err(|error| RuleError::BadFile(one_line(&error.to_string())))?;
        let mut rules = Vec::new();
        for pattern in &file.exclude {
            rules.push(ColumnRule::exclude(pattern)?);
        }
        for (pattern, how) in &file.mask {
            rules.push(ColumnRule::mask(&format!("{pattern}={how}"))?);
        }
        Ok(Self::new(rules))
    }

    pub fn rules(&self) -> &[ColumnRule] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when some rule hashes values (and so needs the mask key).
    pub fn needs_key(&self) -> bool {
        self.0
            .iter()
            .any(|rule| rule.protection == Protection::Hash)
    }

    /// The strongest rule naming this column, if any.
    pub fn rule_for(&self, table: &TableName, column: &str) -> Option<&ColumnRule> {
        self.0
            .iter()
            .filter(|rule| rule.matches(table, column))
            .max_by_key(|rule| rule.protection)
    }

    /// What the rules do to rows of this schema version; `None` when they touch none of its
    /// columns. A key column may only be hashed: excluded or cut to four characters, records
    /// would merge.
    pub fn row_mask(&self, schema: &RelationSchema) -> Result<Option<RowMask>, RuleError> {
        let mut positions = Vec::new();
        for (index, column) in schema.columns.iter().enumerate() {
            let Some(rule) = self.rule_for(&schema.table, &column.name) else {
                continue;
            };
            if schema.key.contains(&index) && rule.protection != Protection::Hash {
                return Err(RuleError::KeyColumn {
                    pattern: rule.pattern.clone(),
                    protection: rule.protection.name(),
                    table: schema.table.to_string(),
                    column: column.name.clone(),
                });
            }
            positions.push((index, rule.protection));
        }
        Ok((!positions.is_empty()).then_some(RowMask { positions }))
    }
}

/// The rule a column's name or type suggests, if it looks sensitive: secrets (passwords,
/// tokens, keys) and national ids are excluded, contact details hashed, card and account numbers
/// cut to their last four. A key column is only ever hashed. The connect dialog offers these.
pub fn suggest(column: &str, type_name: &str, is_key: bool) -> Option<Protection> {
    let name = column.to_ascii_lowercase();
    let kind = type_name.to_ascii_lowercase();
    let has = |words: &[&str]| {
        words
            .iter()
            .any(|word| name.contains(word) || kind.contains(word))
    };
    let protection = if has(&[
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "private_key",
        "ssn",
        "social_security",
        "tax_id",
        "national_id",
        "passport",
    ]) {
        Protection::Exclude
    } else if has(&["card", "iban", "account_number", "acct"]) {
        Protection::Last4
    } else if has(&["email", "e_mail", "phone", "mobile", "birth"]) {
        Protection::Hash
    } else {
        return None;
    };
    Some(match is_key {
        true => Protection::Hash,
        false => protection,
    })
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The key of `hash` rules. It lives outside the cache (a file of 64 hex digits); the cache keeps
/// only its fingerprint, so a capture with another key is refused instead of making equal values
/// differ.
#[derive(Clone)]
pub struct MaskKey {
    key: hmac::Key,
    fingerprint: String,
}

impl fmt::Debug for MaskKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "MaskKey({})", self.fingerprint)
    }
}

impl MaskKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            &[b"rowtrail mask key fingerprint ".as_slice(), bytes].concat(),
        );
        let fingerprint = digest.as_ref()[..8]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
            fingerprint,
        }
    }

    /// A key from the text of its file: 64 hex digits (whitespace around them is ignored).
    pub fn from_hex(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (index, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(index * 2..index * 2 + 2)?, 16).ok()?;
        }
        Some(Self::from_bytes(&bytes))
    }

    /// A new random key and the text of its file.
    pub fn generate() -> Result<(Self, String), ring::error::Unspecified> {
        use ring::rand::SecureRandom;
        let mut bytes = [0u8; 32];
        ring::rand::SystemRandom::new().fill(&mut bytes)?;
        let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
        Ok((Self::from_bytes(&bytes), hex))
    }

    /// Sixteen hex digits that tell keys apart without revealing them.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    fn hash(&self, bytes: &[u8]) -> String {
        let tag = hmac::sign(&self.key, bytes);
        let hex: String = tag.as_ref()[..8]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        format!("{MASKED_PREFIX}{hex}")
    }
}

/// Column rules with the key of their `hash` rules, as a capture or an import is given them.
/// Empty rules keep the cache's own.
#[derive(Debug, Clone, Default)]
pub struct ColumnProtection {
    pub rules: ColumnRules,
    pub key: Option<MaskKey>,
}

/// How a hashed value starts: `masked:` and sixteen hex digits.
pub const MASKED_PREFIX: &str = "masked:";

/// What a set of rules does to rows of one schema version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowMask {
    positions: Vec<(usize, Protection)>,
}

impl RowMask {
    /// The protected positions of the row, with what protects them.
    pub fn positions(&self) -> &[(usize, Protection)] {
        &self.positions
    }

    /// A mask of one position.
    pub fn single(index: usize, protection: Protection) -> Self {
        Self {
            positions: vec![(index, protection)],
        }
    }

    /// What protects this position, if anything.
    pub fn protection_at(&self, index: usize) -> Option<Protection> {
        self.positions
            .iter()
            .find(|(at, _)| *at == index)
            .map(|(_, protection)| *protection)
    }

    /// The protections of `from`'s columns, at the same columns of `to` (matched by `attnum`,
    /// else by name): what a rename must not take away.
    pub fn carried_to(
        &self,
        from: &RelationSchema,
        to: &RelationSchema,
    ) -> Vec<(usize, Protection)> {
        self.positions
            .iter()
            .filter_map(|&(index, protection)| {
                let column = from.columns.get(index)?;
                Some((to.matching_column(column)?, protection))
            })
            .collect()
    }

    /// Replaces the protected values of a row read from the source. `key` is needed when a
    /// position is hashed; without one a hashed value is dropped like an excluded one.
    pub fn apply(&self, row: &mut Row, key: Option<&MaskKey>) {
        for &(index, protection) in &self.positions {
            let Some(value) = row.get_mut(index) else {
                continue;
            };
            // An excluded column is absent whatever it held; a masked NULL stays NULL.
            if protection != Protection::Exclude
                && matches!(value, Value::Null | Value::Unavailable)
            {
                continue;
            }
            *value = match (protection, key) {
                (Protection::Exclude, _) | (Protection::Hash, None) => Value::Unavailable,
                (Protection::Hash, Some(key)) => Value::Text(key.hash(&value_bytes(value))),
                (Protection::Last4, _) => Value::Text(last4(value)),
            };
        }
    }
}

/// A row mask with the key its hashes use: what the cache writer applies to every row the
/// source sends before anything of it is stored or looked up.
#[derive(Debug, Clone, Copy)]
pub struct Masking<'a> {
    pub mask: &'a RowMask,
    pub key: Option<&'a MaskKey>,
}

impl Masking<'_> {
    pub fn apply(&self, row: &mut Row) {
        self.mask.apply(row, self.key);
    }

    /// Masks the key values of a row (`key` holds the values at `schema.key`), as
    /// [`Masking::apply`] masks them in the row itself.
    pub fn apply_to_key(&self, schema: &RelationSchema, key: &mut [Value]) {
        for (slot, &index) in key.iter_mut().zip(&schema.key) {
            if let Some(protection) = self.mask.protection_at(index) {
                let mut row = vec![std::mem::replace(slot, Value::Null)];
                RowMask::single(0, protection).apply(&mut row, self.key);
                if let Some(value) = row.pop() {
                    *slot = value;
                }
            }
        }
    }
}

fn value_bytes(value: &Value) -> Vec<u8> {
    match value {
        Value::Text(text) => text.as_bytes().to_vec(),
        Value::Bytes(bytes) => bytes.clone(),
        Value::Null | Value::Unavailable => Vec::new(),
    }
}

fn last4(value: &Value) -> String {
    let text = match value {
        Value::Text(text) => text.clone(),
        other => String::from_utf8_lossy(&value_bytes(other)).into_owned(),
    };
    let chars: Vec<char> = text.chars().collect();
    // A value of four characters or fewer keeps none of them.
    let kept: String = match chars.len() > 4 {
        true => chars[chars.len() - 4..].iter().collect(),
        false => String::new(),
    };
    format!("****{kept}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;
    use crate::model::{Column, ReplicaIdentity};

    fn schema(columns: &[&str], key: &[usize]) -> RelationSchema {
        RelationSchema {
            oid: 1,
            table: TableName::new("public", "customers"),
            replica_identity: ReplicaIdentity::Default,
            columns: columns
                .iter()
                .map(|name| Column::text_for_tests(name))
                .collect(),
            key: key.to_vec(),
            foreign_keys: Vec::new(),
            key_read_later: false,
        }
    }

    #[test]
    fn patterns_match_table_and_qualified_names_with_wildcards() {
        let customers = TableName::new("public", "customers");
        let rule = ColumnRule::exclude("*.password*").unwrap();
        assert!(rule.matches(&customers, "password_hash"));
        assert!(!rule.matches(&customers, "email"));
        let rule = ColumnRule::mask("public.customers.email=hash").unwrap();
        assert!(rule.matches(&customers, "email"));
        assert!(rule.matches(&customers, "EMAIL"));
        assert!(!rule.matches(&TableName::new("crm", "customers"), "email"));
        assert!(ColumnRule::mask("customers.card=last4").is_ok());
        for bad in ["email", ".email", "a.b.c.d", "customers."] {
            assert!(
                matches!(ColumnRule::exclude(bad), Err(RuleError::BadPattern(_))),
                "{bad}"
            );
        }
        for bad in [
            "customers.email",
            "customers.email=rot13",
            "customers.email=exclude",
        ] {
            assert!(ColumnRule::mask(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_strongest_rule_wins_and_a_key_column_can_only_be_hashed() {
        let rules = ColumnRules::new(vec![
            ColumnRule::mask("*.email=last4").unwrap(),
            ColumnRule::exclude("customers.email").unwrap(),
            ColumnRule::mask("customers.id=hash").unwrap(),
        ]);
        let mask = rules
            .row_mask(&schema(&["id", "email", "name"], &[0]))
            .unwrap()
            .unwrap();
        assert_eq!(
            mask.positions(),
            &[(0, Protection::Hash), (1, Protection::Exclude)]
        );
        let rules = ColumnRules::new(vec![ColumnRule::exclude("customers.id").unwrap()]);
        assert!(matches!(
            rules.row_mask(&schema(&["id"], &[0])),
            Err(RuleError::KeyColumn { .. })
        ));
        assert_eq!(
            ColumnRules::default().row_mask(&schema(&["id"], &[0])),
            Ok(None)
        );
    }

    #[test]
    fn masks_hide_values_but_keep_equality_and_nulls() {
        let key = MaskKey::from_hex(&"ab".repeat(32)).unwrap();
        let other = MaskKey::from_hex(&"cd".repeat(32)).unwrap();
        assert_ne!(key.fingerprint(), other.fingerprint());
        let rules = ColumnRules::new(vec![
            ColumnRule::mask("*.email=hash").unwrap(),
            ColumnRule::mask("*.card=last4").unwrap(),
            ColumnRule::exclude("*.secret").unwrap(),
        ]);
        let mask = rules
            .row_mask(&schema(&["id", "email", "card", "secret"], &[0]))
            .unwrap()
            .unwrap();
        let masked = |email: &str, key: &MaskKey| {
            let mut row = vec![
                Value::text("1"),
                Value::text(email),
                Value::text("4111111111114242"),
                Value::text("s3cret"),
            ];
            mask.apply(&mut row, Some(key));
            row
        };
        let row = masked("ann@example.com", &key);
        assert_eq!(row[0], Value::text("1"));
        let Value::Text(hashed) = &row[1] else {
            panic!("{row:?}")
        };
        assert!(hashed.starts_with(MASKED_PREFIX) && !hashed.contains("ann"));
        assert_eq!(row[2], Value::text("****4242"));
        assert_eq!(row[3], Value::Unavailable);
        assert_eq!(masked("ann@example.com", &key)[1], row[1]);
        assert_ne!(masked("bob@example.com", &key)[1], row[1]);
        assert_ne!(masked("ann@example.com", &other)[1], row[1]);
        let mut nulls = vec![Value::Null, Value::Null, Value::Unavailable, Value::Null];
        mask.apply(&mut nulls, Some(&key));
        assert_eq!(
            nulls,
            vec![
                Value::Null,
                Value::Null,
                Value::Unavailable,
                Value::Unavailable
            ]
        );
        let mut short = vec![Value::Null, Value::Null, Value::text("42"), Value::Null];
        mask.apply(&mut short, None);
        assert_eq!(short[2], Value::text("****"));
        assert!(MaskKey::from_hex("abc").is_none());
    }

    #[test]
    fn sensitive_looking_columns_get_a_suggestion() {
        assert_eq!(
            suggest("password_hash", "text", false),
            Some(Protection::Exclude)
        );
        assert_eq!(suggest("SSN", "text", false), Some(Protection::Exclude));
        assert_eq!(
            suggest("contact", "email_address", false),
            Some(Protection::Hash)
        );
        assert_eq!(
            suggest("card_number", "text", false),
            Some(Protection::Last4)
        );
        assert_eq!(suggest("api_token", "text", true), Some(Protection::Hash));
        assert_eq!(suggest("name", "text", false), None);
        assert_eq!(suggest("total", "numeric(10,2)", false), None);
    }

    #[test]
    fn a_rules_file_reads_excludes_and_masks() {
        let rules = ColumnRules::from_toml(
            "exclude = [\"customers.password_hash\", \"*.ssn\"]\n[mask]\n\"customers.email\" = \"hash\"\n\"cards.number\" = \"last4\"\n",
        )
        .unwrap();
        assert_eq!(rules.rules().len(), 4);
        assert!(rules.needs_key());
        for bad in ["exclude = 3", "[mask]\n\"a.b\" = \"rot13\"", "include = []"] {
            assert!(ColumnRules::from_toml(bad).is_err(), "{bad}");
        }
    }
}
