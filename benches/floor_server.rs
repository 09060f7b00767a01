//! The floor: a bare hyper server doing only what `/score` must do (parse the JSON row or
//! rows, predict with the same compiled tree, write the same response: the JSON answer with
//! the `x-model-name` and `x-model-version` headers the contract requires), with nothing
//! else: no routing (`/score`, any other path is V2 infer answering labels), metrics,
//! limits, timeouts, request-id echo or validation beyond serde's. treeserve is measured
//! against it.
//!
//! `cargo run --release --example floor -- ARTIFACT [ADDR]`
//!
//! With `FLOOR_FLATTEN=1` in its environment it writes each response with one plain send
//! (hyper's `writev(false)`), as treeserve does, instead of hyper's default two-part
//! `writev`: the floor to compare against when asking what treeserve's own work costs.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use treeserve::Model;

#[path = "floor_handler.rs"]
mod floor_handler;
use floor_handler::answer;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: floor ARTIFACT [ADDR]");
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".into());
    let bytes = std::fs::read(&path).expect("read artifact");
    let model =
        Arc::new(Model::from_bytes(&bytes, 1, &Default::default()).expect("valid artifact"));
    // The contract's response headers, built once (the cheapest way: static values).
    let name: &'static str = Box::leak(model.name().to_owned().into_boxed_str());
    let version: &'static str = Box::leak(model.version().to_string().into_boxed_str());
    let flatten = std::env::var_os("FLOOR_FLATTEN").is_some_and(|v| v == "1");
    let listener = TcpListener::bind(&addr).await.expect("bind");
    println!(
        "floor listening on http://{}",
        listener.local_addr().unwrap()
    );
    // Serves until Ctrl-C (SIGINT), then returns from `main`, so an instrumented build
    // (profile-guided optimization) writes its profile.
    let serve = async {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let model = model.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let model = model.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let resp = answer(&model, parts.uri.path(), name, version, &body);
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .writev(!flatten)
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    };
    tokio::select! {
        () = serve => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
