//! `--metrics ADDR`: `GET /metrics` over plain HTTP/1.1, for Prometheus to scrape.
//!
//! HTTP parsing is hyper's (HTTP/1 server only, no client, no HTTP/2): a scrape endpoint
//! needs no more, and a hand-written parser would be one more thing for garbage to break.
//! What a bad scraper or a port scanner can cost is bounded here, so that the server's real
//! work never notices:
//! - at most [`MAX_SCRAPES`] connections at once; one more is closed at once;
//! - the request head must arrive within [`HEAD_TIMEOUT`] and fit [`MAX_HEAD`] bytes (hyper
//!   answers 408 / 431, or 400 for bytes that are not HTTP), and a whole connection lives at
//!   most [`CONNECTION_TIMEOUT`]; one request per connection, no keep-alive;
//! - anything but `GET`/`HEAD /metrics` gets 404 (another path) or 405 (another method);
//! - accept errors (EMFILE) back off instead of spinning.
//!
//! Nothing here reaches a transfer: a scrape reads atomics and encodes them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn, Instrument};

use crate::error::StartError;
use crate::metrics::{Metrics, Sample};

/// Scrape connections served at once (Prometheus makes one per scrape; a few spare for
/// curl and a second scraper).
pub const MAX_SCRAPES: usize = 8;

/// Longest wait for a request's head (request line and headers).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest life of one scrape connection, answer included.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request head accepted (hyper's smallest allowed buffer is 8 KiB).
pub const MAX_HEAD: usize = 16 * 1024;

/// The content type of the OpenMetrics text format, which prometheus-client writes and
/// Prometheus reads.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What a scrape samples from the running server (transfers in flight, the store's use).
pub type Sampler = Arc<dyn Fn() -> Sample + Send + Sync>;

/// Binds the metrics listener (before the server says it is ready, so a ready server is
/// scrapable and a taken port fails the start, not a later scrape).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Metrics { addr, source })
}

/// Serves scrapes on `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, sample: Sampler) {
    let places = Arc::new(Semaphore::new(MAX_SCRAPES));
    if let Ok(addr) = listener.local_addr() {
        info!(metrics = %addr, "serving metrics at http://{addr}/metrics");
    }
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors, most likely: wait instead of spinning on the backlog.
                warn!(%error, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(place) = places.clone().try_acquire_owned() else {
            debug!(%peer, "metrics: {MAX_SCRAPES} scrapes in progress; closing this one");
            continue;
        };
        let metrics = metrics.clone();
        let sample = sample.clone();
        tokio::spawn(
            async move {
                scrape(stream, metrics, sample).await;
                drop(place);
            }
            .instrument(tracing::debug_span!("metrics", %peer)),
        );
    }
}

async fn scrape(stream: TcpStream, metrics: Arc<Metrics>, sample: Sampler) {
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let response = respond(&request, &metrics, &sample);
        async move { Ok::<_, Infallible>(response) }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .keep_alive(false);
    let connection = http.serve_connection(TokioIo::new(stream), service);
    match tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => debug!(%error, "metrics: bad request or connection"),
        Err(_) => debug!("metrics: connection timed out"),
    }
}

/// The answer to one request: the metrics, or why not.
fn respond(
    request: &Request<Incoming>,
    metrics: &Metrics,
    sample: &Sampler,
) -> Response<Full<Bytes>> {
    if request.uri().path() != "/metrics" {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: the metrics are at /metrics\n",
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET /metrics\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match metrics.encode(sample()) {
        Ok(text) => {
            let mut response = Response::new(Full::new(Bytes::from(text)));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            response
        }
        Err(error) => {
            warn!(%error, "metrics: encoding failed");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding the metrics failed\n",
            )
        }
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}
