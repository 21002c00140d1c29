//! The accuracy table of an evaluation, as Markdown.

use serde::Serialize;

use crate::TopK;

/// One evaluated representation.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What was evaluated: the trained encoder or a baseline.
    pub name: String,
    /// kNN accuracy.
    pub knn: TopK,
    /// Linear-probe accuracy.
    pub probe: TopK,
}

/// The rows as a Markdown table, accuracies in percent with one decimal.
pub fn markdown_table(rows: &[Row]) -> String {
    let pct = |x: f64| format!("{:.1}", 100.0 * x);
    let mut out = String::from(
        "| representation | kNN top-1 | kNN top-5 | linear top-1 | linear top-5 |\n\
         |---|---:|---:|---:|---:|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            r.name,
            pct(r.knn.top1),
            pct(r.knn.top5),
            pct(r.probe.top1),
            pct(r.probe.top5)
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
        };
        let table = markdown_table(&[row]);
        assert!(
            table.ends_with("| raw pixels | 82.3 | 99.0 | 50.0 | 100.0 |\n"),
            "{table}"
        );
    }
}
