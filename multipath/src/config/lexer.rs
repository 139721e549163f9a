//! One line of multipath.conf into tokens, with multipath-tools' rules
//! (`libmpathutil/parser.c`, `alloc_strvec` and `validate_config_strvec`; its cases are
//! the ones of `tests/parser.c`, mirrored in this file's tests):
//!
//! - outside quotes, whitespace and non-ASCII bytes separate tokens; `#` and `!` start a
//!   comment; `{` and `}` are tokens of their own;
//! - `"` opens and closes a string; inside it everything is literal, `""` is one `"`;
//!   a string does not continue on the next line;
//! - the value is the first token after the keyword (the string if it is quoted); what
//!   follows it is "extra data" that is ignored with a warning.

/// What one line holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Line {
    /// Blank or comment.
    Empty,
    /// A lone `}`.
    Close,
    /// `keyword`, `keyword value` or `section {`.
    Item {
        keyword: String,
        /// None: nothing after the keyword.
        value: Option<String>,
        /// `{` followed the keyword.
        opens: bool,
    },
    /// A line multipath-tools skips (`{` as keyword, a string split oddly).
    Skip,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Quote,
    Open,
    Close,
    Word(String),
}

fn is_space(b: u8) -> bool {
    // isspace() in the C locale, and non-ASCII bytes are skipped like blanks.
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) || !b.is_ascii()
}

fn tokenize(line: &[u8]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut i = 0;
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    while i < line.len() && is_space(line[i]) {
        i += 1;
    }
    if i >= line.len() || line[i] == b'!' || line[i] == b'#' {
        return out;
    }
    let mut in_string = false;
    loop {
        let c = at(i);
        if c == b'"' && !(in_string && at(i + 1) == b'"') {
            out.push(Token::Quote);
            in_string = !in_string;
            i += 1;
        } else if !in_string && (c == b'{' || c == b'}') {
            out.push(if c == b'{' { Token::Open } else { Token::Close });
            i += 1;
        } else {
            let mut word = Vec::new();
            loop {
                let c = at(i);
                let stop = c == 0
                    || c == b'"'
                    || (!in_string && (is_space(c) || matches!(c, b'!' | b'#' | b'{' | b'}')));
                if !stop {
                    word.push(c);
                    i += 1;
                } else if in_string && c == b'"' && at(i + 1) == b'"' {
                    word.push(b'"');
                    i += 2;
                } else {
                    break;
                }
            }
            out.push(Token::Word(String::from_utf8_lossy(&word).into_owned()));
        }
        while !in_string && i < line.len() && is_space(line[i]) {
            i += 1;
        }
        let c = at(i);
        if i >= line.len() || c == 0 || (!in_string && (c == b'!' || c == b'#')) {
            return out;
        }
    }
}

/// Splits one line (without its newline) and reports what multipath-tools warns about
/// through `warn` (the text after "line N of FILE" is added by the caller).
pub(crate) fn split(line: &[u8], mut warn: impl FnMut(String)) -> Line {
    // read_line() cuts at the first '\r' as well as '\n'; a NUL ends a C string.
    let end = line
        .iter()
        .position(|&b| b == b'\r' || b == 0)
        .unwrap_or(line.len());
    let toks = tokenize(&line[..end]);
    let word = |t: Option<&Token>| -> String {
        match t {
            Some(Token::Word(w)) => w.clone(),
            Some(Token::Quote) => "\"".into(),
            Some(Token::Open) => "{".into(),
            Some(Token::Close) => "}".into(),
            None => String::new(),
        }
    };
    let Some(first) = toks.first() else {
        return Line::Empty;
    };
    let item = |keyword, value: Option<&str>, opens| Line::Item {
        keyword,
        value: value.map(str::to_string),
        opens,
    };
    let keyword = match first {
        Token::Close => {
            if toks.len() > 1 {
                warn(format!(
                    "ignoring extra data starting with '{}'",
                    word(toks.get(1))
                ));
            }
            return Line::Close;
        }
        Token::Open => {
            warn("invalid keyword '{'".into());
            return Line::Skip;
        }
        // `"x"` as the first token: multipath-tools takes the quote marker as the keyword.
        Token::Quote => "\"".to_string(),
        Token::Word(w) => w.clone(),
    };
    match toks.get(1) {
        None => item(keyword, None, false),
        Some(Token::Open) => {
            if toks.len() > 2 {
                warn(format!(
                    "ignoring extra data starting with '{}'",
                    word(toks.get(2))
                ));
            }
            item(keyword, None, true)
        }
        Some(Token::Quote) => {
            // keyword " value " [extra]
            match toks.get(2) {
                None => {
                    warn("missing closing quotes".into());
                    item(keyword, Some(""), false)
                }
                Some(Token::Quote) => {
                    if toks.len() > 3 {
                        warn(format!(
                            "ignoring extra data starting with '{}'",
                            word(toks.get(3))
                        ));
                    }
                    item(keyword, Some(""), false)
                }
                Some(t) => {
                    let value = word(Some(t));
                    match toks.get(3) {
                        None => {
                            warn("missing closing quotes".into());
                        }
                        Some(Token::Quote) => {
                            if toks.len() > 4 {
                                warn(format!(
                                    "ignoring extra data starting with '{}'",
                                    word(toks.get(4))
                                ));
                            }
                        }
                        Some(t) => {
                            warn(format!("parsing error starting with '{}'", word(Some(t))));
                            return Line::Skip;
                        }
                    }
                    item(keyword, Some(&value), false)
                }
            }
        }
        Some(t) => {
            let value = word(Some(t));
            if toks.len() > 2 {
                warn(format!(
                    "ignoring extra data starting with '{}'",
                    word(toks.get(2))
                ));
            }
            // `section word` without `{`: multipath-tools still opens the section and
            // says "expecting '{'"; the caller knows which keywords are sections.
            item(keyword, Some(&value), false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(line: &str) -> (String, Option<String>, Vec<String>) {
        let mut w = Vec::new();
        match split(line.as_bytes(), |m| w.push(m)) {
            Line::Item { keyword, value, .. } => (keyword, value, w),
            other => panic!("{line:?} gave {other:?}"),
        }
    }

    fn val(line: &str) -> String {
        item(line).1.expect("a value")
    }

    // The cases of multipath-tools' tests/parser.c (test01..test20), by value.
    #[test]
    fn values_as_multipath_tools_reads_them() {
        assert_eq!(val("keyword value"), "value");
        assert_eq!(val("keyword \"value\""), "value");
        assert_eq!(val("keyword value\n"), "value");
        assert_eq!(val("keyword \t   value   \t \n   "), "value");
        assert_eq!(val("keyword \t   value   \t ! comment  "), "value");
        assert_eq!(val("keyword \t   value   # \n comment  "), "value");
        assert_eq!(val("keyword \t \"  value   more  \""), "  value   more  ");
        assert_eq!(val("keyword \"value # more\""), "value # more");
        assert_eq!(val("keyword \"value ! more\""), "value ! more");
        assert_eq!(val("keyword\"value comment\""), "value comment");
        assert_eq!(val("key\"word\""), "word");
        assert_eq!(val("keyword \"value \"  comment\"\""), "value ");
        assert_eq!(val("keyword \"2.5\"\" SSD\""), "2.5\" SSD");
        assert_eq!(val("keyword \"\"\"\"\" is empty\""), "\"\" is empty");
        assert_eq!(val("keyword \"\"\"\""), "\"");
        assert_eq!(val("keyword \"\""), "");
    }

    #[test]
    fn extra_data_is_a_warning_and_ignored() {
        let (_, v, w) = item("keyword \t   value   more  ");
        assert_eq!(v.as_deref(), Some("value"));
        assert_eq!(w, vec!["ignoring extra data starting with 'more'"]);
        let (_, v, w) = item("keyword value \"quoted\"");
        assert_eq!(v.as_deref(), Some("value"));
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn sections_braces_comments() {
        assert_eq!(split(b"  # c", |_| ()), Line::Empty);
        assert_eq!(split(b"!c", |_| ()), Line::Empty);
        assert_eq!(split(b"   ", |_| ()), Line::Empty);
        assert_eq!(split(b"}", |_| ()), Line::Close);
        assert_eq!(split(b"  }  # end", |_| ()), Line::Close);
        assert_eq!(
            split(b"defaults {", |_| ()),
            Line::Item {
                keyword: "defaults".into(),
                value: None,
                opens: true
            }
        );
        // `{` needs no blank before it.
        assert_eq!(
            split(b"device{", |_| ()),
            Line::Item {
                keyword: "device".into(),
                value: None,
                opens: true
            }
        );
        let mut w = Vec::new();
        assert_eq!(split(b"{", |m| w.push(m)), Line::Skip);
        assert_eq!(w, vec!["invalid keyword '{'"]);
    }

    #[test]
    fn missing_closing_quote_keeps_the_rest_of_the_line() {
        let (_, v, w) = item("alias \"abc def");
        assert_eq!(v.as_deref(), Some("abc def"));
        assert_eq!(w, vec!["missing closing quotes"]);
    }

    #[test]
    fn carriage_return_and_non_ascii() {
        assert_eq!(val("k v\r\nx"), "v");
        assert_eq!(val("k\u{e9}v"), "v");
        assert_eq!(val("k \"\u{e9}\""), "\u{e9}");
        let (k, v, _) = item("k");
        assert_eq!((k.as_str(), v), ("k", None));
    }
}
