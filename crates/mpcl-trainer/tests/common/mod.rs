//! Helpers shared by the integration tests that compare runs through the `mpcl` binary.

use std::path::Path;

use tch::Tensor;

/// Asserts that two finished runs hold the same weights, metrics (wall-time columns aside)
/// and results, bit for bit.
pub fn assert_same_run(a: &Path, b: &Path) {
    let load = |p: &Path| {
        let mut t = Tensor::read_safetensors(p.join("encoder.safetensors")).unwrap();
        t.sort_by(|x, y| x.0.cmp(&y.0));
        t
    };
    let (wa, wb) = (load(a), load(b));
    assert_eq!(wa.len(), wb.len());
    for ((na, ta), (nb, tb)) in wa.iter().zip(&wb) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs between {a:?} and {b:?}");
    }
    // Columns 4 and 5 are views/s and seconds: wall time, not part of the computation.
    let metrics = |p: &Path| -> Vec<Vec<String>> {
        std::fs::read_to_string(p.join("metrics.csv"))
            .unwrap()
            .lines()
            .map(|l| {
                l.split(',')
                    .enumerate()
                    .filter(|(i, _)| *i != 4 && *i != 5)
                    .map(|(_, v)| v.to_owned())
                    .collect()
            })
            .collect()
    };
    assert_eq!(metrics(a), metrics(b));
    let rows = |p: &Path| {
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(p.join("results.json")).unwrap())
                .unwrap();
        json["rows"].clone()
    };
    assert_eq!(rows(a), rows(b));
}
