//! Noticing that the configuration file changed, by polling, without trusting any one signal.
//!
//! Each poll takes a cheap fingerprint: the path with every symlink resolved, the size, the
//! modification time and (on Unix) device and inode. Editors that write a new file and rename
//! it over the old one change the inode; a Kubernetes ConfigMap update swaps a symlink, which
//! changes the resolved path; an in-place write changes size or time. Only when the fingerprint
//! moves is the file read and hashed, and only content whose hash differs from what was last
//! acted upon is handed on, so an unchanged or still-broken file is not reloaded every tick.
//!
//! Modification times are coarse (a kernel clock tick, two seconds on FAT), so two writes close
//! together may leave the same fingerprint. As git does with its index, a fingerprint taken
//! while the file was freshly modified is not trusted: the file is hashed again on later polls
//! until its time is safely in the past.
//!
//! All file system calls run on the blocking pool, never on the runtime's threads.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How recent a modification time must be for the fingerprint not to be trusted.
const RACY_WINDOW: Duration = Duration::from_secs(3);

/// How often a read that raced with a writer is tried again before the content is taken.
const STABLE_READ_TRIES: u32 = 5;

/// What identifies one version of the file without reading it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Fingerprint {
    resolved: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
    /// Device and inode, which change when a new file is renamed over the old one.
    #[cfg(unix)]
    inode: (u64, u64),
}

/// The file's content at one moment.
#[derive(Debug)]
pub(super) struct Content {
    /// The bytes.
    pub(super) bytes: Vec<u8>,
    /// Their SHA-256, hex.
    pub(super) sha256: String,
}

/// The watch's memory between polls.
#[derive(Debug)]
pub(super) struct Watch {
    path: PathBuf,
    seen: Option<Fingerprint>,
    /// `seen` was taken while the file was freshly modified; hash again on the next poll.
    racy: bool,
    /// The content last acted upon (loaded or rejected).
    acted_on: String,
    /// The last problem reading the file, so it is logged once rather than every poll.
    failing: Option<String>,
}

impl Watch {
    /// A watch of `path`, whose content `running_sha256` is already running.
    pub(super) fn new(path: PathBuf, running_sha256: String) -> Self {
        Self {
            path,
            seen: None,
            racy: true,
            acted_on: running_sha256,
            failing: None,
        }
    }

    /// One poll: the file's content when it differs from what was last acted upon.
    pub(super) async fn poll(&mut self) -> Option<Content> {
        let fingerprint = match blocking(self.path.clone(), fingerprint).await {
            Ok(fingerprint) => fingerprint,
            Err(e) => {
                self.report_failure(&e);
                return None;
            }
        };
        if self.seen.as_ref() == Some(&fingerprint) && !self.racy {
            return None;
        }
        let (fingerprint, content) = match blocking(self.path.clone(), read_once).await {
            Ok(Some(read)) => read,
            // A writer is busy with the file: look again on the next poll.
            Ok(None) => return None,
            Err(e) => {
                self.report_failure(&e);
                return None;
            }
        };
        self.failing = None;
        self.racy = is_racy(fingerprint.modified);
        self.seen = Some(fingerprint);
        if content.sha256 == self.acted_on {
            return None;
        }
        self.acted_on = content.sha256.clone();
        Some(content)
    }

    /// Remembers content an explicit reload acted on, so the watch does not act on it again.
    pub(super) fn acted_on(&mut self, sha256: &str) {
        sha256.clone_into(&mut self.acted_on);
    }

    fn report_failure(&mut self, error: &io::Error) {
        let text = error.to_string();
        if self.failing.as_deref() != Some(text.as_str()) {
            tracing::warn!(
                file = %self.path.display(), error = %text,
                "cannot read the configuration file; the running configuration keeps serving"
            );
            self.failing = Some(text);
        }
    }
}

/// Reads the file for an explicit reload, waiting briefly for a writer that is mid-write.
pub(super) async fn read(path: &Path) -> io::Result<Content> {
    for _ in 1..STABLE_READ_TRIES {
        if let Some((_, content)) = blocking(path.to_owned(), read_once).await? {
            return Ok(content);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Still changing: take what is there; validation decides whether it is whole.
    let bytes = blocking(path.to_owned(), |path| std::fs::read(path)).await?;
    let sha256 = super::super::sha256_hex(&bytes);
    Ok(Content { bytes, sha256 })
}

/// Runs a file system call on the blocking pool.
async fn blocking<T: Send + 'static>(
    path: PathBuf,
    call: impl FnOnce(&Path) -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(move || call(&path))
        .await
        .map_err(io::Error::other)?
}

fn fingerprint(path: &Path) -> io::Result<Fingerprint> {
    let resolved = std::fs::canonicalize(path)?;
    let metadata = std::fs::metadata(&resolved)?;
    Ok(Fingerprint {
        #[cfg(unix)]
        inode: {
            use std::os::unix::fs::MetadataExt as _;
            (metadata.dev(), metadata.ino())
        },
        resolved,
        len: metadata.len(),
        modified: metadata.modified().ok(),
    })
}

/// The content with the fingerprint it had, or `None` when the file changed while it was read
/// (a writer is busy: what was read may be half a file).
fn read_once(path: &Path) -> io::Result<Option<(Fingerprint, Content)>> {
    let before = fingerprint(path)?;
    let bytes = std::fs::read(&before.resolved)?;
    if fingerprint(path)? != before || bytes.len() as u64 != before.len {
        return Ok(None);
    }
    let sha256 = super::super::sha256_hex(&bytes);
    Ok(Some((before, Content { bytes, sha256 })))
}

fn is_racy(modified: Option<SystemTime>) -> bool {
    modified
        .and_then(|at| SystemTime::now().duration_since(at).ok())
        .is_none_or(|age| age < RACY_WINDOW)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "switchboard-watch-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn only_new_content_is_handed_on() {
        let dir = temp_dir("content");
        let path = dir.join("providers.toml");
        std::fs::write(&path, "one").unwrap();
        let mut watch = Watch::new(path.clone(), crate::config::sha256_hex(b"one"));
        assert!(watch.poll().await.is_none(), "the running content");
        std::fs::write(&path, "two").unwrap();
        let content = watch.poll().await.expect("changed content");
        assert_eq!(content.bytes, b"two");
        assert!(watch.poll().await.is_none(), "acted upon already");
        // Same size, written within the same clock tick: still seen, by hash.
        std::fs::write(&path, "tw0").unwrap();
        assert_eq!(watch.poll().await.expect("same size").bytes, b"tw0");
        watch.acted_on(&crate::config::sha256_hex(b"new"));
        std::fs::write(&path, "new").unwrap();
        assert!(watch.poll().await.is_none(), "an explicit reload took it");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_missing_file_is_no_change() {
        let dir = temp_dir("missing");
        let mut watch = Watch::new(dir.join("absent.toml"), String::new());
        assert!(watch.poll().await.is_none());
        assert!(read(&dir.join("absent.toml")).await.is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
