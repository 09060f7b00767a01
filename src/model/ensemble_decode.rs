//! An imported artifact's payload (an [`Ensemble`] as `rmp_serde::to_vec` writes it) read
//! by hand where it has the shape that encoder gives it, and by `rmp_serde` otherwise.
//!
//! serde's generic path spent ~45 ns a node (a 500-tree XGBoost model: 11 ms of a 25 ms
//! load) on the enums' variant names, read as strings and matched one by one. Here a node
//! is a few byte comparisons. The fast path takes only what the encoder writes (arrays for
//! structs, a map of one entry for a variant with data, the variant's name as a fixstr,
//! integers as positive fixints or `uint8`–`uint32`, floats as `float64`, no byte after
//! the value) and gives up on anything else: `rmp_serde` then decides, so what is read and
//! what is refused, with which message, stays `rmp_serde`'s. The fields after the trees go
//! through serde's own impls, one by one. The `ensemble_payload` fuzz target checks that
//! whatever the fast path reads, `rmp_serde` reads the same (bit for bit).

use super::{Branch, CategoryRule, Ensemble, Leaf, Node, Split, Test, Tree};
use serde::Deserialize;

impl Ensemble {
    /// Reads an imported artifact's payload (MessagePack, as `rmp_serde::to_vec` writes
    /// an ensemble); the error is `rmp_serde`'s.
    pub fn from_msgpack(bytes: &[u8]) -> Result<Ensemble, rmp_serde::decode::Error> {
        match decode_fast(bytes) {
            Some(e) => Ok(e),
            None => rmp_serde::from_slice(bytes),
        }
    }
}

/// The fast path of [`Ensemble::from_msgpack`]: `None` where the bytes are not exactly in
/// the encoder's shape (then `rmp_serde` decides). Public for the fuzz target.
#[doc(hidden)]
pub fn decode_fast(bytes: &[u8]) -> Option<Ensemble> {
    let mut c = Cursor { b: bytes };
    c.exact(&[0x9b])?;
    let num_features = c.u32()?;
    let outputs = c.u32()?;
    let n = c.array()?;
    let mut trees = Vec::with_capacity(n.min(c.b.len() / 4));
    for _ in 0..n {
        c.exact(&[0x92])?;
        let len = c.array()?;
        // A node takes at least 23 bytes (a scalar leaf).
        let mut nodes = Vec::with_capacity(len.min(c.b.len() / 23));
        for _ in 0..len {
            nodes.push(c.node()?);
        }
        trees.push(Tree {
            nodes,
            group: c.u32()?,
        });
    }
    // The other fields, by their own impls; `rmp_serde` reads no further than a value.
    let mut de = rmp_serde::Deserializer::new(c.b);
    let e = Ensemble {
        num_features,
        outputs,
        trees,
        base: Deserialize::deserialize(&mut de).ok()?,
        base_placement: Deserialize::deserialize(&mut de).ok()?,
        aggregation: Deserialize::deserialize(&mut de).ok()?,
        precision: Deserialize::deserialize(&mut de).ok()?,
        zero_snap: Deserialize::deserialize(&mut de).ok()?,
        transform: Deserialize::deserialize(&mut de).ok()?,
        output_cast_f32: Deserialize::deserialize(&mut de).ok()?,
        output: Deserialize::deserialize(&mut de).ok()?,
    };
    de.get_ref().is_empty().then_some(e)
}

/// The bytes not read yet.
struct Cursor<'a> {
    b: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.b.split_at_checked(n)?;
        self.b = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.b.split_first()?;
        self.b = rest;
        Some(b)
    }

    fn exact(&mut self, want: &[u8]) -> Option<()> {
        self.b = self.b.strip_prefix(want)?;
        Some(())
    }

    fn be<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u32(&mut self) -> Option<u32> {
        match self.byte()? {
            b @ 0x00..=0x7f => Some(b.into()),
            0xcc => self.byte().map(u32::from),
            0xcd => self.be().map(u16::from_be_bytes).map(u32::from),
            0xce => self.be().map(u32::from_be_bytes),
            _ => None,
        }
    }

    fn f64(&mut self) -> Option<f64> {
        self.exact(&[0xcb])?;
        self.be().map(f64::from_be_bytes)
    }

    fn array(&mut self) -> Option<usize> {
        match self.byte()? {
            b @ 0x90..=0x9f => Some(usize::from(b & 0x0f)),
            0xdc => self.be().map(u16::from_be_bytes).map(usize::from),
            0xdd => self.be().map(u32::from_be_bytes).map(|n| n as usize),
            _ => None,
        }
    }

    /// A fixstr's bytes.
    fn name(&mut self) -> Option<&'a [u8]> {
        match self.byte()? {
            b @ 0xa0..=0xbf => self.take(usize::from(b & 0x1f)),
            _ => None,
        }
    }

    /// A variant with data: a map of one entry, its name first.
    fn variant(&mut self) -> Option<&'a [u8]> {
        self.exact(&[0x81])?;
        self.name()
    }

    fn node(&mut self) -> Option<Node> {
        match self.variant()? {
            b"Split" => {
                self.exact(&[0x96])?;
                Some(Node::Split(Split {
                    feature: self.u32()?,
                    test: self.test()?,
                    yes: self.u32()?,
                    no: self.u32()?,
                    missing: match self.name()? {
                        b"Yes" => Branch::Yes,
                        b"No" => Branch::No,
                        _ => return None,
                    },
                    zero_is_missing: match self.byte()? {
                        0xc2 => false,
                        0xc3 => true,
                        _ => return None,
                    },
                }))
            }
            b"Leaf" => Some(Node::Leaf(match self.variant()? {
                b"Scalar" => Leaf::Scalar(self.f64()?),
                b"Vector" => {
                    let n = self.array()?;
                    let mut pairs = Vec::with_capacity(n.min(self.b.len() / 11));
                    for _ in 0..n {
                        self.exact(&[0x92])?;
                        pairs.push((self.u32()?, self.f64()?));
                    }
                    Leaf::Vector(pairs)
                }
                _ => return None,
            })),
            _ => None,
        }
    }

    fn test(&mut self) -> Option<Test> {
        Some(match self.variant()? {
            b"Lt" => Test::Lt(self.f64()?),
            b"Le" => Test::Le(self.f64()?),
            b"Ge" => Test::Ge(self.f64()?),
            b"Gt" => Test::Gt(self.f64()?),
            b"InSet" => {
                self.exact(&[0x92])?;
                let n = self.array()?;
                let mut words = Vec::with_capacity(n.min(self.b.len()));
                for _ in 0..n {
                    words.push(self.u32()?);
                }
                let rule = match self.name()? {
                    b"Truncate" => CategoryRule::Truncate,
                    b"TruncateNegativeFractionIsZero" => {
                        CategoryRule::TruncateNegativeFractionIsZero
                    }
                    _ => return None,
                };
                Test::InSet { words, rule }
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ensemble::{Aggregation, BasePlacement, OutputKind, Precision, Transform};

    fn split(feature: u32, test: Test, yes: u32, no: u32) -> Node {
        Node::Split(Split {
            feature,
            test,
            yes,
            no,
            missing: Branch::Yes,
            zero_is_missing: true,
        })
    }

    /// Every node and leaf kind, integers of every width the encoder writes.
    fn every_kind() -> Ensemble {
        let set = |rule| Test::InSet {
            words: vec![0, 5, 70_000, u32::MAX],
            rule,
        };
        let tree = Tree {
            nodes: vec![
                split(0, Test::Lt(-0.0), 1, 2),
                split(200, Test::Le(f64::MIN_POSITIVE), 3, 4),
                split(70_000, Test::Ge(1e300), 5, 6),
                split(u32::MAX, Test::Gt(f64::NAN), 7, 8),
                split(3, set(CategoryRule::Truncate), 9, 10),
                split(3, set(CategoryRule::TruncateNegativeFractionIsZero), 11, 12),
                Node::Leaf(Leaf::Scalar(0.25)),
                Node::Leaf(Leaf::Vector(vec![(0, 1.5), (300, -2.0)])),
                Node::Leaf(Leaf::Vector(Vec::new())),
            ],
            group: 7,
        };
        Ensemble {
            num_features: 70_001,
            outputs: 130,
            trees: vec![tree; 17],
            base: vec![0.5, -1.0],
            base_placement: BasePlacement::AfterSum,
            aggregation: Aggregation::Mean { divisor: 3.0 },
            precision: Precision::F64,
            zero_snap: true,
            transform: Transform::LgbSigmoid { alpha: 2.0 },
            output_cast_f32: true,
            output: OutputKind::ArgmaxRaw,
        }
    }

    /// The encoder's bytes, so that comparisons are bit for bit (NaN, -0.0).
    fn encoded(e: &Ensemble) -> Vec<u8> {
        rmp_serde::to_vec(e).expect("encodes")
    }

    #[test]
    fn the_fast_path_reads_what_the_encoder_writes_as_rmp_serde_does() {
        let bytes = encoded(&every_kind());
        let fast = decode_fast(&bytes).expect("the encoder's shape takes the fast path");
        assert_eq!(encoded(&fast), bytes);
        let slow: Ensemble = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(encoded(&slow), bytes);
    }

    #[test]
    fn other_shapes_and_bad_bytes_go_to_rmp_serde() {
        let e = every_kind();
        let bytes = encoded(&e);
        // The same ensemble with its structs as maps: rmp_serde reads it, the fast path
        // does not.
        let named = rmp_serde::to_vec_named(&e).unwrap();
        assert!(decode_fast(&named).is_none());
        assert_eq!(
            encoded(&Ensemble::from_msgpack(&named).unwrap()),
            bytes,
            "rmp_serde decides"
        );
        // A trailing byte: rmp_serde reads one value and ignores it; so does the whole.
        let mut trailing = bytes.clone();
        trailing.push(0xc0);
        assert!(decode_fast(&trailing).is_none());
        assert_eq!(encoded(&Ensemble::from_msgpack(&trailing).unwrap()), bytes);
        // Every truncation fails both ways, with rmp_serde's error.
        for n in (0..bytes.len()).step_by(7) {
            assert!(decode_fast(&bytes[..n]).is_none(), "{n}");
            let err = Ensemble::from_msgpack(&bytes[..n]).unwrap_err();
            let want = rmp_serde::from_slice::<Ensemble>(&bytes[..n]).unwrap_err();
            assert_eq!(err.to_string(), want.to_string());
        }
    }

    #[test]
    fn a_huge_declared_length_allocates_by_the_bytes_there() {
        // 4 billion trees declared, or 4 billion nodes of a tree, then nothing: refused,
        // not allocated.
        for bytes in [
            &[0x9b, 0x01, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff][..],
            &[0x9b, 0x01, 0x01, 0x91, 0x92, 0xdd, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert!(decode_fast(bytes).is_none());
            assert!(Ensemble::from_msgpack(bytes).is_err());
        }
    }
}
