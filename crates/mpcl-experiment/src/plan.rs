//! Experiment files and their expansion into runs.
//!
//! ```toml
//! [experiment]
//! name = "comparison"          # the directory under the runs directory (default: file stem)
//! base = "default.toml"        # a plain config, relative to this file (default: none)
//! extends = "other.toml"       # or another experiment: its base, axes and variants
//! description = "…"            # a paragraph for the report
//!
//! [base]                       # keys set over the base file, dotted or nested
//! "train.epochs" = 2
//!
//! [axes]                       # swept as a full product, in key order
//! "train.lr" = [1e-3, 3e-3]    # any key, by its dotted path
//! method = ["simclr", "spectral"]   # shorthands: method, dataset, backbone, aggregator
//! seed = [0, 1, 2]             # replicates: averaged in the report, not a configuration
//!
//! [[variants]]                 # named combinations, crossed with the axes
//! name = "simclr-attention"
//! set = { "aggregators.attention" = {} }
//! unset = []                   # dotted keys removed from the base
//!
//! [override]                   # set over every run, after its variant and axes
//! "train.epochs" = 1
//! ```
//!
//! A file without an `[experiment]` table is a plain config: one run. Every run's
//! configuration is a TOML table; this module does not know the trainer's keys (the `mpcl`
//! binary validates them) beyond the shorthands and `train.seed`, `name` and `kind`.
//! Runs are named `<configuration>/seed-<n>`, where the configuration joins the variant's
//! name and each axis's `key=value` with commas ("base" when there are neither).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::{Table, Value};

use crate::ExperimentError;

/// The top-level keys of an experiment file.
/// `[slurm]` is read by [`crate::slurm`], not by the expansion.
const GRID_KEYS: [&str; 6] = [
    "experiment",
    "base",
    "axes",
    "variants",
    "override",
    "slurm",
];

/// Axis names that stand for a dotted key.
const SHORTHANDS: [(&str, &str); 4] = [
    ("method", "train.method"),
    ("dataset", "data.dataset"),
    ("backbone", "model.encoder"),
    ("seed", "train.seed"),
];

/// The axis that sets `[aggregators]`: `"none"` or names joined by `+`.
const AGGREGATOR_AXIS: &str = "aggregator";

/// An expanded experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    /// The experiment file.
    pub file: PathBuf,
    /// Names the experiment's directory under the runs directory.
    pub name: String,
    /// A paragraph for the report, if the file has one.
    pub description: Option<String>,
    /// True for a file with an `[experiment]` table, false for a plain config.
    pub grid: bool,
    /// Every run, configurations in expansion order, seeds within each.
    pub runs: Vec<Run>,
}

/// One run of an experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// The configuration: the variant and the axis values, e.g.
    /// `simclr-attention,train.lr=0.001`.
    pub config: String,
    /// The seed (`train.seed`).
    pub seed: u64,
    /// `(axis or "variant", value)` pairs that define the configuration, for tables.
    pub settings: Vec<(String, String)>,
    /// The run's full configuration, as handed to `mpcl train`.
    pub table: Table,
    /// Where each key of `table` was set.
    pub sources: Sources,
}

/// Where the keys of a run's configuration were set, by dotted key: a base file (`b.toml`)
/// or a section of an experiment file (`grid.toml [axes]`). Tables that only switch
/// something on (`aggregators.attention = {}`) are keys too.
pub type Sources = BTreeMap<String, String>;

impl Run {
    /// The run's directory relative to the experiment's: `<config>/seed-<n>`.
    pub fn rel_dir(&self) -> PathBuf {
        Path::new(&self.config).join(format!("seed-{}", self.seed))
    }

    /// The configuration as TOML text.
    pub fn toml(&self) -> String {
        toml::to_string(&self.table).expect("a TOML table serialises")
    }

    /// Where the key that `key` starts with was set: the entry of its longest dotted
    /// prefix in [`Run::sources`]. `key` may go on as the trainer's messages do
    /// (`augment.crop_scale[1]: …`, `train.lr = 2: …`). `None` for a key the experiment
    /// leaves at the trainer's default.
    pub fn set_in(&self, key: &str) -> Option<&str> {
        let end = key
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_-.".contains(c)))
            .unwrap_or(key.len());
        let mut key = &key[..end];
        loop {
            if let Some(origin) = self.sources.get(key) {
                return Some(origin);
            }
            key = &key[..key.rfind('.')?];
        }
    }
}

impl Experiment {
    /// Reads and expands an experiment file.
    ///
    /// # Errors
    /// [`ExperimentError::File`] naming the file (or its base) and the key at fault.
    pub fn load(file: &Path) -> Result<Self, ExperimentError> {
        let table = read_table(file)?;
        Self::expand(file, table)
    }

    /// Expands a parsed experiment file; `file` names it in errors and anchors `base`.
    ///
    /// # Errors
    /// As [`Experiment::load`].
    pub fn expand(file: &Path, table: Table) -> Result<Self, ExperimentError> {
        let fail = |message: String| ExperimentError::file(file, message);
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "experiment".into());
        if !table.contains_key("experiment") {
            // A plain config: one run, under its own name.
            if let Some(key) = ["axes", "variants"]
                .iter()
                .find(|k| table.contains_key(**k))
            {
                return Err(fail(format!(
                    "{key} needs an [experiment] table (a file without one is a plain config)"
                )));
            }
            let name = match table.get("name") {
                Some(Value::String(s)) => s.clone(),
                _ => stem,
            };
            check_name(&name).map_err(|e| fail(format!("name = {name:?}: {e}")))?;
            let mut sources = Sources::new();
            record(&mut sources, &table, &|_| file.display().to_string());
            let grid = Grid {
                base: table,
                sources,
                axes: Vec::new(),
                variants: Vec::new(),
                overrides: Table::new(),
                override_sources: Sources::new(),
            };
            return Ok(Self {
                file: file.to_owned(),
                name: name.clone(),
                description: None,
                grid: false,
                runs: grid.expand(file, &name)?,
            });
        }
        let (header, grid) = parse_grid(file, &table, &[])?;
        let name = header.name.unwrap_or(stem);
        check_name(&name).map_err(|e| fail(format!("experiment.name = {name:?}: {e}")))?;
        Ok(Self {
            file: file.to_owned(),
            name: name.clone(),
            description: header.description,
            grid: true,
            runs: grid.expand(file, &name)?,
        })
    }

    /// The configurations in expansion order, each with its runs.
    pub fn configurations(&self) -> Vec<(&str, Vec<&Run>)> {
        let mut out: Vec<(&str, Vec<&Run>)> = Vec::new();
        for run in &self.runs {
            match out.iter_mut().find(|(c, _)| *c == run.config) {
                Some((_, runs)) => runs.push(run),
                None => out.push((&run.config, vec![run])),
            }
        }
        out
    }
}

/// `[experiment]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct Header {
    name: Option<String>,
    base: Option<PathBuf>,
    extends: Option<PathBuf>,
    description: Option<String>,
}

/// The parts of an experiment file with an `[experiment]` table, its parent's folded in:
/// the parent's base with this file's `experiment.base` and `[base]` over it, the parent's
/// axes with this file's replacing those of the same name, this file's variants if it has
/// any, else the parent's, and the parent's `[override]` with this file's over it.
/// `children` are the files that extend this one, the first the one given.
fn parse_grid(
    file: &Path,
    table: &Table,
    children: &[PathBuf],
) -> Result<(Header, Grid), ExperimentError> {
    let fail = |message: String| ExperimentError::file(file, message);
    if let Some(key) = table.keys().find(|k| !GRID_KEYS.contains(&k.as_str())) {
        return Err(fail(format!(
            "unknown key `{key}`: an experiment file has [experiment], [base], [axes], \
             [[variants]], [override] and [slurm] (a trainer key belongs in [base] or the \
             base file)"
        )));
    }
    let header: Header = table["experiment"]
        .clone()
        .try_into()
        .map_err(|e| fail(format!("[experiment]: {}", e.to_string().trim_end())))?;
    let dir = file.parent().unwrap_or(Path::new(""));
    let mut grid = match &header.extends {
        None => Grid {
            base: Table::new(),
            sources: Sources::new(),
            axes: Vec::new(),
            variants: Vec::new(),
            overrides: Table::new(),
            override_sources: Sources::new(),
        },
        Some(parent) => {
            let path = dir.join(parent);
            let chain = [children, &[file.to_owned()]].concat();
            let canonical = |f: &Path| std::fs::canonicalize(f).unwrap_or_else(|_| f.to_owned());
            if let Some(start) = chain.iter().position(|f| canonical(f) == canonical(&path)) {
                let names: Vec<String> = chain[start..]
                    .iter()
                    .chain([&path])
                    .map(|f| f.display().to_string())
                    .collect();
                return Err(fail(format!(
                    "experiment.extends = {parent:?}: a loop, {}",
                    names.join(" → ")
                )));
            }
            let parent_table = read_table(&path)
                .map_err(|e| fail(format!("experiment.extends = {parent:?}: {e}")))?;
            if !parent_table.contains_key("experiment") {
                return Err(fail(format!(
                    "experiment.extends = {parent:?}: {} has no [experiment] table; use \
                     experiment.base for a plain config",
                    path.display()
                )));
            }
            parse_grid(&path, &parent_table, &chain)?.1
        }
    };
    if let Some(base) = &header.base {
        let path = dir.join(base);
        let base_table =
            read_table(&path).map_err(|e| fail(format!("experiment.base = {base:?}: {e}")))?;
        if base_table.contains_key("experiment") {
            return Err(fail(format!(
                "experiment.base = {base:?}: {} is an experiment file; a base is a plain \
                 config (experiment.extends takes an experiment)",
                path.display()
            )));
        }
        merge(&mut grid.base, &base_table);
        record(&mut grid.sources, &base_table, &|_| {
            path.display().to_string()
        });
    }
    let section = |name: &str| format!("{} [{name}]", file.display());
    match table.get("base") {
        None => {}
        Some(Value::Table(over)) => {
            let over = nest(over, "base").map_err(fail)?;
            merge(&mut grid.base, &over);
            record(&mut grid.sources, &over, &|_| section("base"));
        }
        Some(_) => return Err(fail("base: must be a table of keys to set".into())),
    }
    match table.get("axes") {
        None => {}
        Some(Value::Table(axes)) => {
            for mut axis in parse_axes(axes).map_err(fail)? {
                axis.origin = section("axes");
                match grid.axes.iter_mut().find(|a| a.name == axis.name) {
                    Some(old) => *old = axis,
                    None => grid.axes.push(axis),
                }
            }
            grid.axes.sort_by(|a, b| a.name.cmp(&b.name));
            check_axis_paths(&grid.axes).map_err(fail)?;
        }
        Some(_) => return Err(fail("axes: must be a table of key = [values]".into())),
    }
    match table.get("variants") {
        None => {}
        Some(Value::Array(list)) => {
            grid.variants = parse_variants(list).map_err(fail)?;
            for variant in &mut grid.variants {
                variant.origin = format!("{} [[variants]] {:?}", file.display(), variant.name);
            }
        }
        Some(_) => return Err(fail("variants: must be an array of tables".into())),
    }
    match table.get("override") {
        None => {}
        Some(Value::Table(over)) => {
            let over = nest(over, "override").map_err(fail)?;
            merge(&mut grid.overrides, &over);
            record(&mut grid.override_sources, &over, &|_| section("override"));
        }
        Some(_) => return Err(fail("override: must be a table of keys to set".into())),
    }
    check_settable(&grid.overrides, "override").map_err(fail)?;
    check_overlaps(&grid.axes, &grid.variants).map_err(fail)?;
    let all = Variant {
        name: "[override]".into(),
        set: grid.overrides.clone(),
        unset: Vec::new(),
        origin: section("override"),
    };
    check_overlaps(&grid.axes, std::slice::from_ref(&all)).map_err(fail)?;
    Ok((header, grid))
}

/// One axis: the dotted key it sets and its values with their labels.
#[derive(Debug, Clone)]
struct Axis {
    /// The name as written (`method`, `train.lr`, …).
    name: String,
    /// The key path it sets; `["aggregators"]` for the aggregator axis.
    path: Vec<String>,
    values: Vec<(Value, String)>,
    /// Where it is declared, for [`Run::sources`].
    origin: String,
}

impl Axis {
    fn is_seed(&self) -> bool {
        self.path == ["train", "seed"]
    }
}

/// A named override set.
#[derive(Debug, Clone)]
struct Variant {
    name: String,
    set: Table,
    unset: Vec<Vec<String>>,
    /// Where it is declared, for [`Run::sources`].
    origin: String,
}

/// The parsed parts of an experiment, before expansion.
struct Grid {
    base: Table,
    /// Where each key of `base` was set.
    sources: Sources,
    axes: Vec<Axis>,
    variants: Vec<Variant>,
    /// `[override]`: set over every run after its variant and axes.
    overrides: Table,
    /// Where each key of `overrides` was set.
    override_sources: Sources,
}

impl Grid {
    /// Every run: variants × non-seed axes (the configurations) × seeds.
    fn expand(&self, file: &Path, experiment: &str) -> Result<Vec<Run>, ExperimentError> {
        let fail = |message: String| ExperimentError::file(file, message);
        for key in ["name", "kind"] {
            if self.axes.iter().any(|a| a.path == [key]) {
                return Err(fail(format!("axes.{key}: `{key}` cannot be swept")));
            }
        }
        let (seed_axes, axes): (Vec<&Axis>, Vec<&Axis>) =
            self.axes.iter().partition(|a| a.is_seed());
        let seeds: Vec<u64> = match seed_axes.first() {
            Some(axis) => axis
                .values
                .iter()
                .map(|(v, _)| match v {
                    Value::Integer(s) if *s >= 0 => Ok(*s as u64),
                    _ => Err(fail(format!(
                        "axes.{}: seeds must be integers ≥ 0, not {v}",
                        axis.name
                    ))),
                })
                .collect::<Result<_, _>>()?,
            None => match get_path(&self.base, &["train", "seed"]) {
                None => vec![0],
                Some(Value::Integer(s)) if *s >= 0 => vec![*s as u64],
                Some(v) => return Err(fail(format!("train.seed = {v}: must be an integer ≥ 0"))),
            },
        };
        let unit = [Variant {
            name: String::new(),
            set: Table::new(),
            unset: Vec::new(),
            origin: String::new(),
        }];
        let variants = if self.variants.is_empty() {
            &unit[..]
        } else {
            &self.variants[..]
        };
        let mut runs = Vec::new();
        for variant in variants {
            let mut table = self.base.clone();
            let mut sources = self.sources.clone();
            for path in &variant.unset {
                if !remove_path(&mut table, path) {
                    return Err(fail(format!(
                        "variants ({:?}): unset = {:?}: the base sets no such key (a typo?)",
                        variant.name,
                        path.join(".")
                    )));
                }
                forget(&mut sources, &path.join("."));
            }
            merge(&mut table, &variant.set);
            record(&mut sources, &variant.set, &|_| variant.origin.clone());
            let mut prefix = Vec::new();
            if !variant.name.is_empty() {
                prefix.push(("variant".to_owned(), variant.name.clone()));
            }
            for choice in product(&axes) {
                let mut table = table.clone();
                let mut sources = sources.clone();
                let mut settings = prefix.clone();
                for (axis, (value, label)) in axes.iter().zip(choice) {
                    if axis.name == AGGREGATOR_AXIS {
                        set_aggregators(&mut table, value);
                        // The aggregators named keep the base's settings, and so where
                        // those were set; the others are gone.
                        let named = get_path(&table, &["aggregators"]).and_then(Value::as_table);
                        sources.retain(|key, _| match key.strip_prefix("aggregators.") {
                            Some(rest) => named.is_some_and(|t| {
                                t.contains_key(rest.split('.').next().unwrap_or(rest))
                            }),
                            None => true,
                        });
                        sources.insert("aggregators".into(), axis.origin.clone());
                    } else {
                        set_path(&mut table, &axis.path, value.clone())
                            .map_err(|e| fail(format!("axes.{}: {e}", axis.name)))?;
                        let over = nested(&axis.path, value.clone());
                        record(&mut sources, &over, &|_| axis.origin.clone());
                    }
                    settings.push((axis.name.clone(), label.clone()));
                }
                let config = match settings.as_slice() {
                    [] => "base".to_owned(),
                    [(variant, name), rest @ ..] if variant == "variant" => {
                        std::iter::once(name.clone())
                            .chain(rest.iter().map(|(k, v)| format!("{k}={v}")))
                            .collect::<Vec<_>>()
                            .join(",")
                    }
                    all => all
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(","),
                };
                merge(&mut table, &self.overrides);
                // Every leaf of `overrides` was recorded as the files' tables were merged.
                record(&mut sources, &self.overrides, &|key| {
                    self.override_sources[key].clone()
                });
                if let Some(axis) = seed_axes.first() {
                    sources.insert("train.seed".into(), axis.origin.clone());
                }
                sources.insert("name".into(), file.display().to_string());
                for &seed in &seeds {
                    let mut table = table.clone();
                    let seed_value = Value::Integer(seed as i64);
                    set_path(&mut table, &["train".into(), "seed".into()], seed_value)
                        .map_err(|e| fail(format!("train.seed: {e}")))?;
                    table.insert(
                        "name".into(),
                        Value::String(format!("{experiment}.{config}.seed-{seed}")),
                    );
                    runs.push(Run {
                        config: config.clone(),
                        seed,
                        settings: settings.clone(),
                        table,
                        sources: sources.clone(),
                    });
                }
            }
        }
        Ok(runs)
    }
}

/// Every combination of one value per axis, the last axis varying fastest; one empty
/// combination without axes.
fn product<'a>(axes: &[&'a Axis]) -> Vec<Vec<&'a (Value, String)>> {
    axes.iter().fold(vec![Vec::new()], |acc, axis| {
        acc.into_iter()
            .flat_map(|prefix| {
                axis.values.iter().map(move |v| {
                    let mut next = prefix.clone();
                    next.push(v);
                    next
                })
            })
            .collect()
    })
}

/// Reads a TOML file as a table.
fn read_table(file: &Path) -> Result<Table, ExperimentError> {
    let text = std::fs::read_to_string(file).map_err(|e| ExperimentError::io(file, e))?;
    toml::from_str(&text)
        .map_err(|e| ExperimentError::file(file, e.to_string().trim_end().to_owned()))
}

/// Checks a name used as a directory: non-empty, no separators, no leading dot.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
        return Err("must be non-empty, without slashes or a leading dot".into());
    }
    Ok(())
}

/// A dotted key as its path; each part non-empty.
fn split_key(key: &str) -> Result<Vec<String>, String> {
    let path: Vec<String> = key.split('.').map(str::to_owned).collect();
    if path.iter().any(String::is_empty) {
        return Err(format!("`{key}` is not a dotted key"));
    }
    Ok(path)
}

/// A table whose quoted dotted keys (`"train.lr" = 1`) are expanded into nested tables;
/// `what` names the table in errors.
fn nest(table: &Table, what: &str) -> Result<Table, String> {
    let mut out = Table::new();
    for (key, value) in table {
        let path = split_key(key).map_err(|e| format!("{what}: {e}"))?;
        let value = match value {
            Value::Table(t) => Value::Table(nest(t, &format!("{what}.{key}"))?),
            v => v.clone(),
        };
        merge_new(&mut out, nested(&path, value), &mut Vec::new()).map_err(|key| {
            format!(
                "{what}.{key} is set twice (as a dotted key and in a table, say): keep one, \
                 since which would win is not written anywhere"
            )
        })?;
    }
    Ok(out)
}

/// Merges `over` into `into` where they do not overlap: tables merge key by key, and a key
/// that holds a value on either side is an error naming its dotted path (`path` holds the
/// keys above `into`).
fn merge_new(into: &mut Table, over: Table, path: &mut Vec<String>) -> Result<(), String> {
    for (key, value) in over {
        match (into.get_mut(&key), value) {
            (Some(Value::Table(a)), Value::Table(b)) => {
                path.push(key);
                merge_new(a, b, path)?;
                path.pop();
            }
            (Some(_), _) => {
                path.push(key);
                return Err(path.join("."));
            }
            (None, value) => {
                into.insert(key, value);
            }
        }
    }
    Ok(())
}

/// Merges `over` into `into`: tables merge key by key, anything else replaces.
pub(crate) fn merge(into: &mut Table, over: &Table) {
    for (key, value) in over {
        match (into.get_mut(key), value) {
            (Some(Value::Table(a)), Value::Table(b)) => merge(a, b),
            _ => {
                into.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The value at a key path, if there is one.
pub(crate) fn get_path<'a>(table: &'a Table, path: &[&str]) -> Option<&'a Value> {
    let (last, parents) = path.split_last()?;
    let mut t = table;
    for p in parents {
        t = t.get(*p)?.as_table()?;
    }
    t.get(*last)
}

/// The keys whose values differ between two configurations, in key order, each with a line
/// `key: old → new` (values in TOML syntax, `(unset)` where a side lacks the key).
pub fn differences(old: &Table, new: &Table) -> Vec<(String, String)> {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten("", old, &mut a);
    flatten("", new, &mut b);
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "(unset)".into());
    keys.into_iter()
        .filter(|key| a.get(*key) != b.get(*key))
        .map(|key| {
            let line = format!("{key}: {} → {}", show(a.get(key)), show(b.get(key)));
            (key.clone(), line)
        })
        .collect()
}

/// Dotted keys of `table` with their values in TOML syntax.
fn flatten(prefix: &str, table: &Table, out: &mut BTreeMap<String, String>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Table(t) => flatten(&key, t, out),
            v => {
                out.insert(key, v.to_string());
            }
        }
    }
}

/// Sets the value at a key path, creating tables on the way; a value in the way is an
/// error naming it. A table value merges into an existing table.
fn set_path(table: &mut Table, path: &[String], value: Value) -> Result<(), String> {
    let (last, parents) = path.split_last().expect("a key path is never empty");
    let mut t = table;
    for (i, p) in parents.iter().enumerate() {
        let entry = t
            .entry(p.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        t = match entry {
            Value::Table(inner) => inner,
            other => {
                return Err(format!("{} = {other} is not a table", path[..=i].join(".")));
            }
        };
    }
    match (t.get_mut(last), value) {
        (Some(Value::Table(a)), Value::Table(b)) => merge(a, &b),
        (_, v) => {
            t.insert(last.clone(), v);
        }
    }
    Ok(())
}

/// Removes the value at a key path if it is there; whether it was.
fn remove_path(table: &mut Table, path: &[String]) -> bool {
    let (last, parents) = path.split_last().expect("a key path is never empty");
    let mut t = table;
    for p in parents {
        match t.get_mut(p) {
            Some(Value::Table(inner)) => t = inner,
            _ => return false,
        }
    }
    t.remove(last).is_some()
}

/// Sets `[aggregators]` to the named ones: each keeps the base's sub-table (its settings)
/// if it has one, else gets an empty one (the defaults); the others are removed.
fn set_aggregators(table: &mut Table, value: &Value) {
    let names = value.as_str().expect("checked by parse_axes");
    let old = match table.remove("aggregators") {
        Some(Value::Table(t)) => t,
        _ => Table::new(),
    };
    let mut new = Table::new();
    if names != "none" {
        for name in names.split('+') {
            let settings = old
                .get(name)
                .cloned()
                .unwrap_or_else(|| Value::Table(Table::new()));
            new.insert(name.to_owned(), settings);
        }
    }
    table.insert("aggregators".into(), Value::Table(new));
}

/// The label of an axis value in run names: strings, numbers and booleans as written,
/// arrays joined by `-`.
fn label(value: &Value) -> Result<String, String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Integer(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Array(items) => items
            .iter()
            .map(|v| match v {
                Value::Array(_) | Value::Table(_) => Err(()),
                v => label(v).map_err(|_| ()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|()| format!("{value}: arrays of numbers or strings only"))?
            .join("-"),
        Value::Table(_) | Value::Datetime(_) => {
            return Err(format!(
                "{value}: an axis takes numbers, strings, booleans or arrays; use [[variants]] \
                 for tables"
            ));
        }
    };
    let safe = |c: char| c.is_ascii_alphanumeric() || "._+-".contains(c);
    if text.is_empty() || !text.chars().all(safe) {
        return Err(format!(
            "{value}: names a run directory, so it may hold only letters, digits and . _ + -"
        ));
    }
    Ok(text)
}

/// `[axes]`: each key (a shorthand or a dotted key) with a non-empty array of values.
fn parse_axes(axes: &Table) -> Result<Vec<Axis>, String> {
    let mut out = Vec::new();
    for (name, values) in axes {
        let fail = |message: String| format!("axes.{name}: {message}");
        let Value::Array(values) = values else {
            return Err(fail(format!("{values} is not an array of values")));
        };
        if values.is_empty() {
            return Err(fail("an axis needs at least one value".into()));
        }
        let path = if name == AGGREGATOR_AXIS {
            vec!["aggregators".to_owned()]
        } else {
            let key = SHORTHANDS
                .iter()
                .find(|(s, _)| s == name)
                .map_or(name.as_str(), |(_, k)| k);
            split_key(key).map_err(fail)?
        };
        let mut labelled = Vec::new();
        for value in values {
            if name == AGGREGATOR_AXIS {
                let ok = value.as_str().is_some_and(|s| {
                    s == "none" || s.split('+').all(|n| !n.is_empty() && n != "none")
                });
                if !ok {
                    return Err(fail(format!(
                        "{value}: expected \"none\" or aggregator names joined by +, e.g. \
                         \"attention\" or \"attention+contranorm\""
                    )));
                }
            }
            let text = label(value).map_err(fail)?;
            if labelled.iter().any(|(_, l)| *l == text) {
                return Err(fail(format!("{value} appears twice")));
            }
            labelled.push((value.clone(), text));
        }
        out.push(Axis {
            name: name.clone(),
            path,
            values: labelled,
            origin: String::new(),
        });
    }
    check_axis_paths(&out)?;
    Ok(out)
}

/// No two axes may set the same key.
fn check_axis_paths(axes: &[Axis]) -> Result<(), String> {
    let mut paths: BTreeMap<&[String], &str> = BTreeMap::new();
    for axis in axes {
        if let Some(other) = paths.insert(&axis.path, &axis.name) {
            return Err(format!(
                "axes.{other} and axes.{} set the same key {}",
                axis.name,
                axis.path.join(".")
            ));
        }
    }
    Ok(())
}

/// Refuses, in a variant's `set` or in `[override]` (`what`), the keys only the experiment
/// sets: `name` and `kind`; the seed, which each run's seed would replace; and the axis
/// shorthands, which the trainer would not know.
fn check_settable(set: &Table, what: &str) -> Result<(), String> {
    for key in ["name", "kind"] {
        if set.contains_key(key) {
            return Err(format!("{what}.{key}: `{key}` is set by the experiment"));
        }
    }
    for seed in [&["seed"][..], &["train", "seed"]] {
        if get_path(set, seed).is_some() {
            return Err(format!(
                "{what}.{}: the seeds are the experiment's, shared by every variant: set \
                 train.seed in [base] or sweep it with `seed = [...]` under [axes]",
                seed.join(".")
            ));
        }
    }
    let shorthand = SHORTHANDS
        .iter()
        .chain(&[(AGGREGATOR_AXIS, "aggregators.<name>")])
        .find(|(short, _)| set.contains_key(*short));
    match shorthand {
        Some((short, key)) => Err(format!(
            "{what}.{short}: `{short}` is a shorthand of [axes] only; write {key}"
        )),
        None => Ok(()),
    }
}

/// `[[variants]]`: each with a unique `name`, an optional `set` table and `unset` list.
fn parse_variants(list: &[Value]) -> Result<Vec<Variant>, String> {
    let mut out: Vec<Variant> = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let Value::Table(t) = item else {
            return Err(format!("variants[{i}]: must be a table"));
        };
        let at = |m: String| format!("variants[{i}]: {m}");
        if let Some(key) = t
            .keys()
            .find(|k| !["name", "set", "unset"].contains(&k.as_str()))
        {
            return Err(at(format!(
                "unknown key `{key}`: a variant has name, set and unset"
            )));
        }
        let name = match t.get("name") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(at("needs a name (a string)".into())),
        };
        let fail = |m: String| format!("variants[{i}] ({name:?}): {m}");
        label(&Value::String(name.clone())).map_err(|e| fail(format!("name = {e}")))?;
        if name == "base" || out.iter().any(|v| v.name == name) {
            return Err(fail(
                "the name is taken (by another variant, or \"base\")".into(),
            ));
        }
        let set = match t.get("set") {
            None => Table::new(),
            Some(Value::Table(s)) => nest(s, "set").map_err(fail)?,
            Some(_) => return Err(fail("set: must be a table of keys to set".into())),
        };
        let unset = match t.get("unset") {
            None => Vec::new(),
            Some(Value::Array(keys)) => keys
                .iter()
                .map(|k| match k {
                    Value::String(k) => split_key(k),
                    other => Err(format!("{other} is not a dotted key")),
                })
                .collect::<Result<_, _>>()
                .map_err(|e| fail(format!("unset: {e}")))?,
            Some(_) => return Err(fail("unset: must be an array of dotted keys".into())),
        };
        check_settable(&set, "set").map_err(fail)?;
        out.push(Variant {
            name,
            set,
            unset,
            origin: String::new(),
        });
    }
    Ok(out)
}

/// Every leaf key path a table sets (empty tables count as leaves: they switch things on).
fn leaves(table: &Table, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    for (key, value) in table {
        prefix.push(key.clone());
        match value {
            Value::Table(t) if !t.is_empty() => leaves(t, prefix, out),
            _ => out.push(prefix.clone()),
        }
        prefix.pop();
    }
}

/// `value` at `path` as a table of nested tables.
fn nested(path: &[String], value: Value) -> Table {
    let (last, parents) = path.split_last().expect("a key path is never empty");
    let mut table = Table::from_iter([(last.clone(), value)]);
    for p in parents.iter().rev() {
        table = Table::from_iter([(p.clone(), Value::Table(table))]);
    }
    table
}

/// Notes `origin(key)` as where each leaf key of `table`, merged over a run's table, was
/// set. A value other than a table replaces what was there, so the entries of the keys
/// under it go; an empty table merges and is a key of its own.
fn record(sources: &mut Sources, table: &Table, origin: &dyn Fn(&str) -> String) {
    record_under("", sources, table, origin);
}

/// [`record`] for `table` at the dotted key `prefix`.
fn record_under(
    prefix: &str,
    sources: &mut Sources,
    table: &Table,
    origin: &dyn Fn(&str) -> String,
) {
    for (k, value) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match value {
            Value::Table(t) if !t.is_empty() => record_under(&key, sources, t, origin),
            leaf => {
                if !leaf.is_table() {
                    forget(sources, &key);
                }
                let at = origin(&key);
                sources.insert(key, at);
            }
        }
    }
}

/// Drops the entries of `key` and of the keys under it.
fn forget(sources: &mut Sources, key: &str) {
    let below = format!("{key}.");
    sources.retain(|k, _| k != key && !k.starts_with(&below));
}

/// An axis and a variant may not touch the same key (one would silently win).
fn check_overlaps(axes: &[Axis], variants: &[Variant]) -> Result<(), String> {
    for variant in variants {
        let mut touched = Vec::new();
        leaves(&variant.set, &mut Vec::new(), &mut touched);
        touched.extend(variant.unset.iter().cloned());
        for axis in axes {
            let clash = touched.iter().find(|p| {
                let n = p.len().min(axis.path.len());
                p[..n] == axis.path[..n]
            });
            if let Some(path) = clash {
                let who = match variant.name.as_str() {
                    "[override]" => "[override]".to_owned(),
                    name => format!("variants ({name:?})"),
                };
                return Err(format!(
                    "{who} sets {} and axes.{} sets {}: one would override the other",
                    path.join("."),
                    axis.name,
                    axis.path.join(".")
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(text: &str) -> Result<Experiment, String> {
        let table: Table = toml::from_str(text).unwrap();
        Experiment::expand(Path::new("/x/grid.toml"), table).map_err(|e| e.to_string())
    }

    fn get<'a>(run: &'a Run, key: &str) -> Option<&'a Value> {
        let path: Vec<&str> = key.split('.').collect();
        get_path(&run.table, &path)
    }

    #[test]
    fn a_plain_config_is_one_run_under_its_name() {
        let e = expand("name = \"default\"\n[train]\nseed = 3\nepochs = 5\n").unwrap();
        assert!(!e.grid);
        assert_eq!(e.name, "default");
        assert_eq!(e.runs.len(), 1);
        let run = &e.runs[0];
        assert_eq!((run.config.as_str(), run.seed), ("base", 3));
        assert_eq!(run.rel_dir(), Path::new("base/seed-3"));
        assert_eq!(get(run, "train.epochs"), Some(&Value::Integer(5)));
        assert_eq!(
            get(run, "name").unwrap().as_str(),
            Some("default.base.seed-3")
        );
        // Without a name, the file's stem.
        assert_eq!(expand("[train]\nepochs = 1\n").unwrap().name, "grid");
    }

    #[test]
    fn axes_expand_to_the_full_product_in_key_order_with_seeds_innermost() {
        let e = expand(
            r#"
            [experiment]
            name = "sweep"
            [base]
            "train.epochs" = 2
            model.widths = [8, 16]
            [axes]
            method = ["simclr", "spectral"]
            "train.lr" = [0.001, 0.003]
            seed = [0, 1]
            "#,
        )
        .unwrap();
        // 2 methods × 2 rates × 2 seeds, counted by hand.
        assert_eq!(e.runs.len(), 8);
        let names: Vec<String> = e
            .runs
            .iter()
            .map(|r| r.rel_dir().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "method=simclr,train.lr=0.001/seed-0",
                "method=simclr,train.lr=0.001/seed-1",
                "method=simclr,train.lr=0.003/seed-0",
                "method=simclr,train.lr=0.003/seed-1",
                "method=spectral,train.lr=0.001/seed-0",
                "method=spectral,train.lr=0.001/seed-1",
                "method=spectral,train.lr=0.003/seed-0",
                "method=spectral,train.lr=0.003/seed-1",
            ]
        );
        let last = &e.runs[7];
        assert_eq!(
            get(last, "train.method").unwrap().as_str(),
            Some("spectral")
        );
        assert_eq!(get(last, "train.lr"), Some(&Value::Float(0.003)));
        assert_eq!(get(last, "train.seed"), Some(&Value::Integer(1)));
        assert_eq!(get(last, "train.epochs"), Some(&Value::Integer(2)));
        assert_eq!(
            get(last, "model.widths"),
            Some(&Value::Array(vec![Value::Integer(8), Value::Integer(16)]))
        );
        assert_eq!(e.configurations().len(), 4);
        assert_eq!(e.configurations()[0].1.len(), 2);
    }

    #[test]
    fn variants_cross_the_axes_and_aggregators_keep_base_settings() {
        let e = expand(
            r#"
            [experiment]
            [base.aggregators.rewiring]
            top_k = 3
            [base.train]
            threads = 2
            [axes]
            aggregator = ["none", "rewiring", "attention+contranorm"]
            [[variants]]
            name = "simclr"
            [[variants]]
            name = "wide"
            set = { "model.widths" = [64, 128] }
            unset = ["train.threads"]
            "#,
        )
        .unwrap();
        // 2 variants × 3 aggregator choices × 1 seed.
        assert_eq!(e.runs.len(), 6);
        assert_eq!(e.runs[0].config, "simclr,aggregator=none");
        assert_eq!(e.runs[5].config, "wide,aggregator=attention+contranorm");
        let aggs = |r: &Run| {
            get(r, "aggregators")
                .unwrap()
                .as_table()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert!(aggs(&e.runs[0]).is_empty(), "none removes the base's");
        assert_eq!(aggs(&e.runs[1]), ["rewiring"]);
        assert_eq!(
            get(&e.runs[1], "aggregators.rewiring.top_k"),
            Some(&Value::Integer(3))
        );
        assert_eq!(aggs(&e.runs[2]), ["attention", "contranorm"]);
        assert!(
            get(&e.runs[2], "aggregators.attention")
                .unwrap()
                .as_table()
                .unwrap()
                .is_empty()
        );
        assert_eq!(get(&e.runs[0], "train.threads"), Some(&Value::Integer(2)));
        assert_eq!(
            get(&e.runs[5], "train.threads"),
            None,
            "unset by the variant"
        );
        assert_eq!(get(&e.runs[0], "model.widths"), None);
        assert_eq!(
            get(&e.runs[3], "model.widths"),
            Some(&Value::Array(vec![Value::Integer(64), Value::Integer(128)]))
        );
        assert_eq!(
            e.runs[3].settings,
            [
                ("variant".to_owned(), "wide".to_owned()),
                ("aggregator".into(), "none".into())
            ]
        );
    }

    #[test]
    fn a_base_file_is_read_relative_to_the_experiment_and_overridden() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("b.toml"),
            "name = \"b\"\n[train]\nepochs = 5\nlr = 0.1\n",
        )
        .unwrap();
        let grid = dir.path().join("g.toml");
        std::fs::write(
            &grid,
            "[experiment]\nbase = \"b.toml\"\n[base.train]\nepochs = 1\n[axes]\nseed = [4]\n",
        )
        .unwrap();
        let e = Experiment::load(&grid).unwrap();
        assert_eq!(e.name, "g");
        let run = &e.runs[0];
        assert_eq!(get(run, "train.epochs"), Some(&Value::Integer(1)));
        assert_eq!(get(run, "train.lr"), Some(&Value::Float(0.1)));
        assert_eq!(run.seed, 4);
        assert_eq!(get(run, "name").unwrap().as_str(), Some("g.base.seed-4"));

        std::fs::write(&grid, "[experiment]\nbase = \"missing.toml\"\n").unwrap();
        let err = Experiment::load(&grid).unwrap_err().to_string();
        assert!(err.contains("missing.toml"), "{err}");
    }

    #[test]
    fn every_key_is_traced_to_the_file_and_section_that_set_it() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain.toml");
        std::fs::write(
            &plain,
            "[train]\nepochs = 200\nmomentum = 0.9\n[augment]\ncrop_scale = [0.2, 1.0]\n\
             [aggregators.attention]\ntemperature = 0.5\n",
        )
        .unwrap();
        let paper = dir.path().join("paper.toml");
        std::fs::write(
            &paper,
            "[experiment]\nbase = \"plain.toml\"\n[base.data]\ndataset = \"cifar10\"\n\
             [axes]\n\"train.lr\" = [0.5]\n\
             [[variants]]\nname = \"b\"\nset = { \"train.batch_size\" = 256 }\n\
             [[variants]]\nname = \"c\"\nunset = [\"train.momentum\"]\n\
             set = { \"train.warmup_epochs\" = 0 }\n",
        )
        .unwrap();
        let smoke = dir.path().join("smoke.toml");
        std::fs::write(
            &smoke,
            "[experiment]\nextends = \"paper.toml\"\n[base.train]\nepochs = 1\n\
             [axes]\nseed = [7]\naggregator = [\"attention\"]\n\
             [override.train]\nbatch_size = 16\n",
        )
        .unwrap();
        let e = Experiment::load(&smoke).unwrap();
        let at = |path: &Path, section: &str| format!("{} {section}", path.display());
        let plain_file = plain.display().to_string();
        let (b, c) = (&e.runs[0], &e.runs[1]);
        let expected = [
            ("train.epochs", Some(at(&smoke, "[base]"))),
            ("train.momentum", Some(plain_file.clone())),
            ("data.dataset", Some(at(&paper, "[base]"))),
            ("train.lr = 2: must be …", Some(at(&paper, "[axes]"))),
            ("train.batch_size", Some(at(&smoke, "[override]"))),
            ("train.seed", Some(at(&smoke, "[axes]"))),
            (
                "augment.crop_scale[1]: invalid type",
                Some(plain_file.clone()),
            ),
            // The aggregator axis keeps the base's settings of the aggregators it names.
            ("aggregators.attention", Some(at(&smoke, "[axes]"))),
            ("aggregators.attention.temperature", Some(plain_file)),
            ("name", Some(smoke.display().to_string())),
            ("model.pool", None),
        ];
        for (key, origin) in expected {
            assert_eq!(b.set_in(key), origin.as_deref(), "{key}");
        }
        // A variant's own keys, and one it unsets.
        let variant = format!("{} [[variants]] \"c\"", paper.display());
        assert_eq!(c.set_in("train.warmup_epochs"), Some(variant.as_str()));
        assert_eq!(b.set_in("train.warmup_epochs"), None);
        assert_eq!(c.set_in("train.momentum"), None);
    }

    #[test]
    fn extends_folds_in_the_parents_base_axes_and_variants() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("plain.toml"), "[train]\nepochs = 200\n").unwrap();
        std::fs::write(
            dir.path().join("paper.toml"),
            "[experiment]\nbase = \"plain.toml\"\n[base.data]\ndataset = \"cifar10\"\n\
             [axes]\nseed = [0, 1, 2]\n\"train.lr\" = [0.5]\n\
             [[variants]]\nname = \"a\"\n[[variants]]\nname = \"b\"\n\
             set = { \"train.batch_size\" = 256 }\n",
        )
        .unwrap();
        let smoke = dir.path().join("smoke.toml");
        std::fs::write(
            &smoke,
            "[experiment]\nextends = \"paper.toml\"\n[base.train]\nepochs = 1\n\
             [axes]\nseed = [7]\n[override.train]\nbatch_size = 16\n",
        )
        .unwrap();
        let e = Experiment::load(&smoke).unwrap();
        assert_eq!(e.name, "smoke");
        // The parent's two variants and its rate axis; this file's single seed.
        let dirs: Vec<String> = e
            .runs
            .iter()
            .map(|r| r.rel_dir().display().to_string())
            .collect();
        assert_eq!(dirs, ["a,train.lr=0.5/seed-7", "b,train.lr=0.5/seed-7"]);
        assert_eq!(get(&e.runs[0], "train.epochs"), Some(&Value::Integer(1)));
        assert_eq!(
            get(&e.runs[0], "data.dataset").unwrap().as_str(),
            Some("cifar10")
        );

        std::fs::write(&smoke, "[experiment]\nextends = \"plain.toml\"\n").unwrap();
        let err = Experiment::load(&smoke).unwrap_err().to_string();
        assert!(
            err.contains("has no [experiment] table; use experiment.base"),
            "{err}"
        );
        std::fs::write(&smoke, "[experiment]\nextends = \"smoke.toml\"\n").unwrap();
        let err = Experiment::load(&smoke).unwrap_err().to_string();
        let loop_of = |files: &[&Path]| {
            let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            names.join(" → ")
        };
        assert!(
            err.ends_with(&format!("a loop, {}", loop_of(&[&smoke, &smoke]))),
            "{err}"
        );
        // Through another file, which names the loop from where it starts.
        let other = dir.path().join("other.toml");
        std::fs::write(&other, "[experiment]\nextends = \"smoke.toml\"\n").unwrap();
        std::fs::write(&smoke, "[experiment]\nextends = \"other.toml\"\n").unwrap();
        let err = Experiment::load(&smoke).unwrap_err().to_string();
        assert!(
            err.ends_with(&format!("a loop, {}", loop_of(&[&smoke, &other, &smoke]))),
            "{err}"
        );
    }

    #[test]
    fn bad_files_are_named_with_the_key() {
        let cases = [
            ("[experiment]\n[train]\nlr = 1\n", "unknown key `train`"),
            (
                "[experiment]\nnaem = \"x\"\n",
                "[experiment]: unknown field `naem`",
            ),
            (
                "[experiment]\n[axes]\n\"train.lr\" = 0.1\n",
                "axes.train.lr: 0.1 is not an array",
            ),
            (
                "[experiment]\n[axes]\nmethod = []\n",
                "axes.method: an axis needs at least",
            ),
            (
                "[experiment]\n[axes]\nseed = [-1]\n",
                "axes.seed: seeds must be integers ≥ 0",
            ),
            (
                "[experiment]\n[axes]\nseed = [1, 1]\n",
                "axes.seed: 1 appears twice",
            ),
            (
                "[experiment]\n[axes]\n\"train..lr\" = [1]\n",
                "not a dotted key",
            ),
            (
                "[experiment]\n[axes]\nname = [\"a\"]\n",
                "axes.name: `name` cannot be swept",
            ),
            (
                "[experiment]\n[axes]\nmethod = [\"a/b\"]\n",
                "axes.method: \"a/b\": names a run",
            ),
            (
                "[experiment]\n[axes]\naggregator = [\"none+x\"]\n",
                "axes.aggregator",
            ),
            (
                "[experiment]\n[axes]\n\"model.widths\" = [{ a = 1 }]\n",
                "use [[variants]] for tables",
            ),
            (
                "[experiment]\n[axes]\nmethod = [\"simclr\"]\n\"train.method\" = [\"spectral\"]\n",
                "set the same key train.method",
            ),
            (
                "[experiment]\n[base]\ntrain = 3\n[axes]\n\"train.lr\" = [1.0]\n",
                "axes.train.lr: train = 3 is not a table",
            ),
            (
                "[experiment]\n[[variants]]\nset = {}\n",
                "variants[0]: needs a name",
            ),
            (
                "[experiment]\n[[variants]]\nname = \"a\"\n[[variants]]\nname = \"a\"\n",
                "variants[1] (\"a\"): the name is taken",
            ),
            (
                "[experiment]\n[[variants]]\nname = \"a\"\nset = { name = \"x\" }\n",
                "set.name: `name` is set by the experiment",
            ),
            (
                "[experiment]\n[axes]\naggregator = [\"attention\"]\n[[variants]]\nname = \"a\"\n\
                 set = { \"aggregators.rewiring\" = {} }\n",
                "sets aggregators.rewiring and axes.aggregator sets aggregators",
            ),
            (
                "[axes]\nmethod = [\"simclr\"]\n",
                "axes needs an [experiment] table",
            ),
            (
                "[experiment]\nname = \".hidden\"\n",
                "experiment.name = \".hidden\"",
            ),
            (
                "[experiment]\n[[variants]]\nname = \"s\"\nset = { \"train.seed\" = 1 }\n",
                "variants[0] (\"s\"): set.train.seed: the seeds are the experiment's",
            ),
            (
                "[experiment]\n[override]\ntrain = { seed = 1 }\n",
                "override.train.seed: the seeds are the experiment's",
            ),
            (
                "[experiment]\n[override]\nbackbone = \"resnet18\"\n",
                "override.backbone: `backbone` is a shorthand of [axes] only; write model.encoder",
            ),
            (
                "[experiment]\n[[variants]]\nname = \"a\"\nunset = [\"train.lrr\"]\n",
                "variants (\"a\"): unset = \"train.lrr\": the base sets no such key",
            ),
            (
                "[experiment]\n[base]\n\"train.lr\" = 1.0\n[base.train]\nlr = 2.0\n",
                "base.train.lr is set twice",
            ),
            (
                "[experiment]\n[override]\n\"train.lr\" = 1.0\ntrain = { lr = 2.0 }\n",
                "override.train.lr is set twice",
            ),
            (
                "[experiment]\n[[variants]]\nname = \"a\"\n\
                 set = { \"eval.knn.k\" = 5, eval = { knn = { k = 6 } } }\n",
                "set.eval.knn.k is set twice",
            ),
            (
                "[experiment]\nbase = \"missing.toml\"\n",
                "experiment.base = \"missing.toml\": /x/missing.toml: ",
            ),
            (
                "[experiment]\nextends = \"missing.toml\"\n",
                "experiment.extends = \"missing.toml\": /x/missing.toml: ",
            ),
            (
                "[experiment]\n[[variants]]\nname = \"s\"\nset = { seed = 1 }\n",
                "variants[0] (\"s\"): set.seed: the seeds are the experiment's",
            ),
            (
                "[experiment]\n[[variants]]\nname = \"m\"\nset = { method = \"spectral\" }\n",
                "variants[0] (\"m\"): set.method: `method` is a shorthand of [axes] only; \
                 write train.method",
            ),
        ];
        for (text, expected) in cases {
            let err = expand(text).unwrap_err();
            assert!(err.starts_with("/x/grid.toml: "), "{err}");
            assert!(err.contains(expected), "{text:?} gave {err}");
        }
    }
}
