//! Synthetic ensembles shaped like the frameworks' (LightGBM leaf-wise, XGBoost depth-wise),
//! shared by the benches (`#[path]`-included): random features and thresholds in (0, 1).

use treeserve::model::ensemble::{
    Aggregation, BasePlacement, Branch, Ensemble, Leaf, Node, OutputKind, Precision, Split, Test,
    Transform, Tree,
};

/// A small LCG: deterministic models and rows.
pub struct Rng(pub u64);

impl Rng {
    pub fn unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize
    }
}

/// A split at a random feature and a threshold in (0, 1), children `y`/`n`.
pub fn split(r: &mut Rng, features: usize, f32m: bool, y: usize, n: usize) -> Node {
    let t = r.unit();
    Node::Split(Split {
        feature: r.below(features) as u32,
        test: Test::Lt(if f32m { t as f32 as f64 } else { t }),
        yes: y as u32,
        no: n as u32,
        missing: if r.below(2) == 0 {
            Branch::Yes
        } else {
            Branch::No
        },
        zero_is_missing: false,
    })
}

pub fn leaf(r: &mut Rng, f32m: bool) -> Node {
    let v = r.unit() * 0.2 - 0.1;
    Node::Leaf(Leaf::Scalar(if f32m { v as f32 as f64 } else { v }))
}

/// Leaf-wise growth (LightGBM): split a random leaf until the tree has `leaves`.
pub fn leafwise(r: &mut Rng, leaves: usize, features: usize) -> Tree {
    let mut nodes = vec![leaf(r, false)];
    let mut frontier = vec![0];
    while frontier.len() < leaves {
        let at = frontier.swap_remove(r.below(frontier.len()));
        let (y, n) = (nodes.len(), nodes.len() + 1);
        nodes.push(leaf(r, false));
        nodes.push(leaf(r, false));
        nodes[at] = split(r, features, false, y, n);
        frontier.extend([y, n]);
    }
    Tree { nodes, group: 0 }
}

/// Depth-wise growth (XGBoost): every node above `depth` splits with probability 0.92.
pub fn depthwise(r: &mut Rng, depth: usize, features: usize) -> Tree {
    let mut nodes = vec![leaf(r, true)];
    let mut level = vec![0];
    for _ in 0..depth {
        let mut next = Vec::new();
        for &at in &level {
            if r.unit() < 0.92 {
                let (y, n) = (nodes.len(), nodes.len() + 1);
                nodes.push(leaf(r, true));
                nodes.push(leaf(r, true));
                nodes[at] = split(r, features, true, y, n);
                next.extend([y, n]);
            }
        }
        level = next;
    }
    Tree { nodes, group: 0 }
}

/// One-output ensemble of `trees`: f32 models as XGBoost binary:logistic, f64 models as a
/// LightGBM regression.
pub fn model(trees: Vec<Tree>, features: usize, f32m: bool) -> Ensemble {
    Ensemble {
        num_features: features as u32,
        outputs: 1,
        trees,
        base: vec![0.0],
        base_placement: BasePlacement::Initial,
        aggregation: Aggregation::Sum,
        precision: if f32m { Precision::F32 } else { Precision::F64 },
        zero_snap: !f32m,
        transform: if f32m {
            Transform::XgbSigmoid
        } else {
            Transform::Identity
        },
        output_cast_f32: false,
        output: if f32m {
            OutputKind::BinaryOneMinus
        } else {
            OutputKind::Value
        },
    }
}
