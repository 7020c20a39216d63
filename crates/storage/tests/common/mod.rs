//! Helpers shared by the storage test suites.

use dynakv_versioning::Object;

/// The object's live values as text, sorted.
pub fn live(o: &Object) -> Vec<String> {
    let mut v: Vec<String> = o
        .live()
        .iter()
        .map(|v| String::from_utf8_lossy(v.data.as_deref().unwrap_or_default()).into_owned())
        .collect();
    v.sort();
    v
}
