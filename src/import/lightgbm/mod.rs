//! LightGBM text models (`Booster.save_model`, `Booster.model_to_string`), read into an
//! [`Ensemble`] that predicts exactly as LightGBM's `Booster.predict` on f64 rows
//! (docs/design/import.md §2.3, §3.1): f64 throughout, inputs with `|x| <= 1e-35f` snapped
//! to zero, `x <= threshold` goes left, trees summed from 0 in file order (the init score
//! is inside the first trees' leaves), then the objective's transform.
//!
//! Refused: linear trees, ranking and custom objectives, files LightGBM does not write
//! (e.g. `num_tree_per_iteration` different from `num_class`).

mod parse;
mod translate;

#[cfg(test)]
mod tests;

use super::{ImportError, Imported, ImportedTask};
use crate::model::ensemble::{
    Aggregation, BasePlacement, Ensemble, EnsembleLimits, OutputKind, Precision, Transform,
};
use parse::{Field, Lines, tokens};

/// The format's name in messages.
const FORMAT: &str = "LightGBM";

fn malformed(what: impl Into<String>) -> ImportError {
    ImportError::malformed(FORMAT, what)
}

/// Reads a LightGBM text model.
pub fn read(bytes: &[u8]) -> Result<Imported, ImportError> {
    let limits = EnsembleLimits::default();
    let mut lines = Lines::new(bytes);
    let h = parse::header(&mut lines)?;

    let class_field = required(h.num_class, "num_class")?;
    let num_class: u64 = class_field.one()?;
    if num_class == 0 || num_class > limits.max_outputs as u64 {
        return Err(class_field.error(format_args!(
            "{num_class} (1 to {} allowed)",
            limits.max_outputs
        )));
    }
    let num_class = num_class as u32;
    if let Some(f) = h.num_tree_per_iteration {
        let per: u64 = f.one()?;
        if per != u64::from(num_class) {
            return Err(f.error(format_args!(
                "{per} trees per iteration with num_class={num_class}: not a model \
                 LightGBM writes"
            )));
        }
    }
    let idx_field = required(h.max_feature_idx, "max_feature_idx")?;
    let max_feature_idx: i64 = idx_field.one()?;
    if !(0..i64::from(u32::MAX)).contains(&max_feature_idx) {
        return Err(idx_field.error(format_args!("{max_feature_idx} is out of range")));
    }
    let num_features = max_feature_idx as u32 + 1;
    let names = parse::feature_names(
        &required(h.feature_names, "feature_names")?,
        num_features as usize,
    )?;
    if let Some(f) = h.feature_infos {
        let found = tokens(f.value).count();
        if found != num_features as usize {
            return Err(f.error(format_args!(
                "{found} items, but max_feature_idx says {num_features} features"
            )));
        }
    }
    let Some(objective_field) = h.objective else {
        return Err(ImportError::Unsupported(
            "the LightGBM model has no objective= line (a custom objective): treeserve \
             cannot know its output transform; re-train with a built-in objective"
                .into(),
        ));
    };
    let objective = objective(&objective_field, num_class)?;

    // Trees, translated one at a time.
    let mut trees = Vec::new();
    while let Some(text) = parse::next_tree(&mut lines, trees.len())? {
        if trees.len() == limits.max_trees {
            return Err(malformed(format!(
                "more than {} trees (line {})",
                limits.max_trees, text.line
            )));
        }
        let group = (trees.len() % num_class as usize) as u32;
        trees.push(translate::tree(&text, trees.len(), num_features, group)?);
    }
    if trees.is_empty() {
        return Err(malformed("the model has no trees"));
    }
    if trees.len() % num_class as usize != 0 {
        return Err(malformed(format!(
            "{} trees is not a whole number of iterations of {num_class} trees",
            trees.len()
        )));
    }
    if let Some(f) = h.tree_sizes {
        let sizes = tokens(f.value).count();
        if sizes != trees.len() {
            return Err(f.error(format_args!(
                "{sizes} sizes, but the file has {} trees",
                trees.len()
            )));
        }
    }
    translate::check_zero_missing(&trees, num_features)?;
    if parse::linear_tree_parameter(&mut lines)? {
        return Err(ImportError::Unsupported(
            "the LightGBM model has [linear_tree: 1]: linear trees are not supported; \
             re-train with linear_tree=false"
                .into(),
        ));
    }

    let iterations = trees.len() / num_class as usize;
    let ensemble = Ensemble {
        num_features,
        outputs: num_class,
        trees,
        base: Vec::new(),
        base_placement: BasePlacement::Initial,
        aggregation: if h.average_output {
            Aggregation::Mean {
                divisor: iterations as f64,
            }
        } else {
            Aggregation::Sum
        },
        precision: Precision::F64,
        zero_snap: true,
        transform: objective.transform,
        output_cast_f32: false,
        output: objective.output,
    };
    ensemble.validate(&limits)?;
    let mut warnings = Vec::new();
    if let Transform::LgbOvrSigmoid { .. } = objective.transform {
        warnings.push(
            "multiclassova: each class probability is its own sigmoid, so they do not sum \
             to 1 (as LightGBM predicts them)"
                .to_string(),
        );
    }
    let version = h.version.map(|v| v.value.trim()).filter(|v| !v.is_empty());
    Ok(Imported {
        ensemble,
        task: objective.task,
        features: Some(names),
        classes: None,
        missing_aware: true,
        format: "lightgbm",
        source: match version {
            Some(v) => format!("LightGBM {v} text model"),
            None => "LightGBM text model".into(),
        },
        objective: objective_field.value.trim().to_string(),
        warnings,
    })
}

/// A header line LightGBM requires.
fn required<'a>(f: Option<Field<'a>>, key: &str) -> Result<Field<'a>, ImportError> {
    f.ok_or_else(|| malformed(format!("the header has no {key}= line")))
}

/// What an objective line means for prediction.
struct Objective {
    transform: Transform,
    output: OutputKind,
    task: ImportedTask,
}

/// Interprets the `objective=` line: its first token is the objective's name (aliases
/// accepted), then `key:value` parameters and flags (`sigmoid:1`, `num_class:3`, `sqrt`).
fn objective(field: &Field<'_>, num_class: u32) -> Result<Objective, ImportError> {
    let name = tokens(field.value).next().unwrap_or("");
    let param = |key: &str| {
        tokens(field.value)
            .skip(1)
            .filter_map(|t| t.split_once(':'))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    };
    let sigmoid = || -> Result<f64, ImportError> {
        let v = param("sigmoid").ok_or_else(|| field.error("no sigmoid:<value> parameter"))?;
        match v.parse::<f64>() {
            Ok(a) if a.is_finite() && a > 0.0 => Ok(a),
            _ => Err(field.error(format_args!("sigmoid:{v} is not a positive number"))),
        }
    };
    let sqrt = tokens(field.value).skip(1).any(|t| t == "sqrt");
    let one_output = |o: Objective| {
        if num_class == 1 {
            Ok(o)
        } else {
            Err(field.error(format_args!(
                "`{name}` has one output, but num_class={num_class}"
            )))
        }
    };
    let value = |transform| {
        one_output(Objective {
            transform,
            output: OutputKind::Value,
            task: ImportedTask::Regression,
        })
    };
    let multiclass = |transform| {
        let k = param("num_class").ok_or_else(|| field.error("no num_class:<K> parameter"))?;
        if k.parse::<u32>().ok() != Some(num_class) || num_class < 2 {
            return Err(field.error(format_args!(
                "num_class:{k} does not match the header's num_class={num_class} (2 or more)"
            )));
        }
        Ok(Objective {
            transform,
            output: OutputKind::ArgmaxProbabilities,
            task: ImportedTask::Classification,
        })
    };
    match name {
        "binary" => one_output(Objective {
            transform: Transform::LgbSigmoid { alpha: sigmoid()? },
            output: OutputKind::BinaryOneMinus,
            task: ImportedTask::Classification,
        }),
        "multiclass" | "softmax" => multiclass(Transform::LgbSoftmax),
        "multiclassova" | "multiclass_ova" | "ova" | "ovr" => {
            multiclass(Transform::LgbOvrSigmoid { alpha: sigmoid()? })
        }
        "cross_entropy" | "xentropy" => value(Transform::LgbSigmoid { alpha: 1.0 }),
        "cross_entropy_lambda" | "xentlambda" => value(Transform::Log1pExp),
        // These share LightGBM's L2 ConvertOutput: `sqrt` squares back.
        "regression"
        | "regression_l2"
        | "mean_squared_error"
        | "mse"
        | "l2"
        | "l2_root"
        | "root_mean_squared_error"
        | "rmse"
        | "regression_l1"
        | "mean_absolute_error"
        | "l1"
        | "mae"
        | "fair"
        | "quantile"
        | "mape"
        | "mean_absolute_percentage_error" => value(if sqrt {
            Transform::SignedSquare
        } else {
            Transform::Identity
        }),
        // LightGBM turns `sqrt` off for these.
        "huber" => value(Transform::Identity),
        "poisson" | "gamma" | "tweedie" => value(Transform::ExpF64),
        "lambdarank" | "rank_xendcg" | "xendcg" | "xe_ndcg" | "xe_ndcg_mart" | "xendcg_mart" => {
            Err(ImportError::Unsupported(format!(
                "LightGBM objective `{name}` (line {}): ranking models are not supported",
                field.line
            )))
        }
        "custom" | "none" | "null" | "na" | "" => Err(ImportError::Unsupported(format!(
            "LightGBM objective `{name}` (line {}): a custom objective has no known output \
             transform; re-train with a built-in objective",
            field.line
        ))),
        _ => Err(ImportError::Unsupported(format!(
            "LightGBM objective `{name}` (line {}) is not supported",
            field.line
        ))),
    }
}
