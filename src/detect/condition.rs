//! Condition: a rule's `condition` text -> an expression over its search identifiers.
//!
//! The grammar of the Sigma specification ("Condition"), from least to most binding: `or`,
//! `and`, `not`, `x of <pattern>` (`1 of`, `any of`, `all of`, or a count; the pattern is a
//! search identifier with `*` wildcards, or `them`: every identifier not starting with `_`),
//! and parentheses. Keywords are case-insensitive. A list of conditions means any of them.
//! The aggregations of Sigma 1 (`| count() > 5`) are refused: they are correlation rules now.

/// A parsed condition; `Search(n)` is the n-th search identifier of the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Search(usize),
    Not(Box<Condition>),
    And(Vec<Condition>),
    Or(Vec<Condition>),
    /// At least `n` of these searches.
    AtLeast(usize, Vec<usize>),
    /// Every one of these searches.
    All(Vec<usize>),
}

impl Condition {
    /// Evaluates with `search(n)` telling whether search `n` matched.
    pub fn eval(&self, search: &mut dyn FnMut(usize) -> bool) -> bool {
        match self {
            Condition::Search(n) => search(*n),
            Condition::Not(inner) => !inner.eval(search),
            Condition::And(items) => items.iter().all(|c| c.eval(search)),
            Condition::Or(items) => items.iter().any(|c| c.eval(search)),
            Condition::AtLeast(n, ids) => {
                ids.iter().filter(|id| search(**id)).take(*n).count() >= *n
            }
            Condition::All(ids) => ids.iter().all(|id| search(*id)),
        }
    }

    /// Parses `text` against the rule's search identifiers (in their order).
    pub fn parse(text: &str, names: &[String]) -> Result<Condition, String> {
        if text.contains('|') {
            return Err(format!(
                "the condition `{text}` aggregates (`|`), which Sigma now writes as a correlation rule; not supported"
            ));
        }
        let tokens = tokenize(text)?;
        let mut parser = Parser {
            tokens,
            at: 0,
            names,
        };
        let condition = parser.or()?;
        match parser.tokens.get(parser.at) {
            None => Ok(condition),
            Some(token) => Err(format!(
                "unexpected `{}` in the condition `{text}`",
                token.text()
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    Word(String),
}

impl Token {
    fn text(&self) -> &str {
        match self {
            Token::Open => "(",
            Token::Close => ")",
            Token::Word(word) => word,
        }
    }

    fn is(&self, keyword: &str) -> bool {
        matches!(self, Token::Word(word) if word.eq_ignore_ascii_case(keyword))
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        match c {
            '(' | ')' => {
                if !word.is_empty() {
                    tokens.push(Token::Word(std::mem::take(&mut word)));
                }
                tokens.push(if c == '(' { Token::Open } else { Token::Close });
            }
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    tokens.push(Token::Word(std::mem::take(&mut word)));
                }
            }
            c if c.is_alphanumeric() || matches!(c, '_' | '*' | '-' | '.') => word.push(c),
            other => return Err(format!("the condition `{text}` holds `{other}`")),
        }
    }
    if !word.is_empty() {
        tokens.push(Token::Word(word));
    }
    if tokens.is_empty() {
        return Err("the condition is empty".to_string());
    }
    Ok(tokens)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    at: usize,
    names: &'a [String],
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn or(&mut self) -> Result<Condition, String> {
        let mut items = vec![self.and()?];
        while self.peek().is_some_and(|t| t.is("or")) {
            self.at += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Condition::Or(items)
        })
    }

    fn and(&mut self) -> Result<Condition, String> {
        let mut items = vec![self.not()?];
        while self.peek().is_some_and(|t| t.is("and")) {
            self.at += 1;
            items.push(self.not()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Condition::And(items)
        })
    }

    fn not(&mut self) -> Result<Condition, String> {
        if self.peek().is_some_and(|t| t.is("not")) {
            self.at += 1;
            return Ok(Condition::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Condition, String> {
        match self.next() {
            None => Err("the condition ends too early".to_string()),
            Some(Token::Open) => {
                let inner = self.or()?;
                match self.next() {
                    Some(Token::Close) => Ok(inner),
                    _ => Err("a `(` is not closed".to_string()),
                }
            }
            Some(Token::Close) => Err("unexpected `)`".to_string()),
            Some(Token::Word(word)) if self.peek().is_some_and(|t| t.is("of")) => {
                self.at += 1;
                let Some(Token::Word(pattern)) = self.next() else {
                    return Err(format!(
                        "`{word} of` needs a search identifier pattern or `them`"
                    ));
                };
                let ids = self.matching(&pattern)?;
                if word.eq_ignore_ascii_case("all") {
                    Ok(Condition::All(ids))
                } else if word.eq_ignore_ascii_case("any") {
                    Ok(Condition::AtLeast(1, ids))
                } else {
                    match word.parse::<usize>() {
                        Ok(n) if n >= 1 => Ok(Condition::AtLeast(n, ids)),
                        _ => Err(format!("`{word} of`: expected 1, any, all or a count")),
                    }
                }
            }
            Some(Token::Word(word)) => {
                if ["and", "or", "not", "of"]
                    .iter()
                    .any(|k| word.eq_ignore_ascii_case(k))
                {
                    return Err(format!("unexpected `{word}`"));
                }
                self.names
                    .iter()
                    .position(|name| *name == word)
                    .map(Condition::Search)
                    .ok_or_else(|| {
                        format!("the condition names `{word}`, which the detection does not define")
                    })
            }
        }
    }

    /// The searches a `x of` pattern names.
    fn matching(&self, pattern: &str) -> Result<Vec<usize>, String> {
        let ids: Vec<usize> = if pattern.eq_ignore_ascii_case("them") {
            (0..self.names.len())
                .filter(|n| !self.names[*n].starts_with('_'))
                .collect()
        } else {
            (0..self.names.len())
                .filter(|n| wildcard(pattern, &self.names[*n]))
                .collect()
        };
        if ids.is_empty() {
            return Err(format!("`of {pattern}` names no search identifier"));
        }
        Ok(ids)
    }
}

/// `*`-only wildcard match of a search identifier pattern.
fn wildcard(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// Evaluates `condition` with the searches named in `true_ids` matching.
    fn holds(condition: &str, defined: &[&str], matching: &[&str]) -> bool {
        let defined = names(defined);
        let parsed = Condition::parse(condition, &defined).unwrap();
        parsed.eval(&mut |n| matching.contains(&defined[n].as_str()))
    }

    #[test]
    fn precedence_is_or_and_not_of_parentheses() {
        let ids = ["a", "b", "c"];
        // a or b and c == a or (b and c)
        assert!(holds("a or b and c", &ids, &["a"]));
        assert!(!holds("a or b and c", &ids, &["b"]));
        assert!(!holds("(a or b) and c", &ids, &["a"]));
        assert!(holds("(a or b) and c", &ids, &["b", "c"]));
        // not binds tighter than and
        assert!(holds("not a and b", &ids, &["b"]));
        assert!(!holds("not (a and b)", &ids, &["a", "b"]));
        assert!(holds("a AND NOT b", &ids, &["a"]), "keywords in any case");
    }

    #[test]
    fn quantifiers_over_patterns_and_them() {
        let ids = ["selection_a", "selection_b", "filter", "_hidden"];
        assert!(holds("1 of selection_*", &ids, &["selection_b"]));
        assert!(holds("any of selection*", &ids, &["selection_a"]));
        assert!(!holds("all of selection_*", &ids, &["selection_a"]));
        assert!(holds(
            "all of selection_* and not filter",
            &ids,
            &["selection_a", "selection_b"]
        ));
        assert!(
            holds(
                "all of them",
                &ids,
                &["selection_a", "selection_b", "filter"]
            ),
            "`them` leaves out _hidden"
        );
        assert!(!holds("1 of them", &ids, &["_hidden"]));
        assert!(holds("2 of them", &ids, &["selection_a", "filter"]));
        assert!(!holds("2 of them", &ids, &["filter"]));
        assert!(holds(
            "1 of selection_* and not 1 of filter*",
            &ids,
            &["selection_a"]
        ));
        assert!(holds("1 of *_b", &ids, &["selection_b"]));
    }

    #[test]
    fn bad_conditions_say_why() {
        let ids = names(&["selection", "filter"]);
        for (text, reason) in [
            ("selection and", "ends too early"),
            ("selection and missing", "does not define"),
            ("(selection", "not closed"),
            ("selection | count() > 5", "correlation"),
            ("1 of nothing*", "names no search identifier"),
            ("selection filter", "unexpected `filter`"),
            ("", "empty"),
            ("x of selection", "expected 1, any, all or a count"),
        ] {
            let err = Condition::parse(text, &ids).unwrap_err();
            assert!(err.contains(reason), "{text}: {err}");
        }
    }
}
