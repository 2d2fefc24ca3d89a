//! What the server emits through the `metrics` facade, captured by a recorder of our own.

use crate::support::{Running, h1, request, send1};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use mtasts_server::http::POLICY_PATH;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Counters and gauges by `name{label=value,...}`; a gauge is kept as its f64 bits.
#[derive(Debug, Default)]
struct Capture(Mutex<HashMap<String, Arc<Cell>>>);

#[derive(Debug, Default)]
struct Cell(AtomicU64);

impl metrics::CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.fetch_max(value, Ordering::Relaxed);
    }
}

impl metrics::GaugeFn for Cell {
    fn increment(&self, value: f64) {
        self.set(self.get() + value);
    }
    fn decrement(&self, value: f64) {
        self.set(self.get() - value);
    }
    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }
}

impl Cell {
    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

impl Capture {
    fn cell(&self, key: &Key) -> Arc<Cell> {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        Arc::clone(self.0.lock().unwrap().entry(name).or_default())
    }

    fn counter(&self, name: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .get(name)
            .map_or(0, |c| c.0.load(Ordering::Relaxed))
    }

    fn gauge(&self, name: &str) -> f64 {
        self.0.lock().unwrap().get(name).map_or(0.0, |c| c.get())
    }
}

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.cell(key))
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

// The default (current-thread) runtime runs every server task on this thread, where the local
// recorder is installed.
#[tokio::test]
async fn requests_by_status_connections_and_failed_handshakes_are_counted() {
    let capture = Capture::default();
    let _guard = metrics::set_default_local_recorder(&capture);
    let server = Running::start(&["example.test"]).await;

    let tls = server
        .tls("mta-sts.example.test", &[b"http/1.1"])
        .await
        .unwrap();
    let mut s = h1(tls).await;
    let host = Some("mta-sts.example.test");
    for (path, host) in [
        (POLICY_PATH, host),
        (POLICY_PATH, host),
        ("/", host),
        (POLICY_PATH, Some("x.test")),
    ] {
        send1(&mut s, request("GET", path, host)).await;
    }
    assert_eq!(
        capture.counter("mtasts_serve_requests_total{status=200}"),
        2
    );
    assert_eq!(
        capture.counter("mtasts_serve_requests_total{status=404}"),
        1
    );
    assert_eq!(
        capture.counter("mtasts_serve_requests_total{status=421}"),
        1
    );
    assert_eq!(capture.gauge("mtasts_serve_connections{}"), 1.0);

    assert!(
        server
            .tls("mta-sts.unknown.test", &[b"http/1.1"])
            .await
            .is_err()
    );
    let mut junk = tokio::net::TcpStream::connect(server.https).await.unwrap();
    junk.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    crate::support::read_until_closed(&mut junk, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(
        capture.counter("mtasts_serve_tls_handshakes_failed_total{reason=error}"),
        2
    );
    drop(s);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(capture.gauge("mtasts_serve_connections{}"), 0.0);
}
