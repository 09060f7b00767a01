//! Registry commands: `treeserve publish`, `models`, `promote` and `rollback`.

use std::io::Write;
use std::path::PathBuf;

use super::flags::RegistryArg;
use super::{CommandError, io_err};
use crate::model::Model;
use crate::model::tree::TreeLimits;
use crate::registry::{DEFAULT_ALIAS, Registry, RegistryError};

/// `treeserve publish`.
#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// Artifact file.
    pub artifact: PathBuf,
    /// Registry.
    #[command(flatten)]
    pub registry: RegistryArg,
    /// Point this alias at the new version.
    #[arg(long)]
    pub alias: Option<String>,
    /// Publish only if the model has no version yet (seeding a shared registry); otherwise
    /// do nothing and succeed.
    #[arg(long)]
    pub if_empty: bool,
}

/// `treeserve models`.
#[derive(Debug, clap::Args)]
pub struct ModelsArgs {
    /// Only this model.
    pub name: Option<String>,
    /// With NAME: every version's metrics side by side.
    #[arg(long, requires = "name")]
    pub compare: bool,
    /// With --compare: add the live figures of this running server (`GET
    /// /models/NAME/live`): each version's role, labels and live accuracy.
    #[arg(long, value_name = "URL", requires = "compare")]
    pub live: Option<String>,
    /// Registry.
    #[command(flatten)]
    pub registry: RegistryArg,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Download every version whole and verify its checksums. Without it, an object-store
    /// registry's versions are listed from their first 64 KiB (the manifest), unverified.
    #[arg(long)]
    pub verify: bool,
}

/// `treeserve promote`.
#[derive(Debug, clap::Args)]
pub struct PromoteArgs {
    /// Model name.
    pub name: String,
    /// Version to point the alias at (or --from-live).
    #[arg(required_unless_present = "from_live", conflicts_with = "from_live")]
    pub version: Option<u64>,
    /// Alias to move.
    #[arg(long, default_value = DEFAULT_ALIAS)]
    pub alias: String,
    /// Move the alias to the --candidate alias's version only if its live figures on this
    /// running server (accuracy; RMSE for a regressor, from the labels it joined) are at
    /// least as good as the alias's version's: exit 3 if not.
    #[arg(long, value_name = "URL")]
    pub from_live: Option<String>,
    /// With --from-live: the alias of the version tried on live traffic (the server's
    /// --shadow or --canary alias).
    #[arg(long, default_value = "staging", requires = "from_live")]
    pub candidate: String,
    /// With --from-live: recent labels each version needs before they are compared.
    #[arg(long, default_value_t = 100, requires = "from_live")]
    pub min_labels: usize,
    /// Registry.
    #[command(flatten)]
    pub registry: RegistryArg,
}

/// `treeserve rollback`.
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// Model name.
    pub name: String,
    /// Alias to move back.
    #[arg(long, default_value = DEFAULT_ALIAS)]
    pub alias: String,
    /// Registry.
    #[command(flatten)]
    pub registry: RegistryArg,
}

/// Runs `treeserve publish`.
pub(super) fn publish(a: PublishArgs) -> Result<(), CommandError> {
    let bytes = std::fs::read(&a.artifact).map_err(io_err(&a.artifact))?;
    if a.if_empty {
        let reg = a.registry.open()?;
        let name = crate::model::read_manifest(&bytes)
            .map_err(|source| CommandError::Artifact {
                path: a.artifact.display().to_string(),
                source,
            })?
            .name;
        let existing = match reg.versions(&name) {
            Ok(v) => v,
            Err(RegistryError::ModelNotFound(_)) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        if let Some(last) = existing.last() {
            eprintln!("{name} already has version {last}; nothing published (--if-empty)");
            return Ok(());
        }
    }
    publish_artifact(
        &*a.registry.open()?,
        &bytes,
        a.artifact.display().to_string(),
        a.alias.as_deref(),
    )
}

/// Runs `treeserve models`.
pub(super) fn models(a: ModelsArgs) -> Result<(), CommandError> {
    let reg = a.registry.open()?;
    match (&a.name, a.compare) {
        (Some(name), true) => {
            let live = match &a.live {
                Some(url) => Some(super::live::fetch(url, name)?),
                None => None,
            };
            print!(
                "{}",
                crate::report::compare_text(&*reg, name, live.as_ref())?
            );
            Ok(())
        }
        _ => list_models(
            &*reg,
            &a.registry.registry,
            a.name.as_deref(),
            a.json,
            a.verify,
        ),
    }
}

/// Checks that a server would serve `version` of `model` (its artifact reads, its
/// checksums match, it decodes, validates and answers its golden rows) before an alias is
/// moved to it.
pub(super) fn verify(
    reg: &dyn Registry,
    model: &str,
    alias: &str,
    version: u64,
) -> Result<(), CommandError> {
    if !crate::name::valid_name(alias) {
        return Err(RegistryError::InvalidName(alias.into()).into());
    }
    reg.versions(model)?;
    let bytes = reg.read(model, version)?;
    let refuse = |why: String| {
        CommandError::Usage(format!(
            "refusing to point {model}'s alias {alias} at version {version}: {why}; servers would refuse it (publish a good artifact and promote that version)"
        ))
    };
    let m = Model::from_bytes(&bytes, version, &TreeLimits::default())
        .map_err(|e| refuse(format!("its artifact fails verification: {e}")))?;
    if m.name() != model {
        return Err(refuse(format!("its artifact holds model {:?}", m.name())));
    }
    Ok(())
}

/// Runs `treeserve promote`.
pub(super) fn promote(a: PromoteArgs) -> Result<(), CommandError> {
    let (Some(version), None) = (a.version, &a.from_live) else {
        let url = a.from_live.clone().unwrap_or_default();
        return super::live::promote_from_live(&a, &url);
    };
    let reg = a.registry.open()?;
    verify(&*reg, &a.name, &a.alias, version)?;
    let rec = reg.set_alias(&a.name, &a.alias, version)?;
    println!("{} alias {} -> version {}", a.name, a.alias, rec.version);
    Ok(())
}

/// Runs `treeserve rollback`.
pub(super) fn rollback(a: RollbackArgs) -> Result<(), CommandError> {
    let reg = a.registry.open()?;
    if let Some(&previous) = reg.alias(&a.name, &a.alias)?.history.last() {
        verify(&*reg, &a.name, &a.alias, previous)?;
    }
    let rec = reg.rollback(&a.name, &a.alias)?;
    println!(
        "{} alias {} -> version {} (rolled back)",
        a.name, a.alias, rec.version
    );
    Ok(())
}

/// Publishes an artifact's bytes as the next version of its model, and points `alias` at
/// it; prints the version on stdout.
pub(super) fn publish_artifact(
    reg: &dyn Registry,
    bytes: &[u8],
    path: String,
    alias: Option<&str>,
) -> Result<(), CommandError> {
    let model = Model::from_bytes(bytes, 0, &TreeLimits::default())
        .map_err(|source| CommandError::Artifact { path, source })?;
    if let Some(alias) = alias
        && !crate::name::valid_name(alias)
    {
        return Err(RegistryError::InvalidName(alias.into()).into());
    }
    let version = reg.publish(model.name(), bytes)?;
    eprintln!("published {} version {version}", model.name());
    match alias {
        Some(alias) => {
            reg.set_alias(model.name(), alias, version)?;
            eprintln!("{} alias {alias} -> version {version}", model.name());
        }
        None => eprintln!(
            "no alias points to it, so no server serves it yet: \
             treeserve promote {} {version} --alias {DEFAULT_ALIAS}",
            model.name()
        ),
    }
    println!("{version}");
    Ok(())
}

fn list_models(
    reg: &dyn Registry,
    location: &crate::registry::Location,
    only: Option<&str>,
    json: bool,
    verify: bool,
) -> Result<(), CommandError> {
    let mut listing = Vec::new();
    let mut unverified = 0;
    let names = match only {
        Some(n) => {
            reg.versions(n)?;
            vec![n.to_owned()]
        }
        None => reg.models()?,
    };
    for name in names {
        // One model's unreadable aliases are reported with it, not for the whole listing.
        let (aliases, broken) = match reg.alias_listing(&name) {
            Ok(l) => (l.aliases, l.broken),
            Err(e) => (Default::default(), [("*".to_owned(), e.to_string())].into()),
        };
        let mut versions = Vec::new();
        let listed = match reg.versions(&name) {
            Ok(v) => v,
            Err(e) if only.is_none() => {
                listing.push(serde_json::json!({"name": name, "error": e.to_string()}));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        for v in listed {
            let entry = match crate::registry::version_manifest(reg, &name, v, verify) {
                Ok(Ok((m, verified))) => serde_json::json!({
                    "version": v,
                    "created": m.created,
                    "algorithm": m.algorithm,
                    "task": m.task,
                    "accuracy": m.metrics.accuracy,
                    "regression_metrics": m.regression_metrics,
                    "training_sha256": m.training.sha256,
                    "aliases": aliases.iter().filter(|(_, r)| r.version == v).map(|(a, _)| a).collect::<Vec<_>>(),
                    "verified": verified,
                }),
                Ok(Err(e)) => serde_json::json!({"version": v, "error": e.to_string()}),
                Err(e) => serde_json::json!({"version": v, "error": e.to_string()}),
            };
            unverified += usize::from(entry["verified"] == false);
            versions.push(entry);
        }
        let mut entry = serde_json::json!({"name": name, "aliases": aliases, "versions": versions});
        if !broken.is_empty() {
            entry["broken_aliases"] = serde_json::json!(broken);
        }
        listing.push(entry);
    }
    // Written whole at the end: a closed pipe (`models | head`) then stops it quietly.
    let mut out = Vec::new();
    if json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&listing).expect("json")
        );
        return super::print_out(&out);
    }
    if listing.is_empty() {
        let _ = writeln!(out, "no models in {}", location);
    }
    for m in &listing {
        let _ = writeln!(out, "{}", m["name"].as_str().unwrap_or_default());
        if let Some(err) = m["error"].as_str() {
            let _ = writeln!(out, "  unreadable: {err}");
            continue;
        }
        for (alias, why) in m["broken_aliases"].as_object().into_iter().flatten() {
            let _ = writeln!(
                out,
                "  alias {alias} unreadable: {}",
                why.as_str().unwrap_or_default()
            );
        }
        let _ = writeln!(
            out,
            "  {:>7}  {:<20}  {:<13}  {:>8}  aliases",
            "version", "created", "algorithm", "accuracy"
        );
        let num = |v: &serde_json::Value| crate::train::number(v.as_f64().unwrap_or(f64::NAN));
        for v in m["versions"].as_array().into_iter().flatten() {
            if let Some(err) = v.get("error") {
                let _ = writeln!(
                    out,
                    "  {:>7}  unreadable: {}",
                    v["version"].as_u64().unwrap_or_default(),
                    err.as_str().unwrap_or_default()
                );
                continue;
            }
            let aliases: Vec<&str> = v["aliases"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str())
                .collect();
            let r = &v["regression_metrics"];
            // A regressor has no accuracy: its test RMSE, MAE and R² follow the aliases.
            let regression = if r.is_object() {
                format!(
                    "  (regressor: RMSE {}  MAE {}  R² {})",
                    num(&r["rmse"]),
                    num(&r["mae"]),
                    num(&r["r2"])
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  {:>7}  {:<20}  {:<13}  {:>8}  {}{regression}",
                v["version"].as_u64().unwrap_or_default(),
                v["created"].as_str().unwrap_or_default(),
                v["algorithm"].as_str().unwrap_or_default(),
                num(&v["accuracy"]),
                aliases.join(", ")
            );
        }
    }
    if unverified > 0 {
        let (s, its, them) = match unverified {
            1 => ("", "its manifest", "it"),
            _ => ("s", "their manifests", "them"),
        };
        let _ = writeln!(
            out,
            "({unverified} version{s} listed from {its} only, checksums not verified: --verify downloads {them} whole)"
        );
    }
    super::print_out(&out)
}
