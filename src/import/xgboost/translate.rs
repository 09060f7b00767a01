//! The learner document → [`Imported`]: booster, objective, base score, trees.

use super::tree::read_tree;
use super::value::Value;
use super::{Fail, int_param};
use crate::import::{Imported, ImportedTask};
use crate::model::ensemble::{
    Aggregation, BasePlacement, Ensemble, EnsembleLimits, OutputKind, Precision, Transform,
};

/// How `base_score` (output space) becomes a margin (`ObjFunction::ProbToMargin`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Margin {
    Identity,
    /// Logistic: clamp to `[1e-6, 1 - 1e-6]`, then `-ln(1/x - 1)`, in f32.
    Logit,
    /// Poisson, gamma, Tweedie: `ln(x)` in f32.
    Log,
}

/// What an objective means for serving.
struct Objective {
    task: ImportedTask,
    /// `None`: regression (one output); `Some(kind)`: classification.
    output: OutputKind,
    transform: Transform,
    margin: Margin,
    multiclass: bool,
}

fn objective(name: &str) -> Option<Objective> {
    let reg = |transform, margin| Objective {
        task: ImportedTask::Regression,
        output: OutputKind::Value,
        transform,
        margin,
        multiclass: false,
    };
    let multi = |output| Objective {
        task: ImportedTask::Classification,
        output,
        transform: Transform::XgbSoftmax,
        margin: Margin::Identity,
        multiclass: true,
    };
    Some(match name {
        "binary:logistic" => Objective {
            task: ImportedTask::Classification,
            output: OutputKind::BinaryOneMinus,
            transform: Transform::XgbSigmoid,
            margin: Margin::Logit,
            multiclass: false,
        },
        "multi:softprob" => multi(OutputKind::ArgmaxProbabilities),
        // softmax predicts the first maximum of the margins.
        "multi:softmax" => multi(OutputKind::ArgmaxRaw),
        "reg:squarederror"
        | "reg:linear"
        | "reg:absoluteerror"
        | "reg:pseudohubererror"
        | "reg:squaredlogerror" => reg(Transform::Identity, Margin::Identity),
        "reg:logistic" => reg(Transform::XgbSigmoid, Margin::Logit),
        "count:poisson" | "reg:gamma" | "reg:tweedie" => reg(Transform::ExpF32, Margin::Log),
        _ => return None,
    })
}

/// Translates a parsed model document; `flavour` is `JSON` or `UBJSON`.
pub(super) fn translate(doc: &Value, flavour: &str) -> Result<Imported, Fail> {
    let limits = EnsembleLimits::default();
    let version = match doc.get("version").and_then(Value::seq) {
        Some(v) if v.len() == 3 && (0..3).all(|i| v.int(i).is_some()) => {
            let p: Vec<String> = (0..3).map(|i| v.int(i).unwrap_or(0).to_string()).collect();
            format!("XGBoost {} {flavour}", p.join("."))
        }
        _ => format!("XGBoost {flavour}"),
    };
    let learner = object(doc.get("learner"), "learner")?;
    let param = object(
        learner.get("learner_model_param"),
        "learner.learner_model_param",
    )?;
    let p_int = |key: &str, default: Option<i64>| -> Result<i64, Fail> {
        match param.get(key) {
            None => default
                .ok_or_else(|| Fail::from(format!("learner.learner_model_param.{key} is missing"))),
            Some(v) => int_param(v).ok_or_else(|| {
                format!("learner.learner_model_param.{key} is not an integer").into()
            }),
        }
    };
    let num_feature = p_int("num_feature", None)?;
    let num_class = p_int("num_class", Some(0))?;
    let num_target = p_int("num_target", Some(1))?;
    if num_target > 1 {
        return Err(Fail::Unsupported(format!(
            "learner_model_param.num_target is {num_target}: multi-target models are not \
             supported; train one model per target"
        )));
    }
    if !(1..=limits.max_features as i64).contains(&num_feature) {
        return Err(format!(
            "learner.learner_model_param.num_feature is {num_feature} (1 to {} allowed: rows \
             are dense)",
            limits.max_features
        )
        .into());
    }
    if !(0..=limits.max_outputs as i64).contains(&num_class) {
        return Err(format!(
            "learner.learner_model_param.num_class is {num_class} (0 to {} allowed)",
            limits.max_outputs
        )
        .into());
    }
    let name = learner
        .get("objective")
        .and_then(|o| o.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| Fail::from("learner.objective.name is missing".to_string()))?;
    let obj = objective(name).ok_or_else(|| {
        Fail::Unsupported(format!(
            "objective {name:?} is not supported (treeserve serves binary:logistic, \
             multi:softprob, multi:softmax, reg:squarederror, reg:absoluteerror, \
             reg:pseudohubererror, reg:squaredlogerror, reg:logistic, count:poisson, \
             reg:gamma, reg:tweedie)"
        ))
    })?;
    let outputs = if obj.multiclass {
        if num_class < 2 {
            return Err(format!("objective {name} needs num_class >= 2, has {num_class}").into());
        }
        num_class as u32
    } else {
        if num_class > 1 {
            return Err(format!("objective {name} with num_class {num_class}").into());
        }
        1
    };
    let base = base_score(param.get("base_score"), outputs, obj.margin)?;

    let booster = object(learner.get("gradient_booster"), "learner.gradient_booster")?;
    let model = match booster.get("name").and_then(Value::as_str) {
        Some("gbtree") => object(booster.get("model"), "learner.gradient_booster.model")?,
        Some("dart") => {
            return Err(Fail::Unsupported(
                "a DART booster (gradient_booster.name \"dart\") is not supported: retrain \
                 with booster=gbtree"
                    .into(),
            ));
        }
        Some("gblinear") => {
            return Err(Fail::Unsupported(
                "a linear booster (gradient_booster.name \"gblinear\") is not supported: \
                 retrain with booster=gbtree"
                    .into(),
            ));
        }
        Some(other) => {
            return Err(Fail::Unsupported(format!(
                "gradient_booster.name {other:?} is not supported: retrain with booster=gbtree"
            )));
        }
        None => {
            return Err("learner.gradient_booster.name is missing"
                .to_string()
                .into());
        }
    };
    if let Some(w) = model.get("weight_drop") {
        let s = w.seq().ok_or_else(|| {
            Fail::from("gradient_booster.model.weight_drop is not an array".to_string())
        })?;
        if (0..s.len()).any(|i| s.float(i) != Some(1.0)) {
            return Err(Fail::Unsupported(
                "a DART model (gradient_booster.model.weight_drop holds tree weights other \
                 than 1) is not supported: retrain with booster=gbtree"
                    .into(),
            ));
        }
    }
    let trees_v = model
        .get("trees")
        .and_then(Value::seq)
        .ok_or_else(|| Fail::from("gradient_booster.model.trees is missing".to_string()))?;
    let num_trees = trees_v.len();
    if num_trees == 0 {
        return Err("gradient_booster.model.trees is empty".to_string().into());
    }
    if num_trees > limits.max_trees {
        return Err(Fail::Unsupported(format!(
            "{num_trees} trees (treeserve allows at most {})",
            limits.max_trees
        )));
    }
    if let Some(declared) = model
        .get("gbtree_model_param")
        .and_then(|p| p.get("num_trees"))
        .and_then(int_param)
        && declared != num_trees as i64
    {
        return Err(format!(
            "gbtree_model_param.num_trees is {declared} but trees has {num_trees} entries"
        )
        .into());
    }
    let info = model
        .get("tree_info")
        .and_then(Value::seq)
        .ok_or_else(|| Fail::from("gradient_booster.model.tree_info is missing".to_string()))?;
    if info.len() != num_trees {
        return Err(format!("tree_info has {} entries for {num_trees} trees", info.len()).into());
    }
    let mut trees = Vec::with_capacity(num_trees);
    let mut total = 0usize;
    for t in 0..num_trees {
        let tv = trees_v
            .value(t)
            .filter(|v| matches!(v, Value::Object(_)))
            .ok_or_else(|| format!("trees[{t}] is not an object"))?;
        if let Some(id) = tv.get("id").and_then(int_param)
            && id != t as i64
        {
            return Err(format!("trees[{t}].id is {id}").into());
        }
        let group = info
            .int(t)
            .filter(|&g| (0..outputs as i64).contains(&g))
            .ok_or_else(|| format!("tree_info[{t}] is not an output group below {outputs}"))?;
        let tree = read_tree(tv, t, group as u32, num_feature as u32, &limits)?;
        total += tree.nodes.len();
        if total > limits.max_total_nodes {
            return Err(Fail::Unsupported(format!(
                "more than {} nodes in all trees",
                limits.max_total_nodes
            )));
        }
        trees.push(tree);
    }

    let features = names(learner, num_feature as usize)?;
    let mut warnings = Vec::new();
    if let Some(w) = categorical_note(learner) {
        warnings.push(w);
    }
    if let Some(w) = best_iteration_note(learner, model, num_trees, outputs) {
        warnings.push(w);
    }
    Ok(Imported {
        ensemble: Ensemble {
            num_features: num_feature as u32,
            outputs,
            trees,
            base: base.into_iter().map(f64::from).collect(),
            base_placement: BasePlacement::Initial,
            aggregation: Aggregation::Sum,
            precision: Precision::F32,
            zero_snap: false,
            transform: obj.transform,
            output_cast_f32: false,
            output: obj.output,
        },
        task: obj.task,
        features,
        classes: None,
        missing_aware: true,
        format: "xgboost",
        source: version,
        objective: name.to_string(),
        warnings,
    })
}

fn object<'a>(v: Option<&'a Value>, path: &str) -> Result<&'a Value, Fail> {
    match v {
        Some(v @ Value::Object(_)) => Ok(v),
        Some(other) => Err(format!("{path} is {}, not an object", other.kind()).into()),
        None => Err(format!("{path} is missing").into()),
    }
}

/// `base_score` (a string: `"[5E-1]"` since 3.1, `"5E-1"` before) as margins, one per
/// output, computed in f32 as XGBoost does at load.
fn base_score(v: Option<&Value>, outputs: u32, margin: Margin) -> Result<Vec<f32>, Fail> {
    let field = "learner.learner_model_param.base_score";
    let text = match v {
        Some(Value::Str(s)) => s.trim(),
        Some(other) => return Err(format!("{field} is {}, not a string", other.kind()).into()),
        None => return Err(format!("{field} is missing").into()),
    };
    // `(`…`)` is accepted as `[`…`]`, as XGBoost does.
    let inner = (text.strip_prefix('[').and_then(|t| t.strip_suffix(']')))
        .or_else(|| text.strip_prefix('(').and_then(|t| t.strip_suffix(')')))
        .unwrap_or(text);
    let mut values = Vec::new();
    for part in inner.split(',') {
        let x: f32 = part
            .trim()
            .parse()
            .map_err(|_| format!("{field} {text:?} is not a number or a list of numbers"))?;
        if values.len() >= outputs as usize {
            return Err(
                format!("{field} has more values than the model's {outputs} outputs").into(),
            );
        }
        values.push(x);
    }
    if values.len() == 1 {
        values.resize(outputs as usize, values[0]);
    }
    if values.len() != outputs as usize {
        return Err(format!("{field} has {} values for {outputs} outputs", values.len()).into());
    }
    for x in &mut values {
        let m = match margin {
            Margin::Identity => *x,
            Margin::Logit => {
                let p = x.clamp(1e-6f32, 1.0 - 1e-6f32);
                -(1.0f32 / p - 1.0).ln()
            }
            Margin::Log => x.ln(),
        };
        if !m.is_finite() {
            return Err(
                format!("{field} {text:?} gives the margin {m}, not a finite number").into(),
            );
        }
        *x = m;
    }
    Ok(values)
}

/// `learner.feature_names` (`None` when empty or absent).
fn names(learner: &Value, num_feature: usize) -> Result<Option<Vec<String>>, Fail> {
    let Some(s) = learner.get("feature_names").and_then(Value::seq) else {
        return Ok(None);
    };
    if s.is_empty() {
        return Ok(None);
    }
    if s.len() != num_feature {
        return Err(format!(
            "learner.feature_names has {} names for {num_feature} features",
            s.len()
        )
        .into());
    }
    (0..s.len())
        .map(|i| {
            s.value(i)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("learner.feature_names[{i}] is not a string").into())
        })
        .collect::<Result<Vec<_>, Fail>>()
        .map(Some)
}

/// A note naming the features `feature_types` marks categorical (`"c"`).
fn categorical_note(learner: &Value) -> Option<String> {
    let s = learner.get("feature_types")?.seq()?;
    let cats: Vec<String> = (0..s.len())
        .filter(|&i| s.value(i).and_then(Value::as_str) == Some("c"))
        .map(|i| i.to_string())
        .collect();
    (!cats.is_empty()).then(|| {
        format!(
            "features {} are categorical: requests must carry the training category codes \
             (0, 1, 2, ...), as numbers",
            cats.join(", ")
        )
    })
}

/// A warning when `best_iteration` (early stopping) is below the last iteration.
fn best_iteration_note(
    learner: &Value,
    model: &Value,
    num_trees: usize,
    outputs: u32,
) -> Option<String> {
    let best = learner
        .get("attributes")?
        .get("best_iteration")
        .and_then(int_param)?;
    let iterations = match model.get("iteration_indptr").and_then(Value::seq) {
        Some(p) if p.len() >= 2 => p.len() - 1,
        _ => {
            let parallel = model
                .get("gbtree_model_param")
                .and_then(|p| p.get("num_parallel_tree"))
                .and_then(int_param)
                .filter(|&p| p >= 1)
                .unwrap_or(1) as usize;
            num_trees / (parallel * outputs as usize).max(1)
        }
    };
    (best >= 0 && (best as usize) + 1 < iterations).then(|| {
        format!(
            "the file holds {iterations} boosting iterations but the early-stopped model's \
             best iteration is {best}: all {iterations} iterations ({num_trees} trees) are \
             served, as Booster.predict does (XGBClassifier/XGBRegressor.predict would use \
             only the first {})",
            best + 1
        )
    })
}
