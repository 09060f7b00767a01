//! The [`Codec`]s of the protocols served: `/score` (Azure ML's contract), the Open
//! Inference Protocol (KServe V2), and MLflow's / KServe V1's `{"predictions": [...]}`,
//! over the wire formats of [`crate::protocol`].

use bytes::Bytes;

use super::ServedModel;
use super::scoring::{Codec, Local};
use crate::model::Model;
use crate::protocol::v2::{self, Output};
use crate::protocol::{InputError, InputErrorKind, score, tabular};

/// `/score`: rows as JSON objects keyed by feature name; answers JSON.
#[derive(Debug, Clone, Copy)]
pub struct ScoreCodec {
    /// Add each row's class probabilities.
    pub want_proba: bool,
}

impl Codec for ScoreCodec {
    type Decoded<'b> = score::Decoded;
    type Output = Bytes;

    fn decode(
        &self,
        model: &Model,
        body: &[u8],
        max_rows: usize,
        values: &mut Vec<f64>,
    ) -> Result<(usize, score::Decoded), InputError> {
        let d = score::decode_with(
            body,
            model.features(),
            max_rows,
            model.missing_aware(),
            values,
        )?;
        Ok((d.rows, d))
    }

    fn wants_proba(&self, _: &score::Decoded) -> bool {
        self.want_proba
    }

    fn encode(
        &self,
        served: &ServedModel,
        local: &Local,
        decoded: score::Decoded,
        classes: &[usize],
        proba: Option<&[f64]>,
    ) -> Bytes {
        match (classes, decoded.batch, proba) {
            // One row, one label: this thread's copy of the precomputed answer.
            ([class], false, None) => local.singles[*class].clone(),
            _ => Bytes::from(served.score.encode(classes, proba, decoded.batch)),
        }
    }
}

/// Open Inference Protocol infer: a JSON header, and with Triton's binary tensor data
/// extension the bytes after it (`header_len` is `Inference-Header-Content-Length`).
#[derive(Debug, Clone, Copy)]
pub struct V2Codec {
    /// Length of the JSON header when the body has a binary section.
    pub header_len: Option<usize>,
}

impl Codec for V2Codec {
    type Decoded<'b> = v2::Decoded<'b>;
    type Output = v2::Encoded;

    fn decode<'b>(
        &self,
        model: &Model,
        body: &'b [u8],
        max_rows: usize,
        values: &mut Vec<f64>,
    ) -> Result<(usize, v2::Decoded<'b>), InputError> {
        let (json, binary) = match self.header_len {
            Some(n) if n <= body.len() => body.split_at(n),
            Some(n) => {
                return Err(InputError::new(
                    InputErrorKind::InvalidBody,
                    format!(
                        "Inference-Header-Content-Length is {n} but the body has {} bytes",
                        body.len()
                    ),
                ));
            }
            None => (body, &[][..]),
        };
        let mut d = v2::decode_with(
            json,
            binary,
            model.num_features(),
            max_rows,
            model.missing_aware(),
            values,
        )?;
        regressor_outputs(model, &mut d.outputs)?;
        Ok((d.rows, d))
    }

    fn wants_proba(&self, decoded: &v2::Decoded<'_>) -> bool {
        decoded.outputs.has(Output::Probabilities)
    }

    fn encode(
        &self,
        served: &ServedModel,
        _: &Local,
        decoded: v2::Decoded<'_>,
        classes: &[usize],
        proba: Option<&[f64]>,
    ) -> v2::Encoded {
        served.v2.encode(
            decoded.id.as_deref(),
            classes,
            proba,
            decoded.outputs.as_slice(),
        )
    }
}

/// A regressor answers its values alone: asked for the default outputs (both), it drops
/// the probabilities; asked for probabilities, it refuses.
fn regressor_outputs(model: &Model, outputs: &mut v2::Outputs) -> Result<(), InputError> {
    if model.is_regression() && outputs.has(Output::Probabilities) && outputs.has(Output::Label) {
        outputs.remove(Output::Probabilities);
    }
    if model.is_regression() && outputs.has(Output::Probabilities) {
        return Err(InputError::new(
            InputErrorKind::UnknownOutput,
            format!(
                "a regressor has no {:?} output; ask for {:?}",
                v2::PROBABILITIES,
                v2::PREDICT
            ),
        ));
    }
    Ok(())
}

/// The Open Inference Protocol over gRPC: the body is a protobuf `ModelInferRequest`, the
/// answer a `ModelInferResponse` with the data in `raw_output_contents`.
#[derive(Debug, Clone, Copy)]
pub struct GrpcCodec;

impl Codec for GrpcCodec {
    type Decoded<'b> = v2::grpc::Decoded;
    type Output = Vec<u8>;

    fn decode(
        &self,
        model: &Model,
        body: &[u8],
        max_rows: usize,
        values: &mut Vec<f64>,
    ) -> Result<(usize, v2::grpc::Decoded), InputError> {
        let mut d = v2::grpc::decode(
            body,
            model.num_features(),
            max_rows,
            model.missing_aware(),
            values,
        )?;
        regressor_outputs(model, &mut d.outputs)?;
        Ok((d.rows, d))
    }

    fn wants_proba(&self, decoded: &v2::grpc::Decoded) -> bool {
        decoded.outputs.has(Output::Probabilities)
    }

    fn encode(
        &self,
        served: &ServedModel,
        _: &Local,
        decoded: v2::grpc::Decoded,
        classes: &[usize],
        proba: Option<&[f64]>,
    ) -> Vec<u8> {
        served
            .grpc
            .encode(decoded.id, classes, proba, decoded.outputs.as_slice())
    }
}

/// MLflow's scoring protocol (`/invocations`) and KServe V1's predict: a DataFrame or
/// tensor in JSON, or CSV; answers `{"predictions": [...]}`.
#[derive(Debug, Clone, Copy)]
pub struct TabularCodec {
    /// The body is `text/csv` (else JSON).
    pub csv: bool,
}

impl Codec for TabularCodec {
    type Decoded<'b> = ();
    type Output = Bytes;

    fn decode(
        &self,
        model: &Model,
        body: &[u8],
        max_rows: usize,
        values: &mut Vec<f64>,
    ) -> Result<(usize, ()), InputError> {
        let decode = if self.csv {
            tabular::decode_csv
        } else {
            tabular::decode_json
        };
        let rows = decode(
            body,
            model.features(),
            max_rows,
            model.missing_aware(),
            values,
        )?;
        Ok((rows, ()))
    }

    fn wants_proba(&self, _: &()) -> bool {
        false
    }

    fn encode(
        &self,
        served: &ServedModel,
        _: &Local,
        _: (),
        classes: &[usize],
        proba: Option<&[f64]>,
    ) -> Bytes {
        Bytes::from(served.tabular.encode(classes, proba))
    }
}
