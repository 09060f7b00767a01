//! Publishing through the gate: which rows the candidate and the champion are judged on,
//! the rules, and finishing the gate of a version whose publisher stopped before it.

use std::collections::HashSet;

use super::gate::{self, Baseline, Decision, GateCheck, GateConfig, HeldOutEvaluation};
use super::rows::{EvalRows, RowsRecord, complement, name_order, row_id, rows_of};
use super::{LifecycleError, STAGING_ALIAS, task_name};
use crate::model::tree::TreeLimits;
use crate::model::{Model, Task};
use crate::registry::{DEFAULT_ALIAS, Registry, RegistryError};
use crate::train::{Dataset, Trained};

/// A model to judge: published already (`version`) or about to be.
struct Candidate<'a> {
    model: &'a Model,
    data: &'a Dataset,
    train: &'a [usize],
    test: &'a [usize],
}

/// Publishes a trained candidate through the gate (see docs/lifecycle.md): records its
/// rows, publishes it under `staging`, judges it against the `production` model on rows
/// neither trained on and on the champion's own held-out rows, stores the decision
/// (record `gate`), and moves `production` to it only if it passed. First finishes the
/// gate of any version trained on the same data whose publisher stopped before its
/// decision; if that version is this very model (same trees), its decision is returned
/// and nothing new is published.
pub fn publish_gated(
    reg: &dyn Registry,
    trained: &Trained,
    data: &Dataset,
    config: &GateConfig,
) -> Result<Decision, LifecycleError> {
    let name = trained.manifest.name.clone();
    let mut same = None;
    for (payload, d) in finish_ungated(reg, &name, data, config)? {
        if payload == trained.manifest.payload_sha256 {
            same = Some(d);
        }
    }
    if let Some(d) = same {
        return Ok(d);
    }
    // The artifact says it goes through the gate: a version with this mark and no
    // decision is one whose publisher stopped early.
    let (format, _) = crate::model::unseal_version(&trained.artifact)?;
    let (mut manifest, payload) = crate::model::read_parts(&trained.artifact)?;
    manifest.training.gated = true;
    let artifact = crate::model::encode_artifact_as(&manifest, payload, format);
    let model = Model::from_bytes(&artifact, 0, &TreeLimits::default())?;
    let test = &trained.test_rows;
    let train = complement(data.rows(), test);
    let version = reg.publish(&name, &artifact)?;
    decide(
        reg,
        &name,
        version,
        &Candidate {
            model: &model,
            data,
            train: &train,
            test,
        },
        config,
    )
}

/// Finishes the gate of every version of `name` published through the gate without a
/// decision (its publisher stopped after publishing) that was trained on `data`, oldest
/// first; returns each one's payload SHA-256 and decision. Versions at or below the
/// `production` version are left alone (promoted by hand since).
pub fn finish_ungated(
    reg: &dyn Registry,
    name: &str,
    data: &Dataset,
    config: &GateConfig,
) -> Result<Vec<(String, Decision)>, LifecycleError> {
    let versions = match reg.versions(name) {
        Ok(v) => v,
        Err(RegistryError::ModelNotFound(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for v in versions {
        let production = match reg.resolve(name, DEFAULT_ALIAS) {
            Ok(p) => Some(p),
            Err(RegistryError::AliasNotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        if production.is_some_and(|p| v <= p) || reg.get_record(name, v, "gate")?.is_some() {
            continue;
        }
        let Ok(model) = reg.read(name, v).map_err(|e| e.to_string()).and_then(|b| {
            Model::from_bytes(&b, v, &TreeLimits::default()).map_err(|e| e.to_string())
        }) else {
            continue;
        };
        if !model.manifest().training.gated {
            continue;
        }
        let Some((train, test)) = super::rows::split_of(model.manifest(), data) else {
            continue;
        };
        let payload = model.manifest().payload_sha256.clone();
        let d = decide(
            reg,
            name,
            v,
            &Candidate {
                model: &model,
                data,
                train: &train,
                test: &test,
            },
            config,
        )?;
        out.push((payload, d));
    }
    Ok(out)
}

/// Records the rows of published `version`, stages it, judges it, stores the decision and
/// promotes it if it passed.
fn decide(
    reg: &dyn Registry,
    name: &str,
    version: u64,
    c: &Candidate<'_>,
    config: &GateConfig,
) -> Result<Decision, LifecycleError> {
    let record = RowsRecord::of(c.data, c.train, c.test);
    record.store(reg, name, version)?;
    reg.set_alias(name, STAGING_ALIAS, version)?;
    let mut decision = judge(reg, name, c, &record, config)?;
    decision.candidate.version = version;
    let mut json = serde_json::to_vec_pretty(&decision).expect("json");
    json.push(b'\n');
    reg.put_record(name, version, "gate", &json)?;
    if decision.promoted {
        reg.set_alias(name, DEFAULT_ALIAS, version)?;
    }
    Ok(decision)
}

/// The champion as the gate sees it.
struct Champion {
    model: Model,
    /// Its rows, and how they are known; `None`: unknown.
    rows: Option<(RowsRecord, String)>,
}

fn judge(
    reg: &dyn Registry,
    name: &str,
    c: &Candidate<'_>,
    record: &RowsRecord,
    config: &GateConfig,
) -> Result<Decision, LifecycleError> {
    let alias = DEFAULT_ALIAS;
    let data = c.data;
    let mut checks = Vec::new();
    let mut notes = Vec::new();
    let mut champion_problem = None;
    let champion = match reg.resolve(name, alias) {
        Ok(v) => match reg.read(name, v).map_err(|e| e.to_string()).and_then(|b| {
            Model::from_bytes(&b, v, &TreeLimits::default()).map_err(|e| e.to_string())
        }) {
            Ok(model) => {
                let rows = rows_of(reg, model.manifest(), v, data);
                Some(Champion { model, rows })
            }
            Err(e) => {
                champion_problem = Some(format!(
                    "the champion (version {v}) cannot be loaded: {e}; it is judged as if there were none"
                ));
                None
            }
        },
        Err(RegistryError::ModelNotFound(_) | RegistryError::AliasNotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    // What the champion is: task and schema.
    let mut comparable = champion.is_some();
    if let Some(ch) = &champion {
        let v = ch.model.version();
        if ch.model.task() != c.model.task() {
            comparable = false;
            checks.push(GateCheck {
                passed: false,
                detail: format!(
                    "task: the candidate is a {}, {alias} (version {v}) a {}: publish it \
                     under another name, or promote it on purpose with `treeserve promote`",
                    task_name(c.model.task()),
                    task_name(ch.model.task())
                ),
            });
        } else if ch.model.features() != c.model.features()
            || ch.model.manifest().target != c.model.manifest().target
        {
            comparable = false;
            checks.push(GateCheck {
                passed: config.allow_schema_change,
                detail: format!(
                    "schema: the candidate reads [{}] → {}, {alias} (version {v}) [{}] → {}{}",
                    c.model.features().join(", "),
                    c.model.manifest().target,
                    ch.model.features().join(", "),
                    ch.model.manifest().target,
                    if config.allow_schema_change {
                        " (allowed: --allow-schema-change; judged without the champion)"
                    } else {
                        ": clients would break; refused (--allow-schema-change allows it)"
                    }
                ),
            });
        }
    }
    if let Some(ch) = champion.as_ref().filter(|_| !comparable) {
        notes.push(format!(
            "{alias} (version {}) is not compared: see the task or schema rule",
            ch.model.version()
        ));
    }
    // The rows: the champion's held-out rows the candidate did not train on (labels as
    // the champion was tested with), then the candidate's held-out rows neither trained on.
    let ch_rows = champion
        .as_ref()
        .filter(|_| comparable)
        .and_then(|ch| ch.rows.as_ref());
    let mut champion_set = None;
    let mut seen = HashSet::new();
    if let Some((r, how)) = ch_rows {
        notes.push(format!(
            "the champion's rows are {how}; {} held-out, {} trained on",
            r.held_out.len(),
            r.train.len()
        ));
        let order = name_order(&r.features);
        let mut set = EvalRows::empty(&r.features, &data.target);
        for (i, x) in r.held_out.iter().enumerate() {
            let id = row_id(x, &order);
            if record.trained_on(id) || r.trained_on(id) || !seen.insert(id) {
                continue;
            }
            set.x.push(x.clone());
            if let Some(l) = r.labels.get(i) {
                set.labels.push(l.clone());
            }
            if let Some(v) = r.values.get(i) {
                set.values.push(*v);
            }
        }
        champion_set = Some(set);
    }
    let order = name_order(&data.features);
    let mut new_rows = EvalRows::empty(&data.features, &data.target);
    let mut excluded = 0u64;
    for &i in c.test {
        let id = row_id(data.row(i), &order);
        let leaked = record.trained_on(id) || ch_rows.is_some_and(|(r, _)| r.trained_on(id));
        if leaked {
            excluded += 1;
        }
        if leaked || !seen.insert(id) {
            continue;
        }
        new_rows.x.push(data.row(i).to_vec());
        match data.task() {
            Task::Classification => new_rows
                .labels
                .push(data.classes[data.y[i] as usize].clone()),
            Task::Regression => new_rows.values.push(data.values[i]),
        }
    }
    let rows = match &champion_set {
        Some(set) => {
            let mut all = EvalRows::empty(&set.features, &set.target);
            all.extend(set);
            all.extend(&new_rows);
            all
        }
        None => new_rows,
    };
    let rows_ds = rows.dataset();
    let all: Vec<usize> = (0..rows.len()).collect();
    let candidate = gate::evaluate(c.model, 0, &rows_ds, &all)
        .map_err(|e| LifecycleError::Gate(format!("the candidate cannot be scored: {e}")))?;
    let unknown = comparable && ch_rows.is_none();
    checks.push(GateCheck {
        passed: !rows.is_empty(),
        detail: format!(
            "{} rows {} ({excluded} of the candidate's {} held-out rows left out: a model \
             trained on them)",
            rows.len(),
            if unknown {
                "the candidate did not train on (the champion's training rows are unknown)"
            } else {
                "neither model trained on"
            },
            c.test.len()
        ),
    });
    let mut champion_eval = None;
    let mut held_out = None;
    if let Some(ch) = champion.as_ref().filter(|_| comparable) {
        let v = ch.model.version();
        match gate::evaluate(&ch.model, v, &rows_ds, &all) {
            Ok(e) => champion_eval = Some(e),
            Err(e) => {
                champion_problem = Some(format!(
                    "the champion (version {v}) cannot be evaluated: {e}"
                ))
            }
        }
        // The candidate on the champion's own held-out rows.
        let check = match &champion_set {
            None => GateCheck {
                passed: false,
                detail: format!(
                    "the champion's held-out rows: unknown (version {v} has no rows record and \
                     its training data, {} sha256 {}, is neither this data nor a registry \
                     dataset): no comparison free of leakage is possible; not promoted \
                     (`treeserve promote` promotes by hand)",
                    ch.model.manifest().training.source,
                    &ch.model.manifest().training.sha256
                        [..ch.model.manifest().training.sha256.len().min(12)]
                ),
            },
            Some(set) if set.is_empty() => GateCheck {
                passed: false,
                detail: "the champion's held-out rows: the candidate trained on every one of \
                         them, so it cannot be judged on them (train with the champion's \
                         --seed and --test-size)"
                    .into(),
            },
            Some(set) => {
                let ds = set.dataset();
                let idx: Vec<usize> = (0..set.len()).collect();
                match (
                    gate::evaluate(c.model, 0, &ds, &idx),
                    gate::evaluate(&ch.model, v, &ds, &idx),
                ) {
                    (Ok(cand), Ok(champ)) => {
                        let check = gate::held_out_rule(config, &cand, &champ, set.len());
                        held_out = Some(HeldOutEvaluation {
                            rows: set.len() as u64,
                            candidate: cand,
                            champion: champ,
                        });
                        check
                    }
                    (Err(e), _) | (_, Err(e)) => GateCheck {
                        passed: false,
                        detail: format!("the champion's held-out rows cannot be scored: {e}"),
                    },
                }
            }
        };
        checks.push(check);
    }
    checks.extend(gate::rules(config, &candidate, champion_eval.as_ref()));
    let baseline = match data.task() {
        Task::Classification => {
            let mut counts = vec![0u64; data.classes.len()];
            c.train
                .iter()
                .for_each(|&i| counts[data.y[i] as usize] += 1);
            let best = (0..counts.len()).max_by_key(|&k| (counts[k], std::cmp::Reverse(k)));
            Baseline::Class(data.classes[best.unwrap_or(0)].clone())
        }
        Task::Regression => Baseline::Mean(
            c.train.iter().map(|&i| data.values[i]).sum::<f64>() / c.train.len().max(1) as f64,
        ),
    };
    if !rows.is_empty() {
        checks.push(gate::baseline_rule(config, &baseline, &rows_ds, &candidate));
    }
    let promoted = checks.iter().all(|c| c.passed);
    Ok(Decision {
        model: name.to_owned(),
        decided: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        dataset: c.model.manifest().training.dataset.clone(),
        held_out_rows: rows.len() as u64,
        config: *config,
        candidate,
        champion: champion_eval,
        champion_problem,
        checks,
        alias: alias.into(),
        promoted,
        excluded_rows: excluded,
        champion_held_out: held_out,
        notes,
    })
}
