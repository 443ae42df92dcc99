#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
// Printing is this binary's interface (libraries log through tracing instead).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cli;
mod client;
mod daemon;
mod error;
mod files;
mod input;
mod offline;
mod output;
mod protocol;
mod session;
mod tui;

/// The TUI's conversation view, for `benches/tui.rs` (not an API).
#[doc(hidden)]
pub mod benching {
    pub use crate::tui::bench::History;
}

/// The control-socket parsers, for the fuzz targets in `fuzz/` (not an API).
#[doc(hidden)]
pub mod fuzzing {
    use crate::protocol::{Request, Response};

    /// A request line as the daemon parses it: `Ok(None)` for a blank line, else its op and
    /// its re-encoding; `Err` with the exit code of the error.
    pub fn parse_request(buf: &[u8]) -> Result<Option<(&'static str, String)>, u8> {
        match Request::from_bytes(buf) {
            Ok(None) => Ok(None),
            Ok(Some(r)) => {
                let line = r.to_line().map_err(|e| e.exit_code())?;
                Ok(Some((r.op(), line.as_str().to_owned())))
            }
            Err(e) => Err(e.exit_code()),
        }
    }

    /// A message's timestamp (remote text in a group) as `search` orders it: seconds and
    /// nanoseconds since 1970, if it is RFC 3339.
    pub fn message_time(s: &str) -> Option<(i64, u32)> {
        cwtch::rfc3339_instant(s)
    }

    /// An answer line as the client parses it: `Ok` for a reply, else the exit code.
    pub fn parse_answer(buf: &[u8]) -> Result<(), u8> {
        Response::parse(buf).map(drop).map_err(|e| e.exit_code())
    }
}

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::cli::{Cli, Command, ContactCommand, GroupCommand, ProfileCommand, ServerCommand};
use crate::client::{Direct, Via};
use crate::error::CliError;
use crate::protocol::{Reply, Request, Secret};

/// The `cwtch` program: parse the command line, run the command, exit with its code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(dispatch(cli));
    // A blocking stdin read of the network layer must not hold the exit up.
    rt.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn init_logging(cli: &Cli) {
    cwtch::set_unsafe_logging(cli.unsafe_logging);
    cwtch::install_redacting_panic_hook();
    if let Command::Tui(_) = &cli.command {
        // The terminal is the TUI's: logs go to a file, and only when asked for.
        if let Some(level) = cli.log_level.as_deref() {
            let dir = cli.data_dir.clone().unwrap_or_else(default_dir);
            tui::log_to_file(&dir, level);
        }
        return;
    }
    let default = match &cli.command {
        Command::Run(_) => "info",
        // `send` may wait for Tor to bootstrap: show its progress (and nothing else).
        Command::Send(a) if a.acn.network == cwtch::connectivity::NetworkKind::Tor => {
            "warn,connectivity::cli=info"
        }
        Command::Group(GroupCommand::Invite(a))
            if a.acn.network == cwtch::connectivity::NetworkKind::Tor =>
        {
            "warn,connectivity::cli=info"
        }
        _ => "warn",
    };
    let level = cli.log_level.as_deref().unwrap_or(default);
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn default_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".cwtch")
}

fn absolute(p: &Path) -> Result<PathBuf, CliError> {
    std::path::absolute(p).map_err(|e| CliError::io(&format!("bad path {}", p.display()), e))
}

pub(crate) fn extra_password(password_stdin: bool) -> Result<Option<Secret>, CliError> {
    if password_stdin {
        Ok(Some(input::password("profile password")?))
    } else {
        Ok(None)
    }
}

/// Run a request (daemon or direct) with no network and no extra password.
pub(crate) async fn call(
    dir: &Path,
    req: Request,
    extra: Option<&Secret>,
) -> Result<(Reply, Via), CliError> {
    client::execute(
        dir,
        req,
        Direct {
            extra: extra.map(Secret::password),
            acn: None,
            create_home: false,
        },
    )
    .await
}

/// `dir` (`what`: how to name it) is a directory, or can be created: neither it nor the
/// nearest existing folder above it is a file.
pub(crate) fn check_dir(what: &str, dir: &Path) -> Result<(), CliError> {
    let not_a_dir = |p: &Path| {
        Err(CliError::Usage(format!(
            "{what} {} cannot be used: {} is not a directory",
            dir.display(),
            p.display()
        )))
    };
    for p in dir.ancestors() {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => return not_a_dir(p),
            Err(_) => {}
        }
    }
    Ok(())
}

pub(crate) fn unexpected(r: Reply) -> CliError {
    CliError::Failed(format!("unexpected answer: {r:?}"))
}

async fn dispatch(cli: Cli) -> Result<(), CliError> {
    let dir = cli.data_dir.clone().unwrap_or_else(default_dir);
    // A data directory that cannot be one is named, not blamed on the socket inside it.
    check_dir("the data directory", &dir)?;
    let json = cli.json;
    let profile = cli.profile.clone();
    match cli.command {
        Command::Run(args) => {
            args.acn.check().map_err(CliError::acn)?;
            if args.no_default_profiles && !args.password_stdin {
                return Err(CliError::Usage(
                    "--no-default-profiles needs --password-stdin (otherwise nothing would run)"
                        .into(),
                ));
            }
            let password = extra_password(args.password_stdin)?.map(|s| s.password());
            daemon::run(daemon::RunPlan {
                data_dir: &dir,
                acn: &args.acn,
                default_profiles: !args.no_default_profiles,
                password,
                profile,
            })
            .await
        }
        Command::Tui(args) => {
            args.acn.check().map_err(CliError::acn)?;
            tui::run(tui::Plan {
                data_dir: &dir,
                acn: &args.acn,
                open: args.open.clone(),
                profile,
                bell: args.bell,
            })
            .await
        }
        Command::Profile(cmd) => profile_command(&dir, cmd, profile, json).await,
        Command::Contact(cmd) => contact_command(&dir, cmd, profile, json).await,
        Command::Server(cmd) => server_command(&dir, cmd, profile, json).await,
        Command::Group(cmd) => group_command(&dir, cmd, profile, json).await,
        Command::File(cmd) => files::file_command(&dir, cmd, profile, json).await,
        Command::Send(args) => {
            args.acn.check().map_err(CliError::acn)?;
            check_target(&args.contact)?;
            let extra = extra_password(args.password.password_stdin)?;
            let text = if args.text == "-" {
                input::text()?
            } else {
                args.text.clone()
            };
            if text.trim().is_empty() {
                return Err(CliError::Usage(
                    "the message is empty (nothing was sent)".into(),
                ));
            }
            let req = Request::Send {
                profile,
                contact: args.contact.clone(),
                text,
                wait_secs: args.wait,
                reply_to: args.reply_to.clone(),
            };
            let direct = Direct {
                extra: extra.as_ref().map(Secret::password),
                acn: Some(&args.acn),
                create_home: false,
            };
            match client::execute(&dir, req, direct).await?.0 {
                Reply::Sent { sent } if json => output::json(&sent),
                Reply::Sent { sent } => output::line(&output::send_line(&sent)),
                Reply::GroupSent { sent } if json => output::json(&sent),
                Reply::GroupSent { sent } => output::line(&output::group_send_line(&sent)),
                r => return Err(unexpected(r)),
            }
            Ok(())
        }
        Command::Messages(args) => {
            check_target(&args.contact)?;
            let extra = extra_password(args.password.password_stdin)?;
            let req = Request::Messages {
                profile,
                contact: args.contact.clone(),
                offset: args.offset,
                limit: args.limit,
            };
            match call(&dir, req, extra.as_ref()).await?.0 {
                Reply::Messages { messages } if json => output::json(&messages),
                Reply::Messages { messages } => {
                    for m in &messages {
                        output::line(&output::message_line(m));
                    }
                }
                r => return Err(unexpected(r)),
            }
            Ok(())
        }
        Command::Search(args) => {
            if args.pattern.trim().is_empty() {
                return Err(CliError::Usage(
                    "nothing to search for (the text is empty)".into(),
                ));
            }
            if let Some(c) = &args.conversation {
                check_target(c)?;
            }
            let extra = extra_password(args.password.password_stdin)?;
            let req = Request::Search {
                profile,
                pattern: args.pattern.clone(),
                conversation: args.conversation.clone(),
                limit: args.limit,
            };
            match call(&dir, req, extra.as_ref()).await?.0 {
                Reply::Found { found } if json => output::json(&found),
                Reply::Found { found } => {
                    for f in &found {
                        output::line(&output::found_line(f));
                    }
                }
                r => return Err(unexpected(r)),
            }
            Ok(())
        }
    }
}

async fn profile_command(
    dir: &Path,
    cmd: ProfileCommand,
    profile: Option<String>,
    json: bool,
) -> Result<(), CliError> {
    match cmd {
        ProfileCommand::Create(args) => {
            let password = if args.password_stdin {
                Some(input::password("new profile's password")?)
            } else {
                None
            };
            let req = Request::ProfileCreate {
                name: args.name.clone(),
                password,
            };
            let direct = Direct {
                extra: None,
                acn: None,
                create_home: true,
            };
            if !dir.exists() {
                daemon::ensure_home(dir)?;
            }
            let (reply, via) = client::execute(dir, req, direct).await?;
            let running = if via == Via::Daemon {
                " (now running in `cwtch run`)"
            } else {
                ""
            };
            print_new_profile(reply, "created", running, json)?;
        }
        ProfileCommand::List(args) => {
            let password = extra_password(args.password_stdin)?;
            let (reply, _) = call(dir, Request::ProfileList { password }, None).await?;
            let Reply::Profiles { profiles } = reply else {
                return Err(unexpected(reply));
            };
            if json {
                output::json(&profiles);
            } else {
                for p in &profiles {
                    output::line(&output::profile_line(p));
                }
            }
            if profiles.is_empty() {
                output::note(
                    "no profile opens without a password (a profile with one is listed with \
                     --password-stdin; `cwtch profile create` makes one)",
                );
            }
        }
        ProfileCommand::Unlock => {
            let password = input::password("profile password")?;
            let (reply, via) =
                call(dir, Request::ProfileUnlock { profile, password }, None).await?;
            let Reply::Profiles { profiles } = reply else {
                return Err(unexpected(reply));
            };
            output::note(match via {
                Via::Daemon => "unlocked; running in `cwtch run`:",
                Via::Direct => {
                    "the password opens these profiles (no `cwtch run` is running, so nothing \
                     was brought online):"
                }
            });
            if json {
                output::json(&profiles);
            } else {
                for p in &profiles {
                    output::line(&output::profile_line(p));
                }
            }
        }
        ProfileCommand::Passwd(args) => {
            let old = input::optional_password("old password (empty line: none)")?;
            let new = if args.clear {
                None
            } else {
                Some(input::password("new password")?)
            };
            let (reply, _) = call(dir, Request::ProfilePasswd { profile, old, new }, None).await?;
            let Reply::Profile { profile: p } = reply else {
                return Err(unexpected(reply));
            };
            if json {
                output::json(&p);
            } else {
                let what = if args.clear {
                    "password removed (anyone who can use this computer can open the profile)"
                } else {
                    "password changed"
                };
                output::line(&format!("{what}: {}", output::profile_line(&p)));
            }
        }
        ProfileCommand::Show(args) => {
            let extra = extra_password(args.password_stdin)?;
            let req = Request::ProfileSettings {
                profile,
                name: None,
                status: None,
                block_unknown: None,
                image_previews: None,
                image: None,
                remove_image: false,
                autostart: None,
                online: None,
            };
            print_settings(call(dir, req, extra.as_ref()).await?.0, json)?;
        }
        ProfileCommand::Set(args) => {
            let extra = extra_password(args.password.password_stdin)?;
            let req = Request::ProfileSettings {
                profile,
                name: args.name,
                status: args.status,
                block_unknown: args.block_unknown.map(cli::OnOff::is_on),
                image_previews: args.image_previews.map(cli::OnOff::is_on),
                image: args
                    .image
                    .as_deref()
                    .map(absolute)
                    .transpose()?
                    .map(|p| p.display().to_string()),
                remove_image: args.no_image,
                autostart: args.autostart.map(cli::OnOff::is_on),
                online: args.online.map(cli::OnOff::is_on),
            };
            print_settings(call(dir, req, extra.as_ref()).await?.0, json)?;
        }
        ProfileCommand::Export(args) => {
            let password = extra_password(args.password.password_stdin)?;
            let path = absolute(&args.path)?;
            let req = Request::ProfileExport {
                profile,
                password,
                path: path.clone(),
            };
            let (reply, _) = call(dir, req, None).await?;
            let Reply::Profile { profile: p } = reply else {
                return Err(unexpected(reply));
            };
            if json {
                output::json(&p);
            } else {
                output::line(&format!(
                    "exported {} to {}",
                    output::profile_line(&p),
                    path.display()
                ));
            }
        }
        ProfileCommand::Import(args) => {
            let password = extra_password(args.password_stdin)?;
            let path = absolute(&args.path)?;
            if !dir.exists() {
                daemon::ensure_home(dir)?;
            }
            let req = Request::ProfileImport { path, password };
            let direct = Direct {
                extra: None,
                acn: None,
                create_home: true,
            };
            let (reply, _) = client::execute(dir, req, direct).await?;
            // The archive carries the identity: two hosts of one onion split its messages.
            let suffix = concat!(
                "; it is the same identity as the copy it was exported from: run it in one ",
                "place only (stop or delete the other copy), or contacts' messages go to ",
                "whichever copy they reach"
            );
            print_new_profile(reply, "imported", suffix, json)?;
        }
        ProfileCommand::Delete(args) => {
            let password = extra_password(args.password_stdin)?;
            let mut profile = profile;
            if !args.yes {
                if !input::interactive() {
                    return Err(CliError::Usage(
                        "refusing to delete a profile without --yes (stdin is not a terminal to \
                         confirm on)"
                            .into(),
                    ));
                }
                // Say which profile, then ask.
                let req = Request::ProfileList {
                    password: password.clone(),
                };
                let (reply, _) = call(dir, req, None).await?;
                let Reply::Profiles { profiles } = reply else {
                    return Err(unexpected(reply));
                };
                let i = session::select(&profiles, profile.as_deref(), "profile")?;
                let p = &profiles[i];
                let q = format!(
                    "Delete profile {} ({}) and all its messages? This cannot be undone.",
                    output::escape(&p.name),
                    p.onion
                );
                if !input::confirm(&q)? {
                    return Err(CliError::Usage("not deleted".into()));
                }
                profile = Some(p.profile_id.clone());
            }
            let (reply, _) = call(dir, Request::ProfileDelete { profile, password }, None).await?;
            let Reply::Profile { profile: p } = reply else {
                return Err(unexpected(reply));
            };
            if json {
                output::json(&p);
            } else {
                output::line(&format!("deleted: {}", output::profile_line(&p)));
            }
        }
    }
    Ok(())
}

/// A group name that commands can name it by: not digits only (read as a conversation id),
/// not an onion address (read as a contact's).
fn usable_group_name(name: &str) -> Result<(), CliError> {
    let name = name.trim();
    if name.chars().all(|c| c.is_ascii_digit()) {
        return Err(CliError::Usage(format!(
            "a group name of digits only ({name}) would be read as a conversation id: choose another"
        )));
    }
    if cwtch::Onion::parse(name).is_ok() {
        return Err(CliError::Usage(
            "a group name that is an onion address would be read as a contact's: choose another"
                .into(),
        ));
    }
    Ok(())
}

/// A created or imported profile: a note on stderr, then its onion as the last line of
/// stdout (or the profile as JSON).
fn print_new_profile(reply: Reply, verb: &str, suffix: &str, json: bool) -> Result<(), CliError> {
    let Reply::Profile { profile: p } = reply else {
        return Err(unexpected(reply));
    };
    output::note(&format!(
        "{verb} profile {} (id {}){suffix}",
        output::escape(&p.name),
        p.profile_id
    ));
    if json {
        output::json(&p);
    } else {
        output::line(&p.onion);
    }
    Ok(())
}

fn print_settings(reply: Reply, json: bool) -> Result<(), CliError> {
    let Reply::Settings { settings: s } = reply else {
        return Err(unexpected(reply));
    };
    if json {
        output::json(&s);
    } else {
        output::line(&output::settings_text(&s));
    }
    Ok(())
}

/// A request about one existing contact (checked first), and whether to read a password.
fn named(
    a: cli::ContactArgs,
    req: impl FnOnce(String) -> Request,
) -> Result<(Request, bool), CliError> {
    contact_arg(&a.contact)?;
    Ok((req(a.contact), a.password.password_stdin))
}

async fn contact_command(
    dir: &Path,
    cmd: ContactCommand,
    profile: Option<String>,
    json: bool,
) -> Result<(), CliError> {
    // Check the contact before asking for a password or anyone else.
    let (req, password_stdin) = match cmd {
        ContactCommand::Add(a) => {
            session::parse_onion(&a.contact)?;
            let req = Request::ContactAdd {
                profile,
                contact: a.contact,
            };
            (req, a.password.password_stdin)
        }
        ContactCommand::List(a) => (Request::ContactList { profile }, a.password_stdin),
        ContactCommand::Accept(a) => {
            named(a, |contact| Request::ContactAccept { profile, contact })?
        }
        ContactCommand::Block(a) => named(a, |contact| Request::ContactBlock { profile, contact })?,
        ContactCommand::Unblock(a) => {
            named(a, |contact| Request::ContactUnblock { profile, contact })?
        }
        ContactCommand::Rename(a) => {
            let name = a.name;
            named(a.contact, |contact| Request::ContactRename {
                profile,
                contact,
                name,
            })?
        }
        ContactCommand::Permissions(a) => {
            let (files, images) = (a.files, a.images);
            named(a.contact, |contact| Request::ContactPermissions {
                profile,
                contact,
                files,
                images,
            })?
        }
        ContactCommand::Delete(a) => {
            contact_arg(&a.contact.contact)?;
            if !a.yes {
                confirm_contact_delete(&a.contact.contact)?;
            }
            let req = Request::ContactDelete {
                profile,
                contact: a.contact.contact,
            };
            (req, a.contact.password.password_stdin)
        }
    };
    let deleted = matches!(req, Request::ContactDelete { .. });
    let added = matches!(req, Request::ContactAdd { .. });
    let permissions = matches!(req, Request::ContactPermissions { .. });
    let extra = extra_password(password_stdin)?;
    let (reply, _) = call(dir, req, extra.as_ref()).await?;
    match reply {
        Reply::Contacts { contacts } if json => output::json(&contacts),
        Reply::Contacts { contacts } => {
            for c in &contacts {
                output::line(&output::contact_line(c));
            }
        }
        Reply::Contact { contact } if json => output::json(&contact),
        Reply::Contact { contact } if permissions => {
            output::line(&output::contact_permissions_line(&contact));
        }
        Reply::Contact { contact } if deleted => output::line(&format!(
            "deleted: {} ({} messages)",
            output::contact_line(&contact),
            contact.message_count
        )),
        Reply::Contact { contact } => {
            if added && contact.blocked {
                output::note(&format!(
                    "{} is a contact you blocked: `cwtch contact unblock {}` lets it in again",
                    contact.onion, contact.conversation_id
                ));
            }
            output::line(&output::contact_line(&contact))
        }
        r => return Err(unexpected(r)),
    }
    Ok(())
}

/// Ask before deleting a conversation; without a terminal, --yes is required.
fn confirm_contact_delete(contact: &str) -> Result<(), CliError> {
    confirm_delete(
        "delete a contact",
        &format!("Delete contact {contact} and the whole conversation? This cannot be undone."),
    )
}

/// Ask `question` on the terminal before deleting; without one, `--yes` is needed.
fn confirm_delete(what: &str, question: &str) -> Result<(), CliError> {
    if !input::interactive() {
        return Err(CliError::Usage(format!(
            "refusing to {what} without --yes (stdin is not a terminal to confirm on)"
        )));
    }
    if input::confirm(question)? {
        Ok(())
    } else {
        Err(CliError::Usage("not deleted".into()))
    }
}

/// A contact argument: not blank (an onion, a conversation id or a name: which contact it
/// names is decided in the profile).
fn contact_arg(s: &str) -> Result<(), CliError> {
    if s.trim().is_empty() {
        return Err(CliError::Usage(
            "no contact given (an onion, a conversation id or a contact's name)".into(),
        ));
    }
    Ok(())
}

/// A contact or group argument: anything not blank (what it names is decided by what resolves,
/// in the profile).
fn check_target(s: &str) -> Result<(), CliError> {
    if s.trim().is_empty() {
        return Err(CliError::Usage(
            "no contact or group given (an onion, a conversation id, a group id or a group name)"
                .into(),
        ));
    }
    Ok(())
}

fn print_server(reply: Reply, json: bool, verb: Option<&str>) -> Result<(), CliError> {
    let Reply::Server { server } = reply else {
        return Err(unexpected(reply));
    };
    if json {
        output::json(&server);
    } else {
        match verb {
            Some(v) => output::line(&format!("{v}: {}", output::server_line(&server))),
            None => output::line(&server.onion),
        }
    }
    Ok(())
}

async fn server_command(
    dir: &Path,
    cmd: ServerCommand,
    profile: Option<String>,
    json: bool,
) -> Result<(), CliError> {
    match cmd {
        ServerCommand::Add(a) => {
            let bundle = a.bundle.trim().to_owned();
            if !bundle.starts_with("server:") {
                return Err(CliError::Usage(format!(
                    "{:?} is not a server bundle: a bundle is one line starting with `server:`, \
                     printed by `cwtch-server bundle` on the server's machine",
                    shorten(&bundle)
                )));
            }
            let extra = extra_password(a.password.password_stdin)?;
            let req = Request::ServerAdd { profile, bundle };
            let (reply, _) = call(dir, req, extra.as_ref()).await?;
            if let Reply::Server { server } = &reply {
                output::note(&format!(
                    "server {} imported (conversation {}); create a group on it with `cwtch \
                     group create NAME --server {}`",
                    server.onion, server.conversation_id, server.onion
                ));
            }
            print_server(reply, json, None)
        }
        ServerCommand::List(a) => {
            let extra = extra_password(a.password_stdin)?;
            let (reply, _) = call(dir, Request::ServerList { profile }, extra.as_ref()).await?;
            let Reply::Servers { servers } = reply else {
                return Err(unexpected(reply));
            };
            if json {
                output::json(&servers);
            } else {
                for s in &servers {
                    output::line(&output::server_line(s));
                }
            }
            Ok(())
        }
        ServerCommand::Remove(a) => {
            session::parse_onion(&a.onion)?;
            let extra = extra_password(a.password.password_stdin)?;
            let req = Request::ServerRemove {
                profile,
                server: a.onion,
            };
            let (reply, _) = call(dir, req, extra.as_ref()).await?;
            print_server(reply, json, Some("removed"))
        }
    }
}

async fn group_command(
    dir: &Path,
    cmd: GroupCommand,
    profile: Option<String>,
    json: bool,
) -> Result<(), CliError> {
    let group_arg = |g: &str| -> Result<(), CliError> {
        if g.trim().is_empty() {
            Err(CliError::Usage(
                "no group given (a conversation id, a group id or a group name)".into(),
            ))
        } else {
            Ok(())
        }
    };
    match cmd {
        GroupCommand::Create(a) => {
            if a.name.trim().is_empty() {
                return Err(CliError::Usage("the group name must not be empty".into()));
            }
            usable_group_name(&a.name)?;
            session::parse_onion(&a.server)?;
            let extra = extra_password(a.password.password_stdin)?;
            let req = Request::GroupCreate {
                profile,
                name: a.name,
                server: a.server,
            };
            let (reply, _) = call(dir, req, extra.as_ref()).await?;
            let Reply::Group { group } = reply else {
                return Err(unexpected(reply));
            };
            output::note(&format!(
                "created group {} (conversation {}, group id {}) on server {}; the last line is \
                 its invite (the group's secret): send it with `cwtch group invite {} CONTACT`",
                output::escape(&group.name),
                group.conversation_id,
                group.group_id,
                group.server,
                group.conversation_id
            ));
            if json {
                output::json(&group);
            } else {
                output::line(&group.conversation_id.to_string());
                output::line(group.invite.as_deref().unwrap_or(""));
            }
            Ok(())
        }
        GroupCommand::Invite(a) => {
            a.acn.check().map_err(CliError::acn)?;
            group_arg(&a.group)?;
            contact_arg(&a.contact)?;
            let extra = extra_password(a.password.password_stdin)?;
            let req = Request::GroupInvite {
                profile,
                group: a.group.clone(),
                contact: a.contact,
                wait_secs: a.wait,
            };
            let direct = Direct {
                extra: extra.as_ref().map(Secret::password),
                acn: Some(&a.acn),
                create_home: false,
            };
            match client::execute(dir, req, direct).await?.0 {
                Reply::Invited { sent, group } if json => output::json(&output::InviteJson {
                    sent: &sent,
                    group: &group,
                }),
                Reply::Invited { sent, group } => output::line(&output::invite_line(&sent, &group)),
                r => return Err(unexpected(r)),
            }
            Ok(())
        }
        GroupCommand::Join(a) => {
            let extra = extra_password(a.password.password_stdin)?;
            let invite = if a.invite == "-" {
                input::invite()?
            } else {
                Secret::new(zeroize::Zeroizing::new(a.invite.trim().to_owned()))
            };
            let s = invite.0.as_str();
            if !(s.starts_with("tofubundle:") || s.starts_with("torv3")) {
                return Err(CliError::Usage(
                    "not a group invite: an invite is one line starting with `tofubundle:` (or \
                     `torv3` for a server already added)"
                        .into(),
                ));
            }
            let req = Request::GroupJoin { profile, invite };
            let (reply, via) = call(dir, req, extra.as_ref()).await?;
            let Reply::Group { group } = reply else {
                return Err(unexpected(reply));
            };
            // A running `cwtch run` syncs it now; without one, the next one does.
            let fetches = match via {
                Via::Daemon => "the running `cwtch run` is fetching its messages",
                Via::Direct => "`cwtch run` fetches its messages",
            };
            output::note(&format!(
                "joined group {} (group id {}) on server {}; {fetches}",
                output::escape(&group.name),
                group.group_id,
                group.server
            ));
            if json {
                output::json(&group);
            } else {
                output::line(&group.conversation_id.to_string());
            }
            Ok(())
        }
        GroupCommand::List(a) => {
            let extra = extra_password(a.password_stdin)?;
            let (reply, _) = call(dir, Request::GroupList { profile }, extra.as_ref()).await?;
            let Reply::Groups { groups } = reply else {
                return Err(unexpected(reply));
            };
            if json {
                output::json(&groups);
            } else {
                for g in &groups {
                    output::line(&output::group_line(g));
                }
            }
            Ok(())
        }
        GroupCommand::Accept(a) if a.group.trim().is_empty() => group_arg(&a.group),
        GroupCommand::Leave(a) if a.group.group.trim().is_empty() => group_arg(&a.group.group),
        GroupCommand::Accept(a) => {
            let extra = extra_password(a.password.password_stdin)?;
            let req = Request::GroupAccept {
                profile,
                group: a.group,
            };
            let (reply, _) = call(dir, req, extra.as_ref()).await?;
            print_group(reply, json, None)
        }
        GroupCommand::Rename(a) if a.group.trim().is_empty() => group_arg(&a.group),
        GroupCommand::Rename(a) => {
            if a.name.trim().is_empty() {
                return Err(CliError::Usage("the group's new name is empty".into()));
            }
            usable_group_name(&a.name)?;
            let extra = extra_password(a.password.password_stdin)?;
            let req = Request::GroupRename {
                profile,
                group: a.group,
                name: a.name,
            };
            let (reply, _) = call(dir, req, extra.as_ref()).await?;
            print_group(reply, json, Some("renamed"))
        }
        GroupCommand::Leave(a) => {
            if !a.yes {
                confirm_delete(
                    "leave a group",
                    &format!(
                        "Leave group {} and delete its messages here? This cannot be undone.",
                        output::escape(&a.group.group)
                    ),
                )?;
            }
            let a = a.group;
            let extra = extra_password(a.password.password_stdin)?;
            let req = Request::GroupLeave {
                profile,
                group: a.group,
            };
            let (reply, _) = call(dir, req, extra.as_ref()).await?;
            print_group(reply, json, Some("left"))
        }
    }
}

fn print_group(reply: Reply, json: bool, verb: Option<&str>) -> Result<(), CliError> {
    let Reply::Group { group } = reply else {
        return Err(unexpected(reply));
    };
    if json {
        output::json(&group);
    } else {
        match verb {
            Some(v) => output::line(&format!("{v}: {}", output::group_line(&group))),
            None => output::line(&output::group_line(&group)),
        }
    }
    Ok(())
}

/// The start of a long argument, for an error message.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}
