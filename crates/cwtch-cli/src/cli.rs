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
/// Exit codes: 0 success, 1 failure, 2 usage error, 3 no such profile or contact, 4 wrong
/// password, 5 busy (the profile runs in another process, or another `cwtch run` serves the data
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
    /// Send a text message to a contact.
    ///
    /// With `cwtch run` running, it sends. Without, this command brings the profile online
    /// itself (network flags below), sends, and waits up to --wait seconds for the
    /// acknowledgement. Prints `acknowledged` or `queued` (stored, retried by the next run),
    /// both with exit code 0.
    Send(SendArgs),
    /// List the messages of a conversation, oldest first.
    Messages(MessagesArgs),
    /// Bring profiles online and print events as JSON lines until SIGINT or SIGTERM.
    ///
    /// Runs every profile that opens with the default password (and, with --password-stdin,
    /// every profile that opens with that password; with --profile, only that profile).
    /// Listens on the control socket `<data dir>/cwtch.sock` for the other subcommands.
    Run(RunArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProfileCommand {
    /// Create a profile and print its onion address (the last line of stdout).
    Create(CreateArgs),
    /// List the profiles that open with the default password (or --password-stdin):
    /// name and onion, tab-separated.
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
    /// List contacts: conversation id, onion, status, connection state, name.
    List(PasswordArgs),
    /// Accept a contact request.
    Accept(ContactArgs),
    /// Block a contact: no more connections or messages from it.
    Block(ContactArgs),
    /// Unblock a contact.
    Unblock(ContactArgs),
    /// Delete a contact and its whole conversation. Needs --yes (or an interactive
    /// confirmation). The peer can send a new contact request later; block it to prevent that.
    Delete(ContactDeleteArgs),
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
    /// The profile's name (shown to contacts).
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
    .args(["name", "status", "block_unknown"])))]
pub(crate) struct SetArgs {
    /// The profile's name (shown to contacts).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// The profile's status text (shown to contacts; empty to clear).
    #[arg(long)]
    pub(crate) status: Option<String>,
    /// Refuse connections from peers that are not contacts.
    #[arg(long, value_name = "on|off")]
    pub(crate) block_unknown: Option<OnOff>,
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
    /// The contact: an onion address (with or without `.onion`) or a conversation id.
    pub(crate) contact: String,
    #[command(flatten)]
    pub(crate) password: PasswordArgs,
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
    /// The contact: an onion address (with or without `.onion`) or a conversation id.
    pub(crate) contact: String,
    /// The text (at most 7000 characters); `-` reads it from stdin (after any password line).
    pub(crate) text: String,
    /// Seconds to wait for the acknowledgement (0: do not wait).
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub(crate) wait: u64,
    /// Send a reply quoting the message with this content hash (the `content_hash` of
    /// `cwtch --json messages`; Cwtch's quoted-reply overlay 10).
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
    /// The contact: an onion address (with or without `.onion`) or a conversation id.
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
