//! Plain-text tables for the terminal: a header row and left-aligned columns as wide as their
//! widest cell, two spaces apart, no trailing spaces. Owns formatting only; calls nothing.

/// A table being filled row by row.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// Spaces between two columns.
const GAP: usize = 2;

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|header| (*header).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are left blank, extra cells are kept as extra columns.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as lines, each ending in a newline.
    pub fn render(&self) -> String {
        let columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain(std::iter::once(self.headers.len()))
            .max()
            .unwrap_or(0);
        let mut widths = vec![0; columns];
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            for (index, cell) in line.iter().enumerate() {
                widths[index] = widths[index].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            let mut text = String::new();
            for (index, width) in widths.iter().enumerate() {
                let cell = line.get(index).map(String::as_str).unwrap_or("");
                text.push_str(cell);
                if index + 1 < columns {
                    let padding = width - cell.chars().count() + GAP;
                    text.extend(std::iter::repeat_n(' ', padding));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `text` cut to `limit` characters, with `…` marking the cut.
pub fn truncate(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(limit.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A whole number with thousands separators: `1234567` → `1,234,567`.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The first 12 characters of a version (a sha256), as tables show it.
pub fn short_version(version: &str) -> &str {
    version.get(..12).unwrap_or(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let mut table = Table::new(&["FILE", "HOOK", "RESULT"]);
        table.row(vec!["a.json".into(), "on-submit".into(), "PASS".into()]);
        table.row(vec!["longer-name.json".into(), "on-event".into(), "FAIL".into()]);
        assert_eq!(
            table.render(),
            "FILE              HOOK       RESULT\n\
             a.json            on-submit  PASS\n\
             longer-name.json  on-event   FAIL\n"
        );
    }

    #[test]
    fn short_rows_leave_no_trailing_spaces_and_wide_characters_count_once() {
        let mut table = Table::new(&["A", "B"]);
        table.row(vec!["µs…".into()]);
        table.row(vec!["x".into(), "y".into()]);
        assert_eq!(table.render(), "A    B\nµs…\nx    y\n");
    }

    #[test]
    fn helpers_format_numbers_versions_and_long_text() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(short_version("0123456789abcdef"), "0123456789ab");
        assert_eq!(short_version("abc"), "abc");
        assert_eq!(truncate("hello world", 6), "hello…");
        assert_eq!(truncate("hello", 6), "hello");
    }
}
