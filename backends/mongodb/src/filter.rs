//! Filters that match a login id exactly, whatever the collection's default collation.

use mongodb::bson::{doc, Document};

use crate::MongoStore;

impl MongoStore {
    pub(crate) fn login_filter(&self, login_id: &str) -> Document {
        doc! { self.mapping.login_id.as_str(): { "$eq": login_id, "$regex": exact_pattern(login_id) } }
    }
}

/// `^…\z` around the login id with every ASCII punctuation and space character escaped, so that
/// the regex matches exactly that string (PCRE: a backslash before a non-alphanumeric character
/// makes it literal).
fn exact_pattern(login_id: &str) -> String {
    let mut pattern = String::with_capacity(login_id.len() * 2 + 3);
    pattern.push('^');
    for ch in login_id.chars() {
        if ch.is_ascii() && !ch.is_ascii_alphanumeric() {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push_str("\\z");
    pattern
}
