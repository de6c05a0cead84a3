//! CEF: one ArcSight Common Event Format line -> its header fields and extension pairs.
//!
//! `[prefix ]CEF:Version|Device Vendor|Device Product|Device Version|Signature ID|Name|Severity|Extension`
//!
//! - An optional prefix before `CEF:` (a syslog header; Konnect writes `<RFC 3339 time> konghq.com`)
//!   is kept as it is.
//! - Header fields are separated by `|`; inside them `\|` is a pipe and `\\` a backslash.
//! - The extension is `key=value` pairs separated by spaces. Values may hold spaces: a value
//!   runs until the space before the next `key=`. Inside values `\=` is `=`, `\\` is `\`, and
//!   `\n`/`\r` are line breaks; an `=` that is not escaped starts a new pair only when it
//!   follows a key (letters, digits, `_`, `.`, `-`, `[`, `]`) that follows a space.
//!
//! Failure policy: a line without `CEF:` and seven header fields is a [`CefError`]; anything
//! the extension holds is taken as it comes (text that precedes the first key is refused too).

/// The parts of one CEF line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cef {
    /// What precedes `CEF:`, trimmed; empty when nothing does.
    pub prefix: String,
    pub version: String,
    pub device_vendor: String,
    pub device_product: String,
    pub device_version: String,
    pub signature_id: String,
    pub name: String,
    pub severity: String,
    /// In line order; a repeated key keeps every occurrence.
    pub extension: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CefError {
    #[error("no \"CEF:\" in the line")]
    NotCef,
    #[error("a CEF header has 7 fields separated by '|', this one {0}")]
    Header(usize),
    #[error("the CEF extension does not start with key=value: {0:?}")]
    Extension(String),
}

/// Splits the header at unescaped pipes: the seven fields and the rest (the extension).
fn header(after: &str) -> Result<(Vec<String>, &str), CefError> {
    let mut fields = Vec::with_capacity(7);
    let mut field = String::new();
    let mut chars = after.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, escaped @ ('|' | '\\'))) => field.push(escaped),
                Some((_, other)) => {
                    field.push('\\');
                    field.push(other);
                }
                None => field.push('\\'),
            },
            '|' => {
                fields.push(std::mem::take(&mut field));
                if fields.len() == 7 {
                    return Ok((fields, &after[at + 1..]));
                }
            }
            c => field.push(c),
        }
    }
    Err(CefError::Header(
        fields.len() + usize::from(!field.is_empty()),
    ))
}

fn is_key_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'[' | b']')
}

/// Where each pair starts (the key's first byte) and where its `=` is.
fn pair_starts(ext: &[u8]) -> Vec<(usize, usize)> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i < ext.len() {
        match ext[i] {
            b'\\' => i += 2,
            b'=' => {
                let mut k = i;
                while k > 0 && is_key_char(ext[k - 1]) {
                    k -= 1;
                }
                if k < i && (k == 0 || ext[k - 1] == b' ') {
                    starts.push((k, i));
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    starts
}

fn unescape_value(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('=') => out.push('='),
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Parses one line (without its line break).
pub fn parse(line: &str) -> Result<Cef, CefError> {
    let at = line.find("CEF:").ok_or(CefError::NotCef)?;
    let (fields, ext) = header(&line[at + 4..])?;
    let [version, device_vendor, device_product, device_version, signature_id, name, severity]: [String; 7] =
        fields.try_into().map_err(|f: Vec<String>| CefError::Header(f.len()))?;
    let ext = ext.trim_end_matches(['\r', '\n']);
    let bytes = ext.as_bytes();
    let starts = pair_starts(bytes);
    let first = starts.first().map_or(ext.len(), |&(k, _)| k);
    if !ext[..first].trim().is_empty() {
        return Err(CefError::Extension(ext[..first.min(60)].to_string()));
    }
    let extension = starts
        .iter()
        .enumerate()
        .map(|(n, &(key, eq))| {
            let end = starts.get(n + 1).map_or(ext.len(), |&(next, _)| next);
            let value = ext[eq + 1..end]
                .strip_suffix(' ')
                .unwrap_or(&ext[eq + 1..end]);
            (ext[key..eq].to_string(), unescape_value(value))
        })
        .collect();
    Ok(Cef {
        prefix: line[..at].trim().to_string(),
        version: version.trim().to_string(),
        device_vendor,
        device_product,
        device_version,
        signature_id,
        name,
        severity,
        extension,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(cef: &Cef) -> Vec<(&str, &str)> {
        cef.extension
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn header_prefix_and_values_with_spaces() {
        let cef = parse("2026-03-10T14:05:11Z konghq.com CEF:0|KongInc|Konnect|1.0|AUTHENTICATION_TYPE_BASIC|AUTHENTICATION_OUTCOME_SUCCESS|0|rt=1773151511204 src=203.0.113.47 user_agent=Mozilla/5.0 (X11; Linux x86_64) Firefox/135.0 sig=abc").unwrap();
        assert_eq!(cef.prefix, "2026-03-10T14:05:11Z konghq.com");
        assert_eq!(cef.version, "0");
        assert_eq!(cef.device_vendor, "KongInc");
        assert_eq!(cef.device_product, "Konnect");
        assert_eq!(cef.device_version, "1.0");
        assert_eq!(cef.signature_id, "AUTHENTICATION_TYPE_BASIC");
        assert_eq!(cef.name, "AUTHENTICATION_OUTCOME_SUCCESS");
        assert_eq!(cef.severity, "0");
        assert_eq!(
            pairs(&cef),
            [
                ("rt", "1773151511204"),
                ("src", "203.0.113.47"),
                (
                    "user_agent",
                    "Mozilla/5.0 (X11; Linux x86_64) Firefox/135.0"
                ),
                ("sig", "abc"),
            ]
        );
    }

    #[test]
    fn escapes_in_header_and_extension() {
        let cef = parse(r#"CEF:0|Ven\|dor|Pro\\duct|1|id|a name|5|msg=a\=b c\\d query={"f":"x\=5"} empty= last=one two"#).unwrap();
        assert_eq!(cef.prefix, "");
        assert_eq!(cef.device_vendor, "Ven|dor");
        assert_eq!(cef.device_product, r"Pro\duct");
        assert_eq!(
            pairs(&cef),
            [
                ("msg", r"a=b c\d"),
                ("query", r#"{"f":"x=5"}"#),
                ("empty", ""),
                ("last", "one two"),
            ]
        );
        let lines = parse(r"CEF:0|V|P|1|id|n|1|msg=line\nbreak").unwrap();
        assert_eq!(pairs(&lines), [("msg", "line\nbreak")]);
    }

    #[test]
    fn an_empty_extension_and_broken_lines() {
        let cef = parse("CEF:1|V|P|1|id|n|3|").unwrap();
        assert!(cef.extension.is_empty());
        assert_eq!(parse("plain text"), Err(CefError::NotCef));
        assert!(matches!(parse("CEF:0|V|P|1"), Err(CefError::Header(_))));
        assert!(matches!(
            parse("CEF:0|V|P|1|id|n|3|no pairs here"),
            Err(CefError::Extension(_))
        ));
    }
}
