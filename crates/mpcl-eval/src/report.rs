//! The accuracy and diagnostics table of an evaluation, as Markdown.

use serde::{Deserialize, Serialize};

use crate::{Diagnostics, TopK};

/// One evaluated representation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// What was evaluated: the trained encoder or a baseline.
    pub name: String,
    /// kNN accuracy.
    pub knn: TopK,
    /// Linear-probe accuracy.
    pub probe: TopK,
    /// Alignment, uniformity and spectrum of the features.
    pub diagnostics: Diagnostics,
}

/// The rows as a Markdown table: accuracies in percent with one decimal, the effective rank
/// out of min(n, D) with one decimal, alignment and uniformity with three.
pub fn markdown_table(rows: &[Row]) -> String {
    let pct = |x: f64| format!("{:.1}", 100.0 * x);
    let mut out = String::from(
        "| representation | kNN top-1 | kNN top-5 | linear top-1 | linear top-5 \
         | eff. rank | alignment | uniformity |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let d = &r.diagnostics;
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.1} / {} | {:.3} | {:.3} |\n",
            r.name,
            pct(r.knn.top1),
            pct(r.knn.top5),
            pct(r.probe.top1),
            pct(r.probe.top5),
            d.effective_rank,
            d.max_rank,
            d.alignment,
            d.uniformity
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_percentages() {
        let row = Row {
            name: "raw pixels".into(),
            knn: TopK {
                top1: 0.8234,
                top5: 0.99,
            },
            probe: TopK {
                top1: 0.5,
                top5: 1.0,
            },
            diagnostics: Diagnostics {
                alignment: 0.12345,
                uniformity: -3.5,
                singular_values: vec![2.0, 1.0],
                effective_rank: 1.8899,
                max_rank: 2,
                collapsed: false,
            },
        };
        let table = markdown_table(&[row]);
        let header = table.lines().next().unwrap();
        assert_eq!(header.matches('|').count(), 9, "{table}");
        assert!(
            table.ends_with(
                "| raw pixels | 82.3 | 99.0 | 50.0 | 100.0 | 1.9 / 2 | 0.123 | -3.500 |\n"
            ),
            "{table}"
        );
    }
}
