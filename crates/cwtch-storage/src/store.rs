//! The storage traits the peer engine programs against.
//!
//! Both are synchronous. The SQLCipher implementation does blocking file IO, so an async
//! caller runs it on a blocking thread (`tokio::task::spawn_blocking`) or, better, gives each
//! open profile one dedicated storage thread fed by a bounded channel; the in-memory
//! implementation never blocks for long but can be driven the same way.

use torv3::Identity;

use crate::keys;
use crate::model::{
    AccessControl, Acl, Attributes, Conversation, ConversationId, KeyType, Message, MessageId,
    NewConversation, NewMessage, ProfileId,
};
use crate::{Error, IdentityError, Password};

/// A set of profiles: a Cwtch home directory ([`CwtchHome`](crate::CwtchHome)) or its
/// in-memory stand-in ([`MemoryHome`](crate::MemoryHome)).
pub trait ProfileHome {
    /// The handle of an open profile.
    type Profile: ProfileStore;

    /// The ids of all profiles, sorted.
    fn list_profiles(&self) -> Result<Vec<ProfileId>, Error>;

    /// Create a profile with a fresh random identity and open it.
    ///
    /// Stores what Go stores at creation: the key pair, `public.profile.name`,
    /// `local.profile.name`, `public.profile.onion` and `local.profile.tag`.
    fn create_profile(&self, name: &str, password: &Password) -> Result<Self::Profile, Error> {
        let identity = Identity::generate(&mut rand_core::OsRng);
        self.create_profile_with_identity(name, password, &identity)
    }

    /// Create a profile with the given identity and open it.
    fn create_profile_with_identity(
        &self,
        name: &str,
        password: &Password,
        identity: &Identity,
    ) -> Result<Self::Profile, Error>;

    /// Open a profile. Fails with [`Error::WrongPassword`], [`Error::Corrupt`],
    /// [`Error::ProfileNotFound`] or [`Error::ProfileInUse`].
    fn open_profile(&self, id: &ProfileId, password: &Password) -> Result<Self::Profile, Error>;

    /// Delete a profile; the password must open it. The profile must not be open.
    fn delete_profile(&self, id: &ProfileId, password: &Password) -> Result<(), Error>;
}

/// One open profile: its key-value store, conversations and messages.
///
/// Reads take `&self`, writes `&mut self`. Methods that name a conversation fail with
/// [`Error::ConversationNotFound`] when it does not exist, except the message reads, which
/// return nothing, and the message-attribute updates, which fail with
/// [`Error::MessageNotFound`]. A stored attributes or ACL column that is not valid JSON is
/// reported as [`Error::Json`].
pub trait ProfileStore: Send {
    /// The profile's local id.
    fn profile_id(&self) -> &ProfileId;

    // ---- profile_kv ----

    /// A `profile_kv` value.
    fn value(&self, key_type: &KeyType, name: &str) -> Result<Option<Vec<u8>>, Error>;

    /// Set a `profile_kv` value (insert or replace).
    fn set_value(&mut self, key_type: &KeyType, name: &str, value: &[u8]) -> Result<(), Error>;

    /// Delete a `profile_kv` value; returns whether it existed.
    fn delete_value(&mut self, key_type: &KeyType, name: &str) -> Result<bool, Error>;

    /// All `(name, value)` pairs of one key type, sorted by name.
    fn values(&self, key_type: &KeyType) -> Result<Vec<(String, Vec<u8>)>, Error>;

    /// A profile attribute (`KeyType::ATTRIBUTE`) as text (invalid UTF-8 is replaced, as Go
    /// strings are bytes).
    fn attribute(&self, name: &str) -> Result<Option<String>, Error> {
        Ok(self
            .value(&KeyType::ATTRIBUTE, name)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Set a profile attribute.
    fn set_attribute(&mut self, name: &str, value: &str) -> Result<(), Error> {
        self.set_value(&KeyType::ATTRIBUTE, name, value.as_bytes())
    }

    /// The profile's identity, checked against the stored public key and onion.
    fn identity(&self) -> Result<Identity, Error> {
        let private = self
            .value(&KeyType::PRIVATE_KEY, keys::ED25519_PRIVATE_KEY)?
            .ok_or(IdentityError::Missing)?;
        let private = zeroize::Zeroizing::new(private);
        let identity = Identity::from_go_private_key(&private).map_err(IdentityError::Key)?;
        if let Some(public) = self.value(&KeyType::PUBLIC_KEY, keys::ED25519_PUBLIC_KEY)? {
            if public != identity.public_key().as_bytes() {
                return Err(IdentityError::PublicKeyMismatch.into());
            }
        }
        if let Some(onion) = self.attribute(keys::PUBLIC_PROFILE_ONION)? {
            if onion != identity.onion().as_str() {
                return Err(IdentityError::OnionMismatch.into());
            }
        }
        Ok(identity)
    }

    /// Change the password. `old` must be the current password. For the SQLCipher store this
    /// re-encrypts the database crash-safely (see the crate docs).
    fn change_password(&mut self, old: &Password, new: &Password) -> Result<(), Error>;

    // ---- conversations ----

    /// Create a conversation; fails with [`Error::ConversationExists`] if one has the handle.
    fn create_conversation(&mut self, new: &NewConversation) -> Result<ConversationId, Error>;

    /// A conversation by id.
    fn conversation(&self, id: ConversationId) -> Result<Option<Conversation>, Error>;

    /// A conversation by handle.
    fn conversation_by_handle(&self, handle: &str) -> Result<Option<Conversation>, Error>;

    /// All conversations, by id.
    fn conversations(&self) -> Result<Vec<Conversation>, Error>;

    /// Replace a conversation's attributes.
    fn set_conversation_attributes(
        &mut self,
        id: ConversationId,
        attributes: &Attributes,
    ) -> Result<(), Error>;

    /// Replace a conversation's ACL.
    fn set_conversation_acl(&mut self, id: ConversationId, acl: &Acl) -> Result<(), Error>;

    /// Mark a conversation accepted.
    fn accept_conversation(&mut self, id: ConversationId) -> Result<(), Error>;

    /// Delete a conversation and all its messages.
    fn delete_conversation(&mut self, id: ConversationId) -> Result<(), Error>;

    /// Set one conversation attribute (read, modify, write).
    fn set_conversation_attribute(
        &mut self,
        id: ConversationId,
        key: &str,
        value: &str,
    ) -> Result<(), Error> {
        let mut c = self
            .conversation(id)?
            .ok_or(Error::ConversationNotFound(id))?;
        c.attributes.insert(key.to_owned(), value.to_owned());
        self.set_conversation_attributes(id, &c.attributes)
    }

    /// Block or unblock a conversation: sets `Blocked` in the ACL entry for its handle,
    /// creating the entry with Go's P2P defaults if it is missing.
    fn set_blocked(&mut self, id: ConversationId, blocked: bool) -> Result<(), Error> {
        let mut c = self
            .conversation(id)?
            .ok_or(Error::ConversationNotFound(id))?;
        c.acl
            .entry(c.handle.clone())
            .or_insert(AccessControl::DEFAULT_P2P)
            .blocked = blocked;
        self.set_conversation_acl(id, &c.acl)
    }

    // ---- messages ----

    /// Store a message; creates the conversation's message table on first use. Fails with
    /// [`Error::DuplicateSignature`] if the signature is already stored in this conversation.
    fn insert_message(
        &mut self,
        conversation: ConversationId,
        message: &NewMessage<'_>,
    ) -> Result<MessageId, Error>;

    /// Store several messages, in order, as one durable write (one transaction where the
    /// backend has them). A message whose signature is already stored in its conversation (or
    /// earlier in the batch) is skipped: `None` in its place. Any other error stores nothing.
    fn insert_messages(
        &mut self,
        messages: &[(ConversationId, NewMessage<'_>)],
    ) -> Result<Vec<Option<MessageId>>, Error> {
        let mut out = Vec::with_capacity(messages.len());
        for (conversation, m) in messages {
            match self.insert_message(*conversation, m) {
                Ok(id) => out.push(Some(id)),
                Err(Error::DuplicateSignature(_)) => out.push(None),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// A message by id.
    fn message(
        &self,
        conversation: ConversationId,
        id: MessageId,
    ) -> Result<Option<Message>, Error>;

    /// The message with this signature.
    fn message_by_signature(
        &self,
        conversation: ConversationId,
        signature: &str,
    ) -> Result<Option<Message>, Error>;

    /// The most recent message with this content hash.
    fn message_by_content_hash(
        &self,
        conversation: ConversationId,
        content_hash: &str,
    ) -> Result<Option<Message>, Error>;

    /// The most recent message with this content hash among those older than `before` (the
    /// message a reply with id `before` quotes: the same text may be sent again after it).
    fn message_by_content_hash_before(
        &self,
        conversation: ConversationId,
        content_hash: &str,
        before: MessageId,
    ) -> Result<Option<Message>, Error>;

    /// Up to `limit` messages, newest first, skipping the `offset` newest (Go's
    /// `GetChannelMessages` order: offset 0 is the most recent message).
    fn messages(
        &self,
        conversation: ConversationId,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<Message>, Error>;

    /// How many messages the conversation has.
    fn message_count(&self, conversation: ConversationId) -> Result<u64, Error>;

    /// Who wrote a conversation's messages: the distinct values of message attribute `key`
    /// other than `except` (a group's members: its authors other than us), and how many of
    /// their messages have an id above `after` (a group's unread messages). The default reads
    /// every message; a store may answer it without reading them out.
    fn authors(
        &self,
        conversation: ConversationId,
        key: &str,
        except: &str,
        after: MessageId,
    ) -> Result<Authors, Error> {
        authors_by_reading(self, conversation, key, except, after)
    }

    /// Every message whose attributes satisfy every condition of `filter`, newest first (the
    /// messages of ours a crash may have left unacknowledged, or unposted). The default reads
    /// every message; a store may select them without reading the others out.
    fn messages_where(
        &self,
        conversation: ConversationId,
        filter: &[AttributeCondition<'_>],
    ) -> Result<Vec<Message>, Error> {
        messages_where_by_reading(self, conversation, filter)
    }

    /// Every message whose body contains `needle` (bytes, case-sensitive), newest first (a
    /// conversation's file offers: bodies with `200` in them). The default reads every
    /// message; a store may search without reading the others out.
    fn messages_containing(
        &self,
        conversation: ConversationId,
        needle: &str,
    ) -> Result<Vec<Message>, Error> {
        messages_containing_by_reading(self, conversation, needle)
    }

    /// Every message whose body contains one of `needles`, ignoring ASCII case (`A` and `a`
    /// are the same; no other character is folded; an empty needle is in every body, an empty
    /// list in none), newest first, each with its position in the conversation (0 = the
    /// newest: the `offset` at which [`ProfileStore::messages`] lists it first), handed to
    /// `each` until it breaks (what a search must look at more closely). The default reads
    /// every message; a store may search without reading the others out.
    fn scan_containing_ignore_ascii_case(
        &self,
        conversation: ConversationId,
        needles: &[&str],
        each: &mut dyn FnMut(u64, Message) -> std::ops::ControlFlow<()>,
    ) -> Result<(), Error> {
        scan_containing_ignore_ascii_case_by_reading(self, conversation, needles, each)
    }

    /// How many messages after `after` have message attribute `key` set to something other
    /// than `except` (a contact's unread messages: theirs after the last one read). The
    /// default reads the messages after `after`; a store may count them without reading
    /// them out.
    fn count_after(
        &self,
        conversation: ConversationId,
        key: &str,
        except: &str,
        after: MessageId,
    ) -> Result<u64, Error> {
        count_after_by_reading(self, conversation, key, except, after)
    }

    /// A message's position in [`ProfileStore::messages`] order (0 = newest), if it exists.
    fn message_index(
        &self,
        conversation: ConversationId,
        id: MessageId,
    ) -> Result<Option<u64>, Error>;

    /// Replace a message's attributes.
    fn set_message_attributes(
        &mut self,
        conversation: ConversationId,
        id: MessageId,
        attributes: &Attributes,
    ) -> Result<(), Error>;

    /// Delete all of a conversation's messages (ids are not reused afterwards).
    fn delete_messages(&mut self, conversation: ConversationId) -> Result<(), Error>;

    /// The most recent message.
    fn latest_message(&self, conversation: ConversationId) -> Result<Option<Message>, Error> {
        Ok(self.messages(conversation, 0, 1)?.into_iter().next())
    }

    /// Set one message attribute (read, modify, write), e.g. [`keys::MESSAGE_ACK`].
    fn set_message_attribute(
        &mut self,
        conversation: ConversationId,
        id: MessageId,
        key: &str,
        value: &str,
    ) -> Result<(), Error> {
        let mut m = self
            .message(conversation, id)?
            .ok_or(Error::MessageNotFound {
                conversation,
                message: id,
            })?;
        m.attributes.insert(key.to_owned(), value.to_owned());
        self.set_message_attributes(conversation, id, &m.attributes)
    }
}

/// What [`ProfileStore::authors`] answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authors {
    /// The authors, in order.
    pub names: std::collections::BTreeSet<String>,
    /// How many of their messages are after the given id.
    pub after: u64,
}

/// One condition on a message attribute, for [`ProfileStore::messages_where`]. An absent
/// attribute is the empty string for `Empty`/`NonEmpty`, and is unequal to any value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeCondition<'a> {
    /// `key` is present with exactly this value.
    Equals(&'a str, &'a str),
    /// `key` is absent, or has another value.
    NotEquals(&'a str, &'a str),
    /// `key` is present and not empty.
    NonEmpty(&'a str),
    /// `key` is absent or empty.
    Empty(&'a str),
}

impl AttributeCondition<'_> {
    /// Whether `attributes` satisfy it.
    pub fn holds(&self, attributes: &Attributes) -> bool {
        let get = |k: &str| attributes.get(k).map(String::as_str);
        match *self {
            AttributeCondition::Equals(k, v) => get(k) == Some(v),
            AttributeCondition::NotEquals(k, v) => get(k) != Some(v),
            AttributeCondition::NonEmpty(k) => get(k).is_some_and(|v| !v.is_empty()),
            AttributeCondition::Empty(k) => get(k).is_none_or(str::is_empty),
        }
    }

    /// The attribute it is about.
    pub fn key(&self) -> &str {
        match *self {
            AttributeCondition::Equals(k, _)
            | AttributeCondition::NotEquals(k, _)
            | AttributeCondition::NonEmpty(k)
            | AttributeCondition::Empty(k) => k,
        }
    }
}

/// Every message of a conversation, newest first, read out a page at a time and handed to
/// `each` until it breaks: the one loop the reading defaults below share.
fn read_messages<S: ProfileStore + ?Sized>(
    store: &S,
    conversation: ConversationId,
    mut each: impl FnMut(Message) -> std::ops::ControlFlow<()>,
) -> Result<(), Error> {
    const PAGE: u32 = 512;
    let mut offset = 0u64;
    loop {
        let page = store.messages(conversation, offset, PAGE)?;
        let len = page.len();
        for m in page {
            if each(m).is_break() {
                return Ok(());
            }
        }
        if len < PAGE as usize {
            return Ok(());
        }
        offset += len as u64;
    }
}

/// [`ProfileStore::messages_where`] by reading every message (the default, and the reference
/// the stores' own answers are checked against).
pub fn messages_where_by_reading<S: ProfileStore + ?Sized>(
    store: &S,
    conversation: ConversationId,
    filter: &[AttributeCondition<'_>],
) -> Result<Vec<Message>, Error> {
    let mut out = Vec::new();
    read_messages(store, conversation, |m| {
        if filter.iter().all(|c| c.holds(&m.attributes)) {
            out.push(m);
        }
        std::ops::ControlFlow::Continue(())
    })?;
    Ok(out)
}

/// [`ProfileStore::messages_containing`] by reading every message (the default, and the
/// reference the stores' own answers are checked against).
pub fn messages_containing_by_reading<S: ProfileStore + ?Sized>(
    store: &S,
    conversation: ConversationId,
    needle: &str,
) -> Result<Vec<Message>, Error> {
    let mut out = Vec::new();
    read_messages(store, conversation, |m| {
        if m.body.contains(needle) {
            out.push(m);
        }
        std::ops::ControlFlow::Continue(())
    })?;
    Ok(out)
}

/// [`ProfileStore::scan_containing_ignore_ascii_case`] by reading every message (the default,
/// and the reference the stores' own answers are checked against).
pub fn scan_containing_ignore_ascii_case_by_reading<S: ProfileStore + ?Sized>(
    store: &S,
    conversation: ConversationId,
    needles: &[&str],
    each: &mut dyn FnMut(u64, Message) -> std::ops::ControlFlow<()>,
) -> Result<(), Error> {
    let needles: Vec<String> = needles.iter().map(|n| n.to_ascii_lowercase()).collect();
    let mut index = 0u64;
    read_messages(store, conversation, |m| {
        let at = index;
        index += 1;
        let body = m.body.to_ascii_lowercase();
        if needles.iter().any(|n| body.contains(n.as_str())) {
            each(at, m)
        } else {
            std::ops::ControlFlow::Continue(())
        }
    })
}

/// [`ProfileStore::count_after`] by reading the messages after `after`, newest first (the
/// default, and the reference the stores' own answers are checked against).
pub fn count_after_by_reading<S: ProfileStore + ?Sized>(
    store: &S,
    conversation: ConversationId,
    key: &str,
    except: &str,
    after: MessageId,
) -> Result<u64, Error> {
    let mut n = 0u64;
    read_messages(store, conversation, |m| {
        if m.id <= after {
            return std::ops::ControlFlow::Break(());
        }
        if m.attributes.get(key).is_some_and(|a| a != except) {
            n += 1;
        }
        std::ops::ControlFlow::Continue(())
    })?;
    Ok(n)
}

/// [`ProfileStore::authors`] by reading every message (the default, and the reference the
/// stores' own answers are checked and measured against).
pub fn authors_by_reading<S: ProfileStore + ?Sized>(
    store: &S,
    conversation: ConversationId,
    key: &str,
    except: &str,
    after: MessageId,
) -> Result<Authors, Error> {
    let mut out = Authors::default();
    read_messages(store, conversation, |m| {
        if let Some(a) = m.attributes.get(key).filter(|a| *a != except) {
            if m.id > after {
                out.after += 1;
            }
            out.names.insert(a.clone());
        }
        std::ops::ControlFlow::Continue(())
    })?;
    Ok(out)
}
