//! Hot reload: one task per router that reloads `providers.toml` when the file changes (a
//! polling `watch`), on SIGHUP ([`ReloadHandle::trigger`]) and on `POST /admin/reload`
//! ([`ReloadHandle::reload`]).
//!
//! Every reload reads and validates the whole file off the runtime's threads. Only a fully
//! valid file replaces the running snapshot, in one `ArcSwap::store`; requests already running
//! keep the snapshot they loaded at their start, streams included. An invalid file changes
//! nothing: its errors are logged, counted in `config_reloads_total{result="error"}` and kept for
//! `GET /admin/config`. One task does all reloads, one at a time, so two triggers can never
//! interleave a read of one version with the swap of another.
//!
//! State that lives outside the snapshot follows the new one ([`Running::follow`]): cooldowns stay
//! with a provider's name unless it now points at another upstream, rate-limit buckets stay
//! while their settings do, and entries of providers, keys and routes that are gone are dropped
//! so memory stays bounded by what is configured. Settings read only at start-up (the listener,
//! the log format and the upstream client's) are never silently ignored: a file that changes them is logged
//! and shown as needing a restart.

mod watch;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot};

use self::watch::{Content, Watch};
use super::view::{self, Applied, ConfigView, ReloadError, RestartOnly};
use super::{ConfigError, ConfigErrors, Snapshot};

/// An environment lookup the reload task can keep: it outlives the call that started it.
pub type SharedEnv = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Where the configuration comes from: the file, and the environment its `*_env` names are
/// read from.
#[derive(Clone)]
pub struct Source {
    path: PathBuf,
    env: SharedEnv,
}

impl Source {
    /// The file at `path`, with secrets from `env`.
    pub fn new(path: impl Into<PathBuf>, env: SharedEnv) -> Self {
        Self {
            path: path.into(),
            env,
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// What asked for a reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The file watch saw new content.
    Watch,
    /// SIGHUP.
    Signal,
    /// `POST /admin/reload`.
    Admin,
}

impl Trigger {
    /// The name used in logs and in `/admin/config`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Watch => "watch",
            Self::Signal => "signal",
            Self::Admin => "admin",
        }
    }
}

/// How a reload ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The file is running now.
    Applied(Applied),
    /// The file was refused; the previous configuration keeps serving.
    Rejected(ReloadError),
}

/// One reload asked of the task, with somewhere to send the outcome when the caller waits.
#[derive(Debug)]
struct Request {
    trigger: Trigger,
    reply: Option<oneshot::Sender<Outcome>>,
}

/// Asks the reload task for a reload. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ReloadHandle {
    requests: mpsc::Sender<Request>,
}

impl ReloadHandle {
    /// Asks for a reload without waiting for it (SIGHUP). Returns `false` when the task is gone
    /// or already has reloads queued, which will read the same file anyway.
    pub fn trigger(&self, trigger: Trigger) -> bool {
        self.requests
            .try_send(Request {
                trigger,
                reply: None,
            })
            .is_ok()
    }

    /// Reloads and waits for the outcome; `None` when the task is gone.
    pub async fn reload(&self, trigger: Trigger) -> Option<Outcome> {
        let (reply, outcome) = oneshot::channel();
        let request = Request {
            trigger,
            reply: Some(reply),
        };
        self.requests.send(request).await.ok()?;
        outcome.await.ok()
    }
}

/// What a reload acts on: the running snapshot and the state that lives outside it. The app
/// state is the one implementation; naming it through this trait keeps the configuration
/// below everything that uses it.
pub trait Running: Send + Sync + 'static {
    /// The running snapshot, replaced by a valid file.
    fn config(&self) -> &ArcSwap<Snapshot>;

    /// Where the outcome of each reload is kept for the admin endpoints.
    fn reloads(&self) -> &Reloads;

    /// `new` has just replaced `old`: state kept outside snapshots (breakers, limiters,
    /// metric series) keeps what belongs to unchanged providers, keys and routes and forgets
    /// the rest.
    fn follow(&self, old: &Snapshot, new: &Snapshot);

    /// A reload ended, `applied` or refused (counted in `config_reloads_total`).
    fn reloaded(&self, applied: bool);
}

/// Reload bookkeeping kept in the app state for the admin endpoints.
#[derive(Debug)]
pub struct Reloads {
    attached: OnceLock<(ReloadHandle, PathBuf)>,
    /// The start-up-only settings in effect: those of the file the process started with.
    baseline: RestartOnly,
    last_error: Mutex<Option<ReloadError>>,
}

impl Reloads {
    /// Bookkeeping for a router started with `startup`.
    pub fn new(startup: &Snapshot) -> Self {
        Self {
            attached: OnceLock::new(),
            baseline: RestartOnly::of(startup),
            last_error: Mutex::new(None),
        }
    }

    /// The reload task's handle, once one was started.
    pub fn handle(&self) -> Option<&ReloadHandle> {
        self.attached.get().map(|(handle, _)| handle)
    }

    /// The file reloads read, once a reload task was started.
    pub fn source(&self) -> Option<&Path> {
        self.attached.get().map(|(_, path)| path.as_path())
    }

    /// The start-up-only settings in effect.
    pub fn baseline(&self) -> &RestartOnly {
        &self.baseline
    }

    /// The last rejected reload, unless a later one succeeded.
    pub fn last_error(&self) -> Option<ReloadError> {
        self.lock().clone()
    }

    fn record(&self, outcome: &Outcome) {
        *self.lock() = match outcome {
            Outcome::Applied(_) => None,
            Outcome::Rejected(error) => Some(error.clone()),
        };
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<ReloadError>> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Starts the reload task for `state` and returns its handle (also kept in `state.reloads`
/// for `POST /admin/reload`). Must be called inside the runtime. The task ends when the state
/// is dropped.
pub fn spawn<R: Running>(state: &Arc<R>, source: Source) -> ReloadHandle {
    // A few queued requests are plenty: each reads the file as it is when its turn comes.
    let (requests, queue) = mpsc::channel(4);
    let handle = ReloadHandle { requests };
    if state
        .reloads()
        .attached
        .set((handle.clone(), source.path.clone()))
        .is_err()
    {
        tracing::warn!("a second reload task was started for the same router; it is ignored");
        return handle;
    }
    let watch = Watch::new(source.path.clone(), state.config().load().sha256.clone());
    tokio::spawn(run(Arc::downgrade(state), source, queue, watch));
    handle
}

/// The task: waits for a request or the next poll, one reload at a time. It holds the state
/// only weakly between rounds, so a router that stops is not kept alive by its reload task.
async fn run<R: Running>(
    state: Weak<R>,
    source: Source,
    mut queue: mpsc::Receiver<Request>,
    mut watch: Watch,
) {
    loop {
        // Read each round, so a reload that changes the interval takes effect at once.
        let Some(interval) = state
            .upgrade()
            .map(|state| state.config().load().server.reload_interval)
        else {
            return;
        };
        let request = tokio::select! {
            request = queue.recv() => match request {
                Some(request) => Some(request),
                None => return,
            },
            () = tokio::time::sleep(interval), if !interval.is_zero() => None,
        };
        let Some(state) = state.upgrade() else {
            return;
        };
        match request {
            Some(request) => {
                let outcome = reload_now(&*state, &source, request.trigger, &mut watch).await;
                if let Some(reply) = request.reply {
                    // The asker may have gone away (a client that hung up); nothing to do.
                    let _ = reply.send(outcome);
                }
            }
            None => {
                if let Some(content) = watch.poll().await {
                    load(&*state, &source, Trigger::Watch, content).await;
                }
            }
        }
    }
}

/// An explicit reload: reads the file whatever the watch thinks of it.
async fn reload_now(
    state: &impl Running,
    source: &Source,
    trigger: Trigger,
    watch: &mut Watch,
) -> Outcome {
    tracing::info!(
        trigger = trigger.as_str(),
        file = %source.path.display(),
        "reloading the configuration"
    );
    match watch::read(&source.path).await {
        Ok(content) => {
            watch.acted_on(&content.sha256);
            load(state, source, trigger, content).await
        }
        Err(e) => {
            let error = ConfigError::whole_file(
                source.path.display().to_string(),
                format!("cannot read the file: {e}"),
            );
            reject(state, trigger, None, ConfigErrors(vec![error]))
        }
    }
}

/// Validates `content` and swaps it in, or records why not.
async fn load(
    state: &impl Running,
    source: &Source,
    trigger: Trigger,
    content: Content,
) -> Outcome {
    let file = source.path.display().to_string();
    let env = source.env.clone();
    let Content { bytes, sha256 } = content;
    // Validation is pure CPU work on a small file, but it runs next to the file read on the
    // blocking pool so request handling never waits behind it.
    let parsed =
        tokio::task::spawn_blocking(move || super::parse_bytes(&bytes, &file, &*env)).await;
    match parsed {
        Ok(Ok(snapshot)) => swap(state, snapshot, trigger),
        Ok(Err(errors)) => reject(state, trigger, Some(sha256), errors),
        Err(e) => {
            let error = ConfigError::whole_file(
                source.path.display().to_string(),
                format!("validation did not finish: {e}"),
            );
            reject(state, trigger, Some(sha256), ConfigErrors(vec![error]))
        }
    }
}

/// Puts a valid snapshot in service and carries the per-provider state over to it.
fn swap(state: &impl Running, snapshot: Snapshot, trigger: Trigger) -> Outcome {
    let new = Arc::new(snapshot);
    let old = state.config().load_full();
    let changes = view::changes(&ConfigView::of(&old), &ConfigView::of(&new));
    let restart_pending = state.reloads().baseline.pending(&RestartOnly::of(&new));
    state.config().store(new.clone());
    state.follow(&old, &new);
    state.reloaded(true);
    let applied = Applied {
        sha256: new.sha256.clone(),
        changes,
        restart_pending,
    };
    log_applied(&applied, trigger);
    let outcome = Outcome::Applied(applied);
    state.reloads().record(&outcome);
    outcome
}

/// Records a refused file: the running configuration stays.
fn reject(
    state: &impl Running,
    trigger: Trigger,
    sha256: Option<String>,
    errors: ConfigErrors,
) -> Outcome {
    state.reloaded(false);
    tracing::error!(
        trigger = trigger.as_str(),
        sha256 = sha256.as_deref().unwrap_or("unreadable"),
        problems = errors.0.len(),
        "configuration reload rejected; the running configuration keeps serving"
    );
    for error in &errors.0 {
        tracing::error!("{error}");
    }
    let outcome = Outcome::Rejected(ReloadError {
        at: view::timestamp(SystemTime::now()),
        trigger: trigger.as_str().to_owned(),
        sha256,
        errors: errors.0,
    });
    state.reloads().record(&outcome);
    outcome
}

fn log_applied(applied: &Applied, trigger: Trigger) {
    tracing::info!(
        trigger = trigger.as_str(),
        sha256 = %applied.sha256,
        changes = applied.changes.len(),
        "configuration reloaded"
    );
    for change in &applied.changes {
        tracing::info!("config change: {change}");
    }
    for pending in &applied.restart_pending {
        tracing::warn!(
            setting = %pending.setting,
            running = %pending.running,
            file = %pending.file,
            "this setting changed in the file but only takes effect after a restart; \
             the running value stays"
        );
    }
}
