//! Reads rows of `COPY ... TO STDOUT` in PostgreSQL's text format, which the baseline uses: one row
//! per line, columns separated by tabs, `\N` for NULL, and backslash escapes inside values.

use super::DecodeError;

/// Splits complete lines off the front of `buffer`, leaving a trailing partial line in it.
pub fn take_lines(buffer: &mut Vec<u8>) -> Vec<Vec<u8>> {
    let Some(last_newline) = buffer.iter().rposition(|&byte| byte == b'\n') else {
        return Vec::new();
    };
    let rest = buffer.split_off(last_newline + 1);
    let mut complete = std::mem::replace(buffer, rest);
    complete.pop();
    // An empty line is a row: one column holding the empty string.
    complete
        .split(|&byte| byte == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

/// Parses one line (without its newline) into the bytes of each column value; `None` is SQL NULL.
pub fn parse_row(line: &[u8]) -> Result<Vec<Option<Vec<u8>>>, DecodeError> {
    line.split(|&byte| byte == b'\t').map(parse_field).collect()
}

fn parse_field(field: &[u8]) -> Result<Option<Vec<u8>>, DecodeError> {
    if field == b"\\N" {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(field.len());
    let mut index = 0;
    while index < field.len() {
        let byte = field[index];
        index += 1;
        if byte != b'\\' {
            bytes.push(byte);
            continue;
        }
        let Some(&escaped) = field.get(index) else {
            return Err(DecodeError::Invalid {
                what: "COPY value ends with a lone backslash",
            });
        };
        index += 1;
        match escaped {
            b'b' => bytes.push(0x08),
            b'f' => bytes.push(0x0C),
            b'n' => bytes.push(b'\n'),
            b'r' => bytes.push(b'\r'),
            b't' => bytes.push(b'\t'),
            b'v' => bytes.push(0x0B),
            b'0'..=b'7' => {
                let mut value = u32::from(escaped - b'0');
                for _ in 0..2 {
                    match field.get(index) {
                        Some(&digit @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(digit - b'0');
                            index += 1;
                        }
                        _ => break,
                    }
                }
                bytes.push((value & 0xFF) as u8);
            }
            b'x' => {
                let mut value = 0u32;
                let mut digits = 0;
                while digits < 2 {
                    match field
                        .get(index)
                        .and_then(|&byte| char::from(byte).to_digit(16))
                    {
                        Some(digit) => {
                            value = value * 16 + digit;
                            index += 1;
                            digits += 1;
                        }
                        None => break,
                    }
                }
                match digits {
                    0 => bytes.push(b'x'),
                    _ => bytes.push(value as u8),
                }
            }
            other => bytes.push(other),
        }
    }
    Ok(Some(bytes))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    #[test]
    fn parses_nulls_escapes_and_unicode() {
        let line = "7\t\\N\tline1\\nline2\\ttab\\\\back\tÅl\\303\\270\t\\x41\t".as_bytes();
        let text = |value: &str| Some(value.as_bytes().to_vec());
        assert_eq!(
            parse_row(line).unwrap(),
            vec![
                text("7"),
                None,
                text("line1\nline2\ttab\\back"),
                text("Ålø"),
                text("A"),
                text(""),
            ]
        );
        assert_eq!(parse_row(b"\\\\x00ff").unwrap(), vec![text("\\x00ff")]);
        // Bytes that are not UTF-8 (a SQL_ASCII database) come through as they are.
        assert_eq!(
            parse_row(b"caf\\351\tok").unwrap(),
            vec![Some(b"caf\xe9".to_vec()), text("ok")]
        );
    }

    #[test]
    fn splits_complete_lines_and_keeps_the_rest() {
        let mut buffer = b"a\tb\n\nc\td\npartial".to_vec();
        let lines = take_lines(&mut buffer);
        assert_eq!(lines, vec![b"a\tb".to_vec(), Vec::new(), b"c\td".to_vec()]);
        assert_eq!(buffer, b"partial");
        assert!(take_lines(&mut buffer).is_empty());
    }

    #[test]
    fn rejects_broken_values() {
        assert!(parse_row(b"abc\\").is_err());
    }
}
