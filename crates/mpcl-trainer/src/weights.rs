//! One network's weights as safetensors, named as below its var-store prefix: for a ResNet
//! backbone that is torchvision's `state_dict()` naming, so the file moves between PyTorch and
//! mpcl: with `fc` replaced by `Identity` (and, for the CIFAR stem, `conv1` and `maxpool`
//! replaced as the references do), torchvision's ResNet takes the file with
//! `load_state_dict(..., strict=True)`, PyTorch filling in the BN counters it lacks. Files are
//! written atomically.

use std::collections::BTreeMap;
use std::path::Path;

use tch::{Tensor, nn};

use crate::TrainError;

/// torchvision entries that mpcl's backbones do not have and loading skips: BN's step
/// counters (unused with a fixed BN momentum) and the classifier.
fn skipped(name: &str) -> bool {
    name.ends_with(".num_batches_tracked") || name.starts_with("fc.")
}

/// The variables (parameters and buffers) of `vs` under `prefix`, named without it, sorted.
fn under(vs: &nn::VarStore, prefix: &str) -> Vec<(String, Tensor)> {
    let mut named: Vec<_> = vs
        .variables()
        .into_iter()
        .filter_map(|(n, t)| Some((n.strip_prefix(prefix)?.to_owned(), t)))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

/// Writes the variables of `vs` under `prefix` (e.g. `"backbone."`) to `path`, named without
/// the prefix.
///
/// # Errors
/// [`TrainError::Invalid`] when nothing lies under `prefix`; a libtorch or I/O error naming
/// the file.
pub fn save(vs: &nn::VarStore, prefix: &str, path: &Path) -> Result<(), TrainError> {
    // NCHW order whatever the variables' memory order (safetensors holds row-major bytes).
    let named: Vec<(String, Tensor)> = under(vs, prefix)
        .into_iter()
        .map(|(n, t)| (n, t.detach().contiguous()))
        .collect();
    if named.is_empty() {
        return Err(TrainError::Invalid(format!(
            "no variables under {prefix:?} to save"
        )));
    }
    let tmp = mpcl_data::fsutil::temp_path(path);
    Tensor::write_safetensors(&named, &tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))
}

/// Copies the tensors of a safetensors file into the variables of `vs` under `prefix`.
/// torchvision's `fc.*` and `*.num_batches_tracked` entries are skipped.
///
/// # Errors
/// [`TrainError::Invalid`] naming the file and the entry when a variable is missing from
/// the file, has another shape, or the file has entries the network lacks; the variables
/// are unchanged then. A libtorch error when the file cannot be read.
pub fn load(vs: &nn::VarStore, prefix: &str, path: &Path) -> Result<(), TrainError> {
    let invalid = |m: String| TrainError::Invalid(format!("{}: {m}", path.display()));
    let mut file: BTreeMap<String, Tensor> = Tensor::read_safetensors(path)?
        .into_iter()
        .filter(|(n, _)| !skipped(n))
        .collect();
    let mut pairs = Vec::new();
    for (name, var) in under(vs, prefix) {
        let t = file
            .remove(&name)
            .ok_or_else(|| invalid(format!("{name} is missing")))?;
        if t.size() != var.size() {
            return Err(invalid(format!(
                "{name} has shape {:?}, the network {:?}",
                t.size(),
                var.size()
            )));
        }
        pairs.push((var, t));
    }
    if let Some(extra) = file.keys().next() {
        return Err(invalid(format!(
            "{} entries the network does not have, such as {extra}",
            file.len()
        )));
    }
    tch::no_grad(|| {
        for (mut var, t) in pairs {
            var.copy_(&t);
        }
    });
    Ok(())
}
