//! A closed-loop gRPC load generator for `benches/load.py --compare grpc`: wrk's model
//! (each connection keeps one call in flight) for V2 `ModelInfer` over HTTP/2 with hyper,
//! every answer checked (HTTP 200 and `grpc-status: 0`, read from the trailers).
//!
//!     grpc_load ADDR CONNECTIONS SECONDS [KEY]
//!
//! Sends one IRIS row (FP32, in `raw_input_contents`, as `tritonclient.grpc` does) to model
//! `iris`; runs one second of warm-up, then SECONDS measured; prints one `WRK_JSON {...}`
//! line with the fields `benches/score.lua` prints (`non_2xx` counts failed calls).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use treeserve::protocol::v2::proto;

/// The row `benches/score.lua` posts to `/score`.
const ROW: [f32; 4] = [6.6, 3.0, 4.4, 1.4];

fn request_body() -> Bytes {
    let msg = proto::ModelInferRequest {
        model_name: "iris".into(),
        inputs: vec![proto::InferInputTensor {
            name: "input".into(),
            datatype: "FP32".into(),
            shape: vec![1, 4],
            ..Default::default()
        }],
        raw_input_contents: vec![ROW.iter().flat_map(|v| v.to_le_bytes()).collect()],
        ..Default::default()
    }
    .encode_to_vec();
    let mut b = BytesMut::with_capacity(5 + msg.len());
    b.put_u8(0);
    b.put_u32(msg.len() as u32);
    b.put_slice(&msg);
    b.freeze()
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    failed: u64,
    errors: u64,
}

async fn connection(
    addr: SocketAddr,
    body: Bytes,
    key: Option<Arc<str>>,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> Tally {
    let mut tally = Tally::default();
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let uri = format!("http://{addr}/inference.GRPCInferenceService/ModelInfer");
    while !stop.load(Ordering::Relaxed) {
        let mut req = http::Request::post(&uri)
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        if let Some(k) = &key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        let req = req.body(Full::new(body.clone())).unwrap();
        let start = Instant::now();
        let ok = match send.send_request(req).await {
            Ok(resp) if resp.status() == 200 => match resp.into_body().collect().await {
                Ok(c) => c
                    .trailers()
                    .and_then(|t| t.get("grpc-status"))
                    .is_some_and(|s| s == "0"),
                Err(_) => false,
            },
            Ok(_) => false,
            Err(_) => {
                tally.errors += 1;
                break;
            }
        };
        if measuring.load(Ordering::Relaxed) {
            tally.latencies_us.push(start.elapsed().as_micros() as u64);
            tally.failed += u64::from(!ok);
        }
    }
    tally
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(addr), Some(conns), Some(secs)) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("usage: grpc_load ADDR CONNECTIONS SECONDS [KEY]");
        std::process::exit(2);
    };
    let addr: SocketAddr = addr.parse().expect("ADDR is host:port");
    let conns: usize = conns.parse().expect("CONNECTIONS is a number");
    let secs: u64 = secs.parse().expect("SECONDS is a number");
    let key: Option<Arc<str>> = args.get(3).map(|k| k.as_str().into());
    // Two client threads, as load.py runs wrk with two.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(if conns == 1 { 1 } else { 2 })
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let body = request_body();
        let measuring = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..conns)
            .map(|_| {
                tokio::spawn(connection(
                    addr,
                    body.clone(),
                    key.clone(),
                    measuring.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(1)).await;
        measuring.store(true, Ordering::Relaxed);
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        measuring.store(false, Ordering::Relaxed);
        let elapsed = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        let mut all = Tally::default();
        for t in tasks {
            let t = t.await.unwrap();
            all.latencies_us.extend(t.latencies_us);
            all.failed += t.failed;
            all.errors += t.errors;
        }
        let lat = &mut all.latencies_us;
        lat.sort_unstable();
        let mean = lat.iter().sum::<u64>() as f64 / lat.len().max(1) as f64;
        println!(
            "WRK_JSON {{\"requests\":{},\"duration_us\":{},\"bytes\":0,\"connect_errors\":0,\
             \"read_errors\":{},\"write_errors\":0,\"timeouts\":0,\"non_2xx\":{},\"p50_us\":{},\
             \"p90_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{},\"mean_us\":{:.2}}}",
            lat.len(),
            elapsed.as_micros(),
            all.errors,
            all.failed,
            percentile(lat, 50.0),
            percentile(lat, 90.0),
            percentile(lat, 99.0),
            percentile(lat, 99.9),
            lat.last().copied().unwrap_or(0),
            mean
        );
    });
}
