//! An in-memory [`ProfileHome`] and [`ProfileStore`] for tests of the layers above: same
//! behaviour as the SQLCipher store (the same behavioural tests run against both), no files.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use subtle::ConstantTimeEq;
use torv3::Identity;
use zeroize::Zeroizing;

use crate::model::{
    Acl, Attributes, Conversation, ConversationId, KeyType, Message, MessageId, NewConversation,
    NewMessage, ProfileId,
};
use crate::store::{ProfileHome, ProfileStore};
use crate::{keys, sqlcipher, Error, Password};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data is only changed by complete assignments; a panic elsewhere cannot leave it
    // half-written.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A set of in-memory profiles. Cheap to clone; clones share the profiles.
#[derive(Clone, Debug, Default)]
pub struct MemoryHome {
    inner: Arc<Mutex<HomeData>>,
}

#[derive(Debug, Default)]
struct HomeData {
    profiles: BTreeMap<ProfileId, Arc<Mutex<ProfileData>>>,
    open: HashSet<ProfileId>,
}

struct ProfileData {
    password: Zeroizing<Vec<u8>>,
    kv: BTreeMap<(KeyType, String), Vec<u8>>,
    conversations: BTreeMap<i64, ConversationData>,
    /// Like SQLite's `sqlite_sequence` for `conversations`: ids are never reused.
    last_conversation: i64,
}

impl std::fmt::Debug for ProfileData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileData").finish_non_exhaustive()
    }
}

struct ConversationData {
    conversation: Conversation,
    /// `None` until the first message (Go creates the channel table lazily).
    channel: Option<Channel>,
}

#[derive(Default)]
struct Channel {
    messages: BTreeMap<i64, Message>,
    /// Survives purges, as SQLite's `AUTOINCREMENT` does.
    last_id: i64,
}

impl MemoryHome {
    /// An empty home.
    pub fn new() -> MemoryHome {
        MemoryHome::default()
    }

    fn data(&self) -> MutexGuard<'_, HomeData> {
        lock(&self.inner)
    }
}

impl ProfileHome for MemoryHome {
    type Profile = MemoryProfile;

    fn list_profiles(&self) -> Result<Vec<ProfileId>, Error> {
        Ok(self.data().profiles.keys().cloned().collect())
    }

    fn create_profile_with_identity(
        &self,
        name: &str,
        password: &Password,
        identity: &Identity,
    ) -> Result<MemoryProfile, Error> {
        password.check_new()?;
        let id = ProfileId::random(&mut rand_core::OsRng);
        let kv = sqlcipher::creation_rows(name, password, identity)
            .into_iter()
            .map(|(kt, name, value)| ((kt, name.to_owned()), value.to_vec()))
            .collect();
        let data = ProfileData {
            password: Zeroizing::new(password.as_bytes().to_vec()),
            kv,
            conversations: BTreeMap::new(),
            last_conversation: 0,
        };
        self.data()
            .profiles
            .insert(id.clone(), Arc::new(Mutex::new(data)));
        self.open_profile(&id, password)
    }

    fn open_profile(&self, id: &ProfileId, password: &Password) -> Result<MemoryProfile, Error> {
        let mut home = self.data();
        let data = home
            .profiles
            .get(id)
            .ok_or_else(|| Error::ProfileNotFound(id.clone()))?
            .clone();
        if home.open.contains(id) {
            return Err(Error::ProfileInUse(id.clone()));
        }
        if !bool::from(lock(&data).password.as_slice().ct_eq(password.as_bytes())) {
            return Err(Error::WrongPassword);
        }
        home.open.insert(id.clone());
        Ok(MemoryProfile {
            id: id.clone(),
            data,
            home: Arc::clone(&self.inner),
        })
    }

    fn delete_profile(&self, id: &ProfileId, password: &Password) -> Result<(), Error> {
        let profile = self.open_profile(id, password)?;
        drop(profile);
        self.data().profiles.remove(id);
        Ok(())
    }
}

/// An open in-memory profile. Dropping it closes it.
#[derive(Debug)]
pub struct MemoryProfile {
    id: ProfileId,
    data: Arc<Mutex<ProfileData>>,
    home: Arc<Mutex<HomeData>>,
}

impl Drop for MemoryProfile {
    fn drop(&mut self) {
        lock(&self.home).open.remove(&self.id);
    }
}

impl MemoryProfile {
    fn data(&self) -> MutexGuard<'_, ProfileData> {
        lock(&self.data)
    }
}

impl ProfileData {
    fn conversation_mut(&mut self, id: ConversationId) -> Result<&mut ConversationData, Error> {
        self.conversations
            .get_mut(&id.0)
            .ok_or(Error::ConversationNotFound(id))
    }

    fn channel(&self, id: ConversationId) -> Option<&Channel> {
        self.conversations.get(&id.0)?.channel.as_ref()
    }
}

impl ProfileStore for MemoryProfile {
    fn profile_id(&self) -> &ProfileId {
        &self.id
    }

    fn value(&self, key_type: &KeyType, name: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self
            .data()
            .kv
            .get(&(key_type.clone(), name.to_owned()))
            .cloned())
    }

    fn set_value(&mut self, key_type: &KeyType, name: &str, value: &[u8]) -> Result<(), Error> {
        self.data()
            .kv
            .insert((key_type.clone(), name.to_owned()), value.to_vec());
        Ok(())
    }

    fn delete_value(&mut self, key_type: &KeyType, name: &str) -> Result<bool, Error> {
        Ok(self
            .data()
            .kv
            .remove(&(key_type.clone(), name.to_owned()))
            .is_some())
    }

    fn values(&self, key_type: &KeyType) -> Result<Vec<(String, Vec<u8>)>, Error> {
        Ok(self
            .data()
            .kv
            .iter()
            .filter(|((kt, _), _)| kt == key_type)
            .map(|((_, name), v)| (name.clone(), v.clone()))
            .collect())
    }

    fn change_password(&mut self, old: &Password, new: &Password) -> Result<(), Error> {
        new.check_new()?;
        let mut data = self.data();
        if !bool::from(data.password.as_slice().ct_eq(old.as_bytes())) {
            return Err(Error::WrongPassword);
        }
        data.password = Zeroizing::new(new.as_bytes().to_vec());
        data.kv.insert(
            (KeyType::ATTRIBUTE, keys::LOCAL_PROFILE_TAG.to_owned()),
            new.tag().as_bytes().to_vec(),
        );
        Ok(())
    }

    fn create_conversation(&mut self, new: &NewConversation) -> Result<ConversationId, Error> {
        if new.handle.is_empty() {
            return Err(Error::EmptyHandle);
        }
        let mut data = self.data();
        if let Some(c) = data
            .conversations
            .values()
            .find(|c| c.conversation.handle == new.handle)
        {
            return Err(Error::ConversationExists(c.conversation.id));
        }
        data.last_conversation += 1;
        let id = ConversationId(data.last_conversation);
        data.conversations.insert(
            id.0,
            ConversationData {
                conversation: Conversation {
                    id,
                    handle: new.handle.clone(),
                    attributes: new.attributes.clone(),
                    acl: new.acl.clone(),
                    accepted: new.accepted,
                },
                channel: None,
            },
        );
        Ok(id)
    }

    fn conversation(&self, id: ConversationId) -> Result<Option<Conversation>, Error> {
        Ok(self
            .data()
            .conversations
            .get(&id.0)
            .map(|c| c.conversation.clone()))
    }

    fn conversation_by_handle(&self, handle: &str) -> Result<Option<Conversation>, Error> {
        Ok(self
            .data()
            .conversations
            .values()
            .find(|c| c.conversation.handle == handle)
            .map(|c| c.conversation.clone()))
    }

    fn conversations(&self) -> Result<Vec<Conversation>, Error> {
        Ok(self
            .data()
            .conversations
            .values()
            .map(|c| c.conversation.clone())
            .collect())
    }

    fn set_conversation_attributes(
        &mut self,
        id: ConversationId,
        attributes: &Attributes,
    ) -> Result<(), Error> {
        self.data().conversation_mut(id)?.conversation.attributes = attributes.clone();
        Ok(())
    }

    fn set_conversation_acl(&mut self, id: ConversationId, acl: &Acl) -> Result<(), Error> {
        self.data().conversation_mut(id)?.conversation.acl = acl.clone();
        Ok(())
    }

    fn accept_conversation(&mut self, id: ConversationId) -> Result<(), Error> {
        self.data().conversation_mut(id)?.conversation.accepted = true;
        Ok(())
    }

    fn delete_conversation(&mut self, id: ConversationId) -> Result<(), Error> {
        self.data()
            .conversations
            .remove(&id.0)
            .map(|_| ())
            .ok_or(Error::ConversationNotFound(id))
    }

    fn insert_message(
        &mut self,
        conversation: ConversationId,
        message: &NewMessage<'_>,
    ) -> Result<MessageId, Error> {
        let mut data = self.data();
        let channel = data
            .conversation_mut(conversation)?
            .channel
            .get_or_insert_with(Channel::default);
        if channel
            .messages
            .values()
            .any(|m| m.signature == message.signature)
        {
            return Err(Error::DuplicateSignature(conversation));
        }
        channel.last_id += 1;
        let id = MessageId(channel.last_id);
        channel.messages.insert(
            id.0,
            Message {
                id,
                body: message.body.to_owned(),
                attributes: message.attributes.clone(),
                signature: message.signature.to_owned(),
                content_hash: message.content_hash.to_owned(),
            },
        );
        Ok(id)
    }

    fn message(
        &self,
        conversation: ConversationId,
        id: MessageId,
    ) -> Result<Option<Message>, Error> {
        Ok(self
            .data()
            .channel(conversation)
            .and_then(|c| c.messages.get(&id.0))
            .cloned())
    }

    fn message_by_signature(
        &self,
        conversation: ConversationId,
        signature: &str,
    ) -> Result<Option<Message>, Error> {
        Ok(self.data().channel(conversation).and_then(|c| {
            c.messages
                .values()
                .find(|m| m.signature == signature)
                .cloned()
        }))
    }

    fn message_by_content_hash(
        &self,
        conversation: ConversationId,
        content_hash: &str,
    ) -> Result<Option<Message>, Error> {
        Ok(self.data().channel(conversation).and_then(|c| {
            c.messages
                .values()
                .rev()
                .find(|m| m.content_hash == content_hash)
                .cloned()
        }))
    }

    fn message_by_content_hash_before(
        &self,
        conversation: ConversationId,
        content_hash: &str,
        before: MessageId,
    ) -> Result<Option<Message>, Error> {
        Ok(self.data().channel(conversation).and_then(|c| {
            c.messages
                .values()
                .rev()
                .find(|m| m.id < before && m.content_hash == content_hash)
                .cloned()
        }))
    }

    fn messages(
        &self,
        conversation: ConversationId,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<Message>, Error> {
        let offset = usize::try_from(offset).unwrap_or(usize::MAX);
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(self
            .data()
            .channel(conversation)
            .map(|c| {
                c.messages
                    .values()
                    .rev()
                    .skip(offset)
                    .take(limit)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    fn message_count(&self, conversation: ConversationId) -> Result<u64, Error> {
        Ok(self
            .data()
            .channel(conversation)
            .map_or(0, |c| c.messages.len() as u64))
    }

    fn message_index(
        &self,
        conversation: ConversationId,
        id: MessageId,
    ) -> Result<Option<u64>, Error> {
        Ok(self.data().channel(conversation).and_then(|c| {
            c.messages.contains_key(&id.0).then(|| {
                c.messages
                    .range((Bound::Excluded(id.0), Bound::Unbounded))
                    .count() as u64
            })
        }))
    }

    fn set_message_attributes(
        &mut self,
        conversation: ConversationId,
        id: MessageId,
        attributes: &Attributes,
    ) -> Result<(), Error> {
        let mut data = self.data();
        let m = data
            .conversations
            .get_mut(&conversation.0)
            .and_then(|c| c.channel.as_mut())
            .and_then(|c| c.messages.get_mut(&id.0))
            .ok_or(Error::MessageNotFound {
                conversation,
                message: id,
            })?;
        m.attributes = attributes.clone();
        Ok(())
    }

    fn delete_messages(&mut self, conversation: ConversationId) -> Result<(), Error> {
        let mut data = self.data();
        if let Some(channel) = data.conversation_mut(conversation)?.channel.as_mut() {
            channel.messages.clear();
        }
        Ok(())
    }
}
