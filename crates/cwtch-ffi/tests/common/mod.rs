//! Loading the built `libCwtch.so` (the one cargo built for this test run) and calling it the
//! way the `libcwtch` bindings do.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_uint, CStr};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

/// The `libCwtch.so` cargo built for this test run: `target/<profile>/deps/libCwtch.so`, next
/// to this test's executable (`cargo test` does not copy it up to `target/<profile>/`).
pub fn library_path() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let so = exe
        .parent()
        .expect("target/<profile>/deps")
        .join("libCwtch.so");
    assert!(so.exists(), "{} was not built", so.display());
    so
}

/// The header's declarations: (return type, name, parameter types), in C spelling.
pub fn header_functions() -> Vec<(String, String, Vec<String>)> {
    let header = include_str!("../../include/libCwtch.h");
    let mut out = Vec::new();
    for line in header.lines() {
        let Some(decl) = line.strip_prefix("extern ") else {
            continue;
        };
        let Some(decl) = decl.strip_suffix(");") else {
            continue; // `extern "C" {`
        };
        let (head, params) = decl.split_once('(').expect("a declaration");
        let (ret, name) = head.rsplit_once(' ').expect("return type and name");
        let params = params
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (ty, _name) = p.rsplit_once(' ').expect("type and name");
                ty.trim().to_owned()
            })
            .collect();
        out.push((ret.trim().to_owned(), name.to_owned(), params));
    }
    out
}

/// A deadlock guard, not a timing assertion: every wait below has a readiness signal.
pub const GUARD: Duration = Duration::from_secs(120);
pub const DEFAULT_PASSWORD: &str = "be gay do crime";

pub type Str = *mut c_char;

pub struct Lib {
    lib: libloading::Library,
}

/// A Go-style string argument, kept alive by the caller (like libcwtch's `c_str_wrap`).
pub fn s(v: &str) -> (Str, c_int) {
    (v.as_ptr() as Str, v.len() as c_int)
}

impl Lib {
    pub fn load() -> Lib {
        // SAFETY: our own library; loading it runs no initialisers of ours.
        let lib = unsafe { libloading::Library::new(library_path()) }.expect("dlopen");
        Lib { lib }
    }

    pub fn sym<T: Copy>(&self, name: &str) -> T {
        // SAFETY: each call site names the type of the header's declaration of `name`
        // (tests/abi.rs checks the declarations against the header).
        *unsafe { self.lib.get::<T>(name.as_bytes()) }.expect(name)
    }

    /// Take a returned string: copy it, then free it with `c_FreePointer`.
    pub fn take(&self, p: Str) -> String {
        assert!(!p.is_null(), "libCwtch returned a null string");
        // SAFETY: `p` is a NUL-terminated string returned by the library and not yet freed.
        let out = unsafe { CStr::from_ptr(p) }
            .to_str()
            .expect("UTF-8")
            .to_owned();
        let free: unsafe extern "C" fn(Str) = self.sym("c_FreePointer");
        // SAFETY: `p` was returned by the library and is freed once.
        unsafe { free(p) };
        out
    }

    pub fn started(&self) -> c_int {
        let f: unsafe extern "C" fn() -> c_int = self.sym("c_Started");
        // SAFETY: no arguments.
        unsafe { f() }
    }

    pub fn start(&self, dir: &str, tor: &str) -> c_int {
        let f: unsafe extern "C" fn(Str, c_int, Str, c_int) -> c_int = self.sym("c_StartCwtch");
        let (d, t) = (s(dir), s(tor));
        // SAFETY: both pairs describe live strings.
        unsafe { f(d.0, d.1, t.0, t.1) }
    }

    /// A `void f(char*, int)` call.
    pub fn void1(&self, name: &str, a: &str) {
        let f: unsafe extern "C" fn(Str, c_int) = self.sym(name);
        let a = s(a);
        // SAFETY: the pair describes a live string.
        unsafe { f(a.0, a.1) }
    }

    /// A `void f(char*, int, char*, int)` call.
    pub fn void2(&self, name: &str, a: &str, b: &str) {
        let f: unsafe extern "C" fn(Str, c_int, Str, c_int) = self.sym(name);
        let (a, b) = (s(a), s(b));
        // SAFETY: both pairs describe live strings.
        unsafe { f(a.0, a.1, b.0, b.1) }
    }

    /// A `void f(char*, int, char*, int, char*, int)` call.
    pub fn void3(&self, name: &str, a: &str, b: &str, c: &str) {
        let f: unsafe extern "C" fn(Str, c_int, Str, c_int, Str, c_int) = self.sym(name);
        let (a, b, c) = (s(a), s(b), s(c));
        // SAFETY: the pairs describe live strings.
        unsafe { f(a.0, a.1, b.0, b.1, c.0, c.1) }
    }

    /// A `void f(char*, int)` ×4 call (`c_ChangePassword`).
    pub fn void4(&self, name: &str, a: &str, b: &str, c: &str, d: &str) {
        let f: unsafe extern "C" fn(Str, c_int, Str, c_int, Str, c_int, Str, c_int) =
            self.sym(name);
        let (a, b, c, d) = (s(a), s(b), s(c), s(d));
        // SAFETY: the pairs describe live strings.
        unsafe { f(a.0, a.1, b.0, b.1, c.0, c.1, d.0, d.1) }
    }

    /// `c_GetConversationAccessControlList`.
    pub fn acl(&self, profile: &str, c: c_int) -> Value {
        let f: unsafe extern "C" fn(Str, c_int, c_int) -> Str =
            self.sym("c_GetConversationAccessControlList");
        let p = s(profile);
        // SAFETY: the pair describes a live string.
        json(&self.take(unsafe { f(p.0, p.1, c) }))
    }

    /// `c_UpdateConversationAccessControlList` (its errors arrive as `AppError` events).
    pub fn update_acl(&self, profile: &str, c: c_int, acl: &Value) {
        let f: unsafe extern "C" fn(Str, c_int, c_int, Str, c_int) =
            self.sym("c_UpdateConversationAccessControlList");
        let (p, j) = (s(profile), acl.to_string());
        let j = s(&j);
        // SAFETY: the pairs describe live strings.
        unsafe { f(p.0, p.1, c, j.0, j.1) }
    }

    /// A `void f(char*, int, int conversation)` call.
    pub fn void_conv(&self, name: &str, profile: &str, conversation: c_int) {
        let f: unsafe extern "C" fn(Str, c_int, c_int) = self.sym(name);
        let p = s(profile);
        // SAFETY: the pair describes a live string.
        unsafe { f(p.0, p.1, conversation) }
    }

    /// A `void f()` call.
    pub fn void0(&self, name: &str) {
        let f: unsafe extern "C" fn() = self.sym(name);
        // SAFETY: no arguments.
        unsafe { f() }
    }

    /// A `char* f(char*, int, char*, int)` call.
    pub fn string2(&self, name: &str, a: &str, b: &str) -> String {
        let f: unsafe extern "C" fn(Str, c_int, Str, c_int) -> Str = self.sym(name);
        let (a, b) = (s(a), s(b));
        // SAFETY: both pairs describe live strings.
        let p = unsafe { f(a.0, a.1, b.0, b.1) };
        self.take(p)
    }

    /// `c_GetProfileAttribute` with raw arguments (for bad input).
    pub fn get_profile_attribute_raw(&self, p: (Str, c_int), k: (Str, c_int)) -> Value {
        let f: unsafe extern "C" fn(Str, c_int, Str, c_int) -> Str =
            self.sym("c_GetProfileAttribute");
        // SAFETY: the callers pass pairs describing live bytes, or a null pointer.
        let r = unsafe { f(p.0, p.1, k.0, k.1) };
        json(&self.take(r))
    }

    pub fn create_profile(&self, name: &str, password: &str) {
        self.create_profile_autostart(name, password, true);
    }

    pub fn create_profile_autostart(&self, name: &str, password: &str, autostart: bool) {
        let f: unsafe extern "C" fn(Str, c_int, Str, c_int, c_char) = self.sym("c_CreateProfile");
        let (n, p) = (s(name), s(password));
        // SAFETY: both pairs describe live strings.
        unsafe { f(n.0, n.1, p.0, p.1, c_char::from(autostart)) }
    }

    pub fn set_profile_attribute(&self, profile: &str, key: &str, value: &str) {
        let f: unsafe extern "C" fn(Str, c_int, Str, c_int, Str, c_int) =
            self.sym("c_SetProfileAttribute");
        let (p, k, v) = (s(profile), s(key), s(value));
        // SAFETY: the pairs describe live strings.
        unsafe { f(p.0, p.1, k.0, k.1, v.0, v.1) }
    }

    pub fn set_conversation_attribute(&self, profile: &str, c: c_int, key: &str, value: &str) {
        let f: unsafe extern "C" fn(Str, c_int, c_int, Str, c_int, Str, c_int) =
            self.sym("c_SetConversationAttribute");
        let (p, k, v) = (s(profile), s(key), s(value));
        // SAFETY: the pairs describe live strings.
        unsafe { f(p.0, p.1, c, k.0, k.1, v.0, v.1) }
    }

    pub fn get_conversation_attribute(&self, profile: &str, c: c_int, key: &str) -> Value {
        let f: unsafe extern "C" fn(Str, c_int, c_int, Str, c_int) -> Str =
            self.sym("c_GetConversationAttribute");
        let (p, k) = (s(profile), s(key));
        // SAFETY: the pairs describe live strings.
        let r = unsafe { f(p.0, p.1, c, k.0, k.1) };
        json(&self.take(r))
    }

    pub fn send_message(&self, profile: &str, c: c_int, msg: &str) -> Value {
        let f: unsafe extern "C" fn(Str, c_int, c_int, Str, c_int) -> Str =
            self.sym("c_SendMessage");
        let (p, m) = (s(profile), s(msg));
        // SAFETY: the pairs describe live strings.
        let r = unsafe { f(p.0, p.1, c, m.0, m.1) };
        json(&self.take(r))
    }

    pub fn get_messages(&self, profile: &str, c: c_int, index: c_int, count: c_uint) -> Value {
        let f: unsafe extern "C" fn(Str, c_int, c_int, c_int, c_uint) -> Str =
            self.sym("c_GetMessages");
        let p = s(profile);
        // SAFETY: the pair describes a live string.
        let r = unsafe { f(p.0, p.1, c, index, count) };
        json(&self.take(r))
    }

    pub fn get_message_by_id(&self, profile: &str, c: c_int, id: c_int) -> Value {
        let f: unsafe extern "C" fn(Str, c_int, c_int, c_int) -> Str = self.sym("c_GetMessageById");
        let p = s(profile);
        // SAFETY: the pair describes a live string.
        let r = unsafe { f(p.0, p.1, c, id) };
        json(&self.take(r))
    }

    pub fn get_message_by_hash(&self, profile: &str, c: c_int, hash: &str) -> Value {
        let f: unsafe extern "C" fn(Str, c_int, c_int, Str, c_int) -> Str =
            self.sym("c_GetMessageByContentHash");
        let (p, h) = (s(profile), s(hash));
        // SAFETY: the pairs describe live strings.
        let r = unsafe { f(p.0, p.1, c, h.0, h.1) };
        json(&self.take(r))
    }

    /// A reader thread: `c_GetAppBusEvent` in a loop, as libcwtch's bots do, each event sent
    /// to the returned channel.
    pub fn events(self: &Arc<Self>) -> Events {
        let (tx, rx) = mpsc::channel();
        let lib = self.clone();
        std::thread::spawn(move || loop {
            let f: unsafe extern "C" fn() -> Str = lib.sym("c_GetAppBusEvent");
            // SAFETY: no arguments; the result is taken (and freed) at once.
            let e = lib.take(unsafe { f() });
            if tx.send(e).is_err() {
                return;
            }
        });
        Events {
            rx,
            seen: Vec::new(),
            pending: Default::default(),
        }
    }
}

/// The start of Go's default picture of a profile (`RandomProfileImage`: the second checksum
/// byte of the onion, byte 33 of the 35 it encodes, picks one of 50), worked out here apart
/// from the library's own code.
pub fn default_profile_picture_prefix(onion: &str) -> String {
    let raw = data_encoding::BASE32
        .decode(onion.to_ascii_uppercase().as_bytes())
        .unwrap_or_else(|e| panic!("not an onion ({e}): {onion}"));
    format!("profiles/{:03}-", raw[33] % 50 + 1)
}

/// The start of Go's default picture of a group (`RandomGroupImage`: the first byte of its
/// hex id picks one of 60).
pub fn default_group_picture_prefix(group_id: &str) -> String {
    let first = u8::from_str_radix(&group_id[..2], 16).expect("hex group id");
    format!("servers/{:03}-", first % 60 + 1)
}

/// Assert `picture` is the default picture starting with `prefix` (an asset path).
pub fn assert_default_picture(picture: &str, prefix: &str) {
    assert!(
        picture.starts_with(prefix) && picture.ends_with(".png") && !picture.contains(' '),
        "{picture:?} is not the default {prefix}….png"
    );
}

pub fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s:?}"))
}

/// Go's event: name and string fields (as `libcwtch::structs::CwtchEvent`).
#[derive(Debug, Clone)]
pub struct GoEvent {
    pub name: String,
    pub data: BTreeMap<String, String>,
}

impl GoEvent {
    pub fn get(&self, k: &str) -> &str {
        self.data
            .get(k)
            .unwrap_or_else(|| panic!("{} has no {k}: {:?}", self.name, self.data))
    }
}

/// The keys `libcwtch` 0.8.0's `event.rs` reads with `data["…"]`, per event: a missing one
/// panics the client (in its own event thread). Every event a test receives is checked
/// against it. (`AppError` reads its keys only if present.)
pub fn required_keys(name: &str) -> &'static [&'static str] {
    match name {
        "NewPeer" => &[
            "Identity",
            "tag",
            "Created",
            "name",
            "defaultPicture",
            "picture",
            "Online",
            "ContactsJson",
            "ServerList",
        ],
        "NewMessageFromPeer" => &[
            "ProfileOnion",
            "ConversationID",
            "RemotePeer",
            "Nick",
            "TimestampReceived",
            "Data",
            "notification",
            "picture",
        ],
        "PeerError" => &["Error"],
        "ContactCreated" => &[
            "ProfileOnion",
            "ConversationID",
            "RemotePeer",
            "unread",
            "picture",
            "defaultPicture",
            "numMessages",
            "nick",
            "accepted",
            "status",
            "accessControlList",
            "blocked",
            "loading",
            "lastMsgTime",
        ],
        "PeerStateChange" => &["ProfileOnion", "RemotePeer", "ConnectionState"],
        "UpdateGlobalSettings" => &["Data"],
        "PeerDeleted" => &["Identity"],
        "ACNStatus" => &["Progress", "Status"],
        "ACNVersion" => &["Data"],
        "NetworkError" => &["ProfileOnion", "Error", "Status"],
        "ACNInfo" => &["ProfileOnion", "Handle", "Key", "Data"],
        "UpdatedProfileAttribute" => &["ProfileOnion", "Key", "Data"],
        "IndexedAcknowledgement" => &["ProfileOnion", "ConversationID", "Index"],
        "ShareManifest" => &["ProfileOnion", "FileKey", "SerializedManifest"],
        "NewServer" => &[
            "Onion",
            "ServerBundle",
            "Description",
            "StorageType",
            "Autostart",
            "Running",
        ],
        "ServerIntentUpdate" => &["Identity", "Intent"],
        "ServerDeleted" => &["Identity", "Status"],
        "ServerStatsUpdate" => &["Identity", "TotalMessages", "Connections"],
        "ManifestSizeReceived" => &["ProfileOnion", "FileKey", "ManifestSize", "Handle"],
        "ManifestError" => &["ProfileOnion", "Handle", "FileKey"],
        "ManifestReceived" => &["ProfileOnion", "Handle", "FileKey", "SerializedManifest"],
        "ManifestSaved" => &[
            "ProfileOnion",
            "Handle",
            "FileKey",
            "SerializedManifest",
            "TempFile",
            "NameSuggestion",
        ],
        "FileDownloadProgressUpdate" => &[
            "ProfileOnion",
            "FileKey",
            "Progress",
            "FileSizeInChunks",
            "NameSuggestion",
        ],
        "PeerAcknowledgement" => &["ProfileOnion", "EventID", "RemotePeer"],
        "NewMessageFromGroup" => &[
            "ProfileOnion",
            "TimestampSent",
            "RemotePeer",
            "ContentHash",
            "ConversationID",
            "Data",
            "notification",
            "picture",
        ],
        "GroupCreated" => &[
            "ProfileOnion",
            "ConversationID",
            "GroupID",
            "GroupServer",
            "GroupName",
            "picture",
            "accessControlList",
        ],
        "NewGroup" => &[
            "ProfileOnion",
            "ConversationID",
            "GroupServer",
            "GroupName",
            "GroupInvite",
        ],
        "ServerStateChange" => &["ProfileOnion", "GroupServer", "ConnectionState"],
        "NewRetValMessageFromPeer" => &[
            "ProfileOnion",
            "RemotePeer",
            "Scope",
            "Path",
            "Exists",
            "Data",
        ],
        _ => &[],
    }
}

/// Every key `libcwtch` reads from an event of this name is there.
pub fn assert_parsable(e: &GoEvent) {
    for k in required_keys(&e.name) {
        assert!(
            e.data.contains_key(*k),
            "{} lacks {k}, which libcwtch reads (the client would panic): {:?}",
            e.name,
            e.data
        );
    }
}

/// The error of the marker call of [`Events::barrier`] (no test makes that call otherwise).
const BARRIER_ERROR: &str = "c_DisconnectFromServer: invalid argument server: negative length";

pub struct Events {
    rx: mpsc::Receiver<String>,
    /// Every event received, raw (for failure messages).
    pub seen: Vec<String>,
    /// Received and not yet matched by a `wait`, in arrival order.
    pending: std::collections::VecDeque<GoEvent>,
}

impl Events {
    /// The first event (already received or not) named `name` for which `pred` holds; it is
    /// consumed, the others stay for later waits.
    pub fn wait(&mut self, name: &str, pred: impl Fn(&GoEvent) -> bool) -> GoEvent {
        self.wait_within(GUARD, name, pred)
    }

    /// [`Events::wait`] with another deadlock guard (Tor is slower than loopback).
    pub fn wait_within(
        &mut self,
        guard: Duration,
        name: &str,
        pred: impl Fn(&GoEvent) -> bool,
    ) -> GoEvent {
        if let Some(i) = self.pending.iter().position(|e| e.name == name && pred(e)) {
            return self.pending.remove(i).expect("present");
        }
        loop {
            let raw = self
                .rx
                .recv_timeout(guard)
                .unwrap_or_else(|_| panic!("no {name} event; seen: {:#?}", self.seen));
            let v = json(&raw);
            // The envelope libcwtch parses: EventType, EventID, Data of strings only.
            let data: BTreeMap<String, String> = serde_json::from_value(v["Data"].clone())
                .unwrap_or_else(|e| panic!("Data is not a map of strings ({e}): {raw}"));
            assert!(
                v["EventID"].as_str().is_some_and(|id| !id.is_empty()),
                "{raw}"
            );
            let e = GoEvent {
                name: v["EventType"].as_str().expect("EventType").to_owned(),
                data,
            };
            assert_parsable(&e);
            self.seen.push(raw);
            if e.name == name && pred(&e) {
                return e;
            }
            self.pending.push_back(e);
        }
    }
}

impl Events {
    /// Every `AppError` produced by calls made before this one, in order: calls' events are
    /// queued in call order, so the error of a marker call (`c_DisconnectFromServer` with a
    /// negative length, see [`Events::barrier`]) marks the end of those made before it.
    pub fn app_errors_so_far(&mut self, lib: &Lib) -> Vec<String> {
        self.barrier(lib);
        let mut errors = Vec::new();
        self.pending.retain(|e| {
            if e.name == "AppError" {
                errors.push(e.get("Error").to_owned());
                false
            } else {
                true
            }
        });
        errors
    }

    /// Wait until the events of every call made before this one are received (see
    /// [`Events::app_errors_so_far`]).
    pub fn barrier(&mut self, lib: &Lib) {
        let f: unsafe extern "C" fn(Str, c_int, Str, c_int) = lib.sym("c_DisconnectFromServer");
        let (p, server) = (s(""), s("marker"));
        // SAFETY: a negative length: refused before the pointer is read.
        unsafe { f(p.0, p.1, server.0, -1) };
        self.wait("AppError", |e| e.get("Error") == BARRIER_ERROR);
    }

    /// Assert that no event named `name` for which `pred` holds was received or arrives
    /// within `d` (the others are kept for later waits).
    pub fn expect_none(&mut self, d: Duration, name: &str, pred: impl Fn(&GoEvent) -> bool) {
        if let Some(e) = self.pending.iter().find(|e| e.name == name && pred(e)) {
            panic!("unexpected {name}: {:?}", e.data);
        }
        let deadline = std::time::Instant::now() + d;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            let Ok(raw) = self.rx.recv_timeout(left) else {
                return;
            };
            let v = json(&raw);
            let data: BTreeMap<String, String> =
                serde_json::from_value(v["Data"].clone()).unwrap_or_default();
            let e = GoEvent {
                name: v["EventType"].as_str().unwrap_or_default().to_owned(),
                data,
            };
            assert_parsable(&e);
            self.seen.push(raw);
            if e.name == name && pred(&e) {
                panic!("unexpected {name}: {:?}", e.data);
            }
            self.pending.push_back(e);
        }
    }

    /// Forget the events named `name` received and not yet waited for (so that a later wait
    /// sees only newer ones).
    pub fn forget(&mut self, name: &str) {
        self.pending.retain(|e| e.name != name);
    }

    /// How many events named `name` were received and not yet waited for.
    pub fn pending(&self, name: &str) -> usize {
        self.pending.iter().filter(|e| e.name == name).count()
    }
}

/// Host a server through `c_CreateServer`.
pub fn create_server(lib: &Lib, password: &str, description: &str, autostart: bool) {
    let f: unsafe extern "C" fn(Str, c_int, Str, c_int, c_char) = lib.sym("c_CreateServer");
    let (p, d) = (s(password), s(description));
    // SAFETY: the pairs describe live strings.
    unsafe { f(p.0, p.1, d.0, d.1, c_char::from(autostart)) }
}

/// A profile named `name` of the `cwtch` library (its home in memory), loaded and on the
/// loopback network of `net`: the peer the tests talk to the C ABI with.
pub fn library_peer(
    rt: &tokio::runtime::Runtime,
    net: &std::path::Path,
    name: &str,
) -> (cwtch::Cwtch, cwtch::ProfileHandle) {
    let acn = Arc::new(cwtch::LoopbackAcn::new(net).expect("loopback"));
    let app = rt.block_on(cwtch::Cwtch::in_memory(cwtch::MemoryHome::new(), acn));
    let profile = rt.block_on(async {
        let info = app
            .create_profile(name, &cwtch::Password::Default)
            .await
            .expect("create");
        app.load_profile(info.profile_id.as_str(), &cwtch::Password::Default)
            .await
            .expect("load")
    });
    (app, profile)
}

/// Start the library on the loopback network in `net` (`CWTCH_NETWORK`, `CWTCH_LOOPBACK_DIR`)
/// with its app directory `app`, and wait until it has started.
pub fn start_on_loopback(
    lib: &Lib,
    events: &mut Events,
    app: &std::path::Path,
    net: &std::path::Path,
) {
    std::env::set_var("CWTCH_NETWORK", "loopback");
    std::env::set_var("CWTCH_LOOPBACK_DIR", net);
    assert_eq!(lib.start(app.to_str().expect("utf-8"), ""), 0);
    events.wait("CwtchStarted", |_| true);
}
