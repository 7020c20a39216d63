//! Values as the store keeps them: a key's live siblings and the causal
//! context that covers them.

use bytes::Bytes;
use serde::Deserialize;

/// An opaque causal context (the `X-Causal-Context` token). Pass the one a
/// read returned to a write, and the write supersedes exactly what that read
/// saw; anything written concurrently stays as a sibling.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Context(String);

impl Context {
    /// A context from its token (as printed by `dynakv get`).
    pub fn from_token(token: impl Into<String>) -> Context {
        Context(token.into())
    }

    /// The token, as sent in `X-Causal-Context`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One live version of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sibling {
    /// The value's bytes.
    pub value: Bytes,
    /// The content type it was written with.
    pub content_type: String,
}

impl Sibling {
    /// A value with a content type.
    pub fn new(value: impl Into<Bytes>, content_type: impl Into<String>) -> Sibling {
        Sibling {
            value: value.into(),
            content_type: content_type.into(),
        }
    }
}

/// A key's live versions: one, or several siblings written concurrently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    /// The live versions (at least one).
    pub siblings: Vec<Sibling>,
    /// The context covering all of them.
    pub context: Context,
}

impl Object {
    /// The value when there is exactly one version.
    pub fn value(&self) -> Option<&Sibling> {
        match self.siblings.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }

    /// True if concurrent writes left several versions to resolve.
    pub fn has_siblings(&self) -> bool {
        self.siblings.len() > 1
    }
}

/// The JSON form of a read (`Accept: application/json`).
#[derive(Deserialize)]
pub(crate) struct Wire {
    pub context: String,
    pub siblings: Vec<WireSibling>,
}

#[derive(Deserialize)]
pub(crate) struct WireSibling {
    pub value: String,
    pub content_type: String,
}
