//! `GET /metrics`: the Prometheus text exposition of the engine's counters, and `GET /health`:
//! `200 ok`, or `503` with the reason when this system cannot do its job (DNSSEC validation of
//! the root is broken while DANE is on), over plain HTTP.
//!
//! Bind it to loopback or a management network: it has no authentication.

use crate::Engine;
use crate::service::Shutdown;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::time::Duration;
use tokio::net::TcpListener;

/// Longest a metrics connection may live (scrapes are short).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

/// Serves `/metrics` on `listener` until `shutdown` says stop.
pub async fn serve(listener: TcpListener, engine: Engine, shutdown: Shutdown) {
    let stopped = shutdown.stopped();
    tokio::pin!(stopped);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut stopped => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let engine = engine.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let engine = engine.clone();
                async move { Ok::<_, Infallible>(answer(&req, &engine).await) }
            });
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
        });
    }
}

async fn answer(req: &Request<hyper::body::Incoming>, engine: &Engine) -> Response<Full<Bytes>> {
    let (status, ctype, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/health") => match engine.health().await {
            Ok(()) => (
                StatusCode::OK,
                "text/plain; charset=utf-8",
                "ok\n".to_owned(),
            ),
            Err(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                format!("{why}\n"),
            ),
        },
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            engine.metrics(),
        ),
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "use GET\n".to_owned(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "only /metrics and /health are served here\n".to_owned(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}
