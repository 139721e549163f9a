//! print.c's format engine: a format string of literal text and `%x` wildcards; each
//! wildcard's value is left-aligned and padded to its column's width (the widest value
//! in the column, and its header name when a header line is printed:
//! `get_path_layout`, `get_multipath_layout`). An unknown wildcard prints nothing, as
//! print.c skips it. hydra trims the padding at the end of a line, which print.c
//! leaves (invisible, and awkward in scripts and goldens).

/// One piece of a format string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Field(char),
}

fn pieces(format: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = format;
    while let Some(i) = rest.find('%') {
        if i > 0 {
            out.push(Piece::Text(&rest[..i]));
        }
        let mut chars = rest[i + 1..].chars();
        match chars.next() {
            Some(c) => {
                out.push(Piece::Field(c));
                rest = chars.as_str();
            }
            None => {
                rest = "";
            }
        }
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    out
}

/// A table of wildcards over rows of `T`: `value` gives a wildcard's text for a row
/// (None: not a wildcard of this table), `header` its column name.
pub(crate) struct Table<'f, T> {
    pub format: &'f str,
    pub value: fn(char, &T) -> Option<String>,
    pub header: fn(char) -> Option<&'static str>,
}

impl<T> Table<'_, T> {
    /// Column widths over `rows` (and the header names when `with_header`).
    pub fn widths(&self, rows: &[&T], with_header: bool) -> Vec<(char, usize)> {
        let mut widths: Vec<(char, usize)> = Vec::new();
        for p in pieces(self.format) {
            let Piece::Field(c) = p else { continue };
            let Some(name) = (self.header)(c) else {
                continue;
            };
            let mut w = if with_header { name.chars().count() } else { 0 };
            for r in rows {
                if let Some(v) = (self.value)(c, r) {
                    w = w.max(v.chars().count());
                }
            }
            widths.push((c, w));
        }
        widths
    }

    /// The header line.
    pub fn header_line(&self, widths: &[(char, usize)]) -> String {
        self.line(widths, |c| (self.header)(c).map(str::to_string))
    }

    /// One row's line.
    pub fn row_line(&self, widths: &[(char, usize)], row: &T) -> String {
        self.line(widths, |c| (self.value)(c, row))
    }

    fn line(&self, widths: &[(char, usize)], text: impl Fn(char) -> Option<String>) -> String {
        let mut out = String::new();
        for p in pieces(self.format) {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Field(c) => {
                    let Some(v) = text(c) else { continue };
                    let w = widths.iter().find(|(x, _)| *x == c).map_or(0, |(_, w)| *w);
                    out.push_str(&format!("{v:<w$}"));
                }
            }
        }
        let end = out.trim_end_matches(' ').len();
        out.truncate(end);
        out.push('\n');
        out
    }

    /// One unpadded line per row, no header (`raw format`).
    pub fn render_raw(&self, rows: &[&T]) -> String {
        rows.iter().map(|r| self.row_line(&[], r)).collect()
    }

    /// Header (when `with_header`) and one line per row.
    pub fn render(&self, rows: &[&T], with_header: bool) -> String {
        let widths = self.widths(rows, with_header);
        let mut out = String::new();
        if with_header {
            out.push_str(&self.header_line(&widths));
        }
        for r in rows {
            out.push_str(&self.row_line(&widths, r));
        }
        out
    }
}

/// print.c `snprint_size`: bytes as KiB, divided by 1024 while ≥ 1024 up to P, one
/// decimal below 10 (`20G`, `3.7G`, `512M`). print.c rounds a `float`; so does this.
pub fn size(bytes: u64) -> String {
    let mut s = (bytes / 1024) as f32;
    let mut units = ['K', 'M', 'G', 'T', 'P'].iter().peekable();
    let mut u = 'K';
    units.next();
    while s >= 1024.0 {
        let Some(next) = units.next() else { break };
        s /= 1024.0;
        u = *next;
    }
    if s < 10.0 {
        format!("{s:.1}{u}")
    } else {
        format!("{s:.0}{u}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_print_c() {
        assert_eq!(size(20 << 30), "20G");
        assert_eq!(size(10 << 30), "10G");
        assert_eq!(size(100 << 30), "100G");
        assert_eq!(size((37 << 30) / 10), "3.7G");
        assert_eq!(size(5 << 40), "5.0T");
        assert_eq!(size(512 << 20), "512M");
        assert_eq!(size(64 << 20), "64M");
        assert_eq!(size(1 << 20), "1.0M");
        assert_eq!(size(0), "0.0K");
        assert_eq!(size(3 << 50), "3.0P");
        assert_eq!(size(3000 << 50), "3000P");
    }

    #[test]
    fn pieces_and_unknown_wildcards() {
        assert_eq!(
            pieces("a %w b%%"),
            vec![
                Piece::Text("a "),
                Piece::Field('w'),
                Piece::Text(" b"),
                Piece::Field('%')
            ]
        );
        assert_eq!(pieces("%"), vec![]);
        let t: Table<'_, u32> = Table {
            format: "%a|%q|%b",
            value: |c, n| match c {
                'a' => Some(n.to_string()),
                'b' => Some("x".repeat(*n as usize)),
                _ => None,
            },
            header: |c| match c {
                'a' => Some("num"),
                'b' => Some("xs"),
                _ => None,
            },
        };
        assert_eq!(
            t.render(&[&1, &22], true),
            "num||xs\n1  ||x\n22 ||xxxxxxxxxxxxxxxxxxxxxx\n"
        );
        assert_eq!(t.render(&[&3], false), "3||xxx\n");
        assert_eq!(
            t.render_raw(&[&1, &22]),
            "1||x\n22||xxxxxxxxxxxxxxxxxxxxxx\n"
        );
    }
}
