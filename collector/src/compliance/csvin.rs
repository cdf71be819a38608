//! Tables people produce in Excel, 1С or a regional system: CSV in UTF-8 (with or without a
//! BOM) or Windows-1251, separated by `;`, `,` or tabs, quoted per RFC 4180. The reader keeps
//! each record's line number so that every problem can name its line and column.

use std::fmt;

/// Text encoding of an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8 when the bytes are valid UTF-8, otherwise Windows-1251.
    Auto,
    /// UTF-8 only.
    Utf8,
    /// Windows-1251.
    Cp1251,
}

impl Encoding {
    /// Parses `auto`, `utf-8`/`utf8`, `cp1251`/`windows-1251`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "utf-8" | "utf8" => Ok(Self::Utf8),
            "cp1251" | "windows-1251" | "win1251" => Ok(Self::Cp1251),
            _ => Err(format!("unknown encoding {s:?}: expected auto, utf-8 or cp1251")),
        }
    }
}

/// Field separator of an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delimiter {
    /// The one of `;`, `,` and tab that splits the header line most.
    Auto,
    /// This one.
    Char(char),
}

impl Delimiter {
    /// Parses `auto`, `;`, `,`, `tab`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            ";" | "semicolon" => Ok(Self::Char(';')),
            "," | "comma" => Ok(Self::Char(',')),
            "tab" | "\t" => Ok(Self::Char('\t')),
            _ => Err(format!("unknown delimiter {s:?}: expected auto, ';', ',' or tab")),
        }
    }
}

/// One record: its first line in the file (1-based) and its cells, trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Line number of the record's start.
    pub line: usize,
    /// Cells.
    pub cells: Vec<String>,
}

/// A parsed table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// `UTF-8` or `Windows-1251`.
    pub encoding: &'static str,
    /// The separator used.
    pub delimiter: char,
    /// The header record.
    pub header: Record,
    /// Data records (blank lines left out).
    pub records: Vec<Record>,
}

/// Why a file is not a table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    /// Nothing but blank lines.
    #[error("the file is empty (no header line)")]
    Empty,
    /// `--encoding utf-8` and the bytes are not.
    #[error("line {line}: not UTF-8 (save the file as UTF-8, or pass --encoding cp1251)")]
    NotUtf8 {
        /// Line of the first bad byte.
        line: usize,
    },
    /// A quoted cell never closes.
    #[error("line {line}: a quoted cell opened here is never closed")]
    UnclosedQuote {
        /// Line of the opening quote.
        line: usize,
    },
    /// Text right after a closing quote.
    #[error("line {line}: text after a closing quote (a quote inside a quoted cell must be doubled: \"\")")]
    TextAfterQuote {
        /// Line.
        line: usize,
    },
}

/// Decodes `bytes` (a UTF-8 BOM is dropped).
pub fn decode(bytes: &[u8], encoding: Encoding) -> Result<(String, &'static str), CsvError> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    match encoding {
        Encoding::Cp1251 => Ok((parta_common::text::decode_cp1251(bytes), "Windows-1251")),
        Encoding::Utf8 => match std::str::from_utf8(bytes) {
            Ok(s) => Ok((s.to_owned(), "UTF-8")),
            Err(e) => {
                let line = bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
                Err(CsvError::NotUtf8 { line })
            }
        },
        Encoding::Auto => match std::str::from_utf8(bytes) {
            Ok(s) => Ok((s.to_owned(), "UTF-8")),
            Err(_) => Ok((parta_common::text::decode_cp1251(bytes), "Windows-1251")),
        },
    }
}

/// The separator that splits the first non-blank line most (outside quotes); `;` on a tie,
/// as Russian Excel writes it.
fn detect_delimiter(text: &str) -> char {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut counts = [(';', 0usize), (',', 0), ('\t', 0)];
    let mut quoted = false;
    for c in first.chars() {
        if c == '"' {
            quoted = !quoted;
        } else if !quoted && let Some(e) = counts.iter_mut().find(|(d, _)| *d == c) {
            e.1 += 1;
        }
    }
    // max_by_key keeps the last of equal maxima: order the candidates so `;` wins ties.
    counts.iter().rev().max_by_key(|(_, n)| *n).map_or(';', |(d, _)| *d)
}

/// Splits decoded text into records.
pub fn parse(text: &str, delimiter: char) -> Result<Vec<Record>, CsvError> {
    let mut records = Vec::new();
    let mut cells: Vec<String> = Vec::new();
    let mut cell = String::new();
    let mut line = 1usize;
    let mut start = 1usize;
    let mut chars = text.chars().peekable();
    // State: at a cell's start, inside quotes, after a closing quote, or in an unquoted cell.
    let mut in_quotes = false;
    let mut after_quote = false;
    let mut quote_line = 0usize;
    let mut cell_started = false;
    let finish = |cells: &mut Vec<String>, cell: &mut String, records: &mut Vec<Record>, start: usize| {
        cells.push(std::mem::take(cell).trim().to_owned());
        let record = std::mem::take(cells);
        if record.iter().any(|c| !c.is_empty()) {
            records.push(Record { line: start, cells: record });
        }
    };
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                '"' => {
                    in_quotes = false;
                    after_quote = true;
                }
                '\n' => {
                    line += 1;
                    cell.push('\n');
                }
                _ => cell.push(c),
            }
            continue;
        }
        match c {
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                finish(&mut cells, &mut cell, &mut records, start);
                line += 1;
                start = line;
                after_quote = false;
                cell_started = false;
            }
            d if d == delimiter => {
                cells.push(std::mem::take(&mut cell).trim().to_owned());
                after_quote = false;
                cell_started = false;
            }
            '"' if !cell_started || cell.trim().is_empty() && !after_quote => {
                cell.clear();
                in_quotes = true;
                quote_line = line;
                cell_started = true;
            }
            c if after_quote => {
                if !c.is_whitespace() {
                    return Err(CsvError::TextAfterQuote { line });
                }
            }
            _ => {
                cell.push(c);
                cell_started = true;
            }
        }
    }
    if in_quotes {
        return Err(CsvError::UnclosedQuote { line: quote_line });
    }
    finish(&mut cells, &mut cell, &mut records, start);
    Ok(records)
}

/// Reads a table: decodes, finds the separator, parses, and splits off the header.
pub fn read(bytes: &[u8], encoding: Encoding, delimiter: Delimiter) -> Result<Table, CsvError> {
    let (text, encoding) = decode(bytes, encoding)?;
    let delimiter = match delimiter {
        Delimiter::Auto => detect_delimiter(&text),
        Delimiter::Char(c) => c,
    };
    let mut records = parse(&text, delimiter)?.into_iter();
    let header = records.next().ok_or(CsvError::Empty)?;
    Ok(Table { encoding, delimiter, header, records: records.collect() })
}

/// A column an import knows: its field name and the headings it is recognised by.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Field name (also accepted as a heading).
    pub field: &'static str,
    /// Other headings, Russian and English (compared case-insensitively, `ё` as `е`,
    /// spaces, `_` and `-` alike).
    pub headings: &'static [&'static str],
    /// Must be present.
    pub required: bool,
}

/// A heading or name people wrote, in comparable form: trimmed, lower case, `ё` as `е`, spaces,
/// `_` and `-` alike and collapsed. Headings, category names, municipalities and localities
/// are all compared this way.
pub fn name_key(s: &str) -> String {
    s.trim()
        .to_lowercase()
        .replace('ё', "е")
        .chars()
        .map(|c| if c == '_' || c == '-' || c.is_whitespace() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// One problem with an input, for people: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Line (1-based; 0 for the file as a whole).
    pub line: usize,
    /// Column heading as in the file, or the field name.
    pub column: String,
    /// The offending value (may be empty).
    pub value: String,
    /// Why.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: ", self.line)?;
        }
        if !self.column.is_empty() {
            write!(f, "column «{}»", self.column)?;
            if !self.value.is_empty() {
                write!(f, " («{}»)", self.value)?;
            }
            write!(f, ": ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// Where each known column is in a table.
#[derive(Debug, Clone)]
pub struct Header {
    /// Index of each known column, in the order of the spec (`None`: absent).
    pub index: Vec<Option<usize>>,
    /// Headings as in the file.
    pub names: Vec<String>,
}

impl Header {
    /// Maps the header record onto `spec`: a missing required column or a column given twice is
    /// a problem; unknown columns are left out (exports carry extra columns).
    pub fn map(header: &Record, spec: &[Column]) -> Result<Self, Vec<Problem>> {
        let normalized: Vec<String> = header.cells.iter().map(|h| name_key(h)).collect();
        let mut index = Vec::with_capacity(spec.len());
        let mut problems = Vec::new();
        for col in spec {
            // The column's accepted headings, normalized once.
            let keys: Vec<String> =
                std::iter::once(col.field).chain(col.headings.iter().copied()).map(name_key).collect();
            let matches: Vec<usize> =
                normalized.iter().enumerate().filter(|(_, h)| keys.contains(h)).map(|(i, _)| i).collect();
            match matches.as_slice() {
                [] if col.required => problems.push(Problem {
                    line: header.line,
                    column: col.field.to_owned(),
                    value: String::new(),
                    message: format!(
                        "required column missing (headed «{}» or «{}»)",
                        col.headings.first().copied().unwrap_or(col.field),
                        col.field
                    ),
                }),
                [] => index.push(None),
                [i] => index.push(Some(*i)),
                [_, ..] => problems.push(Problem {
                    line: header.line,
                    column: col.field.to_owned(),
                    value: String::new(),
                    message: format!("given in {} columns", matches.len()),
                }),
            }
        }
        if problems.is_empty() { Ok(Self { index, names: header.cells.clone() }) } else { Err(problems) }
    }

    /// The cell of column `i` of the spec in `record` (empty when absent or short).
    pub fn cell<'a>(&self, record: &'a Record, i: usize) -> &'a str {
        self.index.get(i).copied().flatten().and_then(|j| record.cells.get(j)).map_or("", String::as_str)
    }

    /// The heading of column `i` of the spec as in the file (or `field`).
    pub fn name(&self, i: usize, field: &str) -> String {
        self.index
            .get(i)
            .copied()
            .flatten()
            .and_then(|j| self.names.get(j))
            .cloned()
            .unwrap_or_else(|| field.to_owned())
    }
}

/// A whole number people wrote: digits, maybe with spaces as thousands separators.
pub fn whole_number(s: &str) -> Result<u32, String> {
    let digits: String = s.chars().filter(|c| !c.is_whitespace() && *c != '\u{a0}').collect();
    if digits.is_empty() {
        return Err("empty: a whole number is required".into());
    }
    if digits.contains(',') || digits.contains('.') {
        return Err("not a whole number (a decimal fraction?)".into());
    }
    digits.parse::<u32>().map_err(|_| "not a whole number".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(t: &Table) -> Vec<Vec<&str>> {
        t.records.iter().map(|r| r.cells.iter().map(String::as_str).collect()).collect()
    }

    #[test]
    fn semicolons_quotes_and_line_numbers() {
        let t = read(
            "\u{feff}a;b;c\r\n1;\"x;y\";\"say \"\"hi\"\"\"\r\n\r\n2;\"two\nlines\";3\n".as_bytes(),
            Encoding::Auto,
            Delimiter::Auto,
        )
        .unwrap();
        assert_eq!((t.encoding, t.delimiter), ("UTF-8", ';'));
        assert_eq!(t.header.cells, ["a", "b", "c"]);
        assert_eq!(cells(&t), [vec!["1", "x;y", "say \"hi\""], vec!["2", "two\nlines", "3"]]);
        assert_eq!(t.records.iter().map(|r| r.line).collect::<Vec<_>>(), [2, 4]);
    }

    #[test]
    fn commas_and_windows_1251() {
        // «Школа» in Windows-1251.
        let bytes = b"id,name\n1,\xd8\xea\xee\xeb\xe0\n";
        let t = read(bytes, Encoding::Auto, Delimiter::Auto).unwrap();
        assert_eq!((t.encoding, t.delimiter), ("Windows-1251", ','));
        assert_eq!(cells(&t), [vec!["1", "Школа"]]);
        assert_eq!(read(bytes, Encoding::Utf8, Delimiter::Auto), Err(CsvError::NotUtf8 { line: 2 }));
        // A tie (no separator at all) reads as `;`.
        assert_eq!(read(b"one\n1\n", Encoding::Auto, Delimiter::Auto).unwrap().delimiter, ';');
    }

    #[test]
    fn broken_files_are_named() {
        assert_eq!(read(b"", Encoding::Auto, Delimiter::Auto), Err(CsvError::Empty));
        assert_eq!(read(b"\n \n;;\n", Encoding::Auto, Delimiter::Auto), Err(CsvError::Empty));
        assert_eq!(
            read(b"a;b\n1;\"open\n2;3\n", Encoding::Auto, Delimiter::Auto),
            Err(CsvError::UnclosedQuote { line: 2 })
        );
        assert_eq!(
            read(b"a;b\n\"x\"y;1\n", Encoding::Auto, Delimiter::Auto),
            Err(CsvError::TextAfterQuote { line: 2 })
        );
    }

    #[test]
    fn headers_map_by_any_heading() {
        const SPEC: &[Column] = &[
            Column { field: "school_id", headings: &["Код школы", "ИНН"], required: true },
            Column { field: "pupils", headings: &["Число учащихся"], required: true },
            Column { field: "address", headings: &["Адрес"], required: false },
        ];
        let h = Header::map(
            &Record {
                line: 1, cells: vec!["КОД  школы".into(), "extra".into(), "число_учащихся".into()]
            },
            SPEC,
        )
        .unwrap();
        assert_eq!(h.index, [Some(0), Some(2), None]);
        let r = Record { line: 2, cells: vec!["74-1".into(), "x".into(), "10".into()] };
        assert_eq!((h.cell(&r, 0), h.cell(&r, 1), h.cell(&r, 2)), ("74-1", "10", ""));
        let err = Header::map(&Record { line: 1, cells: vec!["school_id".into(), "ИНН".into()] }, SPEC)
            .unwrap_err();
        assert_eq!(err.len(), 2);
        assert_eq!(err[0].to_string(), "line 1: column «school_id»: given in 2 columns");
        assert_eq!(
            err[1].to_string(),
            "line 1: column «pupils»: required column missing (headed «Число учащихся» or «pupils»)"
        );
    }

    #[test]
    fn whole_numbers() {
        assert_eq!(whole_number("1 234"), Ok(1234));
        assert_eq!(whole_number("12\u{a0}000"), Ok(12000));
        assert!(whole_number("1,5").unwrap_err().contains("decimal"));
        assert!(whole_number("").is_err());
        assert!(whole_number("-3").is_err());
    }
}
