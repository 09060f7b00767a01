//! The floor: a bare hyper server doing only what `/score` must do (parse the JSON row,
//! predict with the same compiled tree, write the same response: the JSON answer with the
//! `x-model-name` and `x-model-version` headers the contract requires), with nothing else:
//! no routing, metrics, limits, timeouts, request-id echo or validation beyond serde's.
//! treeserve's `/score` is measured against it.
//!
//! `cargo run --release --example floor -- ARTIFACT [ADDR]`

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use treeserve::Model;

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct Row {
    SepalLengthCm: f64,
    SepalWidthCm: f64,
    PetalLengthCm: f64,
    PetalWidthCm: f64,
}

#[derive(Serialize)]
struct Output<'a> {
    predicted_species: &'a str,
}

#[derive(Serialize)]
struct Answer<'a> {
    output: Output<'a>,
}

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
    let listener = TcpListener::bind(&addr).await.expect("bind");
    println!(
        "floor listening on http://{}",
        listener.local_addr().unwrap()
    );
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
                    let body = req
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let resp = match serde_json::from_slice::<Row>(&body) {
                        Ok(r) => {
                            let row = [
                                r.SepalLengthCm,
                                r.SepalWidthCm,
                                r.PetalLengthCm,
                                r.PetalWidthCm,
                            ];
                            let label = &model.classes()[model.predict(&row)];
                            let out = serde_json::to_vec(&Answer {
                                output: Output {
                                    predicted_species: label,
                                },
                            })
                            .unwrap();
                            Response::builder()
                                .header(header::CONTENT_TYPE, "application/json")
                                .header("x-model-name", HeaderValue::from_static(name))
                                .header("x-model-version", HeaderValue::from_static(version))
                                .body(Full::new(Bytes::from(out)))
                        }
                        Err(e) => Response::builder()
                            .status(400)
                            .body(Full::new(Bytes::from(e.to_string()))),
                    };
                    Ok::<_, Infallible>(resp.unwrap())
                }
            });
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
