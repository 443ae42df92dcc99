//! Searching the messages of every conversation (libCwtch's `SearchConversations`).
//!
//! What is searched is what a user reads: the text of a message (a reply's text, a file's
//! name, a suggested contact's address, an invite), or the raw body of a message the library
//! does not understand, case-insensitively. Storage is read one conversation at a time, so
//! that other storage work is not held up for the whole search.

use cwtch_storage::{ConversationId, Message, MessageId};

use crate::error::{Error, Result};
use crate::overlay::Content;
use crate::profile::ProfileHandle;
use crate::types::MessageInfo;
use torv3::Onion;

/// At most this many matches are returned per conversation (the newest ones).
pub const SEARCH_MAX_PER_CONVERSATION: usize = 500;

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

/// The longest piece of `needle` (already lower case) that every body whose text contains
/// `needle` contains too, ignoring ASCII case, unless its JSON has a `\u` escape: a run of
/// printable ASCII characters that JSON never escapes otherwise (not `"`, `\\` or `/`),
/// without `i` and `k` (which `İ` and the Kelvin sign `K` turn into when lowered, while
/// storage folds only ASCII). `None` when there is no such character: every message is read.
fn prefilter(needle: &str) -> Option<String> {
    let usable = |c: char| (' '..='~').contains(&c) && !matches!(c, '"' | '\\' | '/' | 'i' | 'k');
    needle
        .split(|c: char| !usable(c))
        .max_by_key(|piece| piece.len())
        .filter(|piece| !piece.is_empty())
        .map(str::to_owned)
}

/// A message that matches a search, read out (what `cwtch search` shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Where it is.
    pub hit: SearchHit,
    /// The message.
    pub message: MessageInfo,
}

impl ProfileHandle {
    /// The messages of every contact and group conversation whose text contains `pattern`
    /// (case-insensitively), newest first within each conversation, conversations in id
    /// order; at most [`SEARCH_MAX_PER_CONVERSATION`] per conversation. An empty pattern is
    /// refused.
    pub async fn search_messages(&self, pattern: &str) -> Result<Vec<SearchHit>> {
        Ok(self
            .search_rows(pattern, None)
            .await?
            .into_iter()
            .map(|(hit, _)| hit)
            .collect())
    }

    /// [`ProfileHandle::search_messages`], with each message read out.
    pub async fn search(&self, pattern: &str) -> Result<Vec<Found>> {
        self.search_found(pattern, None).await
    }

    /// [`ProfileHandle::search`] in one conversation (a contact's or a group's; another id is
    /// [`Error::ContactNotFound`]).
    pub async fn search_conversation(
        &self,
        conversation: ConversationId,
        pattern: &str,
    ) -> Result<Vec<Found>> {
        self.search_found(pattern, Some(conversation)).await
    }

    async fn search_found(
        &self,
        pattern: &str,
        only: Option<ConversationId>,
    ) -> Result<Vec<Found>> {
        let rows = self.search_rows(pattern, only).await?;
        let me = self.rt.onion.clone();
        // A contact's messages without an author are the contact's; a group's all carry theirs.
        let contacts: std::collections::HashMap<ConversationId, Onion> = {
            let st = self.rt.state();
            rows.iter()
                .filter_map(|(h, _)| {
                    st.by_conversation
                        .get(&h.conversation_id)
                        .map(|o| (h.conversation_id, o.clone()))
                })
                .collect()
        };
        Ok(rows
            .into_iter()
            .map(|(hit, m)| {
                let who = contacts.get(&hit.conversation_id).unwrap_or(&me);
                Found {
                    hit,
                    message: self.message_info(hit.conversation_id, who, m),
                }
            })
            .collect())
    }

    async fn search_rows(
        &self,
        pattern: &str,
        only: Option<ConversationId>,
    ) -> Result<Vec<(SearchHit, Message)>> {
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
        if let Some(c) = only {
            if !conversations.contains(&c) {
                return Err(Error::ContactNotFound);
            }
            conversations = vec![c];
        }
        // Storage hands over only the messages the search must parse: those whose body holds
        // a piece of the pattern that JSON writes as it is (or that hold a `\u` escape).
        let needles: Vec<String> = match prefilter(&needle) {
            Some(piece) => vec![piece, "\\u".to_owned()],
            None => vec![String::new()],
        };
        let mut hits = Vec::new();
        for conv in conversations {
            let needle = needle.clone();
            let needles = needles.clone();
            let found = self
                .rt
                .store
                .call(move |s| {
                    let mut out = Vec::new();
                    let refs: Vec<&str> = needles.iter().map(String::as_str).collect();
                    s.scan_containing_ignore_ascii_case(conv, &refs, &mut |row_index, m| {
                        if matches(&m.body, &needle) {
                            let hit = SearchHit {
                                conversation_id: conv,
                                message_id: m.id,
                                row_index,
                            };
                            out.push((hit, m));
                            if out.len() >= SEARCH_MAX_PER_CONVERSATION {
                                return std::ops::ControlFlow::Break(());
                            }
                        }
                        std::ops::ControlFlow::Continue(())
                    })?;
                    Ok(out)
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

    #[test]
    fn the_prefilter_takes_the_longest_piece_json_writes_as_it_is() {
        assert_eq!(prefilter("hello world").as_deref(), Some("hello world"));
        assert_eq!(prefilter("say \"cheese\" now").as_deref(), Some("cheese"));
        assert_eq!(prefilter("pick a/b").as_deref(), Some(" a"));
        assert_eq!(prefilter("kiki"), None);
        assert_eq!(prefilter("привет"), None);
        assert_eq!(prefilter("日本 go").as_deref(), Some(" go"));
    }

    /// Whether storage hands `body` to the search for `needle` (what
    /// `search_messages` asks of `scan_containing_ignore_ascii_case`).
    fn candidate(body: &str, needle: &str) -> bool {
        match prefilter(needle) {
            Some(piece) => body.to_ascii_lowercase().contains(&piece) || body.contains("\\u"),
            None => true,
        }
    }

    const KEY: &str = "5bf3d64f35c9b7a1a2a7e9f02cbd8c5d7e7a13d0c1f4b9e3a3b5c7d9e1f3a5b75bf3d64f35c9b7a1a2a7e9f02cbd8c5d7e7a13d0c1f4b9e3a3b5c7d9e1f3a5b7.0123456789abcdef0123456789abcdef0123456789abcdef";

    proptest::proptest! {
        /// Every message the search would match is one storage hands over: for texts sent as
        /// plain, quoted-reply and file-offer bodies (Go's JSON, `<>&` as `\u` escapes) and
        /// as JSON that escapes `/`, with letters that lower into ASCII (`İ`, `K`), quotes and
        /// backslashes, and any piece of them searched for.
        #[test]
        fn the_prefilter_never_hides_a_match(
            text in proptest::prop_oneof![
                "[aAiIkKzZ İK\"\\\\/<>&éΣς]{1,20}",
                proptest::prelude::any::<String>(),
            ],
            start in 0usize..20,
            len in 1usize..20,
        ) {
            let chars: Vec<char> = text.chars().collect();
            let start = start.min(chars.len().saturating_sub(1));
            let pattern: String = chars.iter().skip(start).take(len).collect();
            let needle = pattern.to_lowercase();
            proptest::prop_assume!(!needle.trim().is_empty());
            let mut bodies = vec![text.clone()];
            if let Ok(b) = (Content::Text { text: text.clone() }).to_body() {
                bodies.push(b);
            }
            if let Ok(b) = (Content::QuotedReply { quoted_hash: "h".into(), body: text.clone() }).to_body() {
                bodies.push(b);
            }
            if let Ok(b) = (Content::FileShare { name: text.clone(), file_key: KEY.into(), size: 1 }).to_body() {
                bodies.push(b);
            }
            let escaped = serde_json::to_string(&text).unwrap().replace('/', "\\/");
            bodies.push(format!(r#"{{"o":1,"d":{escaped}}}"#));
            for body in &bodies {
                if matches(body, &needle) {
                    proptest::prop_assert!(candidate(body, &needle), "{body:?} {needle:?}");
                }
            }
        }
    }
}
