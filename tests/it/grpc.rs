//! V2 over gRPC (`--grpc-listen`) spoken frame by frame over HTTP/2 with hyper: what
//! `tritonclient.grpc` never sends. Malformed messages, oversized and compressed ones,
//! cut ones, slow ones, unknown methods and HTTP/1.1 on the gRPC port each get a clear
//! status (never a hang or a crash), and the server keeps answering.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use treeserve::protocol::v2::proto;

use crate::common::*;

/// A gRPC answer: the code (0: OK), its message, the `treeserve-error-type`, the message
/// bytes.
struct Answer {
    code: u32,
    message: String,
    error_type: String,
    body: Bytes,
}

/// One length-prefixed message (`compressed`: the flag byte says so).
fn frame(message: &[u8], compressed: bool) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + message.len());
    b.put_u8(compressed as u8);
    b.put_u32(message.len() as u32);
    b.put_slice(message);
    b.freeze()
}

async fn sender(
    addr: std::net::SocketAddr,
) -> hyper::client::conn::http2::SendRequest<
    http_body_util::combinators::BoxBody<Bytes, std::io::Error>,
> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    send
}

/// Calls `method` with `body` (already framed), and reads the answer, trailers included.
async fn call_raw(
    addr: std::net::SocketAddr,
    method: &str,
    body: http_body_util::combinators::BoxBody<Bytes, std::io::Error>,
) -> Answer {
    let mut send = sender(addr).await;
    let req = http::Request::post(format!(
        "http://{addr}/inference.GRPCInferenceService/{method}"
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(body)
    .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(20), send.send_request(req))
        .await
        .expect("an answer in time")
        .expect("a response");
    assert_eq!(
        resp.status(),
        200,
        "gRPC answers 200 and puts its status in grpc-status"
    );
    let head = resp.headers().clone();
    let collected = resp.into_body().collect().await.expect("the body");
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let get = |name: &str| {
        trailers
            .get(name)
            .or_else(|| head.get(name))
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let bytes = collected.to_bytes();
    let body = if bytes.len() >= 5 {
        bytes.slice(5..)
    } else {
        bytes
    };
    Answer {
        code: get("grpc-status").expect("grpc-status").parse().unwrap(),
        message: get("grpc-message").unwrap_or_default(),
        error_type: get("treeserve-error-type").unwrap_or_default(),
        body,
    }
}

async fn call(addr: std::net::SocketAddr, method: &str, framed: Bytes) -> Answer {
    call_raw(
        addr,
        method,
        Full::new(framed).map_err(|e| match e {}).boxed(),
    )
    .await
}

fn one_row(rows: i64, values: &[f32]) -> Vec<u8> {
    proto::ModelInferRequest {
        model_name: "iris".into(),
        inputs: vec![proto::InferInputTensor {
            name: "input".into(),
            datatype: "FP32".into(),
            shape: vec![rows, 4],
            ..Default::default()
        }],
        raw_input_contents: vec![values.iter().flat_map(|v| v.to_le_bytes()).collect()],
        ..Default::default()
    }
    .encode_to_vec()
}

fn grpc_app(extra: &[&str]) -> (TestRegistry, App) {
    let reg = TestRegistry::with_iris();
    let mut args = vec!["--grpc-listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let app = App::spawn(reg.path(), &args);
    (reg, app)
}

#[tokio::test]
async fn a_rust_client_scores_and_every_hostile_call_gets_a_clear_status() {
    let (_reg, app) = grpc_app(&["--max-body-bytes", "4096", "--body-read-timeout", "1s"]);
    let addr = app.grpc.unwrap();
    let ok = call(
        addr,
        "ModelInfer",
        frame(&one_row(1, &[5.1, 3.5, 1.4, 0.2]), false),
    )
    .await;
    assert_eq!(ok.code, 0, "{}", ok.message);
    let r = proto::ModelInferResponse::decode(ok.body).unwrap();
    assert_eq!(r.outputs[0].name, "label");
    assert_eq!(&r.raw_output_contents[0][4..], b"Iris-setosa");

    // Not protobuf.
    let bad = call(addr, "ModelInfer", frame(b"\xff\xff\xff", false)).await;
    assert_eq!(
        (bad.code, bad.error_type.as_str()),
        (3, "invalid_body"),
        "{}",
        bad.message
    );
    assert!(bad.message.contains("ModelInferRequest"), "{}", bad.message);
    // A shape that does not fit.
    let shape = call(addr, "ModelInfer", frame(&one_row(2, &[1.0; 4]), false)).await;
    assert_eq!(
        (shape.code, shape.error_type.as_str()),
        (3, "invalid_shape")
    );
    // An unknown model.
    let mut unknown = proto::ModelInferRequest::decode(&one_row(1, &[1.0; 4])[..]).unwrap();
    unknown.model_name = "nope".into();
    let nf = call(addr, "ModelInfer", frame(&unknown.encode_to_vec(), false)).await;
    assert_eq!((nf.code, nf.error_type.as_str()), (5, "model_not_found"));
    // Over --max-body-bytes.
    let big = one_row(300, &[1.0; 1200]);
    let over = call(addr, "ModelInfer", frame(&big, false)).await;
    assert!(
        [8, 11].contains(&over.code),
        "{} {}",
        over.code,
        over.message
    );
    // Compressed without compression agreed.
    let gz = call(addr, "ModelInfer", frame(&one_row(1, &[1.0; 4]), true)).await;
    assert_ne!(gz.code, 0, "{}", gz.message);
    // A frame that promises more than the body holds.
    let mut cut = frame(&one_row(1, &[1.0; 4]), false).to_vec();
    cut.truncate(cut.len() - 3);
    let cut = call(addr, "ModelInfer", Bytes::from(cut)).await;
    assert_ne!(cut.code, 0, "{}", cut.message);
    // No such RPC (the streaming one is not served).
    let none = call(
        addr,
        "ModelStreamInfer",
        frame(&one_row(1, &[1.0; 4]), false),
    )
    .await;
    assert_eq!(none.code, 12, "{}", none.message);
    // A message that stops arriving: cut at --body-timeout.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    let whole = frame(&one_row(1, &[1.0; 4]), false);
    tx.send(whole.slice(..10)).await.unwrap();
    let slow = call_raw(addr, "ModelInfer", ChannelBody(rx).boxed()).await;
    assert_eq!(slow.code, 4, "{}", slow.message);
    assert!(
        slow.message.contains("--body-read-timeout"),
        "{}",
        slow.message
    );
    drop(tx);

    // HTTP/1.1 on the gRPC port: refused, nothing served.
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    std::io::Write::write_all(&mut s, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut out);
    assert!(!String::from_utf8_lossy(&out).contains("200 OK"));

    // Still serving.
    let again = call(
        addr,
        "ModelInfer",
        frame(&one_row(1, &[5.1, 3.5, 1.4, 0.2]), false),
    )
    .await;
    assert_eq!(again.code, 0, "{}", again.message);
    let live = call(addr, "ServerLive", frame(&[], false)).await;
    assert!(proto::ServerLiveResponse::decode(live.body).unwrap().live);
}

/// A request body of the chunks sent on a channel; it ends when the sender is dropped.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}

#[tokio::test]
async fn a_grpc_answer_with_a_request_id_is_labelled_by_it() {
    let (_reg, app) = grpc_app(&["--feedback-window", "100"]);
    let addr = app.grpc.unwrap();
    // Two rows: a setosa and a virginica.
    let mut req = proto::ModelInferRequest::decode(
        &one_row(2, &[5.1, 3.5, 1.4, 0.2, 7.7, 3.0, 6.1, 2.3])[..],
    )
    .unwrap();
    req.id = "grpc-1".into();
    let ok = call(addr, "ModelInfer", frame(&req.encode_to_vec(), false)).await;
    assert_eq!(ok.code, 0, "{}", ok.message);
    let r = proto::ModelInferResponse::decode(ok.body).unwrap();
    assert_eq!(r.id, "grpc-1");
    // Without an id, nothing is remembered under one.
    let anon = call(addr, "ModelInfer", frame(&one_row(1, &[1.0; 4]), false)).await;
    assert_eq!(anon.code, 0);
    let labels = serde_json::json!([
        {"request_id": "grpc-1", "row": 0, "label": "Iris-setosa"},
        {"request_id": "grpc-1", "row": 1, "label": "Iris-setosa"},
        {"request_id": "grpc-1", "row": 2, "label": "Iris-setosa"},
        {"request_id": "", "label": "Iris-setosa"},
    ]);
    let resp = app.post("/feedback", &labels.to_string()).await;
    assert_eq!(resp.status(), 200);
    let got: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        got["outcomes"],
        serde_json::json!(["joined", "joined", "no_such_row", "unknown_id"]),
        "{got}"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let labels_line = r#"treeserve_live_labels_total{model="iris",version="1"} 2"#;
    assert!(metrics.contains(labels_line), "{metrics}");
    // The setosa right, the virginica wrong.
    let accuracy = r#"treeserve_live_accuracy{model="iris",version="1"} 0.5"#;
    assert!(metrics.contains(accuracy), "{metrics}");
}
