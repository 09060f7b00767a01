//! The wide layout's payload: written and read back bit for bit (the same bytes, the same
//! answers as the flat evaluator), every fault a hostile file can hold refused with its
//! message, and arbitrary damage never a panic or a hang. (Over 500 lines: one damage for
//! each fault the reader checks, each beside the reason it must give.)

use super::super::tests::{Case, arb_case, check_walk, ensemble, rows};
use super::*;
use crate::model::ensemble::Ensemble;
use crate::model::flat::FlatEnsemble;
use crate::model::wide::WideScratch;
use proptest::prelude::*;

/// Applies the same code to the nodes of either precision.
macro_rules! each {
    ($w:expr, |$x:ident| $body:expr) => {
        match &mut $w.nodes {
            Nodes::F32($x) => $body,
            Nodes::F64($x) => $body,
        }
    };
}

fn limits() -> EnsembleLimits {
    EnsembleLimits::default()
}

fn read(w: &WideEnsemble) -> Result<WideEnsemble, EnsembleError> {
    WideEnsemble::from_payload(&w.to_payload(), &limits())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn layouts_read_back_bit_for_bit(c in arb_case()) {
        let e = ensemble(&c);
        e.validate(&limits()).unwrap();
        let flat = FlatEnsemble::compile(&e).unwrap();
        let wide = WideEnsemble::compile(&e).unwrap();
        let payload = wide.to_payload();
        // Served by pairs of levels (f32), written level by level as built.
        let built = WideEnsemble::from_flat(FlatEnsemble::compile(&e).unwrap()).unwrap();
        prop_assert_eq!(built.to_payload(), payload.clone());
        let back = WideEnsemble::from_payload(&payload, &limits())
            .map_err(|err| TestCaseError::fail(err.0))?;
        prop_assert_eq!(back.to_payload(), payload);
        for on in [false, true] {
            check_walk(&c, &e, &flat, &back.clone().with_vector_walk(on))?;
        }
    }
}

/// Cases with every segment and node kind: f32 with grouped category splits; f64 with
/// vector leaves, lone deep trees and lone category splits.
fn cases() -> Vec<(Case, Ensemble, WideEnsemble)> {
    let base = Case {
        seed: 7,
        trees: 30,
        f32m: true,
        outputs: 1,
        snap: false,
        mean: false,
        after: false,
        rows: 50,
        features: 20,
        grouped_cats: true,
    };
    let f64m = Case {
        seed: 9,
        f32m: false,
        outputs: 3,
        grouped_cats: false,
        ..base.clone()
    };
    [base, f64m]
        .into_iter()
        .map(|c| {
            let e = ensemble(&c);
            // Level by level, as files hold it: a damage is written as it is made.
            let w = WideEnsemble::from_flat(FlatEnsemble::compile(&e).unwrap()).unwrap();
            (c, e, w)
        })
        .collect()
}

/// Lone trees, grouped ones, or both.
#[derive(Clone, Copy, PartialEq)]
enum In {
    Lone,
    Groups,
    Any,
}

/// Index of the first node of the trees `which` that `pick` accepts.
fn find<T: Prec + Walk>(
    w: &Wide<T>,
    which: In,
    pick: impl Fn(usize, &Node<T>) -> bool,
) -> Option<usize> {
    let mut stack: Vec<usize> = w
        .segments
        .iter()
        .flat_map(|s| match s {
            Segment::One { root, .. } if which != In::Groups => vec![*root as usize],
            Segment::Group { roots, count, .. } if which != In::Lone => {
                roots[..*count].iter().map(|&r| r as usize).collect()
            }
            _ => vec![],
        })
        .collect();
    stack.reverse();
    while let Some(i) = stack.pop() {
        let n = w.nodes[i];
        if pick(i, &n) {
            return Some(i);
        }
        if w.flags(n.m) & W_LEAF == 0 {
            let c = (n.m >> w.cshift) as usize;
            stack.extend([c + 1, c]);
        }
    }
    None
}

fn is_split<T: Prec + Walk>(w: &Wide<T>) -> impl Fn(usize, &Node<T>) -> bool + '_ {
    move |_, n| w.flags(n.m) & W_LEAF == 0
}

fn set_child<T: Prec + Walk>(w: &mut Wide<T>, i: usize, child: usize) {
    let m = w.nodes[i].m;
    w.nodes[i].m = (m & ((1 << w.cshift) - 1)) | (child as u32) << w.cshift;
}

/// A damage to a layout and the words its refusal must hold; `None` where the case has
/// nothing to damage so.
type Damage = fn(&mut WideEnsemble) -> Option<()>;

fn damages() -> Vec<(&'static str, Damage, &'static str)> {
    vec![
        (
            "a lone split's child before it",
            |w| {
                each!(w, |x| {
                    let i = find(x, In::Lone, is_split(x))?;
                    set_child(x, i, i);
                    Some(())
                })
            },
            "children are not the next nodes",
        ),
        (
            "a split's child past the end",
            |w| {
                each!(w, |x| {
                    let i = find(x, In::Any, is_split(x))?;
                    let end = x.nodes.len() - 1;
                    set_child(x, i, end);
                    Some(())
                })
            },
            "children are not the next nodes",
        ),
        (
            "a leaf that moves on",
            |w| {
                each!(w, |x| {
                    let i = find(x, In::Any, |i, n| i > 0 && x.flags(n.m) == W_LEAF)?;
                    set_child(x, i, i + 1);
                    Some(())
                })
            },
            "not its own finite, final node",
        ),
        (
            "a leaf of NaN",
            |w| {
                each!(w, |x| {
                    let i = find(x, In::Any, |i, n| i > 0 && x.flags(n.m) == W_LEAF)?;
                    x.nodes[i].t = Prec::of(f64::NAN);
                    Some(())
                })
            },
            "not its own finite, final node",
        ),
        (
            "a split on the phantom feature",
            |w| {
                each!(w, |x| {
                    let i = find(x, In::Any, is_split(x))?;
                    let nf = w.head.num_features as u32;
                    x.nodes[i].m = (x.nodes[i].m & !x.fmask) | nf;
                    Some(())
                })
            },
            "a feature the model does not have",
        ),
        (
            "a vector leaf past its table",
            |w| {
                each!(w, |x| {
                    let i = find(x, In::Lone, |_, n| x.flags(n.m) == W_LEAF | W_VECTOR)?;
                    let r = x.ranges.len();
                    set_child(x, i, r);
                    Some(())
                })
            },
            "vector leaf out of its table",
        ),
        (
            "a vector leaf's range past the values",
            |w| {
                each!(w, |x| {
                    let table = w.head.leaf_table.len() as u32;
                    x.ranges.first_mut()?.1 = table + 1;
                    Some(())
                })
            },
            "outside the table",
        ),
        (
            "a vector leaf in a group",
            |w| {
                each!(w, |x| {
                    let i = find(x, In::Groups, |_, n| x.flags(n.m) == W_LEAF)?;
                    if x.ranges.is_empty() {
                        x.ranges.push((0, 0));
                    }
                    x.nodes[i].m = x.meta(0, W_LEAF | W_VECTOR, 0);
                    x.nodes[i].t = Prec::of(0.0);
                    Some(())
                })
            },
            "a vector leaf in a group",
        ),
        (
            "a lone category split past the sets",
            |w| {
                each!(w, |x| {
                    let i = find(x, In::Lone, |_, n| x.flags(n.m) & (W_LEAF | W_CAT) == W_CAT)?;
                    x.nodes[i].t = Prec::of(w.head.sets.len() as f64);
                    Some(())
                })
            },
            "category set out of the table",
        ),
        (
            "a group of no trees",
            |w| {
                each!(w, |x| {
                    x.segments.iter_mut().find_map(|s| match s {
                        Segment::Group { count, .. } => {
                            *count = 0;
                            Some(())
                        }
                        _ => None,
                    })
                })
            },
            "a group of 0 trees",
        ),
        (
            "a group deeper than a group can be",
            |w| {
                each!(w, |x| {
                    x.segments.iter_mut().find_map(|s| match s {
                        Segment::Group { depth, .. } => {
                            *depth = MAX_GROUP_DEPTH + 1;
                            Some(())
                        }
                        _ => None,
                    })
                })
            },
            "a group of depth",
        ),
        (
            "a group shallower than its trees",
            |w| {
                each!(w, |x| {
                    x.segments.iter_mut().find_map(|s| match s {
                        Segment::Group { depth, .. } if *depth > 0 => {
                            *depth -= 1;
                            Some(())
                        }
                        _ => None,
                    })
                })
            },
            "a split deeper than",
        ),
        (
            "a group's lane past its trees not empty",
            |w| {
                each!(w, |x| {
                    x.segments.iter_mut().find_map(|s| match s {
                        Segment::Group { roots, count, .. } if *count < LANES => {
                            roots[*count] = 1;
                            Some(())
                        }
                        _ => None,
                    })
                })
            },
            "a lane past the trees not empty",
        ),
        (
            "a tree's output past the outputs",
            |w| {
                let k = w.head.outputs as u32;
                each!(w, |x| {
                    match x.segments.first_mut()? {
                        Segment::One { out, .. } => *out = k,
                        Segment::Group { outs, .. } => outs[0] = k,
                    }
                    Some(())
                })
            },
            "an output out of range",
        ),
        (
            "two trees sharing a root",
            |w| {
                each!(w, |x| {
                    let first = match x.segments.first()? {
                        Segment::Group { roots, .. } => roots[0],
                        Segment::One { root, .. } => *root,
                    };
                    let last = x.segments.last_mut()?;
                    match last {
                        Segment::Group { roots, .. } => roots[0] = first,
                        Segment::One { root, .. } => *root = first,
                    }
                    Some(())
                })
            },
            "roots are not the next nodes",
        ),
        (
            "a root past the nodes",
            |w| {
                each!(w, |x| {
                    let end = x.nodes.len() as u32;
                    match x.segments.last_mut()? {
                        Segment::Group { roots, .. } => roots[0] = end,
                        Segment::One { root, .. } => *root = end,
                    }
                    Some(())
                })
            },
            "roots are not the next nodes",
        ),
        (
            "a node in no tree",
            |w| {
                w.num_nodes += 1;
                each!(w, |x| {
                    let end = x.nodes.len();
                    let nf = w.head.num_features as u32;
                    x.nodes.push(Node {
                        t: Prec::of(1.0),
                        m: x.meta(nf, W_LEAF, end as u32),
                    });
                    Some(())
                })
            },
            "is in no tree",
        ),
        (
            "a tree miscounted",
            |w| {
                w.num_trees += 1;
                Some(())
            },
            "trees laid out",
        ),
        (
            "the last two nodes cut off",
            |w| {
                w.num_nodes -= 2;
                each!(w, |x| {
                    x.nodes.truncate(x.nodes.len() - 2);
                    Some(())
                })
            },
            "past the last node",
        ),
        (
            "nodes miscounted",
            |w| {
                w.num_nodes += 1;
                Some(())
            },
            "nodes laid out",
        ),
        (
            "the empty leaf changed",
            |w| {
                each!(w, |x| {
                    x.nodes[0].t = Prec::of(1.0);
                    Some(())
                })
            },
            "node 0 is not",
        ),
        (
            "a group's category flag wrong",
            |w| {
                each!(w, |x| {
                    x.segments.iter_mut().find_map(|s| match s {
                        Segment::Group { cat, .. } => {
                            *cat = !*cat;
                            Some(())
                        }
                        _ => None,
                    })
                })
            },
            "category flag",
        ),
        (
            "masks not a power of two",
            |w| {
                each!(w, |x| {
                    x.masks.push(0);
                    if x.masks.len().is_power_of_two() {
                        x.masks.push(0);
                    }
                    Some(())
                })
            },
            "power of two",
        ),
        (
            "a category feature past the features",
            |w| {
                let nf = w.head.num_features;
                each!(w, |x| {
                    x.codes.push(nf);
                    Some(())
                })
            },
            "category features",
        ),
        (
            "the base of another model",
            |w| {
                w.head.base.push(0.0);
                Some(())
            },
            "base:",
        ),
        (
            "the scores of another output",
            |w| {
                w.head.num_scores += 1;
                Some(())
            },
            "scores where",
        ),
        (
            "zero-as-missing of fewer features",
            |w| {
                w.head.zero_missing.pop();
                Some(())
            },
            "zero-as-missing",
        ),
    ]
}

#[test]
fn every_fault_of_a_hostile_layout_is_refused_with_its_reason() {
    for (c, _, w) in cases() {
        read(&w).unwrap();
        for (what, damage, says) in damages() {
            let mut bad = w.clone();
            if damage(&mut bad).is_none() {
                continue;
            }
            match read(&bad) {
                Ok(_) => panic!("{what} (f32 {}): accepted", c.f32m),
                Err(e) => assert!(
                    e.0.contains(says),
                    "{what} (f32 {}): {:?} does not say {says:?}",
                    c.f32m,
                    e.0
                ),
            }
        }
    }
    // Each damage applies to at least one case: none is vacuous.
    for (what, damage, _) in damages() {
        assert!(
            cases()
                .into_iter()
                .any(|(_, _, mut w)| damage(&mut w).is_some()),
            "{what}: no case to damage"
        );
    }
}

#[test]
fn damaged_bytes_are_refused_not_misread() {
    let (_, _, w) = cases().remove(0);
    let p = w.to_payload();
    for cut in [0, 1, p.len() / 2, p.len() - 1] {
        let err = WideEnsemble::from_payload(&p[..cut], &limits()).unwrap_err();
        assert!(err.0.contains("does not read"), "{cut}: {}", err.0);
    }
    // Nodes of 8 bytes less one.
    let Nodes::F32(x) = &w.nodes else {
        panic!("f32")
    };
    let mut nodes = node_bytes(x);
    nodes.pop();
    let short = w.payload_of(x, &nodes);
    let err = WideEnsemble::from_payload(&short, &limits()).unwrap_err();
    assert!(err.0.contains("not a whole number"), "{}", err.0);
    // Limits hold: fewer trees allowed than the layout has.
    let few = EnsembleLimits {
        max_trees: w.num_trees() - 1,
        ..limits()
    };
    let err = WideEnsemble::from_payload(&p, &few).unwrap_err();
    assert!(err.0.contains("trees (1 to"), "{}", err.0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    /// Bytes changed anywhere, or cut: refused, or read into a layout whose walks (every
    /// kind) end without a panic.
    #[test]
    fn damaged_payloads_never_panic(which in 0usize..2, edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), cut in any::<prop::sample::Index>(), cut_it in any::<bool>()) {
        let (c, e, w) = cases().remove(which);
        let mut p = w.to_payload();
        for (at, v) in edits {
            let i = at.index(p.len());
            p[i] = v;
        }
        if cut_it {
            p.truncate(cut.index(p.len()));
        }
        if let Ok(back) = WideEnsemble::from_payload(&p, &limits()) {
            let x = rows(&e, c.rows, c.seed);
            let ns = back.num_scores();
            let n = x.len() / back.num_features().max(1);
            if back.num_features() == e.num_features as usize {
                for on in [false, true] {
                    let b = back.clone().with_vector_walk(on);
                    let mut s = WideScratch::default();
                    let (mut got, mut classes) = (vec![0.0; n * ns], vec![0; n]);
                    b.predict_batch(&x, &mut s, &mut got, &mut classes);
                    let mut one = vec![0.0; ns];
                    b.predict(&x[..b.num_features()], &mut s, &mut one);
                }
            }
        }
    }
}
