//! A wire-level walk over the protobuf bytes before `prost` decodes them: iterative, no
//! allocation, it bounds how many elements each repeated message field may hold, how
//! deep messages nest, and an estimate of what decoding would allocate. A repeated empty
//! message costs 2 bytes on the wire and ~100 decoded, so without this a small hostile
//! file could make the decoder allocate gigabytes.

use super::malformed;
use crate::import::ImportError;

/// Messages of the subset in [`super::proto`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Model,
    Graph,
    Node,
    Attribute,
    Tensor,
    Entry,
    ValueInfo,
    Type,
    TensorType,
    Shape,
    Dim,
    Opset,
}

/// Scalar element encodings of packed fields.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Elem {
    Varint,
    Fixed32,
    Fixed64,
}

/// What a field of a message is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Field {
    /// A message; `Some(limit)` when repeated; `slot` indexes the frame's counters.
    Msg(Kind, Option<u32>, usize),
    /// Repeated string or bytes, at most `limit` elements (`u32::MAX`: the budget only).
    RepBytes(u32, usize),
    /// Repeated scalar, packed or not.
    Packed(Elem),
    /// A scalar or a single string: costs what it holds.
    Scalar,
    /// Not declared: `prost` skips it.
    Skip,
}

/// Deepest message nesting accepted.
pub const MAX_DEPTH: usize = 8;
/// Nodes in the graph.
pub const MAX_NODES: u32 = 64;
/// Attributes of one node.
pub const MAX_ATTRIBUTES: u32 = 64;
/// Graph inputs, graph outputs, node inputs, node outputs.
pub const MAX_VALUES: u32 = 64;
/// Operator set imports.
pub const MAX_OPSETS: u32 = 16;
/// Dimensions of a shape.
pub const MAX_DIMS: u32 = 8;
/// Decoded bytes allowed per input byte (plus [`BUDGET_SLACK`]).
pub const BUDGET_PER_BYTE: usize = 8;
/// Decoded bytes allowed whatever the input.
pub const BUDGET_SLACK: usize = 1 << 20;
/// What one decoded message is counted as.
const MESSAGE_COST: usize = 256;
/// What one element of a repeated string or bytes field costs beyond its bytes.
const VEC_COST: usize = 24;

fn field(kind: Kind, number: u64) -> Field {
    use Field::*;
    match (kind, number) {
        (Kind::Model, 1 | 5) => Scalar,
        (Kind::Model, 2..=4) => Scalar,
        (Kind::Model, 7) => Msg(Kind::Graph, None, 0),
        (Kind::Model, 8) => Msg(Kind::Opset, Some(MAX_OPSETS), 1),
        (Kind::Opset, 1 | 2) => Scalar,
        (Kind::Graph, 1) => Msg(Kind::Node, Some(MAX_NODES), 0),
        (Kind::Graph, 11) => Msg(Kind::ValueInfo, Some(MAX_VALUES), 1),
        (Kind::Graph, 12) => Msg(Kind::ValueInfo, Some(MAX_VALUES), 2),
        (Kind::Node, 1) => RepBytes(MAX_VALUES, 0),
        (Kind::Node, 2) => RepBytes(MAX_VALUES, 1),
        (Kind::Node, 3 | 4 | 7) => Scalar,
        (Kind::Node, 5) => Msg(Kind::Attribute, Some(MAX_ATTRIBUTES), 2),
        (Kind::Attribute, 1..=4 | 20) => Scalar,
        (Kind::Attribute, 5) => Msg(Kind::Tensor, None, 0),
        (Kind::Attribute, 7) => Packed(Elem::Fixed32),
        (Kind::Attribute, 8) => Packed(Elem::Varint),
        (Kind::Attribute, 9) => RepBytes(u32::MAX, 1),
        (Kind::Tensor, 1 | 5 | 7) => Packed(Elem::Varint),
        (Kind::Tensor, 2 | 9 | 14) => Scalar,
        (Kind::Tensor, 4) => Packed(Elem::Fixed32),
        (Kind::Tensor, 10) => Packed(Elem::Fixed64),
        (Kind::Tensor, 13) => Msg(Kind::Entry, Some(MAX_OPSETS), 0),
        (Kind::Entry, 1 | 2) => Scalar,
        (Kind::ValueInfo, 1) => Scalar,
        (Kind::ValueInfo, 2) => Msg(Kind::Type, None, 0),
        (Kind::Type, 1) => Msg(Kind::TensorType, None, 0),
        (Kind::TensorType, 1) => Scalar,
        (Kind::TensorType, 2) => Msg(Kind::Shape, None, 0),
        (Kind::Shape, 1) => Msg(Kind::Dim, Some(MAX_DIMS), 0),
        (Kind::Dim, 1 | 2) => Scalar,
        _ => Skip,
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Model => "ModelProto",
        Kind::Graph => "GraphProto",
        Kind::Node => "NodeProto",
        Kind::Attribute => "AttributeProto",
        Kind::Tensor => "TensorProto",
        Kind::Entry => "StringStringEntryProto",
        Kind::ValueInfo => "ValueInfoProto",
        Kind::Type => "TypeProto",
        Kind::TensorType => "TypeProto.Tensor",
        Kind::Shape => "TensorShapeProto",
        Kind::Dim => "TensorShapeProto.Dimension",
        Kind::Opset => "OperatorSetIdProto",
    }
}

/// One message being walked: its kind, where it ends, and per-field element counters.
struct Frame {
    kind: Kind,
    end: usize,
    counts: [u32; 3],
}

/// Reads a varint at `*pos` (at most 10 bytes, within `end`).
fn varint(bytes: &[u8], pos: &mut usize, end: usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in 0..10 {
        if *pos >= end {
            return None;
        }
        let b = *bytes.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << (7 * shift);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Checks `bytes` before decoding: nesting ≤ [`MAX_DEPTH`], repeated message fields
/// within their limits, no group encodings, singular messages once, and the estimated
/// decoded size within `BUDGET_PER_BYTE × len + BUDGET_SLACK`.
pub fn check(bytes: &[u8]) -> Result<(), ImportError> {
    let budget = bytes
        .len()
        .saturating_mul(BUDGET_PER_BYTE)
        .saturating_add(BUDGET_SLACK);
    let mut cost = 0usize;
    let mut stack = vec![Frame {
        kind: Kind::Model,
        end: bytes.len(),
        counts: [0; 3],
    }];
    let mut pos = 0usize;
    loop {
        let depth = stack.len();
        let Some(frame) = stack.last_mut() else { break };
        if pos == frame.end {
            stack.pop();
            continue;
        }
        let kind = frame.kind;
        let end = frame.end;
        let at = pos;
        let bad = |what: String| Err(malformed(format!("{what} at byte {at}")));
        let Some(key) = varint(bytes, &mut pos, end) else {
            return bad(format!("truncated field key in {}", kind_name(kind)));
        };
        let number = key >> 3;
        let wire = key & 7;
        if number == 0 || number > u64::from(u32::MAX >> 3) {
            return bad(format!("field number {number} in {}", kind_name(kind)));
        }
        let f = field(kind, number);
        let what = || format!("{} field {number}", kind_name(kind));
        let mut child_frame = None;
        match wire {
            0 => {
                if varint(bytes, &mut pos, end).is_none() {
                    return bad(format!("truncated varint in {}", what()));
                }
                match f {
                    Field::Packed(Elem::Varint) => cost = cost.saturating_add(8),
                    Field::Scalar | Field::Skip => {}
                    _ => return bad(format!("{} has the wrong wire type 0", what())),
                }
            }
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                if end - pos < n {
                    return bad(format!("truncated fixed-size value in {}", what()));
                }
                pos += n;
                let elem = if wire == 1 {
                    Elem::Fixed64
                } else {
                    Elem::Fixed32
                };
                match f {
                    Field::Packed(e) if e == elem => cost = cost.saturating_add(8),
                    Field::Scalar | Field::Skip => {}
                    _ => return bad(format!("{} has the wrong wire type {wire}", what())),
                }
            }
            2 => {
                let Some(len) = varint(bytes, &mut pos, end) else {
                    return bad(format!("truncated length of {}", what()));
                };
                if len > (end - pos) as u64 {
                    return bad(format!(
                        "{} declares {len} bytes but {} remain",
                        what(),
                        end - pos
                    ));
                }
                let len = len as usize;
                let body = pos;
                pos += len;
                match f {
                    Field::Msg(child, limit, slot) => {
                        let c = &mut frame.counts[slot];
                        *c += 1;
                        match limit {
                            None if *c > 1 => {
                                return bad(format!("{} appears twice", what()));
                            }
                            Some(max) if *c > max => {
                                return bad(format!("{} has more than {max} elements", what()));
                            }
                            _ => {}
                        }
                        if depth >= MAX_DEPTH {
                            return bad(format!("messages nest deeper than {MAX_DEPTH}"));
                        }
                        cost = cost.saturating_add(MESSAGE_COST);
                        child_frame = Some((
                            Frame {
                                kind: child,
                                end: pos,
                                counts: [0; 3],
                            },
                            body,
                        ));
                    }
                    Field::RepBytes(max, slot) => {
                        if max != u32::MAX {
                            let c = &mut frame.counts[slot];
                            *c += 1;
                            if *c > max {
                                return bad(format!("{} has more than {max} elements", what()));
                            }
                        }
                        cost = cost.saturating_add(VEC_COST + len);
                    }
                    Field::Packed(Elem::Varint) => {
                        let ends = bytes.get(body..pos).unwrap_or(&[]);
                        let n = ends.iter().filter(|&&b| b & 0x80 == 0).count();
                        cost = cost.saturating_add(8 * n);
                    }
                    Field::Packed(Elem::Fixed32) => cost = cost.saturating_add(2 * len),
                    Field::Packed(Elem::Fixed64) | Field::Scalar => cost = cost.saturating_add(len),
                    Field::Skip => {}
                }
            }
            _ => return bad(format!("unsupported wire type {wire} in {}", what())),
        }
        if let Some((child, body)) = child_frame {
            stack.push(child);
            pos = body;
        }
        if cost > budget {
            return Err(malformed(format!(
                "decoding would take more than {budget} bytes of memory (a hostile or \
                 corrupt file)"
            )));
        }
    }
    Ok(())
}
