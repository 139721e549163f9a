//! A daemon's control socket: a unix socket where the CLI sends one request and reads
//! one response, each one line of JSON wrapped with the protocol version:
//!
//! ```text
//! -> {"version":1,"request":{...}}
//! <- {"version":1,"response":{...}}
//! ```
//!
//! The version is bumped whenever a request or response changes shape; a daemon answers
//! a request of another version with a refusal naming both versions, and a CLI that
//! reads an answer of another version says so instead of misreading it. A line that is
//! not a request, or longer than [`Protocol::MAX_REQUEST`], is refused and ends that
//! client only. Each daemon names its request and response types in a [`Protocol`].

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::shutdown::Stop;
use crate::{Error, Result};

/// One daemon's control protocol.
pub trait Protocol: 'static {
    type Request: Serialize + DeserializeOwned + Send + 'static;
    type Response: Serialize + DeserializeOwned + Send + 'static;
    /// Bumped whenever a request or response changes shape.
    const VERSION: u32;
    /// The daemon's name in messages ("hydra tgtd").
    const DAEMON: &'static str;
    /// Longest request line the daemon reads.
    const MAX_REQUEST: usize = 64 * 1024;
    /// The answer to a line the daemon could not take as a request: `why` says what was
    /// wrong (malformed, too long, another version).
    fn refusal(why: String) -> Self::Response;
}

#[derive(Serialize, Deserialize)]
struct RequestLine<T> {
    version: u32,
    request: T,
}

#[derive(Serialize, Deserialize)]
struct ResponseLine<T> {
    version: u32,
    response: T,
}

/// Just the version of a line, read before the rest so that a request of another
/// version is refused as such rather than as malformed.
#[derive(Deserialize)]
struct Version {
    version: u32,
}

fn line<T: Serialize>(v: &T) -> String {
    let mut s = serde_json::to_string(v).expect("plain data serializes");
    s.push('\n');
    s
}

/// The line a client sends for `request` (newline included; serde_json escapes any
/// newline inside).
pub fn request_line<P: Protocol>(request: &P::Request) -> String {
    line(&RequestLine {
        version: P::VERSION,
        request,
    })
}

/// A bound control socket; the socket file is removed when it is dropped.
pub struct Listener {
    inner: UnixListener,
    path: PathBuf,
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Listener {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Bind the socket at `path`, replacing a stale socket file; `mode` sets its permission
/// bits (None: as the umask leaves them). Call it with the daemon's [`crate::PidFile`]
/// held: a socket file left there is then known to be stale, not another daemon's.
pub fn bind(path: &Path, mode: Option<u32>) -> Result<Listener> {
    let what = || format!("control socket {}", path.display());
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            return Err(Error::io(what(), e));
        }
    }
    let inner = UnixListener::bind(path).map_err(|e| Error::io(what(), e))?;
    let listener = Listener {
        inner,
        path: path.into(),
    };
    if let Some(mode) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(what(), e))?;
    }
    Ok(listener)
}

/// Answer requests with `handler` until `stop`; each client is a task that finishes the
/// request it is in when the daemon stops. The socket file is removed on return.
pub async fn serve<P, H, F>(listener: Listener, mut stop: Stop, handler: H)
where
    P: Protocol,
    H: Fn(P::Request) -> F + Clone + Send + 'static,
    F: Future<Output = P::Response> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            a = listener.inner.accept() => a,
            _ = stop.recv() => return,
        };
        match accepted {
            Ok((stream, _)) => {
                tokio::spawn(client::<P, H, F>(stream, stop.clone(), handler.clone()));
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("{} control socket: accept: {e}", P::DAEMON);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One client, until it hangs up, sends something that is not a request, or the
/// daemon stops.
async fn client<P, H, F>(stream: UnixStream, mut stop: Stop, handler: H)
where
    P: Protocol,
    H: Fn(P::Request) -> F,
    F: Future<Output = P::Response>,
{
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut text = String::new();
    loop {
        text.clear();
        let mut limited = (&mut r).take(P::MAX_REQUEST as u64);
        let n = tokio::select! {
            n = limited.read_line(&mut text) => n,
            _ = stop.recv() => return,
        };
        match n {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => return tracing::info!("{} control client: {e}", P::DAEMON),
        }
        let (response, keep) = match parse::<P>(&text) {
            Ok(req) => (handler(req).await, true),
            Err(why) => (P::refusal(why), false),
        };
        let out = line(&ResponseLine {
            version: P::VERSION,
            response,
        });
        if w.write_all(out.as_bytes()).await.is_err() || !keep {
            return;
        }
    }
}

/// One request line as the daemon reads it (newline included), or why it is not one:
/// the answer [`Protocol::refusal`] gets.
pub fn parse<P: Protocol>(text: &str) -> std::result::Result<P::Request, String> {
    if !text.ends_with('\n') {
        return Err(if text.len() >= P::MAX_REQUEST {
            format!("request longer than {} bytes", P::MAX_REQUEST)
        } else {
            "request not ended by a newline".into()
        });
    }
    let text = text.trim_end();
    match serde_json::from_str::<Version>(text) {
        Ok(v) if v.version != P::VERSION => {
            return Err(format!(
                "control protocol version {} not supported ({} speaks {})",
                v.version,
                P::DAEMON,
                P::VERSION
            ))
        }
        Ok(_) => {}
        Err(e) => return Err(format!("malformed request: {e}")),
    }
    serde_json::from_str::<RequestLine<P::Request>>(text)
        .map(|l| l.request)
        .map_err(|e| format!("malformed request: {e}"))
}

/// Send one request to the daemon listening at `path` and wait for its answer.
pub async fn call<P: Protocol>(path: &Path, request: P::Request) -> Result<P::Response> {
    let stream = UnixStream::connect(path)
        .await
        .map_err(|source| Error::Connect {
            daemon: P::DAEMON,
            path: path.into(),
            source,
        })?;
    let (r, mut w) = stream.into_split();
    w.write_all(request_line::<P>(&request).as_bytes())
        .await
        .map_err(|e| Error::io("control socket write", e))?;
    let mut answer = String::new();
    let n = BufReader::new(r)
        .read_line(&mut answer)
        .await
        .map_err(|e| Error::io("control socket read", e))?;
    if n == 0 {
        return Err(Error::Protocol(format!(
            "{} closed the control socket without answering",
            P::DAEMON
        )));
    }
    let bad = |e: serde_json::Error| Error::Protocol(format!("bad answer from {}: {e}", P::DAEMON));
    let version = serde_json::from_str::<Version>(&answer)
        .map_err(bad)?
        .version;
    if version != P::VERSION {
        return Err(Error::Protocol(format!(
            "{} speaks control protocol version {version}, this hydra speaks {}: run one version of both",
            P::DAEMON,
            P::VERSION
        )));
    }
    serde_json::from_str::<ResponseLine<P::Response>>(&answer)
        .map(|l| l.response)
        .map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Shutdown;
    use tokio::io::AsyncWriteExt;

    /// An upper-casing daemon speaking protocol version `V`.
    struct Echo<const V: u32 = 3>;
    impl<const V: u32> Protocol for Echo<V> {
        type Request = String;
        type Response = std::result::Result<String, String>;
        const VERSION: u32 = V;
        const DAEMON: &'static str = "echod";
        const MAX_REQUEST: usize = 64;
        fn refusal(why: String) -> Self::Response {
            Err(why)
        }
    }

    /// One raw line to the socket, its raw answer back.
    async fn raw(path: &Path, text: &str) -> String {
        let mut s = UnixStream::connect(path).await.unwrap();
        s.write_all(text.as_bytes()).await.unwrap();
        let mut answer = String::new();
        BufReader::new(s).read_line(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn requests_are_answered_and_other_versions_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("echo.sock");
        let shutdown = Shutdown::new();
        let listener = bind(&path, Some(0o600)).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let server = tokio::spawn(serve::<Echo<3>, _, _>(
            listener,
            shutdown.subscribe(),
            |r: String| async move { Ok(r.to_uppercase()) },
        ));
        assert_eq!(
            call::<Echo<3>>(&path, "hi".into()).await.unwrap(),
            Ok("HI".into())
        );

        let old = raw(&path, "{\"version\":2,\"request\":\"hi\"}\n").await;
        assert!(
            old.contains("control protocol version 2 not supported (echod speaks 3)"),
            "{old}"
        );
        let garbage = raw(&path, "{\"op\":\"format_disk\"}\n").await;
        assert!(garbage.contains("malformed request"), "{garbage}");
        let long = raw(&path, &format!("{}\n", "x".repeat(100))).await;
        assert!(long.contains("request longer than 64 bytes"), "{long}");

        let line = request_line::<Echo<3>>(&"a\nb".to_string());
        assert_eq!(line.matches('\n').count(), 1);
        assert_eq!(parse::<Echo<3>>(&line), Ok("a\nb".to_string()));
        assert_eq!(
            parse::<Echo<3>>(line.trim_end()),
            Err("request not ended by a newline".to_string())
        );

        // The other way round: a daemon of another version answers.
        let e = call::<Echo<4>>(&path, "hi".into()).await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with("echod speaks control protocol version 3, this hydra speaks 4"),
            "{e}"
        );

        assert!(shutdown.drain(Duration::from_secs(5)).await);
        server.await.unwrap();
        assert!(!path.exists(), "the socket file goes with the server");
        let e = call::<Echo<3>>(&path, "hi".into()).await.unwrap_err();
        assert!(e.to_string().starts_with("can't connect to echod ("), "{e}");
    }
}
