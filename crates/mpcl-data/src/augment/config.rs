//! `[augment]`: one pipeline for every view, per-view changes, and multi-crop.
//!
//! ```toml
//! [augment]              # the pipeline of every view (keys of `Pipeline`)
//! size = 32
//! blur_p = 1.0
//! [augment.view1]        # keys that differ for view 1 (BYOL's asymmetric recipe)
//! blur_p = 0.1
//! solarize_p = 0.2
//! [augment.multicrop]    # `count` extra views; keys that differ from [augment]
//! count = 4
//! size = 16
//! crop_scale = [0.05, 0.14]
//! ```
//!
//! A `viewN` or `multicrop` table holds only the keys that differ; it is laid over the base
//! table before being read, so unknown keys and bad values are reported as for the base.

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Pipeline;

/// How the views of an image are drawn: view v follows `views[v]` when set, else `base`;
/// `multicrop.count` extra views follow `multicrop.pipeline`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AugmentConfig {
    /// The pipeline of every view without its own.
    pub base: Pipeline,
    /// Whole pipelines of the views that differ from `base`, by view index (`[augment.viewN]`).
    pub views: BTreeMap<usize, Pipeline>,
    /// Extra views at another resolution (`[augment.multicrop]`).
    pub multicrop: MultiCrop,
}

/// Multi-crop (Caron et al., SwAV): extra small crops of every image.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MultiCrop {
    /// Extra views per image. Default 0.
    pub count: usize,
    /// Their pipeline.
    pub pipeline: Pipeline,
}

const MULTICROP: &str = "multicrop";

/// The view index of a `viewN` key, digits and all (`view01` too, for the error that
/// asks for `view1`).
fn view_index(key: &str) -> Option<usize> {
    key.strip_prefix("view")
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse().ok())
}

/// Reads `value`; an error names the key that holds it as `table.key.path: message`, the
/// path relative to `[augment]`. Its tables are read here on their own, apart from the
/// config's text, so toml can place their errors only at the section: the path says where.
fn read<T: serde::de::DeserializeOwned>(value: toml::Value, table: &str) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut key = table.to_owned();
        if e.path().iter().next().is_some() {
            let dot = if key.is_empty() { "" } else { "." };
            key.push_str(&format!("{dot}{}", e.path()));
        }
        let message = e.inner().message().trim_end();
        if key.is_empty() {
            message.to_owned()
        } else {
            format!("{key}: {message}")
        }
    })
}

/// Reads `table` laid over `base` as the pipeline of table `key`.
fn overlay(base: &toml::Table, table: toml::Table, key: &str) -> Result<Pipeline, String> {
    let mut merged = base.clone();
    merged.extend(table);
    read(toml::Value::Table(merged), key)
}

impl AugmentConfig {
    /// Checks every pipeline; the error names the table and the field.
    ///
    /// # Errors
    /// A message such as `view1.blur_p = 2: …`.
    pub fn validate(&self) -> Result<(), String> {
        self.check_each(Pipeline::validate)?;
        if self.multicrop.count > 0 && self.multicrop.pipeline.size == 0 {
            return Err(format!(
                "{MULTICROP}.size = 0: multi-crop views need a size"
            ));
        }
        Ok(())
    }

    /// Checks that every pipeline can take `[c, h, w]` images; the error names the table
    /// and the field as [`validate`](Self::validate) does.
    ///
    /// # Errors
    /// A message such as `multicrop.mean = [0.5, 0.5]: …`.
    pub fn check_images(&self, shape: (usize, usize, usize)) -> Result<(), String> {
        self.check_each(|p| p.check_images(shape))
    }

    /// Runs `check` on every pipeline in use; an error gets its table's prefix.
    fn check_each(&self, check: impl Fn(&Pipeline) -> Result<(), String>) -> Result<(), String> {
        check(&self.base)?;
        for (v, p) in &self.views {
            check(p).map_err(|e| format!("view{v}.{e}"))?;
        }
        if self.multicrop.count > 0 {
            check(&self.multicrop.pipeline).map_err(|e| format!("{MULTICROP}.{e}"))?;
        }
        Ok(())
    }

    /// The pipeline of each of `views` views, then of each multi-crop view.
    ///
    /// # Errors
    /// A `viewN` table for a view that does not exist.
    pub fn pipelines(&self, views: usize) -> Result<Vec<Pipeline>, String> {
        if let Some((&v, _)) = self.views.range(views..).next() {
            return Err(format!(
                "view{v}: there are only {views} views (view0 … view{})",
                views.saturating_sub(1)
            ));
        }
        let main = (0..views).map(|v| self.views.get(&v).unwrap_or(&self.base).clone());
        let extra = std::iter::repeat_n(self.multicrop.pipeline.clone(), self.multicrop.count);
        Ok(main.chain(extra).collect())
    }

    /// The smallest size set for the views in use (the `views` views, then multi-crop's),
    /// with the key that sets it (`size = 8`, `view1.size = 8`, `multicrop.size = 8`);
    /// `None` when every view keeps its image's size.
    pub fn smallest_size(&self, views: usize) -> Option<(usize, String)> {
        // As in `pipelines`: a view's own table, else the base.
        let main = (0..views).map(|v| match self.views.get(&v) {
            Some(p) => (format!("view{v}."), p),
            None => (String::new(), &self.base),
        });
        let multicrop =
            (self.multicrop.count > 0).then(|| (format!("{MULTICROP}."), &self.multicrop.pipeline));
        main.chain(multicrop)
            .filter(|(_, p)| p.size > 0)
            .min_by_key(|(_, p)| p.size)
            .map(|(table, p)| (p.size, format!("{table}size = {}", p.size)))
    }
}

impl<'de> Deserialize<'de> for AugmentConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut base = toml::Table::deserialize(d)?;
        let mut tables = BTreeMap::new();
        let keys: Vec<String> = base.keys().cloned().collect();
        for key in keys {
            let view = view_index(&key);
            if let Some(v) = view.filter(|v| key != format!("view{v}")) {
                // Two spellings of one view would leave one of them unread.
                return Err(D::Error::custom(format!("{key}: write view{v}")));
            }
            if key == MULTICROP || view.is_some() {
                match base.remove(&key) {
                    Some(toml::Value::Table(t)) => {
                        tables.insert(key, t);
                    }
                    _ => return Err(D::Error::custom(format!("{key}: expected a table"))),
                }
            }
        }
        let mut config = Self {
            base: read(toml::Value::Table(base.clone()), "").map_err(D::Error::custom)?,
            ..Self::default()
        };
        for (key, mut table) in tables {
            if key == MULTICROP {
                let count = match table.remove("count") {
                    None => 0,
                    Some(v) => read(v, "multicrop.count").map_err(D::Error::custom)?,
                };
                let pipeline = overlay(&base, table, &key).map_err(D::Error::custom)?;
                config.multicrop = MultiCrop { count, pipeline };
            } else if let Some(v) = view_index(&key) {
                let pipeline = overlay(&base, table, &key).map_err(D::Error::custom)?;
                config.views.insert(v, pipeline);
            }
        }
        Ok(config)
    }
}

impl Serialize for AugmentConfig {
    /// Writes the base keys, then each `viewN` and `multicrop` as whole tables (which read
    /// back to the same pipelines).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let table = |p: &Pipeline| toml::Table::try_from(p).map_err(S::Error::custom);
        let mut out = table(&self.base)?;
        for (v, p) in &self.views {
            out.insert(format!("view{v}"), toml::Value::Table(table(p)?));
        }
        if self.multicrop.count > 0 {
            let mut mc = table(&self.multicrop.pipeline)?;
            let count = i64::try_from(self.multicrop.count).map_err(S::Error::custom)?;
            mc.insert("count".into(), toml::Value::Integer(count));
            out.insert(MULTICROP.into(), toml::Value::Table(mc));
        }
        out.serialize(s)
    }
}
