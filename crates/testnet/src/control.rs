//! Just enough of Tor's control protocol to watch a client bootstrap: `AUTHENTICATE` with the
//! cookie, `GETINFO`. (The real control-port client lives in `connectivity`.)

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::Error;

/// Longest reply line we accept.
const MAX_LINE: u64 = 64 * 1024;
/// Most lines in one reply.
const MAX_LINES: usize = 1024;
/// Bound on each command's round trip.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct Control {
    node: String,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Control {
    pub(crate) async fn connect(node: &str, addr: SocketAddr) -> Result<Self, Error> {
        let stream = tokio::time::timeout(COMMAND_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| timed_out())
            .and_then(|r| r)
            .map_err(|source| Error::ControlIo {
                node: node.to_owned(),
                source,
            })?;
        let (r, w) = stream.into_split();
        Ok(Control {
            node: node.to_owned(),
            reader: BufReader::new(r),
            writer: w,
        })
    }

    /// `AUTHENTICATE <hex cookie>` (the COOKIE method).
    pub(crate) async fn authenticate(&mut self, cookie: &[u8]) -> Result<(), Error> {
        self.command(&format!("AUTHENTICATE {}", hex::encode(cookie)))
            .await
            .map(drop)
    }

    /// `GETINFO key`: the value (of a single-line `250-key=value` reply).
    pub(crate) async fn getinfo(&mut self, key: &str) -> Result<String, Error> {
        let lines = self.command(&format!("GETINFO {key}")).await?;
        let prefix = format!("{key}=");
        lines
            .iter()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(str::to_owned)
            .ok_or_else(|| self.bad_reply(lines.join("\n")))
    }

    /// Sends one command line; returns the reply's lines (without status codes) if it is
    /// `250`, else an error carrying the reply.
    async fn command(&mut self, line: &str) -> Result<Vec<String>, Error> {
        let result = tokio::time::timeout(COMMAND_TIMEOUT, async {
            self.writer
                .write_all(format!("{line}\r\n").as_bytes())
                .await?;
            self.read_reply().await
        })
        .await
        .map_err(|_| timed_out())
        .and_then(|r| r);
        let (code, lines) = result.map_err(|source| Error::ControlIo {
            node: self.node.clone(),
            source,
        })?;
        if code == "250" {
            Ok(lines)
        } else {
            Err(self.bad_reply(format!("{code} {}", lines.join("\n"))))
        }
    }

    fn bad_reply(&self, reply: String) -> Error {
        Error::ControlReply {
            node: self.node.clone(),
            reply,
        }
    }

    /// Reads one reply: `XYZ-...` and `XYZ+...` (data, up to a `.` line) continue it, `XYZ ...`
    /// ends it. Returns the status code and the lines' texts.
    async fn read_reply(&mut self) -> std::io::Result<(String, Vec<String>)> {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line().await?;
            let (code, sep, text) = split_reply_line(&line)?;
            if sep == '+' {
                // Data: lines until ".", which we fold into the reply's text.
                let mut data = text.to_owned();
                loop {
                    let l = self.read_line().await?;
                    if l == "." {
                        break;
                    }
                    data.push('\n');
                    data.push_str(l.strip_prefix('.').unwrap_or(&l));
                    check_len(lines.len())?;
                }
                lines.push(data);
            } else {
                lines.push(text.to_owned());
            }
            check_len(lines.len())?;
            if sep == ' ' {
                return Ok((code.to_owned(), lines));
            }
        }
    }

    async fn read_line(&mut self) -> std::io::Result<String> {
        let mut buf = Vec::new();
        (&mut self.reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut buf)
            .await?;
        if buf.last() != Some(&b'\n') {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "control connection closed or line too long",
            ));
        }
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
}

fn check_len(n: usize) -> std::io::Result<()> {
    if n > MAX_LINES {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "control reply too long",
        ))
    } else {
        Ok(())
    }
}

fn timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in time")
}

fn split_reply_line(line: &str) -> std::io::Result<(&str, char, &str)> {
    let bad = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad line {line:?}"),
        )
    };
    let code = line.get(..3).ok_or_else(bad)?;
    if !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let sep = line[3..].chars().next().ok_or_else(bad)?;
    if !matches!(sep, ' ' | '-' | '+') {
        return Err(bad());
    }
    Ok((code, sep, &line[4..]))
}

/// Bootstrap progress from a `status/bootstrap-phase` value such as
/// `NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"`.
pub(crate) fn bootstrap_progress(phase: &str) -> Option<u8> {
    phase
        .split_whitespace()
        .find_map(|w| w.strip_prefix("PROGRESS="))?
        .parse()
        .ok()
}

/// The first port of a `net/listeners/socks` value such as `"127.0.0.1:9050"`.
pub(crate) fn first_listener_port(value: &str) -> Option<u16> {
    let first = value.split_whitespace().next()?.trim_matches('"');
    first.rsplit_once(':')?.1.parse().ok()
}

/// The address in a `ControlPortWriteToFile` file (`PORT=127.0.0.1:9051`).
pub(crate) fn parse_port_file(text: &str) -> Option<SocketAddr> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("PORT="))?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn parses_values() {
        assert_eq!(
            bootstrap_progress("NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY=\"Done\""),
            Some(100)
        );
        assert_eq!(
            bootstrap_progress("WARN BOOTSTRAP PROGRESS=5 TAG=conn SUMMARY=\"x\""),
            Some(5)
        );
        assert_eq!(bootstrap_progress("garbage"), None);
        assert_eq!(first_listener_port("\"127.0.0.1:9050\""), Some(9050));
        assert_eq!(
            first_listener_port("\"127.0.0.1:1\" \"127.0.0.1:2\""),
            Some(1)
        );
        assert_eq!(first_listener_port(""), None);
        assert_eq!(
            parse_port_file("PORT=127.0.0.1:39211\n"),
            Some("127.0.0.1:39211".parse().unwrap())
        );
        assert_eq!(parse_port_file("PORT=127.0.0.1:"), None);
        assert!(split_reply_line("25").is_err());
        assert!(split_reply_line("abc def").is_err());
        assert!(split_reply_line("250x").is_err());
    }

    /// A scripted fake tor: checks what we send, answers canned replies.
    #[tokio::test]
    async fn talks_the_protocol() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let (r, mut w) = s.into_split();
            let mut r = BufReader::new(r).lines();
            assert_eq!(r.next_line().await.unwrap().unwrap(), "AUTHENTICATE 0102ff");
            w.write_all(b"250 OK\r\n").await.unwrap();
            assert_eq!(
                r.next_line().await.unwrap().unwrap(),
                "GETINFO status/bootstrap-phase"
            );
            w.write_all(
                b"250-status/bootstrap-phase=NOTICE BOOTSTRAP PROGRESS=100 TAG=done\r\n250 OK\r\n",
            )
            .await
            .unwrap();
            r.next_line().await.unwrap().unwrap();
            w.write_all(b"250+config-text=\r\nA 1\r\n..B\r\n.\r\n250 OK\r\n")
                .await
                .unwrap();
            r.next_line().await.unwrap().unwrap();
            w.write_all(b"552 Unrecognized key \"nope\"\r\n")
                .await
                .unwrap();
        });
        let mut c = Control::connect("fake", addr).await.unwrap();
        c.authenticate(&[1, 2, 255]).await.unwrap();
        let phase = c.getinfo("status/bootstrap-phase").await.unwrap();
        assert_eq!(bootstrap_progress(&phase), Some(100));
        assert_eq!(c.getinfo("config-text").await.unwrap(), "\nA 1\n.B");
        let err = c.getinfo("nope").await.unwrap_err();
        assert!(matches!(err, Error::ControlReply { .. }), "{err}");
        server.await.unwrap();
    }
}
