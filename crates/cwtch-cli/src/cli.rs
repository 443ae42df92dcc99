//! The command line (clap).

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};
use cwtch::connectivity::AcnArgs;

/// Cwtch: private, metadata-resistant messaging. Every profile is a Tor v3 onion service;
/// peers talk directly.
///
/// `cwtch run` brings profiles online and prints events as JSON lines; while it runs, every
/// other subcommand is executed by it (through the control socket `<data dir>/cwtch.sock`).
/// Without a running `cwtch run`, subcommands work on the data directory directly.
///
/// Exit codes: 0 success, 1 failure, 2 usage error, 3 no such profile, contact, server or
/// group, 4 wrong password, 5 busy (the profile runs in another process, or another `cwtch run` serves the data
/// directory).
#[derive(Debug, Parser)]
#[command(name = "cwtch", version, max_term_width = 100)]
pub(crate) struct Cli {
    /// The Cwtch home (Go Cwtch's layout: `profiles/<id>/{VERSION,SALT,db}`).
    /// Default: $CWTCH_HOME, else ~/.cwtch.
    #[arg(long, env = "CWTCH_HOME", global = true, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// The profile to use: its onion, its name or its id (default: the only profile).
    #[arg(long, global = true, value_name = "ONION|NAME|ID")]
    pub(crate) profile: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Log filter for stderr (error, warn, info, debug, trace, or a tracing directive).
    /// Default: info for `run`, warn otherwise.
    #[arg(long, env = "CWTCH_LOG", global = true, value_name = "FILTER")]
    pub(crate) log_level: Option<String>,
    /// Show onion addresses and message contents in logs (off by default: logs get shared).
    #[arg(long, global = true)]
    pub(crate) unsafe_logging: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create, list, unlock, re-password, configure, export, import and delete profiles.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Add, list, accept, block, unblock and delete contacts.
    #[command(subcommand)]
    Contact(ContactCommand),
    /// Import, list and remove the servers that host groups.
    ///
    /// A Cwtch server stores a group's messages encrypted (it cannot read them, nor tell who
    /// wrote them) and hands them to every member. You import it by its bundle: one line that
    /// starts with `server:`, which its operator gets from `cwtch-server bundle` (`cwtch-server
    /// run` also prints it when it starts) and shares with you. A group invite that starts
    /// with `tofubundle:` carries the bundle too, so `cwtch group join` imports the server
    /// itself.
    #[command(subcommand)]
    Server(ServerCommand),
    /// Create, join, accept, list and leave groups, and invite contacts to them.
    ///
    /// A group lives on a server (`cwtch server`); its members share a key that the server
    /// never sees. Groups are named by GROUP: a conversation id (`cwtch group list`, first
    /// column), a group id (32 hex digits, second column) or the group's name. Post with
    /// `cwtch send GROUP TEXT` and read with `cwtch messages GROUP`; `cwtch run` fetches new
    /// messages as they are posted.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Share files with contacts, list them, and download files contacts share with you.
    ///
    /// Compatible with Go Cwtch's file sharing: a file is offered in the conversation (an
    /// overlay-200 message naming its file key) and downloaded from the sharer over Cwtch,
    /// every 4 KiB chunk checked against the file's manifest. The sharer must be online for a
    /// download (`cwtch run`, or the TUI).
    #[command(subcommand)]
    File(FileCommand),
    /// Send a text message to a contact or a group.
    ///
    /// With `cwtch run` running, it sends. Without, this command brings the profile online
    /// itself (network flags below), sends, and waits up to --wait seconds. To a contact it
    /// prints `acknowledged` (the contact has it) or `queued` (stored, retried by the next
    /// run); to a group `sent` (the server accepted the post: every member can fetch it) or
    /// `queued` (stored, posted by the next run). All of these exit 0.
    Send(SendArgs),
    /// List the messages of a conversation with a contact or of a group, oldest first.
    ///
    /// For a group, each message's author is the member's onion (`--json`: `author`); showing
    /// the newest messages (--offset 0) marks the group read.
    Messages(MessagesArgs),
    /// Search the messages of every contact and group for a text, newest first.
    ///
    /// Case-insensitive; the text of a message is searched (a reply's text, a file's name,
    /// an invite), not its JSON. Each line: conversation id, conversation (a contact's name
    /// or onion, a group's name), position (`cwtch messages CONVERSATION --offset POSITION
    /// --limit 1` shows it), then the message as `cwtch messages` shows it.
    Search(SearchArgs),
    /// Bring profiles online and print events as JSON lines until SIGINT or SIGTERM.
    ///
    /// Runs every profile that opens with the default password (and, with --password-stdin,
    /// every profile that opens with that password; with --profile, only that profile).
    /// Listens on the control socket `<data dir>/cwtch.sock` for the other subcommands.
    Run(RunArgs),
    /// The terminal client: conversations on the left, messages on the right.
    ///
    /// If a `cwtch run` serves the data directory, the TUI is its client (through the control
    /// socket); otherwise it brings the profiles online itself, on the network given by the
    /// network flags (as `cwtch run`). With no profile yet it offers to create one. Press `?`
    /// in it for every key; on the compose line, text then Enter sends, and `/help` lists the
    /// commands (`/add ONION`, `/accept`, `/block`, `/join INVITE`, `/invite CONTACT`, `/quit`).
    Tui(TuiArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProfileCommand {
    /// Create a profile and print its onion address (the last line of stdout).
    Create(CreateArgs),
    /// List the profiles that open with the default password (and --password-stdin's; one
    /// that opens nothing is an error) and those a running `cwtch run` runs: name and onion,
    /// tab-separated.
    List(PasswordArgs),
    /// Unlock password-protected profiles in the running `cwtch run` (password: first line
    /// of stdin). Without a running `cwtch run`, check the password and list the profiles it
    /// opens.
    Unlock,
    /// Change a profile's password. Reads the old password, then the new one, from stdin (one
    /// line each; an empty old password means the profile has none).
    Passwd(PasswdArgs),
    /// Show a profile's settings: name, status, whether unknown peers are blocked.
    Show(PasswordArgs),
    /// Change a profile's settings (what contacts see, and who may connect).
    ///
    /// The name and status are disclosed to accepted contacts when they ask (on their next
    /// connection). With --block-unknown on, connections from peers that are not contacts
    /// are refused: no contact request is created.
    Set(SetArgs),
    /// Export a profile to a file (Go Cwtch's archive format, still encrypted).
    Export(ExportArgs),
    /// Import a profile archive (Go Cwtch's export format) and print its onion.
    Import(ImportArgs),
    /// Delete a profile and all its messages. Needs its password and --yes (or an
    /// interactive confirmation).
    Delete(DeleteArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ContactCommand {
    /// Add a contact by onion address (accepted on our side); it sees a contact request.
    Add(ContactArgs),
    /// List contacts: conversation id, onion, status, connection state, unread (their
    /// messages since `cwtch messages CONTACT` last showed the newest), name.
    List(PasswordArgs),
    /// Accept a contact request.
    Accept(ContactArgs),
    /// Block a contact: no more connections or messages from it.
    Block(ContactArgs),
    /// Unblock a contact.
    Unblock(ContactArgs),
    /// Give a contact a name of your own, shown instead of the name it gives itself (kept on
    /// this machine; the contact is not told). Without NAME, yours is removed.
    Rename(ContactRenameArgs),
    /// Show or change what a contact may do beyond chatting: offer files we download, and
    /// have its images previewed (with image previews on: `cwtch profile set
    /// --image-previews on`).
    ///
    /// Both are allowed by default for an accepted contact; nothing is allowed to a contact
    /// that is blocked or not accepted. Refused files are still listed in the conversation,
    /// but cannot be downloaded. Without --files or --images, prints the current permissions.
    Permissions(PermissionsArgs),
    /// Delete a contact and its whole conversation. Needs --yes (or an interactive
    /// confirmation). The peer can send a new contact request later; block it to prevent that.
    Delete(ContactDeleteArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ServerCommand {
    /// Import a server's bundle and print the server's onion (the last line of stdout).
    ///
    /// BUNDLE is one line `server:<base64>` (the server's onions and keys, signed by it),
    /// printed by `cwtch-server bundle` on the server's machine. Importing the same bundle
    /// again is harmless; a bundle for a known server with different keys is refused.
    Add(ServerAddArgs),
    /// List the imported servers: conversation id, onion, connection state, tokens left,
    /// last sync (or `-`), groups on it.
    ///
    /// The state and last sync are those of the running `cwtch run` (without one, the state
    /// is `Disconnected`). Each post spends a token; more are fetched when they run low.
    List(PasswordArgs),
    /// Remove an imported server (refused while groups use it: leave them first).
    Remove(ServerRemoveArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum GroupCommand {
    /// Create a group on an imported server; prints its conversation id, then its invite
    /// (the last line of stdout).
    ///
    /// The invite (`tofubundle:server:…||torv3…`) is the group's secret: whoever has it can
    /// read and post. Send it to contacts with `cwtch group invite`, or give it to someone to
    /// use with `cwtch group join`.
    Create(GroupCreateArgs),
    /// Send a group's invite to a contact over Cwtch; they see it in `cwtch group list` and
    /// accept it with `cwtch group accept`.
    ///
    /// With `cwtch run` running, it sends. Without, this command brings the profile online
    /// itself (network flags below) and waits up to --wait seconds for the acknowledgement.
    /// Prints `acknowledged` or `queued` (retried by the next run), both with exit code 0.
    Invite(GroupInviteArgs),
    /// Join a group from an invite and print its conversation id.
    ///
    /// INVITE is one line: `tofubundle:server:…||torv3…` (what `cwtch group create` prints
    /// last, or `cwtch-server bundle --tofu` for a fresh group on that server; the server is
    /// imported too), or `torv3…` for a group on a server already added. `-` reads it from
    /// stdin (after any password line), keeping it out of the process list. Invites that
    /// contacts send over Cwtch need no joining: `cwtch group accept` them.
    Join(GroupJoinArgs),
    /// List groups and invites: conversation id, group id, status (`accepted` or `invite`),
    /// server, server state, members seen, unread, missing, name.
    ///
    /// Members seen are the other authors of stored messages; unread counts their messages
    /// not yet shown by `cwtch messages GROUP`; missing counts the gaps (messages others'
    /// messages refer to that never arrived) found by the running `cwtch run`.
    List(PasswordArgs),
    /// Accept a group invite received from a contact: the group's messages are fetched from
    /// its server and you can post.
    Accept(GroupArgs),
    /// Leave a group, or decline an invite: its conversation and messages are deleted here
    /// (it asks first; --yes for scripts).
    Leave(GroupLeaveArgs),
    /// Rename a group, for you alone (kept on this machine; members are not told).
    Rename(GroupRenameArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum FileCommand {
    /// Share a file with a contact and print its file key (the last line of stdout).
    ///
    /// The contact sees a file message and can download the file from you while you are
    /// online and share it (until `cwtch file stop`; sharing survives restarts). Without a
    /// running `cwtch run`, this brings the profile online to send the offer (network flags
    /// below) and waits up to --wait seconds for the acknowledgement.
    Share(FileShareArgs),
    /// List files offered to you and by you: conversation id, file key, ours/theirs, state,
    /// size, name (in one conversation, or all).
    List(FileListArgs),
    /// Download (or resume) a file a contact offered you.
    ///
    /// The file goes to --to DIR (default: ~/Downloads) under the offered name made safe (no
    /// folders, no hidden names, never overwriting: `name (1).ext`), written as `NAME.part`
    /// until every chunk and the whole file check out. With a running `cwtch run`, it
    /// downloads there (progress as events) and this prints where the file will be. Without,
    /// this brings the profile online (network flags below), shows progress (a bar on a
    /// terminal, JSON lines otherwise) and prints the file's path when it is complete;
    /// interrupted, it resumes from what is on disk the next time. Asking for a download
    /// that is already running (the profile resumes unfinished downloads when it starts)
    /// follows it instead of starting another.
    Download(FileDownloadArgs),
    /// Stop sharing a file (contacts can no longer download it), or stop downloading one
    /// (what arrived stays: `cwtch file download` resumes it).
    Stop(FileKeyArgs),
    /// Share a file again after `cwtch file stop`.
    Restart(FileKeyArgs),
}

#[derive(Debug, Args)]
pub(crate) struct FileShareArgs {
    /// The conversation: a contact (onion address, conversation id or nickname) or a group
    /// (conversation id, group id or name).
    pub(crate) contact: String,
    /// The file.
    pub(crate) path: PathBuf,
    /// Seconds to wait for the offer's acknowledgement (0: do not wait).
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub(crate) wait: u64,
    #[command(flatten)]
    pub(crate) password: PasswordArgs,
    /// Network options, used only when no `cwtch run` is running.
    #[command(flatten)]
    pub(crate) acn: AcnArgs,
}

#[derive(Debug, Args)]
pub(crate) struct FileListArgs {
    /// Only this conversation: a contact (onion address, conversation id or nickname) or a group
    /// (conversation id, group id or name).
    pub(crate) contact: Option<String>,
    #[command(flatten)]
    pub(crate) password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct FileDownloadArgs {
    /// The conversation it was offered in: a contact (onion address, conversation id or
    /// nickname) or a group (conversation id, group id or name).
    pub(crate) contact: String,
    /// The file key (`cwtch file list`, or the file message).
    pub(crate) file_key: String,
    /// The folder to download into (created if missing). Default: ~/Downloads.
    #[arg(long, value_name = "DIR")]
    pub(crate) to: Option<PathBuf>,
    /// With a `cwtch run` doing the download: wait for it and show its progress, also for a
    /// download it was already doing (without one, the command always does the download
    /// itself and waits).
    #[arg(long)]
    pub(crate) wait: bool,
    #[command(flatten)]
    pub(crate) password: PasswordArgs,
    /// Network options, used only when no `cwtch run` is running.
    #[command(flatten)]
    pub(crate) acn: AcnArgs,
}

#[derive(Debug, Args)]
pub(crate) struct FileKeyArgs {
    /// The file key of a file you share.
    pub(crate) file_key: String,
    #[command(flatten)]
    pub(crate) password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ServerAddArgs {
    /// The server's bundle: one line starting with `server:` (from `cwtch-server bundle`).
    pub(crate) bundle: String,
    #[command(flatten)]
    pub(crate) password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ServerRemoveArgs {
    /// The server's onion (`cwtch server list`).
    pub(crate) onion: String,
    #[command(flatten)]
    pub(crate) password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct GroupCreateArgs {
    /// The group's name (members see it in the invite).
    pub(crate) name: String,
    /// The server to host it: the onion of an imported server (`cwtch server list`).
    #[arg(long, value_name = "ONION")]
    pub(crate) server: String,
    #[command(flatten)]
    pub(crate) password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct GroupArgs {
    /// The group: its conversation id, group id (hex) or name.
    pub(crate) group: String,
    #[command(flatten)]
    pub(crate) password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct GroupLeaveArgs {
    #[command(flatten)]
    pub(crate) group: GroupArgs,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub(crate) yes: bool,
}

#[derive(Debug, Args)]
pub(crate) struct GroupRenameArgs {
    /// The group: its conversation id, group id (hex) or name.
    pub(crate) group: String,
    /// Its new name (one line, at most 256 characters).
    pub(crate) name: String,
    #[command(flatten)]
    pub(crate) password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct GroupInviteArgs {
    /// The group: its conversation id, group id (hex) or name.
    pub(crate) group: String,
    /// The contact to invite: an onion address, a conversation id or your nickname for it.
    pub(crate) contact: String,
    /// Seconds to wait for the acknowledgement (0: do not wait).
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub(crate) wait: u64,
    #[command(flatten)]
    pub(crate) password: PasswordArgs,
    /// Network options, used only when no `cwtch run` is running.
    #[command(flatten)]
    pub(crate) acn: AcnArgs,
}

#[derive(Debug, Args)]
pub(crate) struct GroupJoinArgs {
    /// The invite: `tofubundle:server:…||torv3…` or `torv3…`; `-` reads it from stdin.
    pub(crate) invite: String,
    #[command(flatten)]
    pub(crate) password: PasswordArgs,
}

/// How to unlock a password-protected profile.
#[derive(Debug, Clone, Args)]
pub(crate) struct PasswordArgs {
    /// Also use profiles protected by the password on the first line of stdin.
    #[arg(long)]
    pub(crate) password_stdin: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("pw").required(true).args(["no_password", "password_stdin"])))]
pub(crate) struct CreateArgs {
    /// The profile's name (shown to contacts): one line, at most 256 characters.
    #[arg(long)]
    pub(crate) name: String,
    /// No password (Go Cwtch's default password): anyone with the files can open it.
    #[arg(long)]
    pub(crate) no_password: bool,
    /// Read the password from the first line of stdin.
    #[arg(long)]
    pub(crate) password_stdin: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("what").required(true).multiple(true)
    .args(["name", "status", "block_unknown", "image_previews", "image", "no_image", "autostart", "online"])))]
pub(crate) struct SetArgs {
    /// The profile's name (shown to contacts): one line, at most 256 characters.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// The profile's status text (shown to contacts; empty to clear).
    #[arg(long)]
    pub(crate) status: Option<String>,
    /// Refuse connections from peers that are not contacts.
    #[arg(long, value_name = "on|off")]
    pub(crate) block_unknown: Option<OnOff>,
    /// Image previews and profile pictures (off by default): with it on, accepted contacts'
    /// profile pictures and the images they offer (up to 20 MiB) are downloaded without
    /// asking, so they learn when you are online, and image decoders read what they send.
    #[arg(long, value_name = "on|off")]
    pub(crate) image_previews: Option<OnOff>,
    /// Use this image (PNG, JPEG, GIF or WebP, up to 20 MiB) as the profile picture: it is
    /// checked, then offered to every accepted contact.
    #[arg(long, value_name = "PATH")]
    pub(crate) image: Option<std::path::PathBuf>,
    /// Remove the profile picture: it is no longer offered, and contacts drop the copy they
    /// have when they next connect.
    #[arg(long, conflicts_with = "image")]
    pub(crate) no_image: bool,
    /// Go online when the profile loads (on by default). Off: `cwtch run` (or the TUI's
    /// daemon) loads it offline, until `--online on`.
    #[arg(long, value_name = "on|off")]
    pub(crate) autostart: Option<OnOff>,
    /// Take the profile online or offline now, in the running `cwtch run`. Offline: no onion
    /// service, every connection closed, nothing dialled; messages sent meanwhile wait.
    #[arg(long, value_name = "on|off")]
    pub(crate) online: Option<OnOff>,
    #[command(flatten)]
    pub(crate) password: PasswordArgs,
}

/// A switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OnOff {
    On,
    Off,
}

impl OnOff {
    pub(crate) fn is_on(self) -> bool {
        self == OnOff::On
    }
}

#[derive(Debug, Args)]
pub(crate) struct PasswdArgs {
    /// Remove the password instead (the profile opens with the default password): reads only
    /// the old password from stdin.
    #[arg(long)]
    pub(crate) clear: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// The archive to write (must not exist).
    pub(crate) path: PathBuf,
    #[command(flatten)]
    pub(crate) password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The archive to read.
    pub(crate) path: PathBuf,
    /// The profile's password is on the first line of stdin (default: no password).
    #[arg(long)]
    pub(crate) password_stdin: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("pw").required(true).args(["no_password", "password_stdin"])))]
pub(crate) struct DeleteArgs {
    /// Do not ask for confirmation.
    #[arg(long)]
    pub(crate) yes: bool,
    /// The profile has no password (Go Cwtch's default password).
    #[arg(long)]
    pub(crate) no_password: bool,
    /// Read the profile's password from the first line of stdin.
    #[arg(long)]
    pub(crate) password_stdin: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ContactArgs {
    /// The contact: an onion address (with or without `.onion`), a conversation id, or the
    /// nickname you gave it (`contact rename`) when no other contact has it.
    pub(crate) contact: String,
    #[command(flatten)]
    pub(crate) password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ContactRenameArgs {
    #[command(flatten)]
    pub(crate) contact: ContactArgs,
    /// The name (one line, at most 256 characters); absent or empty: remove yours.
    pub(crate) name: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct PermissionsArgs {
    #[command(flatten)]
    pub(crate) contact: ContactArgs,
    /// Whether the contact may offer files that we download.
    #[arg(long, value_name = "SETTING")]
    pub(crate) files: Option<Permission>,
    /// Whether images the contact offers, and its profile picture, are fetched and shown
    /// automatically (also needs --files allowed).
    #[arg(long, value_name = "SETTING")]
    pub(crate) images: Option<Permission>,
}

/// A permission's setting.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Permission {
    /// Allowed.
    Allow,
    /// Refused.
    Refuse,
    /// The default (allowed for an accepted contact).
    Default,
}

impl Permission {
    /// The library's value: `None` is the default.
    pub(crate) fn value(self) -> Option<bool> {
        match self {
            Permission::Allow => Some(true),
            Permission::Refuse => Some(false),
            Permission::Default => None,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct ContactDeleteArgs {
    #[command(flatten)]
    pub(crate) contact: ContactArgs,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub(crate) yes: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// The contact (an onion address, with or without `.onion`, a conversation id or your
    /// nickname for it) or the group (a conversation id, a group id or a group name).
    #[arg(value_name = "CONTACT|GROUP")]
    pub(crate) contact: String,
    /// The text (at most 7000 characters to a contact; about 1800 bytes to a group, whose
    /// messages have a fixed size); `-` reads it from stdin (after any password line).
    pub(crate) text: String,
    /// Seconds to wait for the acknowledgement (a contact) or for the server to accept the
    /// post (a group); 0: do not wait.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub(crate) wait: u64,
    /// Send a reply quoting the message with this content hash (the `content_hash` of
    /// `cwtch --json messages`, in the same conversation; Cwtch's quoted-reply overlay 10).
    #[arg(long, value_name = "HASH")]
    pub(crate) reply_to: Option<String>,
    #[command(flatten)]
    pub(crate) password: PasswordArgs,
    /// Network options, used only when no `cwtch run` is running.
    #[command(flatten)]
    pub(crate) acn: AcnArgs,
}

#[derive(Debug, Args)]
pub(crate) struct MessagesArgs {
    /// The contact (an onion address, with or without `.onion`, a conversation id or your
    /// nickname for it) or the group (a conversation id, a group id or a group name).
    #[arg(value_name = "CONTACT|GROUP")]
    pub(crate) contact: String,
    /// Show at most this many (the newest).
    #[arg(long, default_value_t = 100)]
    pub(crate) limit: u32,
    /// Skip this many of the newest.
    #[arg(long, default_value_t = 0)]
    pub(crate) offset: u64,
    #[command(flatten)]
    pub(crate) password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct SearchArgs {
    /// The text to look for (case-insensitive).
    pub(crate) pattern: String,
    /// Only in this conversation: a contact (onion, conversation id or nickname) or a group
    /// (conversation id, group id or name).
    #[arg(long = "in", value_name = "CONTACT|GROUP")]
    pub(crate) conversation: Option<String>,
    /// Show at most this many (the newest).
    #[arg(long, default_value_t = 50)]
    pub(crate) limit: u32,
    #[command(flatten)]
    pub(crate) password: PasswordArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Also run the profiles protected by the password on the first line of stdin (a tor
    /// control password, with --tor-password-stdin, is then the second line).
    #[arg(long)]
    pub(crate) password_stdin: bool,
    /// Do not run the profiles that have no password (with --password-stdin: run only the
    /// profiles that open with it).
    #[arg(long)]
    pub(crate) no_default_profiles: bool,
    #[command(flatten)]
    pub(crate) acn: AcnArgs,
}

#[derive(Debug, Args)]
pub(crate) struct TuiArgs {
    /// Open this conversation, the compose line focused: a contact's onion or conversation
    /// id, or a group's conversation id, group id or name.
    #[arg(long, value_name = "CONVERSATION")]
    pub(crate) open: Option<String>,
    /// Ring the terminal's bell when a message arrives in a conversation that is not open
    /// (tmux and most terminals then mark the window or tab).
    #[arg(long)]
    pub(crate) bell: bool,
    #[command(flatten)]
    pub(crate) acn: AcnArgs,
}
