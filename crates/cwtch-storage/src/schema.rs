//! The schema, byte for byte as Go Cwtch creates it.
//!
//! SQLite stores a table's DDL in `sqlite_master.sql` as `CREATE TABLE ` followed by the text
//! from the table name on, so `create table if not exists x (…)` is stored as
//! `CREATE TABLE x (…)`. The text inside the parentheses (the double space in
//! `UNIQUE  (KeyType,KeyName)` included) is what the fixtures' `sqlite_master` holds.

use crate::model::ConversationId;

/// `profile_kv` DDL (CONFIRMED, fixtures).
pub const CREATE_PROFILE_KV: &str = "create table if not exists profile_kv (KeyType text, KeyName text, KeyValue blob, UNIQUE  (KeyType,KeyName));";

/// `conversations` DDL (CONFIRMED, fixtures). Creating it also creates `sqlite_sequence`.
pub const CREATE_CONVERSATIONS: &str = "create table if not exists conversations (ID integer unique primary key autoincrement, Handle text, Attributes blob, ACL blob, Accepted bool);";

/// `sqlite_master.sql` of the tables every profile has, in creation order (CONFIRMED).
pub const MASTER_SQL: [&str; 3] = [
    "CREATE TABLE profile_kv (KeyType text, KeyName text, KeyValue blob, UNIQUE  (KeyType,KeyName))",
    "CREATE TABLE conversations (ID integer unique primary key autoincrement, Handle text, Attributes blob, ACL blob, Accepted bool)",
    "CREATE TABLE sqlite_sequence(name,seq)",
];

/// The name of a conversation's message table, `channel_<id>_0_chat` (channel 0 is the only
/// channel Go uses).
pub fn channel_table(id: ConversationId) -> String {
    format!("channel_{}_0_chat", id.0)
}

/// A conversation's message-table DDL (CONFIRMED, fixtures; created lazily by Go).
pub fn create_channel(id: ConversationId) -> String {
    format!(
        "create table if not exists {} (ID integer unique primary key autoincrement, Body text, Attributes []byte, Expiry datetime, Signature text unique, ContentHash blob text);",
        channel_table(id)
    )
}

/// `sqlite_master.sql` of a conversation's message table.
pub fn channel_master_sql(id: ConversationId) -> String {
    format!(
        "CREATE TABLE {} (ID integer unique primary key autoincrement, Body text, Attributes []byte, Expiry datetime, Signature text unique, ContentHash blob text)",
        channel_table(id)
    )
}
