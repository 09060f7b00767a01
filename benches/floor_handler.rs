//! The floor's request handler: serde parse of one IRIS row, the compiled tree's
//! prediction, serde write of the answer with the contract's headers. Shared by the floor
//! server (`floor_server.rs`) and the in-process handler bench (`predict.rs`).

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body_util::Full;
use serde::{Deserialize, Serialize};
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
struct Answer<T> {
    output: T,
}

/// A V2 request: one input tensor, flat data (what the benchmark sends).
#[derive(Deserialize)]
struct InferRequest {
    inputs: Vec<Tensor>,
}

#[derive(Deserialize)]
struct Tensor {
    shape: Vec<usize>,
    data: Vec<f64>,
}

#[derive(Serialize)]
struct InferResponse<'a> {
    model_name: &'a str,
    model_version: &'a str,
    outputs: [Labels<'a>; 1],
}

#[derive(Serialize)]
struct Labels<'a> {
    name: &'a str,
    datatype: &'a str,
    shape: [usize; 1],
    data: Vec<&'a str>,
}

fn features(r: &Row) -> [f64; 4] {
    [
        r.SepalLengthCm,
        r.SepalWidthCm,
        r.PetalLengthCm,
        r.PetalWidthCm,
    ]
}

/// The floor's answer: `/score` with one row (an object) or a batch (an array), or any
/// other path as V2 infer with the label output; 400 with serde's message otherwise.
pub fn answer(
    model: &Model,
    path: &str,
    name: &'static str,
    version: &'static str,
    body: &[u8],
) -> Response<Full<Bytes>> {
    let label = |row: &[f64]| model.classes()[model.predict(row)].as_str();
    let out = if path == "/score" {
        if body.first() == Some(&b'[') {
            serde_json::from_slice::<Vec<Row>>(body).map(|rows| {
                let output: Vec<Output> = rows
                    .iter()
                    .map(|r| Output {
                        predicted_species: label(&features(r)),
                    })
                    .collect();
                serde_json::to_vec(&Answer { output })
            })
        } else {
            serde_json::from_slice::<Row>(body).map(|r| {
                serde_json::to_vec(&Answer {
                    output: Output {
                        predicted_species: label(&features(&r)),
                    },
                })
            })
        }
    } else {
        serde_json::from_slice::<InferRequest>(body).map(|req| {
            let t = &req.inputs[0];
            let data: Vec<&str> = t.data.chunks_exact(t.shape[1]).map(label).collect();
            serde_json::to_vec(&InferResponse {
                model_name: name,
                model_version: version,
                outputs: [Labels {
                    name: "label",
                    datatype: "BYTES",
                    shape: [data.len()],
                    data,
                }],
            })
        })
    };
    match out {
        Ok(out) => Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-model-name", HeaderValue::from_static(name))
            .header("x-model-version", HeaderValue::from_static(version))
            .body(Full::new(Bytes::from(out.expect("serializable"))))
            .expect("valid response"),
        Err(e) => Response::builder()
            .status(400)
            .body(Full::new(Bytes::from(e.to_string())))
            .expect("valid response"),
    }
}
