//! Colours for the restore scripts the app shows: keywords, literals, identifiers, comments.
//!
//! Written by hand: egui_extras highlights SQL only through syntect, which would add a large
//! dependency and its syntax definitions for the one language rowtrail generates.

use egui::text::{LayoutJob, TextFormat};
use egui::{Color32, FontId};

const KEYWORDS: &[&str] = &[
    "BEGIN",
    "COMMIT",
    "SET",
    "LOCAL",
    "DO",
    "END",
    "IF",
    "THEN",
    "NOT",
    "FOUND",
    "RAISE",
    "EXCEPTION",
    "USING",
    "MESSAGE",
    "HINT",
    "UPDATE",
    "DELETE",
    "FROM",
    "INSERT",
    "INTO",
    "VALUES",
    "WHERE",
    "AND",
    "IS",
    "DISTINCT",
    "NULL",
    "SELECT",
    "EXISTS",
    "LIMIT",
    "OVERRIDING",
    "SYSTEM",
    "VALUE",
];

/// The colours of one theme.
#[derive(Debug, Clone, Copy)]
pub struct Palette {
    pub plain: Color32,
    pub keyword: Color32,
    pub literal: Color32,
    pub identifier: Color32,
    pub comment: Color32,
}

impl Palette {
    pub fn for_visuals(visuals: &egui::Visuals) -> Self {
        match visuals.dark_mode {
            true => Self {
                plain: visuals.text_color(),
                keyword: Color32::from_rgb(0x7a, 0xb8, 0xff),
                literal: Color32::from_rgb(0xe6, 0xc0, 0x7b),
                identifier: Color32::from_rgb(0x9f, 0xdf, 0x9f),
                comment: Color32::from_rgb(0x8c, 0x8c, 0x8c),
            },
            false => Self {
                plain: visuals.text_color(),
                keyword: Color32::from_rgb(0x1f, 0x4f, 0xb0),
                literal: Color32::from_rgb(0x9a, 0x5b, 0x00),
                identifier: Color32::from_rgb(0x1f, 0x7a, 0x2e),
                comment: Color32::from_rgb(0x70, 0x70, 0x70),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    Keyword,
    Literal,
    Identifier,
    Comment,
}

/// Splits SQL into coloured runs. Quotes and dollar quotes are followed exactly, so values that
/// look like SQL inside a literal stay literal-coloured.
fn tokens(sql: &str) -> Vec<(Kind, &str)> {
    let mut runs: Vec<(Kind, &str)> = Vec::new();
    let bytes = sql.as_bytes();
    let mut index = 0;
    let mut plain_start = 0;
    fn push<'a>(
        sql: &'a str,
        runs: &mut Vec<(Kind, &'a str)>,
        kind: Kind,
        span: (usize, usize),
        plain_start: &mut usize,
    ) {
        let (start, end) = span;
        if *plain_start < start {
            runs.push((
                Kind::Plain,
                sql.get(*plain_start..start).unwrap_or_default(),
            ));
        }
        runs.push((kind, sql.get(start..end).unwrap_or_default()));
        *plain_start = end;
    }
    while index < bytes.len() {
        let rest = &sql[index..];
        let (kind, length) = if rest.starts_with("--") {
            (Kind::Comment, rest.find('\n').unwrap_or(rest.len()))
        } else if rest.starts_with('\'') {
            (Kind::Literal, quoted_length(rest, b'\''))
        } else if rest.starts_with('"') {
            (Kind::Identifier, quoted_length(rest, b'"'))
        } else if let Some(tag) = dollar_tag(rest) {
            // A dollar-quoted body is code (a DO block): colour the tags, keep scanning inside.
            (Kind::Keyword, tag.len())
        } else if rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
            let length = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let word = &rest[..length];
            match KEYWORDS
                .iter()
                .any(|keyword| keyword.eq_ignore_ascii_case(word))
            {
                true => (Kind::Keyword, length),
                false => (Kind::Plain, length),
            }
        } else {
            (Kind::Plain, rest.chars().next().map_or(1, char::len_utf8))
        };
        if kind != Kind::Plain {
            push(
                sql,
                &mut runs,
                kind,
                (index, index + length),
                &mut plain_start,
            );
        }
        index += length.max(1);
    }
    if plain_start < sql.len() {
        runs.push((Kind::Plain, &sql[plain_start..]));
    }
    runs
}

/// The length of a quoted run starting at `text[0]`, doubled quotes included.
fn quoted_length(text: &str, quote: u8) -> usize {
    let bytes = text.as_bytes();
    let mut index = 1;
    while index < bytes.len() {
        if bytes[index] == quote {
            if bytes.get(index + 1) == Some(&quote) {
                index += 2;
                continue;
            }
            return index + 1;
        }
        index += 1;
    }
    bytes.len()
}

/// `$tag$` at the start of `text`.
fn dollar_tag(text: &str) -> Option<&str> {
    let rest = text.strip_prefix('$')?;
    let end = rest.find('$')?;
    rest[..end]
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
        .then(|| &text[..end + 2])
}

/// A layout of `sql` in monospace with the palette's colours.
pub fn highlight(sql: &str, palette: Palette, font: FontId) -> LayoutJob {
    let mut job = LayoutJob::default();
    for (kind, text) in tokens(sql) {
        let color = match kind {
            Kind::Plain => palette.plain,
            Kind::Keyword => palette.keyword,
            Kind::Literal => palette.literal,
            Kind::Identifier => palette.identifier,
            Kind::Comment => palette.comment,
        };
        job.append(text, 0.0, TextFormat::simple(font.clone(), color));
    }
    job
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    #[test]
    fn literals_identifiers_and_comments_stay_whole() {
        let sql =
            "-- undo\nUPDATE \"t\"\"x\" SET \"v\" = 'it''s -- not a comment'::text WHERE id = 1;";
        let runs: Vec<(Kind, &str)> = tokens(sql)
            .into_iter()
            .filter(|(kind, _)| *kind != Kind::Plain)
            .collect();
        assert_eq!(
            runs,
            vec![
                (Kind::Comment, "-- undo"),
                (Kind::Keyword, "UPDATE"),
                (Kind::Identifier, "\"t\"\"x\""),
                (Kind::Keyword, "SET"),
                (Kind::Identifier, "\"v\""),
                (Kind::Literal, "'it''s -- not a comment'"),
                (Kind::Keyword, "WHERE"),
            ]
        );
        let joined: String = tokens(sql).iter().map(|(_, text)| *text).collect();
        assert_eq!(joined, sql, "nothing is lost or doubled");
        let unicode = "SELECT 'ünï' -- ✓\n";
        assert_eq!(
            tokens(unicode)
                .iter()
                .map(|(_, text)| *text)
                .collect::<String>(),
            unicode
        );
    }
}
