//! The RPCs: each decodes its request message, asks the scoring use case (or the fleet),
//! and encodes its answer, with the same errors as the HTTP routes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use prost::Message;
use tonic::Status;
use tonic::server::UnaryService;

use super::error_status;
use crate::http::{ApiError, AppState};
use crate::metrics::Route;
use crate::protocol::v2::{self, proto};
use crate::protocol::{InputError, InputErrorKind};
use crate::serving::{GrpcCodec, Outcome, ScoreError};

/// One call of `route`.
pub(super) struct Call {
    pub state: Arc<AppState>,
    pub route: Route,
}

type Answer = Result<tonic::Response<Vec<u8>>, Status>;

impl UnaryService<Bytes> for Call {
    type Response = Vec<u8>;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let (state, route) = (self.state.clone(), self.route);
        let body = request.into_inner();
        Box::pin(async move {
            match answer(&state, route, body).await {
                Ok(message) => Ok(tonic::Response::new(message)),
                Err(e) => Err(error_status(&state, route, e)),
            }
        })
    }
}

async fn answer(state: &AppState, route: Route, body: Bytes) -> Result<Vec<u8>, ApiError> {
    let fleet = state.fleet();
    Ok(match route {
        Route::GrpcServerLive => proto::ServerLiveResponse { live: true }.encode_to_vec(),
        Route::GrpcServerReady => proto::ServerReadyResponse {
            ready: fleet.ready() && !fleet.draining(),
        }
        .encode_to_vec(),
        Route::GrpcServerMetadata => proto::ServerMetadataResponse {
            name: "treeserve".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: Vec::new(),
        }
        .encode_to_vec(),
        Route::GrpcModelReady => {
            let req = model_request(&body)?;
            let ready = match state
                .scoring
                .resolve(&req.name, version(&req.version))
                .await
            {
                Ok(_) => true,
                // A probe: "no" rather than an error, as tritonclient reads V2 HTTP's 404.
                Err(
                    ScoreError::ModelNotReady(_)
                    | ScoreError::VersionUnavailable { .. }
                    | ScoreError::ModelNotFound(_)
                    | ScoreError::VersionNotFound { .. },
                ) => false,
                Err(e) => return Err(e.into()),
            };
            proto::ModelReadyResponse { ready }.encode_to_vec()
        }
        Route::GrpcModelMetadata => metadata(state, model_request(&body)?).await?,
        Route::GrpcModelInfer => return infer(state, body).await,
        _ => unreachable!("only the service's RPCs are called"),
    })
}

/// An empty version names the alias's.
fn version(v: &str) -> Option<&str> {
    (!v.is_empty()).then_some(v)
}

fn model_request(body: &[u8]) -> Result<proto::ModelRequest, ApiError> {
    proto::ModelRequest::decode(body).map_err(|e| {
        InputError::new(
            InputErrorKind::InvalidBody,
            format!("invalid request message: {e}"),
        )
        .into()
    })
}

async fn metadata(state: &AppState, req: proto::ModelRequest) -> Result<Vec<u8>, ApiError> {
    let (catalog, served) = state
        .scoring
        .resolve(&req.name, version(&req.version))
        .await?;
    let versions = state
        .scoring
        .blocking("registry", move || catalog.versions())
        .await?
        .unwrap_or_default();
    let m = &served.model;
    let tensor = |name: &str, datatype: &str, shape: Vec<i64>| proto::TensorMetadata {
        name: name.into(),
        datatype: datatype.into(),
        shape,
    };
    let outputs = if m.is_regression() {
        vec![tensor(v2::PREDICT, "FP64", vec![-1])]
    } else {
        vec![
            tensor(v2::LABEL, "BYTES", vec![-1]),
            tensor(v2::PROBABILITIES, "FP32", vec![-1, m.num_classes() as i64]),
        ]
    };
    Ok(proto::ModelMetadataResponse {
        name: m.name().into(),
        versions: versions.iter().map(u64::to_string).collect(),
        platform: "treeserve".into(),
        inputs: vec![tensor(v2::INPUT, "FP64", vec![-1, m.num_features() as i64])],
        outputs,
    }
    .encode_to_vec())
}

/// `ModelInfer`: the model and version are read first, then the whole message is decoded
/// and scored on the one path (inline when small, else on a blocking thread).
async fn infer(state: &AppState, body: Bytes) -> Result<Vec<u8>, ApiError> {
    let (model, ver, id) = v2::grpc::target(&body)?;
    // An empty name is the default model, as `/score` answers.
    let model = (!model.is_empty()).then_some(model);
    // With a feedback record, an answer with a request id is remembered under it.
    let ask = crate::serving::Ask {
        id: (state.scoring.feedback().is_some() && !id.is_empty())
            .then(|| crate::feedback::AnswerId::of(id)),
        at: None,
        drawn: None,
    };
    let outcome = state
        .scoring
        .score_asked(model, version(ver), GrpcCodec, body.clone(), ask);
    let scored = match outcome {
        Outcome::Now(r) => r?,
        Outcome::Later(l) => l.await?,
    };
    Ok(scored.output)
}
