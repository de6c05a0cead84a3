//! Strings: the texts of one document as a compiled mapping holds them, with no drop.
//!
//! A mapping gathers a few dozen texts per document before it writes any. Most are slices of
//! the record (strings with no escape, written as they are); a few are decoded (a string with
//! an escape) or made (a part of one, a lower-case form), and must be escaped when written.
//! Held as `Cow`s, each would be one more check when the document's values are dropped, for
//! every document. Here a text is a [`Str`]: a slice and whether it needs escaping, `Copy`.
//! The decoded or made ones live in the document's [`Strings`], dropped once with it.
//!
//! Pure: no I/O.

use std::borrow::Cow;
use std::cell::RefCell;
use std::ops::Deref;

/// A text of a document: a slice of the record, or of a text its [`Strings`] holds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Str<'a> {
    text: &'a str,
    /// Whether it was decoded or made, so must be escaped when written. One that is not is a
    /// record's JSON string with no escape (or a number or `true` as written): it is written
    /// as it is.
    escape: bool,
}

impl<'a> Str<'a> {
    /// A text that needs no escape: a slice of the record's JSON with none.
    pub const fn plain(text: &'a str) -> Self {
        Str {
            text,
            escape: false,
        }
    }

    pub fn as_str(&self) -> &'a str {
        self.text
    }

    /// Whether it must be escaped when written.
    pub fn needs_escape(&self) -> bool {
        self.escape
    }

    /// The part `range` of this text, which needs an escape where this one does.
    pub fn part(&self, range: impl std::slice::SliceIndex<str, Output = str>) -> Str<'a> {
        Str {
            text: &self.text[range],
            escape: self.escape,
        }
    }
}

impl Deref for Str<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        self.text
    }
}

/// Texts are equal when they read the same, however they came.
impl PartialEq for Str<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl PartialEq<&str> for Str<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

/// The texts one document decoded or made, held until it is written. Empty (no allocation)
/// for a document that has none, as most have.
#[derive(Debug, Default)]
pub struct Strings(RefCell<Vec<String>>);

impl Strings {
    pub fn new() -> Self {
        Strings::default()
    }

    /// `text` as a [`Str`]: borrowed, as it is (it needs no escape); owned, held here (it
    /// needs one).
    #[inline(always)]
    pub fn keep<'a>(&'a self, text: Cow<'a, str>) -> Str<'a> {
        match text {
            Cow::Borrowed(text) => Str::plain(text),
            Cow::Owned(text) => Str {
                text: self.hold(text),
                escape: true,
            },
        }
    }

    /// [`Strings::keep`] of a text, when there is one.
    pub fn text<'a>(&'a self, text: Option<Cow<'a, str>>) -> Option<Str<'a>> {
        text.map(|text| self.keep(text))
    }

    /// `text`, held until this is dropped. Out of line: few texts need it.
    #[cold]
    #[inline(never)]
    fn hold(&self, text: String) -> &str {
        let mut held = self.0.borrow_mut();
        held.push(text);
        let text: *const str = held.last().expect("a text just held").as_str();
        // SAFETY: a `String`'s text is in an allocation of its own, which stays where it is
        // while the vector moves the `String` itself, and which is freed only when `self` is
        // dropped: texts are only ever added, never changed or taken out. So it lives as long
        // as the borrow of `self` the result is tied to.
        unsafe { &*text }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_held_outlive_the_holding_of_others() {
        let strings = Strings::new();
        let plain = strings.keep(Cow::Borrowed("as written"));
        assert!(!plain.needs_escape());
        let held: Vec<Str<'_>> = (0..100)
            .map(|n| strings.keep(Cow::Owned(format!("made \"{n}\""))))
            .collect();
        for (n, text) in held.iter().enumerate() {
            assert_eq!(text.as_str(), format!("made \"{n}\""));
            assert!(text.needs_escape());
        }
        let part = held[7].part(6..7);
        assert_eq!((part.as_str(), part.needs_escape()), ("7", true));
        assert_eq!(plain.part(3..), "written");
        assert_eq!(strings.text(None), None);
        assert_eq!(
            strings.keep(Cow::Owned(String::new())),
            Str::plain(""),
            "equal by what they read"
        );
    }
}
