//! The ceiling for s3gate's JSON endpoints in `benches/load.sh`: a hyper 1
//! HTTP/1 server on a two-worker tokio runtime that answers every request
//! with `200` and one fixed body, doing nothing else.
//!
//! `trivial BYTES` listens on an ephemeral loopback port, prints
//! `listening 127.0.0.1:PORT` and serves a body of BYTES bytes of JSON-ish
//! text until killed. Built by `cargo bench --no-run --bench trivial`.
// A benchmark helper: it fails loudly on bad arguments and prints its port.
#![allow(clippy::expect_used, unreachable_pub, missing_docs)]

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

fn main() {
    let size: usize = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .expect("usage: trivial BODY_BYTES");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(serve(body(size)));
}

/// `{"url":"xxx…"}` padded to exactly `size` bytes (or plain `x`s when tiny).
fn body(size: usize) -> Bytes {
    let frame = "{\"url\":\"\"}";
    if size < frame.len() {
        return Bytes::from(vec![b'x'; size]);
    }
    let mut text = String::with_capacity(size);
    text.push_str("{\"url\":\"");
    text.extend(std::iter::repeat_n('x', size - frame.len()));
    text.push_str("\"}");
    Bytes::from(text)
}

async fn serve(body: Bytes) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local address");
    println!("listening {addr}");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let body = body.clone();
                async move {
                    // Read the request body, as a real handler would.
                    let _ = request.into_body().collect().await;
                    let mut response = Response::new(Full::new(body));
                    response.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static("application/json"),
                    );
                    Ok::<_, Infallible>(response)
                }
            });
            // A client that leaves mid-request is no error worth a line here.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
