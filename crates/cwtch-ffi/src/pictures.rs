//! The pictures a libCwtch client shows for a profile, contact or group without one of its
//! own: Go's `RandomProfileImage` and `RandomGroupImage` (libcwtch-go `utils`).
//!
//! They are paths into the Cwtch UI's assets (`profiles/…png`, `servers/…png`; the UI loads
//! `"assets/" + picture`), chosen from the conversation's handle so that every client shows
//! the same one: a profile's by the second checksum byte of its onion (byte 33 of the 35 the
//! address encodes), a group's by the first byte of its hex id. A profile picture a contact
//! published and we downloaded (image previews on) is shown instead, by its absolute path.

use std::collections::BTreeMap;

use cwtch::{ContactId, ConversationId, Onion, ProfileHandle};

/// What Go shows when a handle does not decode (never for a valid onion or group id).
pub(crate) const FALLBACK: &str = "extra/openprivacy.png";

/// The UI's profile pictures (`assets/profiles`), in Go's order.
const PROFILES: [&str; 50] = [
    "001-centaur",
    "002-kraken",
    "003-dinosaur",
    "004-tree-1",
    "005-hand",
    "006-echidna",
    "007-robot",
    "008-mushroom",
    "009-harpy",
    "010-phoenix",
    "011-dragon-1",
    "012-devil",
    "013-troll",
    "014-alien",
    "015-minotaur",
    "016-madre-monte",
    "017-satyr",
    "018-karakasakozou",
    "019-pirate",
    "020-werewolf",
    "021-scarecrow",
    "022-valkyrie",
    "023-curupira",
    "024-loch-ness-monster",
    "025-tree",
    "026-cerberus",
    "027-gryphon",
    "028-mermaid",
    "029-vampire",
    "030-goblin",
    "031-yeti",
    "032-leprechaun",
    "033-medusa",
    "034-chimera",
    "035-elf",
    "036-hydra",
    "037-cyclops",
    "038-pegasus",
    "039-narwhal",
    "040-woodcutter",
    "041-zombie",
    "042-dragon",
    "043-frankenstein",
    "044-witch",
    "045-fairy",
    "046-genie",
    "047-pinocchio",
    "048-ghost",
    "049-wizard",
    "050-unicorn",
];

/// The UI's group pictures (`assets/servers`), in order.
const GROUPS: [&str; 60] = [
    "001-borobudur",
    "002-opera-house",
    "003-burj-al-arab",
    "004-chrysler",
    "005-acropolis",
    "006-empire-state-building",
    "007-temple",
    "008-indonesia-1",
    "009-new-zealand",
    "010-notre-dame",
    "011-space-needle",
    "012-seoul",
    "013-mosque",
    "014-milan",
    "015-statue",
    "016-pyramid",
    "017-cologne",
    "018-brandenburg-gate",
    "019-berlin-cathedral",
    "020-hungarian-parliament",
    "021-buckingham",
    "022-thailand",
    "023-independence",
    "024-angkor-wat",
    "025-vaticano",
    "026-christ-the-redeemer",
    "027-colosseum",
    "028-golden-gate-bridge",
    "029-sphinx",
    "030-statue-of-liberty",
    "031-cradle-of-humankind",
    "032-istanbul",
    "033-london-eye",
    "034-sagrada-familia",
    "035-tower-bridge",
    "036-burj-khalifa",
    "037-washington",
    "038-big-ben",
    "039-stonehenge",
    "040-white-house",
    "041-ahu-tongariki",
    "042-capitol",
    "043-eiffel-tower",
    "044-church-of-the-savior-on-spilled-blood",
    "045-arc-de-triomphe",
    "046-windmill",
    "047-louvre",
    "048-torii-gate",
    "049-petronas",
    "050-matsumoto-castle",
    "051-fuji",
    "052-temple-of-heaven",
    "053-pagoda",
    "054-chichen-itza",
    "055-forbidden-city",
    "056-merlion",
    "057-great-wall-of-china",
    "058-taj-mahal",
    "059-pisa",
    "060-indonesia",
];

/// Go's `RandomProfileImage(onion)`.
pub(crate) fn default_profile_picture(onion: &str) -> String {
    match Onion::parse(onion) {
        Ok(o) => format!(
            "profiles/{}.png",
            PROFILES[usize::from(o.checksum()[1]) % PROFILES.len()]
        ),
        Err(_) => FALLBACK.to_owned(),
    }
}

/// Go's `RandomGroupImage(group_id)`: the group id is hex.
pub(crate) fn default_group_picture(group_id: &str) -> String {
    let first = group_id
        .get(..2)
        .filter(|_| {
            group_id.len().is_multiple_of(2) && group_id.bytes().all(|b| b.is_ascii_hexdigit())
        })
        .and_then(|h| u8::from_str_radix(h, 16).ok());
    match first {
        Some(b) => format!("servers/{}.png", GROUPS[usize::from(b) % GROUPS.len()]),
        None => FALLBACK.to_owned(),
    }
}

/// A contact's `picture`: the profile picture it published, if image previews are on and
/// it was downloaded and checked; otherwise its default.
pub(crate) async fn contact_picture(p: &ProfileHandle, conv: i64, onion: &str) -> String {
    let custom = if p.image_previews() {
        p.profile_image(ContactId::Conversation(ConversationId(conv)))
            .await
            .ok()
            .flatten()
    } else {
        None
    };
    match custom {
        Some(image) => absolute(&image.path),
        None => default_profile_picture(onion),
    }
}

/// A group member's `picture` (in `NewMessageFromGroup`): a contact's as
/// [`contact_picture`], anyone else's default.
pub(crate) async fn member_picture(p: &ProfileHandle, onion: &str) -> String {
    let conv = match Onion::parse(onion) {
        Ok(o) => p.contact(ContactId::Onion(o)).await.ok(),
        Err(_) => None,
    };
    match conv {
        Some(c) => contact_picture(p, c.conversation_id.0, onion).await,
        None => default_profile_picture(onion),
    }
}

/// Our own `picture` (in `NewPeer`): the file we set as our profile picture, if it is still
/// there; otherwise our default.
pub(crate) async fn our_picture(p: &ProfileHandle) -> String {
    match p.our_profile_image().await {
        Ok(Some(path)) => absolute(&path.to_string_lossy()),
        _ => default_profile_picture(p.onion().as_str()),
    }
}

/// A message author's picture (`ContactImage`): ours, a contact's, or anyone else's default.
pub(crate) async fn author_picture(p: &ProfileHandle, author: &str) -> String {
    if author == p.onion().as_str() {
        our_picture(p).await
    } else {
        member_picture(p, author).await
    }
}

/// [`author_picture`]s of a list of messages, each author's looked up once.
pub(crate) struct AuthorPictures<'a> {
    p: &'a ProfileHandle,
    known: BTreeMap<String, String>,
}

impl<'a> AuthorPictures<'a> {
    pub(crate) fn new(p: &'a ProfileHandle) -> Self {
        AuthorPictures {
            p,
            known: BTreeMap::new(),
        }
    }

    pub(crate) async fn of(&mut self, author: &str) -> String {
        if let Some(known) = self.known.get(author) {
            return known.clone();
        }
        let picture = author_picture(self.p, author).await;
        self.known.insert(author.to_owned(), picture.clone());
        picture
    }
}

/// Go hands clients absolute paths (`filepath.Abs`).
fn absolute(path: &str) -> String {
    std::path::absolute(path)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values worked out apart from this code (Python's `base64.b32decode`).
    #[test]
    fn profiles_are_chosen_by_the_second_checksum_byte() {
        for (onion, picture) in [
            (
                "isbr2t6bflul2zyi6hjtnuezb2xvfr42svzjg2q3gyqfgg3wmnrbkkqd",
                "profiles/043-frankenstein.png",
            ),
            (
                "li53q6juafu4avr7rtyltmsq2ujyy7scrr3ftnkrlicsxew67xq64syd",
                "profiles/026-cerberus.png",
            ),
            (
                "ur33edbwvbevcls5ue6jpkoubdptgkgl5bedzfyau2ibf5276lyp4uid",
                "profiles/032-leprechaun.png",
            ),
        ] {
            assert_eq!(default_profile_picture(onion), picture);
        }
        assert_eq!(default_profile_picture("not an onion"), FALLBACK);
    }

    #[test]
    fn groups_are_chosen_by_the_first_byte_of_their_id() {
        assert_eq!(
            default_group_picture("8c1d2c83a3e0c8d0ac1b2e0b6b1a9f44"),
            "servers/021-buckingham.png"
        );
        assert_eq!(default_group_picture("ff00"), "servers/016-pyramid.png");
        assert_eq!(default_group_picture("00"), "servers/001-borobudur.png");
        for bad in ["", "0", "zz", "0g11", "é1"] {
            assert_eq!(default_group_picture(bad), FALLBACK, "{bad:?}");
        }
    }
}
