//! Pattern: one Sigma string value -> a compiled test of a string.
//!
//! Sigma string values are case-insensitive (unless `cased`) and hold the wildcards `*` (any
//! run of characters) and `?` (one character); `\` escapes `*`, `?` and itself, and is a plain
//! backslash before anything else. A value is first read into [`Piece`]s, the transformation
//! modifiers work on those (`contains` adds a `*` at each end, `windash` turns dashes into
//! the class of five dash characters, `base64` replaces the text), and [`Pattern::compile`]
//! then picks the cheapest test that means the same: equality, prefix, suffix, substring, or
//! (for a wildcard inside the value) an anchored regular expression.

use regex::Regex;

/// One element of a Sigma string value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    /// `*`
    Any,
    /// `?`
    One,
    /// A `-`, `/`, en dash, em dash or horizontal bar of a `windash` value: any of the five.
    Dash,
}

/// The characters `windash` makes interchangeable.
pub const DASHES: [char; 5] = ['-', '/', '\u{2013}', '\u{2014}', '\u{2015}'];

/// A Sigma string value, read with its wildcards and escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigmaString(pub Vec<Piece>);

impl SigmaString {
    /// Reads `text` as Sigma writes it (wildcards active, `\` escaping).
    pub fn parse(text: &str) -> Self {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.peek() {
                    Some(&next @ ('*' | '?' | '\\')) => {
                        literal.push(next);
                        chars.next();
                    }
                    _ => literal.push('\\'),
                },
                '*' | '?' => {
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(if c == '*' { Piece::Any } else { Piece::One });
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        SigmaString(pieces)
    }

    /// A value taken as it is (no wildcards): a number's text, an encoded value.
    pub fn plain(text: impl Into<String>) -> Self {
        let text = text.into();
        if text.is_empty() {
            SigmaString(Vec::new())
        } else {
            SigmaString(vec![Piece::Text(text)])
        }
    }

    /// The value's text when it holds no wildcard.
    pub fn as_plain(&self) -> Option<String> {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => out.push_str(text),
                _ => return None,
            }
        }
        Some(out)
    }

    pub fn starts_with_any(&self) -> bool {
        matches!(self.0.first(), Some(Piece::Any))
    }

    pub fn ends_with_any(&self) -> bool {
        matches!(self.0.last(), Some(Piece::Any))
    }

    /// `contains`, `startswith` and `endswith`: a `*` where there is none yet.
    pub fn wrap(mut self, before: bool, after: bool) -> Self {
        if before && !self.starts_with_any() {
            self.0.insert(0, Piece::Any);
        }
        if after && !self.ends_with_any() {
            self.0.push(Piece::Any);
        }
        self
    }

    /// `windash`: every dash character of the text matches any of [`DASHES`].
    pub fn windash(self) -> Self {
        let mut pieces = Vec::new();
        for piece in self.0 {
            let Piece::Text(text) = piece else {
                pieces.push(piece);
                continue;
            };
            let mut literal = String::new();
            for c in text.chars() {
                if DASHES.contains(&c) {
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Dash);
                } else {
                    literal.push(c);
                }
            }
            if !literal.is_empty() {
                pieces.push(Piece::Text(literal));
            }
        }
        SigmaString(pieces)
    }
}

/// A compiled test of one string.
#[derive(Debug, Clone)]
pub enum Pattern {
    Equals(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    /// `*`: any string at all.
    Anything,
    /// Wildcards inside the value, or `windash`.
    Glob(Regex),
}

/// A compiled test of one string, with its case rule.
#[derive(Debug, Clone)]
pub struct StringTest {
    pattern: Pattern,
    /// `cased`: compare as written; otherwise both sides are lowercased.
    cased: bool,
}

impl StringTest {
    pub fn compile(value: &SigmaString, cased: bool) -> Result<StringTest, regex::Error> {
        let fold = |s: &str| {
            if cased {
                s.to_string()
            } else {
                s.to_lowercase()
            }
        };
        let mut inner: &[Piece] = &value.0;
        let before = matches!(inner.first(), Some(Piece::Any));
        if before {
            inner = &inner[1..];
        }
        let after = matches!(inner.last(), Some(Piece::Any));
        if after {
            inner = &inner[..inner.len() - 1];
        }
        let pattern = match inner {
            [] if value.0.is_empty() => Pattern::Equals(String::new()),
            [] => Pattern::Anything,
            [Piece::Text(text)] => {
                let text = fold(text);
                match (before, after) {
                    (false, false) => Pattern::Equals(text),
                    (false, true) => Pattern::Prefix(text),
                    (true, false) => Pattern::Suffix(text),
                    (true, true) => Pattern::Contains(text),
                }
            }
            _ => Pattern::Glob(glob_regex(&value.0, cased)?),
        };
        Ok(StringTest { pattern, cased })
    }

    /// The lowercased text this test is equality with, if it is one (and not `cased`-only
    /// in a way lowercasing would lose: a `cased` equality still implies equal lowercase).
    pub fn equality(&self) -> Option<String> {
        match &self.pattern {
            Pattern::Equals(text) => Some(text.to_lowercase()),
            _ => None,
        }
    }

    pub fn matches(&self, value: &str) -> bool {
        if let Pattern::Anything = self.pattern {
            return true;
        }
        if let Pattern::Glob(regex) = &self.pattern {
            return regex.is_match(value);
        }
        let folded;
        let value = if self.cased {
            value
        } else if value.is_ascii() {
            if !value.bytes().any(|b| b.is_ascii_uppercase()) {
                value
            } else {
                folded = value.to_ascii_lowercase();
                &folded
            }
        } else {
            folded = value.to_lowercase();
            &folded
        };
        match &self.pattern {
            Pattern::Equals(text) => value == text,
            Pattern::Prefix(text) => value.starts_with(text.as_str()),
            Pattern::Suffix(text) => value.ends_with(text.as_str()),
            Pattern::Contains(text) => {
                memchr::memmem::find(value.as_bytes(), text.as_bytes()).is_some()
            }
            Pattern::Anything | Pattern::Glob(_) => unreachable!("handled above"),
        }
    }
}

/// `^...$` over the whole value, `.` matching newlines too.
fn glob_regex(pieces: &[Piece], cased: bool) -> Result<Regex, regex::Error> {
    let mut source = String::from(if cased { "(?s)^" } else { "(?si)^" });
    for piece in pieces {
        match piece {
            Piece::Text(text) => source.push_str(&regex::escape(text)),
            Piece::Any => source.push_str(".*"),
            Piece::One => source.push('.'),
            Piece::Dash => source.push_str("[-/\u{2013}\u{2014}\u{2015}]"),
        }
    }
    source.push('$');
    Regex::new(&source)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test(value: &str, cased: bool) -> StringTest {
        StringTest::compile(&SigmaString::parse(value), cased).unwrap()
    }

    #[test]
    fn escapes_follow_the_specification() {
        // The specification's table: a plain backslash, escaped wildcards, and runs of them.
        let cases: [(&str, Vec<Piece>); 7] = [
            (r"C:\Windows", vec![Piece::Text(r"C:\Windows".into())]),
            (r"C:\\Windows", vec![Piece::Text(r"C:\Windows".into())]),
            (r"a\*b", vec![Piece::Text("a*b".into())]),
            (r"a\?", vec![Piece::Text("a?".into())]),
            (r"a\\*", vec![Piece::Text(r"a\".into()), Piece::Any]),
            (r"a\\\*", vec![Piece::Text(r"a\*".into())]),
            (r"a\\\\b", vec![Piece::Text(r"a\\b".into())]),
        ];
        for (written, pieces) in cases {
            assert_eq!(SigmaString::parse(written).0, pieces, "{written}");
        }
        assert_eq!(
            SigmaString::parse(r"a\\\b").0,
            vec![Piece::Text(r"a\\b".into())],
            "three backslashes are a double backslash"
        );
    }

    #[test]
    fn plain_values_are_case_insensitive_unless_cased() {
        let t = test("StopLogging", false);
        assert!(t.matches("stoplogging") && t.matches("STOPLOGGING") && t.matches("StopLogging"));
        assert!(!t.matches("StopLoggingX") && !t.matches("Stop"));
        let t = test("StopLogging", true);
        assert!(t.matches("StopLogging") && !t.matches("stoplogging"));
        assert!(test("Ärger", false).matches("äRGER"), "beyond ASCII too");
    }

    #[test]
    fn wildcards_anchor_the_whole_value() {
        let cases = [
            ("prog?.exe", "progA.exe", true),
            ("prog?.exe", "progAB.exe", false),
            ("antivirus_V*.exe", "antivirus_V21.2.1.exe", true),
            ("adm*", "Administrator", true),
            ("*cmd.exe", r"C:\Windows\CMD.EXE", true),
            ("*evil*", "an EVIL thing", true),
            ("*", "", true),
            ("", "", true),
            ("", "x", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("a\\*b", "a*b", true),
            ("a\\*b", "aXb", false),
            ("line*end", "line\nend", true),
        ];
        for (pattern, value, expected) in cases {
            assert_eq!(
                test(pattern, false).matches(value),
                expected,
                "{pattern} ~ {value:?}"
            );
        }
    }

    #[test]
    fn wrapping_does_not_double_wildcards() {
        let s = SigmaString::parse("*x").wrap(true, true);
        assert_eq!(s.0, vec![Piece::Any, Piece::Text("x".into()), Piece::Any]);
    }

    #[test]
    fn windash_makes_the_five_dashes_interchangeable() {
        let t = StringTest::compile(
            &SigmaString::parse(" -exec ").windash().wrap(true, true),
            false,
        )
        .unwrap();
        for dash in DASHES {
            assert!(t.matches(&format!("tool {dash}exec bypass")), "{dash}");
        }
        assert!(!t.matches("tool exec"));
    }

    #[test]
    fn only_plain_equality_is_an_index_key() {
        assert_eq!(
            test("DeleteTrail", false).equality().as_deref(),
            Some("deletetrail")
        );
        assert_eq!(
            test("DeleteTrail", true).equality().as_deref(),
            Some("deletetrail")
        );
        assert_eq!(test("Delete*", false).equality(), None);
        assert_eq!(test("?", false).equality(), None);
    }
}
