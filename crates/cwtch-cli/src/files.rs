//! `cwtch file …`: sharing and downloading files (the library's file sharing).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use cwtch::Event;
use tokio::sync::broadcast::error::RecvError;

use crate::cli::FileCommand;
use crate::client::{self, Direct};
use crate::error::CliError;
use crate::output;
use crate::protocol::{Reply, Request, Secret};
use crate::session::{contact_error, group_error, resolve_target, Session, Target};

impl Session {
    /// The `file.*` requests.
    pub(crate) async fn file_request(&self, req: Request) -> Result<Reply, CliError> {
        match req {
            Request::FileShare {
                profile,
                contact,
                path,
                wait_secs,
            } => {
                let h = self.handle(profile.as_deref()).await?;
                // Subscribe before sharing: the acknowledgement can arrive at once.
                let events = self.app.events();
                match resolve_target(&h, &contact).await? {
                    Target::Contact(cid) => {
                        let (file_key, sent) = h
                            .share_file(cid.clone(), Path::new(&path))
                            .await
                            .map_err(|e| file_error(e, &contact))?;
                        let reply = self
                            .await_acknowledgement(&h, events, cid, &contact, sent, wait_secs)
                            .await?;
                        let Reply::Sent { sent } = reply else {
                            return Ok(reply);
                        };
                        Ok(Reply::FileShared { file_key, sent })
                    }
                    Target::Group(g) => {
                        let (file_key, sent) = h
                            .share_file_in_group(g, Path::new(&path))
                            .await
                            .map_err(|e| file_error(e, &contact))?;
                        let reply = self
                            .await_group_post(&h, events, sent, &contact, wait_secs)
                            .await?;
                        let Reply::GroupSent { sent } = reply else {
                            return Ok(reply);
                        };
                        Ok(Reply::GroupFileShared { file_key, sent })
                    }
                }
            }
            Request::FileList { profile, contact } => {
                let h = self.handle(profile.as_deref()).await?;
                let name = contact.as_deref().unwrap_or("");
                let files = match contact.as_deref() {
                    None => h.files(None).await,
                    Some(c) => match resolve_target(&h, c).await? {
                        Target::Contact(cid) => h.files(Some(cid)).await,
                        Target::Group(g) => h.group_files(g).await,
                    },
                }
                .map_err(|e| file_error(e, name))?;
                Ok(Reply::Files { files })
            }
            Request::FileDownload {
                profile,
                contact,
                file_key,
                dir,
                wait,
            } => {
                let h = self.handle(profile.as_deref()).await?;
                // Subscribe first: the download may end before this request does.
                let events = self.app.events();
                let target = resolve_target(&h, &contact).await?;
                let started = match &target {
                    Target::Contact(cid) => {
                        h.download_file(cid.clone(), &file_key, Path::new(&dir))
                            .await
                    }
                    Target::Group(g) => {
                        h.download_group_file(g.clone(), &file_key, Path::new(&dir))
                            .await
                    }
                };
                let started = match started {
                    Ok(path) => Some(path.display().to_string()),
                    // Running already (resumed when the profile started after a crash, or
                    // asked for before): this request follows that download.
                    Err(cwtch::Error::DownloadRunning) => None,
                    Err(e) => return Err(file_error(e, &contact)),
                };
                // Where it goes and whether it is there already (downloaded before, or
                // that quickly).
                let files = match target {
                    Target::Contact(cid) => h.files(Some(cid)).await,
                    Target::Group(g) => h.group_files(g).await,
                }
                .map_err(|e| file_error(e, &contact))?;
                let row = files
                    .into_iter()
                    .find(|f| !f.ours && f.file_key == file_key);
                let done = row.as_ref().is_some_and(|f| f.state == "downloaded");
                let path = row
                    .and_then(|f| f.path)
                    .or(started)
                    .ok_or_else(|| file_error(cwtch::Error::FileNotFound, &contact))?;
                let state = if done { "downloaded" } else { "downloading" }.to_owned();
                if !wait || self.is_daemon() || state != "downloading" {
                    return Ok(Reply::FileDownload {
                        file_key,
                        path,
                        state,
                    });
                }
                let me = h.onion().as_str().to_owned();
                let path = follow_download(Events::Local(events), Some(&me), &file_key).await?;
                Ok(Reply::FileDownload {
                    file_key,
                    path,
                    state: "downloaded".into(),
                })
            }
            Request::FileStop {
                profile,
                file_key,
                download,
            } => {
                let h = self.handle(profile.as_deref()).await?;
                let stop_download = || async {
                    h.stop_download(&file_key).await.map_err(|e| match e {
                        cwtch::Error::NotDownloading => CliError::NotFound(
                            "no such file: neither shared by you nor being downloaded (see \
                             `cwtch file list`)"
                                .into(),
                        ),
                        e => file_error(e, ""),
                    })
                };
                // Ours: stop sharing it; else a download of it: stop that (unless told which).
                let state = match download {
                    Some(true) => {
                        stop_download().await?;
                        "download stopped"
                    }
                    Some(false) => {
                        h.stop_sharing(&file_key)
                            .await
                            .map_err(|e| file_error(e, ""))?;
                        "stopped"
                    }
                    None => match h.stop_sharing(&file_key).await {
                        Ok(()) => "stopped",
                        Err(cwtch::Error::FileNotFound) => {
                            stop_download().await?;
                            "download stopped"
                        }
                        Err(e) => return Err(file_error(e, "")),
                    },
                };
                Ok(Reply::FileState {
                    file_key,
                    state: state.into(),
                })
            }
            Request::FileRestart { profile, file_key } => {
                let h = self.handle(profile.as_deref()).await?;
                h.restart_sharing(&file_key)
                    .await
                    .map_err(|e| file_error(e, ""))?;
                Ok(Reply::FileState {
                    file_key,
                    state: "sharing".into(),
                })
            }
            r => Err(CliError::Failed(format!("not a file request: {}", r.op()))),
        }
    }
}

fn file_error(e: cwtch::Error, contact: &str) -> CliError {
    match e {
        cwtch::Error::FileNotFound => CliError::NotFound(
            "no such file: not offered in this conversation, nor shared by you (see `cwtch file list`)"
                .into(),
        ),
        cwtch::Error::Invalid { what: "file key" } => CliError::Usage(
            "not a file key (128 hex digits, a dot, 48 hex digits: see `cwtch file list`)".into(),
        ),
        e @ (cwtch::Error::ContactNotFound | cwtch::Error::ContactBlocked) => {
            contact_error(e, contact)
        }
        cwtch::Error::SharerNotContact(onion) => CliError::Failed(format!(
            "the file was shared by {onion}, who is not your contact: files in a group come \
             from their sharer over a direct connection; add them first (`cwtch contact add \
             {onion}`)"
        )),
        cwtch::Error::NotPermitted { contact, .. } => CliError::Failed(format!(
            "you refused files from {contact}, who shared this one: allow them first \
             (`cwtch contact permissions {contact} --files allow`)"
        )),
        e @ cwtch::Error::SharedFileChanged => CliError::Failed(e.to_string()),
        e @ (cwtch::Error::GroupNotFound
        | cwtch::Error::GroupNotAccepted
        | cwtch::Error::AmbiguousGroup(_)) => group_error(e, contact),
        e => CliError::lib(e),
    }
}

/// Where a download's events come from: the library in this process, or a running
/// `cwtch run` (its event subscription).
enum Events {
    Local(tokio::sync::broadcast::Receiver<Event>),
    Daemon(client::Subscription),
}

impl Events {
    /// The next event; `None` when no more can come (the profile or the `cwtch run` stopped).
    async fn next(&mut self) -> Option<Event> {
        loop {
            match self {
                Events::Local(rx) => match rx.recv().await {
                    Ok(e) => return Some(e),
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return None,
                },
                Events::Daemon(sub) => match sub.next().await {
                    client::Next::Event(e) => return Some(*e),
                    client::Next::Skipped => {}
                    client::Next::Ended => return None,
                },
            }
        }
    }
}

/// What a download shows until the sharer answers.
const WAITING_FOR_SHARER: &str = "asking the sharer for the file (if it is offline, or not \
     sharing the file now, the download starts when it is; what arrives is kept)";

/// Show a download's progress until it completes (its path) or fails (an error): a bar on a
/// terminal (stderr), JSON lines on stdout otherwise. `me`: the downloading profile's onion,
/// if known (a `cwtch run`'s answer does not say which of its profiles it is).
async fn follow_download(
    mut events: Events,
    me: Option<&str>,
    key: &str,
) -> Result<String, CliError> {
    let mine = |profile: &str, file_key: &str| file_key == key && me.is_none_or(|m| m == profile);
    // Until the sharer answers (it may be offline for hours) say what is awaited, rather than
    // show an empty bar or nothing.
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_message(WAITING_FOR_SHARER);
        b.enable_steady_tick(std::time::Duration::from_millis(250));
        b
    });
    if bar.is_none() {
        output::note(WAITING_FOR_SHARER);
    }
    let mut answered = false;
    let mut sharer_answered = |b: &indicatif::ProgressBar| {
        if !std::mem::replace(&mut answered, true) {
            b.disable_steady_tick();
            b.set_message("");
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bytes:>10}/{total_bytes:10} {bar:40} {bytes_per_sec:>12} eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
        }
    };
    // Ctrl-C: stop following (and, without a daemon, downloading), saying what stays. One
    // listener for the whole wait, so that no press between two events is lost.
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let said = match &events {
        Events::Local(_) => {
            "interrupted: what arrived is kept; run the same command to resume".to_owned()
        }
        Events::Daemon(_) => format!(
            "stopped following: the `cwtch run` goes on downloading (`cwtch file stop {key}` \
             stops it)"
        ),
    };
    loop {
        let next = tokio::select! {
            e = events.next() => e,
            _ = &mut interrupted => {
                if let Some(b) = &bar {
                    b.abandon();
                }
                return Err(CliError::Interrupted(said));
            }
        };
        match next {
            Some(Event::FileManifestReceived {
                profile, file_key, ..
            }) if mine(&profile, &file_key) => {
                if let Some(b) = &bar {
                    sharer_answered(b);
                }
            }
            Some(Event::FileDownloadProgress {
                profile,
                file_key,
                done,
                total,
                ..
            }) if mine(&profile, &file_key) => match &bar {
                Some(b) => {
                    sharer_answered(b);
                    b.set_length(total);
                    b.set_position(done);
                }
                None => output::line(
                    &serde_json::json!({"file_key": key, "done": done, "total": total}).to_string(),
                ),
            },
            Some(Event::FileDownloaded {
                profile,
                file_key,
                path,
                ..
            }) if mine(&profile, &file_key) => {
                if let Some(b) = &bar {
                    b.finish_and_clear();
                }
                return Ok(path);
            }
            Some(Event::FileDownloadFailed {
                profile,
                file_key,
                reason,
                ..
            }) if mine(&profile, &file_key) => {
                if let Some(b) = &bar {
                    b.abandon();
                }
                return Err(CliError::Failed(format!(
                    "the download failed: {reason} (what was verified is kept; run the same command to resume)"
                )));
            }
            Some(_) => {}
            None => {
                if let Some(b) = &bar {
                    b.abandon();
                }
                return Err(CliError::Failed(
                    "the profile stopped before the download ended (what was verified is kept; \
                     it resumes when the profile runs again)"
                        .into(),
                ));
            }
        }
    }
}

/// Where downloads go by default: ~/Downloads (the current folder without a home).
fn default_download_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join("Downloads"))
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Run a `cwtch file` command.
pub(crate) async fn file_command(
    dir: &Path,
    cmd: FileCommand,
    profile: Option<String>,
    json: bool,
) -> Result<(), CliError> {
    match cmd {
        FileCommand::Share(a) => {
            a.acn.check().map_err(CliError::acn)?;
            let extra = crate::extra_password(a.password.password_stdin)?;
            let path = std::path::absolute(&a.path)
                .map_err(|e| CliError::io(&format!("cannot use {}", a.path.display()), e))?;
            let req = Request::FileShare {
                profile,
                contact: a.contact.clone(),
                path: path.display().to_string(),
                wait_secs: a.wait,
            };
            let direct = Direct {
                extra: extra.as_ref().map(Secret::password),
                acn: Some(&a.acn),
                create_home: false,
            };
            match client::execute(dir, req, direct).await?.0 {
                Reply::FileShared { file_key, sent } if json => {
                    output::json(&serde_json::json!({"file_key": file_key, "sent": sent}));
                }
                Reply::FileShared { file_key, sent } => {
                    output::line(&output::send_line(&sent));
                    output::line(&file_key);
                }
                Reply::GroupFileShared { file_key, sent } if json => {
                    output::json(&serde_json::json!({"file_key": file_key, "sent": sent}));
                }
                Reply::GroupFileShared { file_key, sent } => {
                    output::line(&output::group_send_line(&sent));
                    output::line(&file_key);
                }
                r => return Err(crate::unexpected(r)),
            }
        }
        FileCommand::List(a) => {
            let extra = crate::extra_password(a.password.password_stdin)?;
            let req = Request::FileList {
                profile,
                contact: a.contact.clone(),
            };
            match crate::call(dir, req, extra.as_ref()).await?.0 {
                Reply::Files { files } if json => output::json(&files),
                Reply::Files { files } => {
                    for f in &files {
                        output::line(&format!(
                            "{}\t{}\t{}\t{}\t{}\t{}",
                            f.conversation_id,
                            f.file_key,
                            if f.ours { "ours" } else { "theirs" },
                            output::escape(&f.state),
                            f.size,
                            output::escape(&f.name),
                        ));
                    }
                }
                r => return Err(crate::unexpected(r)),
            }
        }
        FileCommand::Download(a) => {
            a.acn.check().map_err(CliError::acn)?;
            let extra = crate::extra_password(a.password.password_stdin)?;
            let to = a.to.clone().unwrap_or_else(default_download_dir);
            let to = std::path::absolute(&to)
                .map_err(|e| CliError::io(&format!("cannot use {}", to.display()), e))?;
            crate::check_dir("the download folder", &to)?;
            let req = Request::FileDownload {
                profile,
                contact: a.contact.clone(),
                file_key: a.file_key.clone(),
                dir: to.display().to_string(),
                wait: true,
            };
            let direct = Direct {
                extra: extra.as_ref().map(Secret::password),
                acn: Some(&a.acn),
                create_home: false,
            };
            // Subscribe before asking: a small file can be done before the answer arrives.
            let events = match a.wait {
                true => client::subscribe(dir).await?,
                false => None,
            };
            let reply = match (client::execute(dir, req, direct).await?.0, events) {
                (
                    Reply::FileDownload {
                        file_key,
                        state,
                        path: _,
                    },
                    Some(events),
                ) if state == "downloading" => {
                    let path = follow_download(Events::Daemon(events), None, &file_key).await?;
                    Reply::FileDownload {
                        file_key,
                        path,
                        state: "downloaded".into(),
                    }
                }
                (r, _) => r,
            };
            match reply {
                r @ Reply::FileDownload { .. } if json => output::json(&r),
                Reply::FileDownload { path, state, .. } => {
                    output::line(&format!("{state}: {path}"));
                }
                r => return Err(crate::unexpected(r)),
            }
        }
        FileCommand::Stop(a) | FileCommand::Restart(a) if a.file_key.trim().is_empty() => {
            return Err(CliError::Usage("no file key given".into()));
        }
        FileCommand::Stop(a) => {
            let extra = crate::extra_password(a.password.password_stdin)?;
            let req = Request::FileStop {
                profile,
                file_key: a.file_key.clone(),
                download: None,
            };
            state_reply(crate::call(dir, req, extra.as_ref()).await?.0, json)?;
        }
        FileCommand::Restart(a) => {
            let extra = crate::extra_password(a.password.password_stdin)?;
            let req = Request::FileRestart {
                profile,
                file_key: a.file_key.clone(),
            };
            state_reply(crate::call(dir, req, extra.as_ref()).await?.0, json)?;
        }
    }
    Ok(())
}

fn state_reply(r: Reply, json: bool) -> Result<(), CliError> {
    match r {
        Reply::FileState { file_key, state } if json => {
            output::json(&serde_json::json!({ "file_key": file_key, "state": state }))
        }
        Reply::FileState { file_key, state } => output::line(&format!("{state}: {file_key}")),
        r => return Err(crate::unexpected(r)),
    }
    Ok(())
}
