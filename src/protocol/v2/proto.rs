//! The messages of KServe's `inference.GRPCInferenceService` (the Open Inference Protocol
//! over gRPC, `grpc_predict_v2.proto`; Triton's `grpc_service.proto` uses the same field
//! numbers), written out with prost's derive: no `protoc` at build time. Only the RPCs
//! served here; unknown fields (Triton's extensions) are skipped on decode.

use std::collections::HashMap;

/// `ServerLive` answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServerLiveResponse {
    /// Whether the server is live.
    #[prost(bool, tag = "1")]
    pub live: bool,
}

/// `ServerReady` answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServerReadyResponse {
    /// Whether every served model is loaded.
    #[prost(bool, tag = "1")]
    pub ready: bool,
}

/// `ModelReady` and `ModelMetadata` request: a model and optionally a version.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelRequest {
    /// The model's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The version (empty: the alias's).
    #[prost(string, tag = "2")]
    pub version: String,
}

/// `ModelReady` answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelReadyResponse {
    /// Whether the model (version) is loaded and serving.
    #[prost(bool, tag = "1")]
    pub ready: bool,
}

/// `ServerMetadata` answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServerMetadataResponse {
    /// The server's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its version.
    #[prost(string, tag = "2")]
    pub version: String,
    /// Protocol extensions supported.
    #[prost(string, repeated, tag = "3")]
    pub extensions: Vec<String>,
}

/// A tensor's name, datatype and shape (`-1`: any size).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorMetadata {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Datatype (`FP64`, `BYTES`…).
    #[prost(string, tag = "2")]
    pub datatype: String,
    /// Shape.
    #[prost(int64, repeated, tag = "3")]
    pub shape: Vec<i64>,
}

/// `ModelMetadata` answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelMetadataResponse {
    /// The model's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its versions in the registry.
    #[prost(string, repeated, tag = "2")]
    pub versions: Vec<String>,
    /// The platform (`treeserve`).
    #[prost(string, tag = "3")]
    pub platform: String,
    /// The input tensor.
    #[prost(message, repeated, tag = "4")]
    pub inputs: Vec<TensorMetadata>,
    /// The outputs.
    #[prost(message, repeated, tag = "5")]
    pub outputs: Vec<TensorMetadata>,
}

/// A request, tensor or output parameter.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InferParameter {
    /// The value.
    #[prost(oneof = "ParameterChoice", tags = "1, 2, 3, 4, 5")]
    pub choice: Option<ParameterChoice>,
}

/// A parameter's value.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ParameterChoice {
    /// A boolean.
    #[prost(bool, tag = "1")]
    Bool(bool),
    /// A signed integer.
    #[prost(int64, tag = "2")]
    Int64(i64),
    /// A string.
    #[prost(string, tag = "3")]
    String(String),
    /// A double (KServe).
    #[prost(double, tag = "4")]
    Double(f64),
    /// An unsigned integer (Triton).
    #[prost(uint64, tag = "5")]
    Uint64(u64),
}

/// A tensor's values in the typed field matching its datatype, flat, row-major.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InferTensorContents {
    /// `BOOL`.
    #[prost(bool, repeated, tag = "1")]
    pub bool_contents: Vec<bool>,
    /// `INT8`, `INT16`, `INT32`.
    #[prost(int32, repeated, tag = "2")]
    pub int_contents: Vec<i32>,
    /// `INT64`.
    #[prost(int64, repeated, tag = "3")]
    pub int64_contents: Vec<i64>,
    /// `UINT8`, `UINT16`, `UINT32`.
    #[prost(uint32, repeated, tag = "4")]
    pub uint_contents: Vec<u32>,
    /// `UINT64`.
    #[prost(uint64, repeated, tag = "5")]
    pub uint64_contents: Vec<u64>,
    /// `FP32`.
    #[prost(float, repeated, tag = "6")]
    pub fp32_contents: Vec<f32>,
    /// `FP64`.
    #[prost(double, repeated, tag = "7")]
    pub fp64_contents: Vec<f64>,
    /// `BYTES`.
    #[prost(bytes = "vec", repeated, tag = "8")]
    pub bytes_contents: Vec<Vec<u8>>,
}

/// An input tensor.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InferInputTensor {
    /// Name (any is accepted).
    #[prost(string, tag = "1")]
    pub name: String,
    /// Datatype.
    #[prost(string, tag = "2")]
    pub datatype: String,
    /// Shape.
    #[prost(int64, repeated, tag = "3")]
    pub shape: Vec<i64>,
    /// Parameters (ignored).
    #[prost(map = "string, message", tag = "4")]
    pub parameters: HashMap<String, InferParameter>,
    /// The values, unless they are in `raw_input_contents`.
    #[prost(message, optional, tag = "5")]
    pub contents: Option<InferTensorContents>,
}

/// An output asked for.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InferRequestedOutputTensor {
    /// Its name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Parameters (ignored).
    #[prost(map = "string, message", tag = "2")]
    pub parameters: HashMap<String, InferParameter>,
}

/// `ModelInfer` request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelInferRequest {
    /// The model.
    #[prost(string, tag = "1")]
    pub model_name: String,
    /// The version (empty: the alias's).
    #[prost(string, tag = "2")]
    pub model_version: String,
    /// An id, echoed.
    #[prost(string, tag = "3")]
    pub id: String,
    /// Parameters (ignored).
    #[prost(map = "string, message", tag = "4")]
    pub parameters: HashMap<String, InferParameter>,
    /// The input tensors (one).
    #[prost(message, repeated, tag = "5")]
    pub inputs: Vec<InferInputTensor>,
    /// The outputs asked for (none: all).
    #[prost(message, repeated, tag = "6")]
    pub outputs: Vec<InferRequestedOutputTensor>,
    /// Each input's values as little-endian bytes (what `tritonclient` sends).
    #[prost(bytes = "vec", repeated, tag = "7")]
    pub raw_input_contents: Vec<Vec<u8>>,
}

/// An output tensor's metadata (its data is in `raw_output_contents`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct InferOutputTensor {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Datatype.
    #[prost(string, tag = "2")]
    pub datatype: String,
    /// Shape.
    #[prost(int64, repeated, tag = "3")]
    pub shape: Vec<i64>,
    /// Parameters (none).
    #[prost(map = "string, message", tag = "4")]
    pub parameters: HashMap<String, InferParameter>,
    /// Typed contents (unused: the data is raw, as Triton answers).
    #[prost(message, optional, tag = "5")]
    pub contents: Option<InferTensorContents>,
}

/// `ModelInfer` answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelInferResponse {
    /// The model.
    #[prost(string, tag = "1")]
    pub model_name: String,
    /// The version that answered.
    #[prost(string, tag = "2")]
    pub model_version: String,
    /// The request's id.
    #[prost(string, tag = "3")]
    pub id: String,
    /// Parameters (none).
    #[prost(map = "string, message", tag = "4")]
    pub parameters: HashMap<String, InferParameter>,
    /// The outputs, in the order asked.
    #[prost(message, repeated, tag = "5")]
    pub outputs: Vec<InferOutputTensor>,
    /// Each output's values, little-endian (`BYTES`: each element's 4-byte length, then
    /// its bytes).
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub raw_output_contents: Vec<Vec<u8>>,
}
