//! Searching the messages of every conversation (libCwtch's `SearchConversations`).
//!
//! What is searched is what a user reads: the text of a message (a reply's text, a file's
//! name, a suggested contact's address, an invite), or the raw body of a message the library
//! does not understand, case-insensitively. Storage is read one conversation at a time, so
//! that other storage work is not held up for the whole search.

use cwtch_storage::{ConversationId, MessageId};

use crate::error::{Error, Result};
use crate::overlay::Content;
use crate::profile::ProfileHandle;

/// At most this many matches are returned per conversation (the newest ones).
pub const SEARCH_MAX_PER_CONVERSATION: usize = 500;

/// Messages read from storage at a time while searching.
const PAGE: u32 = 512;

/// A message that matches a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchHit {
    /// The conversation (a contact or a group).
    pub conversation_id: ConversationId,
    /// The message.
    pub message_id: MessageId,
    /// Its position in the conversation, newest first (0 = the newest): the `offset` at
    /// which [`ProfileHandle::messages`] lists it first.
    pub row_index: u64,
}

/// Whether a message body matches `needle` (already lower case).
fn matches(body: &str, needle: &str) -> bool {
    let content = Content::parse(body);
    content
        .display_text()
        .unwrap_or(body)
        .to_lowercase()
        .contains(needle)
}

impl ProfileHandle {
    /// The messages of every contact and group conversation whose text contains `pattern`
    /// (case-insensitively), newest first within each conversation, conversations in id
    /// order; at most [`SEARCH_MAX_PER_CONVERSATION`] per conversation. An empty pattern is
    /// refused.
    pub async fn search_messages(&self, pattern: &str) -> Result<Vec<SearchHit>> {
        let needle = pattern.to_lowercase();
        if needle.trim().is_empty() {
            return Err(Error::Invalid {
                what: "search pattern (empty)",
            });
        }
        let mut conversations: Vec<ConversationId> = {
            let st = self.rt.state();
            st.by_conversation
                .keys()
                .chain(st.groups.groups.keys())
                .copied()
                .collect()
        };
        conversations.sort();
        conversations.dedup();
        let mut hits = Vec::new();
        for conv in conversations {
            let needle = needle.clone();
            let found = self
                .rt
                .store
                .call(move |s| {
                    let mut out = Vec::new();
                    let mut offset = 0u64;
                    loop {
                        let page = s.messages(conv, offset, PAGE)?;
                        let len = page.len();
                        for (i, m) in page.into_iter().enumerate() {
                            if matches(&m.body, &needle) {
                                out.push(SearchHit {
                                    conversation_id: conv,
                                    message_id: m.id,
                                    row_index: offset + i as u64,
                                });
                                if out.len() >= SEARCH_MAX_PER_CONVERSATION {
                                    return Ok(out);
                                }
                            }
                        }
                        if len < PAGE as usize {
                            return Ok(out);
                        }
                        offset += len as u64;
                    }
                })
                .await?;
            hits.extend(found);
        }
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_is_on_the_text_and_case_insensitive() {
        assert!(matches(r#"{"o":1,"d":"Hello World"}"#, "world"));
        assert!(!matches(r#"{"o":1,"d":"Hello World"}"#, "\"d\""));
        assert!(matches("not an overlay at all", "overlay"));
        assert!(!matches(r#"{"o":1,"d":"abc"}"#, "xyz"));
    }
}
