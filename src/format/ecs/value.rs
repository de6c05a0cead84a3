//! Value: one value of an ECS document, as [`super::Fields`] writes it.

use std::borrow::Cow;

/// One value of an ECS document.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Text(Cow<'a, str>),
    /// Text that needs no JSON escape (a record's string that had none), copied as it is.
    Clean(&'a str),
    Integer(i64),
    Bool(bool),
    /// A list of text (written even when it holds one item, as ECS arrays are).
    List(Cow<'a, [Cow<'a, str>]>),
    /// A list of constant names that need no escape.
    Names(&'static [&'static str]),
    /// JSON bytes written as they are (a record's own object or array).
    Json(Cow<'a, [u8]>),
    /// JSON bytes written as a JSON string of their text.
    JsonText(Cow<'a, [u8]>),
    /// Members (`"k":v,...`) written into the object that holds the path, whose own last
    /// step is not written: enrichment answers that bring several keys at once.
    Members(Cow<'a, [u8]>),
}

impl<'a> Value<'a> {
    /// Text read from a record ([`super::text`]): borrowed, it held no escape and is
    /// written as it is; decoded, it is escaped again when written.
    pub fn read(text: Cow<'a, str>) -> Self {
        match text {
            Cow::Borrowed(text) => Value::Clean(text),
            owned => Value::Text(owned),
        }
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(text: &'a str) -> Self {
        Value::Text(Cow::Borrowed(text))
    }
}

impl From<String> for Value<'_> {
    fn from(text: String) -> Self {
        Value::Text(Cow::Owned(text))
    }
}

impl<'a> From<Cow<'a, str>> for Value<'a> {
    fn from(text: Cow<'a, str>) -> Self {
        Value::Text(text)
    }
}
