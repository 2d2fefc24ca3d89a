//! The life cycle every long-running service shares: reload and stop.
//!
//! A service is a library call, `run(config, shutdown)`, in the shape of mini-redis's
//! `server::run`: the caller (the binary, a test) keeps a [`Control`] and hands the service a
//! [`Shutdown`]. The service reloads what it can on [`Event::Reload`] and, on [`Event::Stop`],
//! stops accepting work, finishes what is under way within its grace time, and returns.
//!
//! ```
//! # async fn demo() {
//! use mtasts_net::service::{self, Event};
//! let (control, mut shutdown) = service::channel();
//! let service = tokio::spawn(async move {
//!     let mut reloads = 0;
//!     loop {
//!         match shutdown.next().await {
//!             Event::Reload => reloads += 1,
//!             Event::Stop => return reloads,
//!         }
//!     }
//! });
//! control.reload();
//! control.stop();
//! assert!(service.await.unwrap() <= 1); // a reload just before a stop may be folded into it
//! # }
//! ```
//!
//! [`Control::forward_signals`] turns SIGTERM and SIGINT into a stop and SIGHUP into a reload,
//! which is what the binary does; tests call [`Control::stop`] instead.
//!
//! [`init_logs`] is the log subscriber a binary installs for a service (libraries only emit
//! events).

use tokio::sync::watch;

/// What a service is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Read the configuration again and apply what can change without a restart.
    Reload,
    /// Stop accepting work, finish what is under way, return.
    Stop,
}

/// The state the channel carries: how many reloads were asked for, and whether to stop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct State {
    reloads: u64,
    stop: bool,
}

/// The caller's side: asks the service to reload or stop. Dropping every `Control` stops the
/// service too (nobody is left who could).
#[derive(Debug, Clone)]
pub struct Control {
    tx: std::sync::Arc<watch::Sender<State>>,
}

/// The service's side: waits for the next [`Event`]. Cheap to clone: every task of a service
/// (each listener, the metrics server) can hold its own and wait for the stop.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<State>,
    /// The reload count this receiver has handled.
    seen: u64,
}

/// A connected pair.
pub fn channel() -> (Control, Shutdown) {
    let (tx, rx) = watch::channel(State::default());
    (
        Control {
            tx: std::sync::Arc::new(tx),
        },
        Shutdown { rx, seen: 0 },
    )
}

impl Control {
    /// Asks the service to stop.
    pub fn stop(&self) {
        self.tx.send_modify(|s| s.stop = true);
    }

    /// Asks the service to reload its configuration.
    pub fn reload(&self) {
        self.tx.send_modify(|s| s.reloads += 1);
    }

    /// Another [`Shutdown`] for this control (a second service run by the same caller).
    pub fn subscribe(&self) -> Shutdown {
        let rx = self.tx.subscribe();
        let seen = rx.borrow().reloads;
        Shutdown { rx, seen }
    }

    /// Forwards process signals until a stop: SIGTERM and SIGINT stop, SIGHUP reloads. Returns
    /// once the stop has been sent.
    ///
    /// # Errors
    /// A signal handler cannot be installed.
    pub async fn forward_signals(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => self.reload(),
            }
        }
        self.stop();
        Ok(())
    }
}

impl Shutdown {
    /// Waits for the next event. A reload asked for while the previous one was being handled is
    /// reported once; a stop is reported every time it is asked for again.
    pub async fn next(&mut self) -> Event {
        let seen = self.seen;
        let state = match self.rx.wait_for(|s| s.stop || s.reloads != seen).await {
            Ok(state) => *state,
            // Every Control is gone: nobody can ask for anything any more.
            Err(_) => return Event::Stop,
        };
        if state.stop {
            return Event::Stop;
        }
        self.seen = state.reloads;
        Event::Reload
    }

    /// Completes once a stop is asked for (reloads are left to whoever calls [`Shutdown::next`]).
    pub async fn stopped(&self) {
        let mut rx = self.rx.clone();
        let _ = rx.wait_for(|s| s.stop).await;
    }

    /// Whether a stop has been asked for.
    pub fn is_stopped(&self) -> bool {
        self.rx.borrow().stop || self.rx.has_changed().is_err()
    }
}

/// Installs the log subscriber a service runs with: events at INFO and above on standard error,
/// as text lines or, when `json`, one JSON object per line; hickory's own events are dropped. A
/// second call (tests running a service twice) leaves the first subscriber in place.
pub fn init_logs(json: bool) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // hickory's DNSSEC validator logs every oddity it meets, each with the whole DNS message
    // (about 80 lines per policy domain on the benchmark's test internet, most of the CPU of a
    // cold miss); what matters of it reaches our own logs as DANE states and lookup errors.
    let filter = Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target("hickory", LevelFilter::OFF);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let registry = tracing_subscriber::registry().with(filter);
    // A second subscriber is not an error worth failing for.
    let _ = if json {
        registry.with(layer.json()).try_init()
    } else {
        registry.with(layer).try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reloads_then_a_stop_arrive_in_order() {
        let (control, mut shutdown) = channel();
        control.reload();
        assert_eq!(shutdown.next().await, Event::Reload);
        control.reload();
        control.reload();
        assert_eq!(
            shutdown.next().await,
            Event::Reload,
            "two reloads fold into one"
        );
        control.stop();
        assert_eq!(shutdown.next().await, Event::Stop);
        assert_eq!(shutdown.next().await, Event::Stop, "a stop stays a stop");
        assert!(shutdown.is_stopped());
        shutdown.stopped().await;
    }

    #[tokio::test]
    async fn dropping_the_control_stops_the_service() {
        let (control, mut shutdown) = channel();
        let other = control.subscribe();
        drop(control);
        assert_eq!(shutdown.next().await, Event::Stop);
        assert!(other.is_stopped());
        other.stopped().await;
    }

    #[tokio::test]
    async fn a_waiting_service_wakes_for_a_stop() {
        let (control, shutdown) = channel();
        let waiter = tokio::spawn(async move { shutdown.stopped().await });
        tokio::task::yield_now().await;
        control.stop();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("no panic");
    }
}

/// Why a service could not start (once started it only stops when asked): what was being done,
/// and why it failed. Every service's `run` returns it.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
pub struct StartError {
    context: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl StartError {
    /// A start-up failure while doing `context`, because of `source`.
    pub fn new(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            context: context.into(),
            source: source.into(),
        }
    }
}
