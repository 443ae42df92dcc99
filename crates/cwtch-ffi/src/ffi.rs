//! The exported C functions, one per declaration of `include/libCwtch.h` (autobindings
//! v0.0.12), in the header's order, with the header's signatures.
//!
//! Strings are Go-style `(char* ptr, int len)` pairs: `len` bytes at `ptr`, no terminating
//! NUL needed; `(NULL, 0)` is the empty string. A null pointer with a non-zero length, a
//! negative length or bytes that are not UTF-8 make the call fail cleanly. Every `char*`
//! returned is ours, never null, and must be freed with [`c_FreePointer`].
//!
//! Errors: a function that returns JSON returns an error JSON (`{"error": "..."}`, or for
//! attributes `{"Exists":false,"Value":"","Error":"..."}`); one that returns another string
//! returns the empty string (or Go's error answer, see each); a `void` function reports the
//! error as an `AppError` event on the app bus (`Error`: `"c_Name: <reason>"`) and in the log.
//! No panic crosses into C.
//!
//! # Safety (every function)
//!
//! Each `(ptr, len)` pair must have `len <= 0`, or a null `ptr`, or `ptr` pointing to at
//! least `len` readable bytes that stay unchanged during the call; a pointer passed to
//! [`c_FreePointer`] must be one this library returned (others are ignored, but passing
//! freed memory that has since been reused by the host is still the host's bug).

use std::ffi::{c_char, c_int, c_uint};

use tracing::warn;

use crate::app::{global, CallResult, Global};
use crate::cabi::{bool_arg, free_string, give_string, guard};
use crate::json::{error_json, to_json, Attribute, GoEvent};
use crate::ops;

/// Read a `(ptr, len)` password argument, as [`arg!`], into memory wiped when dropped.
macro_rules! secret_arg {
    ($name:literal, $ptr:expr, $len:expr) => {
        zeroize::Zeroizing::new(arg!($name, $ptr, $len))
    };
}

/// Read a `(ptr, len)` string argument inside a call body returning `CallResult`.
macro_rules! arg {
    ($name:literal, $ptr:expr, $len:expr) => {
        // SAFETY: the caller of the exported function promises that this (pointer, length)
        // pair is null or describes readable, unchanging bytes (module docs, "Safety").
        unsafe { crate::cabi::str_arg($name, $ptr, $len) }.map_err(|e| e.to_string())?
    };
}

/// Log a failed call: which one, and why only with unsafe logging (an error's text can
/// name files, folders and contacts; the host gets it whole in the `AppError` or the
/// returned value).
fn log_failure(name: &str, e: &str) {
    warn!(function = name, error = %cwtch::Sensitive(e), "call failed");
}

fn report(g: &Global, name: &str, e: &str) {
    log_failure(name, e);
    g.emit(GoEvent::app_error(&format!("{name}: {e}"), ""));
}

/// A `void` function: errors become an `AppError` event.
fn void_call(name: &'static str, f: impl FnOnce(&'static Global) -> CallResult<()>) {
    guard(
        name,
        || (),
        || {
            let Some(g) = global() else { return };
            if let Err(e) = f(g) {
                report(g, name, &e);
            }
        },
    )
}

/// A function returning a string: `on_error` makes the error value.
fn string_call(
    name: &'static str,
    on_error: fn(&str) -> String,
    f: impl FnOnce(&'static Global) -> CallResult<String>,
) -> *mut c_char {
    guard(
        name,
        || give_string(on_error("internal error (panic)")),
        || {
            let Some(g) = global() else {
                return give_string(on_error("libCwtch could not start its runtime"));
            };
            match f(g) {
                Ok(s) => give_string(s),
                Err(e) => {
                    log_failure(name, &e);
                    give_string(on_error(&format!("{name}: {e}")))
                }
            }
        },
    )
}

fn empty(_: &str) -> String {
    String::new()
}

fn attribute_error(e: &str) -> String {
    to_json(&Attribute {
        Exists: false,
        Value: String::new(),
        Error: Some(e.to_owned()),
    })
}

/// Free a string this library returned. Null, foreign and already-freed pointers are
/// ignored (and logged).
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_FreePointer(ptr: *mut c_char) {
    guard(
        "c_FreePointer",
        || (),
        || {
            free_string(ptr);
        },
    )
}

/// 1 if Cwtch is started (after `CwtchStarted`), 0 if not.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_Started() -> c_int {
    guard(
        "c_Started",
        || 0,
        || global().map(|g| c_int::from(g.started())).unwrap_or(0),
    )
}

/// Start Cwtch with its files in `dir` and tor at `tor` (empty: `tor` on PATH), in the
/// background: `ACNStatus`, `UpdateGlobalSettings`, then `CwtchStarted` (or
/// `CwtchStartError`) follow on the app bus. `CWTCH_NETWORK=loopback` (with
/// `CWTCH_LOOPBACK_DIR`) selects the loopback network instead: NO ANONYMITY, tests only.
/// Returns 0 when starting, 1 when already started, -1 on invalid arguments (ours).
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_StartCwtch(
    dir_c: *mut c_char,
    len: c_int,
    tor_c: *mut c_char,
    torLen: c_int,
) -> c_int {
    guard(
        "c_StartCwtch",
        || -1,
        || {
            let args = || -> CallResult<(String, String)> {
                Ok((arg!("dir", dir_c, len), arg!("tor", tor_c, torLen)))
            };
            let Some(g) = global() else { return -1 };
            match args() {
                Ok((dir, tor)) => g.start(dir, tor),
                Err(e) => {
                    report(g, "c_StartCwtch", &e);
                    -1
                }
            }
        },
    )
}

/// The next event of the app bus (JSON `{"EventType","EventID","Data"}`), blocking until
/// there is one (before `c_StartCwtch` too, as Go's). Free it with [`c_FreePointer`].
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_GetAppBusEvent() -> *mut c_char {
    string_call(
        "c_GetAppBusEvent",
        |e| to_json(&GoEvent::app_error(e, "")),
        |g| Ok(g.bus.pop_blocking()),
    )
}

/// Send the state again (a `NewPeer` per loaded profile with `Reload`, the settings, the
/// network status), for a client that lost its own.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_ReconnectCwtchForeground() {
    void_call("c_ReconnectCwtchForeground", |g| {
        let r = g.running()?;
        g.call(ops::reconnect(g, &r));
        Ok(())
    })
}

/// Stop every profile and the network (synchronous). `c_StartCwtch` may be called again.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_ShutdownCwtch() {
    void_call("c_ShutdownCwtch", |g| {
        g.shutdown();
        Ok(())
    })
}

/// Set a profile attribute. A key without a scope is `public.` (Go: "only public.profile
/// for now"); `profile.name` renames the profile.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_SetProfileAttribute(
    profile_ptr: *mut c_char,
    profile_len: c_int,
    key_ptr: *mut c_char,
    key_len: c_int,
    val_ptr: *mut c_char,
    val_len: c_int,
) {
    void_call("c_SetProfileAttribute", |g| {
        let (p, k, v) = (
            arg!("profile", profile_ptr, profile_len),
            arg!("key", key_ptr, key_len),
            arg!("value", val_ptr, val_len),
        );
        let r = g.running()?;
        g.call(ops::set_profile_attribute(&r, &p, &k, &v))
    })
}

/// A profile attribute: `{"Exists": bool, "Value": string}`.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_GetProfileAttribute(
    profile_ptr: *mut c_char,
    profile_len: c_int,
    key_ptr: *mut c_char,
    key_len: c_int,
) -> *mut c_char {
    string_call("c_GetProfileAttribute", attribute_error, |g| {
        let (p, k) = (
            arg!("profile", profile_ptr, profile_len),
            arg!("key", key_ptr, key_len),
        );
        let r = g.running()?;
        Ok(to_json(&g.call(ops::get_profile_attribute(&r, &p, &k))))
    })
}

/// Set a conversation attribute (a key without a scope is `local.`).
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_SetConversationAttribute(
    profile_ptr: *mut c_char,
    profile_len: c_int,
    conversation_id: c_int,
    key_ptr: *mut c_char,
    key_len: c_int,
    val_ptr: *mut c_char,
    val_len: c_int,
) {
    void_call("c_SetConversationAttribute", |g| {
        let (p, k, v) = (
            arg!("profile", profile_ptr, profile_len),
            arg!("key", key_ptr, key_len),
            arg!("value", val_ptr, val_len),
        );
        let r = g.running()?;
        g.call(ops::set_conversation_attribute(
            &r,
            &p,
            conversation_id,
            &k,
            &v,
        ))
    })
}

/// A conversation attribute: `{"Exists": bool, "Value": string}`.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_GetConversationAttribute(
    profile_ptr: *mut c_char,
    profile_len: c_int,
    conversation_id: c_int,
    key_ptr: *mut c_char,
    key_len: c_int,
) -> *mut c_char {
    string_call("c_GetConversationAttribute", attribute_error, |g| {
        let (p, k) = (
            arg!("profile", profile_ptr, profile_len),
            arg!("key", key_ptr, key_len),
        );
        let r = g.running()?;
        Ok(to_json(&g.call(ops::get_conversation_attribute(
            &r,
            &p,
            conversation_id,
            &k,
        ))))
    })
}

/// Restart the network (Go's `ACN.Restart()`): circuits dropped, bootstrap again
/// (`ACNStatus` follows); hosted onion services stay hosted.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_ResetTor() {
    void_call("c_ResetTor", |g| {
        let r = g.running()?;
        g.call(r.acn().restart())
            .map_err(|e| format!("network restart: {e}"))
    })
}

/// Save the settings (Go's `GlobalSettings` JSON); `UpdateGlobalSettings` follows if they
/// changed. `BlockUnknownConnections` applies to every profile.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_UpdateSettings(json_ptr: *mut c_char, json_len: c_int) {
    void_call("c_UpdateSettings", |g| {
        let json = arg!("json", json_ptr, json_len);
        let r = g.running()?;
        g.call(ops::update_settings(g, &r, &json))
    })
}

/// Ours: `{"Implementation","Version","Started","LoadedProfiles"}` (Go's: Go runtime
/// statistics).
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_GetDebugInfo() -> *mut c_char {
    string_call("c_GetDebugInfo", error_json, |g| Ok(ops::debug_info(g)))
}

/// Activate a loaded profile's engine (profiles load active): it listens, dials and joins
/// again as its connections configuration (`c_ConfigureConnections`) says.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_ActivatePeerEngine(onion_ptr: *mut c_char, onion_len: c_int) {
    void_call("c_ActivatePeerEngine", |g| {
        let p = arg!("profile", onion_ptr, onion_len);
        let r = g.running()?;
        g.call(ops::set_engine_active(&r, &p, true))
    })
}

/// Deactivate a profile's engine: the onion service is taken down, every connection (contacts,
/// servers) closed (`PeerStateChange`/`ServerStateChange` `Disconnected`), nothing dialled,
/// also on request, until `c_ActivatePeerEngine` or `c_ConfigureConnections`. The profile
/// stays loaded and usable; messages sent meanwhile wait, stored.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_DeactivatePeerEngine(onion_ptr: *mut c_char, onion_len: c_int) {
    void_call("c_DeactivatePeerEngine", |g| {
        let p = arg!("profile", onion_ptr, onion_len);
        let r = g.running()?;
        g.call(ops::set_engine_active(&r, &p, false))
    })
}

/// What a profile's engine does on its own: `listen` (host the onion service), `peers` (dial
/// accepted contacts), `servers` (connect to the servers of accepted groups); 1 is true.
/// What is turned off stops now; the engine is activated. Not stored: profiles load with all
/// three on.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_ConfigureConnections(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    listen1: c_char,
    peers2: c_char,
    servers3: c_char,
) {
    void_call("c_ConfigureConnections", |g| {
        let p = arg!("profile", onion_ptr, onion_len);
        let r = g.running()?;
        g.call(ops::configure_connections(
            &r,
            &p,
            bool_arg(listen1),
            bool_arg(peers2),
            bool_arg(servers3),
        ))
    })
}

/// Create a profile and load it: `NewPeer` (`Created: "true"`) follows. Without `autostart`
/// it loads deactivated (now and on every load: nothing goes online until
/// `c_ActivatePeerEngine`); `NewPeer`'s `autostart` says which.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_CreateProfile(
    name_ptr: *mut c_char,
    name_len: c_int,
    password_ptr: *mut c_char,
    password_len: c_int,
    autostart4: c_char,
) {
    void_call("c_CreateProfile", |g| {
        let (name, pass) = (
            arg!("name", name_ptr, name_len),
            secret_arg!("password", password_ptr, password_len),
        );
        let r = g.running()?;
        g.call(ops::create_profile(&r, &name, &pass, bool_arg(autostart4)))
    })
}

/// Load every profile this password opens: a `NewPeer` each, or `AppError` `Loaded 0
/// profiles` when none was loaded.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_LoadProfiles(password_ptr: *mut c_char, password_len: c_int) {
    void_call("c_LoadProfiles", |g| {
        let pass = secret_arg!("password", password_ptr, password_len);
        let r = g.running()?;
        if g.call(ops::load_profiles(&r, &pass))? == 0 {
            g.emit(GoEvent::app_error(ops::LOADED_0_PROFILES, ""));
        }
        Ok(())
    })
}

/// Delete a profile (the password must open it): `PeerDeleted` follows.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_DeleteProfile(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    password_ptr: *mut c_char,
    password_len: c_int,
) {
    void_call("c_DeleteProfile", |g| {
        let (p, pass) = (
            arg!("profile", onion_ptr, onion_len),
            secret_arg!("password", password_ptr, password_len),
        );
        let r = g.running()?;
        g.call(ops::delete_profile(g, &r, &p, &pass))
    })
}

/// Import an exported profile and load it (`NewPeer` follows). Returns the empty string on
/// success, the error otherwise (UNCONFIRMED Go answer).
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_ImportProfile(
    file5_ptr: *mut c_char,
    file5_len: c_int,
    password_ptr: *mut c_char,
    password_len: c_int,
) -> *mut c_char {
    string_call("c_ImportProfile", str::to_owned, |g| {
        let (file, pass) = (
            arg!("file", file5_ptr, file5_len),
            secret_arg!("password", password_ptr, password_len),
        );
        let r = g.running()?;
        g.call(ops::import_profile(&r, &file, &pass))?;
        Ok(String::new())
    })
}

/// Change a loaded profile's password (`newPassword` and `newPasswordAgain` must match).
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_ChangePassword(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    current6_ptr: *mut c_char,
    current6_len: c_int,
    newPassword7_ptr: *mut c_char,
    newPassword7_len: c_int,
    newPasswordAgain8_ptr: *mut c_char,
    newPasswordAgain8_len: c_int,
) {
    void_call("c_ChangePassword", |g| {
        let (p, cur, new, again) = (
            arg!("profile", onion_ptr, onion_len),
            secret_arg!("current", current6_ptr, current6_len),
            secret_arg!("newPassword", newPassword7_ptr, newPassword7_len),
            secret_arg!(
                "newPasswordAgain",
                newPasswordAgain8_ptr,
                newPasswordAgain8_len
            ),
        );
        let r = g.running()?;
        g.call(ops::change_password(&r, &p, &cur, &new, &again))
    })
}

/// Export a loaded profile to a new file (Go's archive format).
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_ExportProfile(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    file9_ptr: *mut c_char,
    file9_len: c_int,
) {
    void_call("c_ExportProfile", |g| {
        let (p, file) = (
            arg!("profile", onion_ptr, onion_len),
            arg!("file", file9_ptr, file9_len),
        );
        let r = g.running()?;
        g.call(ops::export_profile(&r, &p, &file))
    })
}

/// Import a bundle: a peer's onion (adds the contact, accepted), a `server:` bundle, or a
/// group invite (`tofubundle:`/`torv3`). Returns `importBundle.success`, or
/// `importBundle.` followed by the error (UNCONFIRMED wording).
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_ImportBundle(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    bundle10_ptr: *mut c_char,
    bundle10_len: c_int,
) -> *mut c_char {
    string_call(
        "c_ImportBundle",
        // Go's answer is `importBundle.` and the reason (not the function's name again).
        |e| {
            let why = e.strip_prefix("c_ImportBundle: ").unwrap_or(e);
            format!("importBundle.{why}")
        },
        |g| {
            let (p, bundle) = (
                arg!("profile", onion_ptr, onion_len),
                arg!("bundle", bundle10_ptr, bundle10_len),
            );
            let r = g.running()?;
            g.call(ops::import_bundle(&r, &p, &bundle))?;
            Ok("importBundle.success".to_owned())
        },
    )
}

/// Archive a contact conversation (`local.profile.archived` = `true`; `isArchived` in
/// `ContactsJson`).
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_ArchiveConversation(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    conversation: c_int,
) {
    void_call("c_ArchiveConversation", |g| {
        let p = arg!("profile", onion_ptr, onion_len);
        let r = g.running()?;
        g.call(ops::archive(&r, &p, conversation))
    })
}

/// Accept a contact request (or a group invite).
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_AcceptConversation(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    conversation: c_int,
) {
    void_call("c_AcceptConversation", |g| {
        let p = arg!("profile", onion_ptr, onion_len);
        let r = g.running()?;
        g.call(ops::accept(&r, &p, conversation))
    })
}

/// Block a contact.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_BlockConversation(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    conversation: c_int,
) {
    void_call("c_BlockConversation", |g| {
        let p = arg!("profile", onion_ptr, onion_len);
        let r = g.running()?;
        g.call(ops::block(&r, &p, conversation, true))
    })
}

/// Unblock a contact.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_UnblockConversation(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    conversation: c_int,
) {
    void_call("c_UnblockConversation", |g| {
        let p = arg!("profile", onion_ptr, onion_len);
        let r = g.running()?;
        g.call(ops::block(&r, &p, conversation, false))
    })
}

/// Delete a contact and its messages, or leave a group.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_DeleteConversation(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    conversation: c_int,
) {
    void_call("c_DeleteConversation", |g| {
        let p = arg!("profile", onion_ptr, onion_len);
        let r = g.running()?;
        g.call(ops::delete_conversation(&r, &p, conversation))
    })
}

/// Connect to a contact (its onion) now: `PeerStateChange` follows. An accepted contact is
/// dialled at once and kept connected; a pending one (or any, with peers off in
/// `c_ConfigureConnections`) gets one attempt. Undoes `c_DisconnectFromPeer`. Unknown and
/// blocked contacts are errors (import an onion with `c_ImportBundle` first).
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_PeerWithOnion(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    handle11_ptr: *mut c_char,
    handle11_len: c_int,
) {
    void_call("c_PeerWithOnion", |g| {
        let (p, handle) = (
            arg!("profile", onion_ptr, onion_len),
            arg!("handle", handle11_ptr, handle11_len),
        );
        let r = g.running()?;
        g.call(ops::peer_with(&r, &p, &handle))
    })
}

/// Close every connection to a contact (`PeerStateChange` `Disconnected`) and stop dialling
/// it until `c_PeerWithOnion` (or the profile is loaded again). The contact may still
/// connect to us.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_DisconnectFromPeer(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    handle12_ptr: *mut c_char,
    handle12_len: c_int,
) {
    void_call("c_DisconnectFromPeer", |g| {
        let (p, handle) = (
            arg!("profile", onion_ptr, onion_len),
            arg!("handle", handle12_ptr, handle12_len),
        );
        let r = g.running()?;
        g.call(ops::disconnect_from_peer(&r, &p, &handle))
    })
}

/// A contact's access control list, `{"<onion>": {"Blocked", "Read", "Append",
/// "AutoConnect", "ExchangeAttributes", "ShareFiles", "RenderImages"}}`, derived from its
/// accepted/blocked state.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_GetConversationAccessControlList(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    conversation: c_int,
) -> *mut c_char {
    string_call("c_GetConversationAccessControlList", error_json, |g| {
        let p = arg!("profile", onion_ptr, onion_len);
        let r = g.running()?;
        Ok(to_json(&g.call(ops::access_control_list(
            &r,
            &p,
            conversation,
        ))?))
    })
}

/// Apply a contact's access control list, as far as this library models it: `Blocked`
/// blocks; otherwise `Read`/`Append` accept (and unblock). File-sharing and image
/// permissions, and entries for other handles, are refused (not yet).
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_UpdateConversationAccessControlList(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    conversation: c_int,
    json13_ptr: *mut c_char,
    json13_len: c_int,
) {
    void_call("c_UpdateConversationAccessControlList", |g| {
        let (p, json) = (
            arg!("profile", onion_ptr, onion_len),
            arg!("json", json13_ptr, json13_len),
        );
        let r = g.running()?;
        g.call(ops::update_acl(&r, &p, conversation, &json))
    })
}

/// Search the messages of every conversation for `pattern` (case-insensitively, in the text
/// a user reads). Returns the search id; one `SearchResult {ProfileOnion, SearchID,
/// ConversationID, Index, RowIndex}` per match follows, then `SearchFinished {ProfileOnion,
/// SearchID, NumResults}`. On error (unknown profile, empty pattern): the empty string.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_SearchConversations(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    pattern14_ptr: *mut c_char,
    pattern14_len: c_int,
) -> *mut c_char {
    string_call("c_SearchConversations", empty, |g| {
        let (p, pattern) = (
            arg!("profile", onion_ptr, onion_len),
            arg!("pattern", pattern14_ptr, pattern14_len),
        );
        let r = g.running()?;
        g.call(ops::search(g, &r, &p, &pattern))
    })
}

/// Send an overlay message (`{"o": 1, "d": "hi"}`) to a contact or a group: stored, then sent
/// when connected. Returns the stored message (`EnhancedMessage` JSON) or an error JSON.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_SendMessage(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    conversation: c_int,
    msg15_ptr: *mut c_char,
    msg15_len: c_int,
) -> *mut c_char {
    string_call("c_SendMessage", error_json, |g| {
        let (p, msg) = (
            arg!("profile", onion_ptr, onion_len),
            arg!("message", msg15_ptr, msg15_len),
        );
        let r = g.running()?;
        Ok(to_json(&g.call(ops::send_message(
            &r,
            &p,
            conversation,
            &msg,
        ))?))
    })
}

/// One message of a contact conversation by id (`EnhancedMessage` JSON), or an error JSON.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_GetMessageById(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    conversation: c_int,
    message_id: c_int,
) -> *mut c_char {
    string_call("c_GetMessageById", error_json, |g| {
        let p = arg!("profile", onion_ptr, onion_len);
        let r = g.running()?;
        Ok(to_json(&g.call(ops::message_by_id(
            &r,
            &p,
            conversation,
            message_id,
        ))?))
    })
}

/// The newest message with this content hash (`EnhancedMessage` JSON), or an error JSON.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_GetMessageByContentHash(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    conversation: c_int,
    contentHash16_ptr: *mut c_char,
    contentHash16_len: c_int,
) -> *mut c_char {
    string_call("c_GetMessageByContentHash", error_json, |g| {
        let (p, hash) = (
            arg!("profile", onion_ptr, onion_len),
            arg!("contentHash", contentHash16_ptr, contentHash16_len),
        );
        let r = g.running()?;
        Ok(to_json(&g.call(ops::message_by_hash(
            &r,
            &p,
            conversation,
            &hash,
        ))?))
    })
}

/// `count` messages, newest first, after skipping the `index` newest: a JSON array of
/// `EnhancedMessage`, or an error JSON.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_GetMessages(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    conversation: c_int,
    index: c_int,
    count: c_uint,
) -> *mut c_char {
    string_call("c_GetMessages", error_json, |g| {
        let p = arg!("profile", onion_ptr, onion_len);
        let r = g.running()?;
        Ok(to_json(&g.call(ops::messages(
            &r,
            &p,
            conversation,
            index,
            count,
        ))?))
    })
}

/// Invite contact `conversation` to the group `target`, or suggest the contact `target` to
/// it; returns the message sent (`EnhancedMessage` JSON) or an error JSON.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_SendInviteMessage(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    conversation: c_int,
    target: c_int,
) -> *mut c_char {
    string_call("c_SendInviteMessage", error_json, |g| {
        let p = arg!("profile", onion_ptr, onion_len);
        let r = g.running()?;
        Ok(to_json(&g.call(ops::send_invite(
            &r,
            &p,
            conversation,
            target,
        ))?))
    })
}

/// Set an attribute of a message (channel 0), stored with it and shown in the message's
/// `Attributes`. The keys the library keeps (`author`, `ack`, `sent`, `error`, `rs.*`) are
/// refused.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_UpdateMessageAttribute(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    conversation: c_int,
    channel_id: c_int,
    message_id: c_int,
    attributeKey17_ptr: *mut c_char,
    attributeKey17_len: c_int,
    attributeValue18_ptr: *mut c_char,
    attributeValue18_len: c_int,
) {
    void_call("c_UpdateMessageAttribute", |g| {
        let (p, k, v) = (
            arg!("profile", onion_ptr, onion_len),
            arg!("key", attributeKey17_ptr, attributeKey17_len),
            arg!("value", attributeValue18_ptr, attributeValue18_len),
        );
        let r = g.running()?;
        g.call(ops::update_message_attribute(
            &r,
            &p,
            conversation,
            channel_id,
            message_id,
            &k,
            &v,
        ))
    })
}

/// Create a group on an imported server (`GroupCreated` follows).
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_StartGroup(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    name19_ptr: *mut c_char,
    name19_len: c_int,
    server20_ptr: *mut c_char,
    server20_len: c_int,
) {
    void_call("c_StartGroup", |g| {
        let (p, name, server) = (
            arg!("profile", onion_ptr, onion_len),
            arg!("name", name19_ptr, name19_len),
            arg!("server", server20_ptr, server20_len),
        );
        let r = g.running()?;
        g.call(ops::start_group(&r, &p, &name, &server))
    })
}

/// Connect to a server (its onion) now and stay connected (`ServerStateChange` follows),
/// also with servers off in `c_ConfigureConnections`; undoes `c_DisconnectFromServer`. The
/// server must be imported and used by an accepted group.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_QueueJoinServer(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    handle21_ptr: *mut c_char,
    handle21_len: c_int,
) {
    void_call("c_QueueJoinServer", |g| {
        let (p, server) = (
            arg!("profile", onion_ptr, onion_len),
            arg!("server", handle21_ptr, handle21_len),
        );
        let r = g.running()?;
        g.call(ops::join_server(&r, &p, &server))
    })
}

/// Close the connection to a server (`ServerStateChange` `Disconnected`) and stay away until
/// `c_QueueJoinServer` (or the profile is loaded again); posts to its groups wait, stored.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_DisconnectFromServer(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    handle22_ptr: *mut c_char,
    handle22_len: c_int,
) {
    void_call("c_DisconnectFromServer", |g| {
        let (p, server) = (
            arg!("profile", onion_ptr, onion_len),
            arg!("server", handle22_ptr, handle22_len),
        );
        let r = g.running()?;
        g.call(ops::disconnect_from_server(&r, &p, &server))
    })
}

/// Send the profile's servers again: `UpdateServerInfo {ProfileOnion, ServerList}`, as
/// `c_GetServerInfoList` (UNCONFIRMED: recalled from Go's autobindings).
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_PublishServerUpdate(onion_ptr: *mut c_char, onion_len: c_int) {
    void_call("c_PublishServerUpdate", |g| {
        let p = arg!("profile", onion_ptr, onion_len);
        let r = g.running()?;
        g.call(ops::server_info(g, &r, &p))
    })
}

/// Send the profile's servers: `UpdateServerInfo {ProfileOnion, ServerList}`.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_GetServerInfoList(onion_ptr: *mut c_char, onion_len: c_int) {
    void_call("c_GetServerInfoList", |g| {
        let p = arg!("profile", onion_ptr, onion_len);
        let r = g.running()?;
        g.call(ops::server_info(g, &r, &p))
    })
}

/// Remove an imported server.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_DeleteServerInfo(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    serverOnion23_ptr: *mut c_char,
    serverOnion23_len: c_int,
) {
    void_call("c_DeleteServerInfo", |g| {
        let (p, server) = (
            arg!("profile", onion_ptr, onion_len),
            arg!("server", serverOnion23_ptr, serverOnion23_len),
        );
        let r = g.running()?;
        g.call(ops::delete_server_info(&r, &p, &server))
    })
}

/// Download a file a contact offered (`filekey`) into the directory of `filepath`, under the
/// name it was offered with (this library names downloads itself; `manifest` is not used);
/// `FileDownloadProgressUpdate` and `FileDownloaded` follow.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_DownloadFileDefaultLimit(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    conversation: c_int,
    filepath24_ptr: *mut c_char,
    filepath24_len: c_int,
    manifest25_ptr: *mut c_char,
    manifest25_len: c_int,
    filekey26_ptr: *mut c_char,
    filekey26_len: c_int,
) {
    void_call("c_DownloadFileDefaultLimit", |g| {
        let (p, path, _manifest, key) = (
            arg!("profile", onion_ptr, onion_len),
            arg!("filepath", filepath24_ptr, filepath24_len),
            arg!("manifest", manifest25_ptr, manifest25_len),
            arg!("filekey", filekey26_ptr, filekey26_len),
        );
        let r = g.running()?;
        g.call(ops::download(&r, &p, conversation, &path, &key))
    })
}

/// Serve a file we share again.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_RestartFileShare(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    filekey27_ptr: *mut c_char,
    filekey27_len: c_int,
) {
    void_call("c_RestartFileShare", |g| {
        let (p, key) = (
            arg!("profile", onion_ptr, onion_len),
            arg!("filekey", filekey27_ptr, filekey27_len),
        );
        let r = g.running()?;
        g.call(ops::set_sharing(&r, &p, &key, true))
    })
}

/// Stop serving a file we share.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_StopFileShare(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    filekey28_ptr: *mut c_char,
    filekey28_len: c_int,
) {
    void_call("c_StopFileShare", |g| {
        let (p, key) = (
            arg!("profile", onion_ptr, onion_len),
            arg!("filekey", filekey28_ptr, filekey28_len),
        );
        let r = g.running()?;
        g.call(ops::set_sharing(&r, &p, &key, false))
    })
}

/// Announce a completed download again (`FileDownloaded`); nothing while it runs (progress
/// comes as `FileDownloadProgressUpdate`).
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_CheckDownloadStatus(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    filekey29_ptr: *mut c_char,
    filekey29_len: c_int,
) {
    void_call("c_CheckDownloadStatus", |g| {
        let (p, key) = (
            arg!("profile", onion_ptr, onion_len),
            arg!("filekey", filekey29_ptr, filekey29_len),
        );
        let r = g.running()?;
        g.call(ops::check_download(g, &r, &p, &key))
    })
}

/// A completed download is announced again (`FileDownloaded`; its chunks were verified when
/// written); an unfinished one is resumed.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_VerifyOrResumeDownloadDefaultLimit(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    conversation: c_int,
    filekey30_ptr: *mut c_char,
    filekey30_len: c_int,
) {
    void_call("c_VerifyOrResumeDownloadDefaultLimit", |g| {
        let (p, key) = (
            arg!("profile", onion_ptr, onion_len),
            arg!("filekey", filekey30_ptr, filekey30_len),
        );
        let r = g.running()?;
        g.call(ops::verify_or_resume(g, &r, &p, conversation, &key))
    })
}

/// Share a file with a contact or a group: returns the file message sent (`EnhancedMessage`
/// JSON), or an error JSON. Conversation -1: the file becomes the profile's picture (checked
/// as an image, shared with every accepted contact, its key published as
/// `public.profile.custom-profile-image`); returns `{"FileKey": …}`.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_ShareFile(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    conversation: c_int,
    filepath31_ptr: *mut c_char,
    filepath31_len: c_int,
) -> *mut c_char {
    string_call("c_ShareFile", error_json, |g| {
        let (p, path) = (
            arg!("profile", onion_ptr, onion_len),
            arg!("filepath", filepath31_ptr, filepath31_len),
        );
        let r = g.running()?;
        Ok(to_json(&g.call(ops::share_file(
            &r,
            &p,
            conversation,
            &path,
        ))?))
    })
}

/// Our shares in a conversation: a JSON array of `{FileKey, Path, DateShared, Active,
/// Expired}` (`DateShared` empty, `Expired` false), or an error JSON.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_GetSharedFiles(
    onion_ptr: *mut c_char,
    onion_len: c_int,
    conversation: c_int,
) -> *mut c_char {
    string_call("c_GetSharedFiles", error_json, |g| {
        let p = arg!("profile", onion_ptr, onion_len);
        let r = g.running()?;
        Ok(to_json(&g.call(ops::shared_files(&r, &p, conversation))?))
    })
}

/// Create a server hosted by this app (`NewServer`), launched if `autostart`
/// (`ServerIntentUpdate`); its config is encrypted with the password (Go's default one
/// protects nothing, as in Go).
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_CreateServer(
    password_ptr: *mut c_char,
    password_len: c_int,
    description32_ptr: *mut c_char,
    description32_len: c_int,
    autostart33: c_char,
) {
    void_call("c_CreateServer", |g| {
        let (pass, description) = (
            secret_arg!("password", password_ptr, password_len),
            arg!("description", description32_ptr, description32_len),
        );
        let r = g.running()?;
        g.call(
            r.servers
                .create(g, &r, &pass, &description, bool_arg(autostart33)),
        )
    })
}

/// Set a hosted server's attribute (kept in its `serverConfig.json`).
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_SetServerAttribute(
    handle34_ptr: *mut c_char,
    handle34_len: c_int,
    key35_ptr: *mut c_char,
    key35_len: c_int,
    val36_ptr: *mut c_char,
    val36_len: c_int,
) {
    void_call("c_SetServerAttribute", |g| {
        let (server, k, v) = (
            arg!("server", handle34_ptr, handle34_len),
            arg!("key", key35_ptr, key35_len),
            arg!("value", val36_ptr, val36_len),
        );
        let r = g.running()?;
        g.call(r.servers.set_attribute(&server, &k, &v))
    })
}

/// Load the servers hosted in `<appDir>/servers` (`NewServer` each; autostart ones launched).
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_LoadServers(password_ptr: *mut c_char, password_len: c_int) {
    void_call("c_LoadServers", |g| {
        let pass = secret_arg!("password", password_ptr, password_len);
        let r = g.running()?;
        g.call(r.servers.load(g, &r, &pass))
    })
}

/// Launch every loaded server.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_LaunchServers() {
    void_call("c_LaunchServers", |g| {
        let r = g.running()?;
        g.call(r.servers.launch_all(g, &r))
    })
}

/// Launch a loaded server (`ServerIntentUpdate` `running`).
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_LaunchServer(handle37_ptr: *mut c_char, handle37_len: c_int) {
    void_call("c_LaunchServer", |g| {
        let server = arg!("server", handle37_ptr, handle37_len);
        let r = g.running()?;
        g.call(r.servers.launch(g, &r, &server))
    })
}

/// Stop a server (`ServerIntentUpdate` `stopped`).
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_StopServer(handle38_ptr: *mut c_char, handle38_len: c_int) {
    void_call("c_StopServer", |g| {
        let server = arg!("server", handle38_ptr, handle38_len);
        let r = g.running()?;
        g.call(r.servers.stop(g, &server))
    })
}

/// Stop every server.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_StopServers() {
    void_call("c_StopServers", |g| {
        let r = g.running()?;
        g.call(r.servers.stop_all(g))
    })
}

/// Stop every server and forget them (until `c_LoadServers`).
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_DestroyServers() {
    void_call("c_DestroyServers", |g| {
        let r = g.running()?;
        g.call(r.servers.destroy_all());
        Ok(())
    })
}

/// Stop a server and delete it (`ServerDeleted`), given its password.
///
/// # Safety
/// See the module docs.
#[no_mangle]
pub unsafe extern "C" fn c_DeleteServer(
    handle39_ptr: *mut c_char,
    handle39_len: c_int,
    password_ptr: *mut c_char,
    password_len: c_int,
) {
    void_call("c_DeleteServer", |g| {
        let (server, pass) = (
            arg!("server", handle39_ptr, handle39_len),
            secret_arg!("password", password_ptr, password_len),
        );
        let r = g.running()?;
        g.call(r.servers.delete(g, &server, &pass))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    /// What a `tracing` subscriber wrote, for the test to read.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).extend(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failed_call_is_logged_by_name_without_its_error_text() {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            super::log_failure(
                "c_ShareFile",
                "open /home/alice/Documents/plans.pdf: No such file or directory",
            );
        });
        let log = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(log.contains("c_ShareFile"), "{log}");
        assert!(log.contains("[scrubbed]"), "{log}");
        assert!(!log.contains("alice") && !log.contains("plans"), "{log}");
    }
}
