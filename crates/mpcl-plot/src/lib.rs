//! PNG figures for mpcl's reports on `plotters`' bitmap backend: scatter plots coloured by
//! class, line charts of several series, and bar charts, each a panel of a figure that lays
//! panels out on a grid.
//!
//! Text is drawn with `ab_glyph` from a TrueType font read once per process, so nothing is
//! fetched and no system font service is needed: `$MPCL_PLOT_FONT` when set, else the first
//! of [`FONT_CANDIDATES`] that exists (DejaVu Sans or Liberation Sans on Linux, Arial on
//! macOS and Windows). A missing font is an error naming the paths tried.
//!
//! Figures are written atomically: drawn to a temporary file in the target directory, then
//! renamed. This crate knows nothing of graphs, tensors or runs; callers pass numbers.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

/// Where a font is looked for when `$MPCL_PLOT_FONT` is unset, in order.
pub const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// The font family every text style of this crate asks for.
const FAMILY: &str = "sans-serif";

/// What can keep a figure from being drawn.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PlotError {
    /// No usable font file.
    #[error("no font to draw text with: {0}")]
    Font(String),
    /// Numbers that cannot be drawn, naming the panel.
    #[error("{0}")]
    Data(String),
    /// Drawing or writing the file failed.
    #[error("{path}: {message}")]
    Write {
        /// The figure's path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Reads and registers the font once; later calls return the first outcome.
fn ensure_font() -> Result<(), PlotError> {
    static FONT: OnceLock<Result<(), PlotError>> = OnceLock::new();
    FONT.get_or_init(|| {
        let path = match std::env::var_os("MPCL_PLOT_FONT") {
            Some(p) => PathBuf::from(p),
            None => FONT_CANDIDATES
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    PlotError::Font(format!(
                        "set MPCL_PLOT_FONT to a TrueType file (tried {})",
                        FONT_CANDIDATES.join(", ")
                    ))
                })?,
        };
        let bytes = std::fs::read(&path)
            .map_err(|e| PlotError::Font(format!("{}: {e}", path.display())))?;
        // plotters keeps registered fonts for the life of the process: leak the one copy.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font(FAMILY, FontStyle::Normal, bytes).map_err(|_| {
            PlotError::Font(format!("{}: not a TrueType/OpenType font", path.display()))
        })
    })
    .clone()
}

/// A scatter plot of 2-D points coloured by class.
#[derive(Debug, Clone, PartialEq)]
pub struct Scatter {
    /// The panel's caption.
    pub title: String,
    /// The points `(x, y)`.
    pub points: Vec<(f64, f64)>,
    /// The class of each point, indexing the figure's class names and colours.
    pub classes: Vec<usize>,
    /// The name of each class, for the legend.
    pub class_names: Vec<String>,
}

/// One named series of a line chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend entry.
    pub name: String,
    /// The points `(x, y)`, in x order.
    pub points: Vec<(f64, f64)>,
}

/// A line chart of several series on shared axes.
#[derive(Debug, Clone, PartialEq)]
pub struct Lines {
    /// The panel's caption.
    pub title: String,
    /// The x axis label.
    pub x_label: String,
    /// The y axis label.
    pub y_label: String,
    /// Plot log₁₀ y (non-positive values are dropped) instead of y.
    pub log_y: bool,
    /// The series.
    pub series: Vec<Series>,
}

/// A bar chart: one bar per named value.
#[derive(Debug, Clone, PartialEq)]
pub struct Bars {
    /// The panel's caption.
    pub title: String,
    /// The y axis label.
    pub y_label: String,
    /// `(name, value)` per bar, drawn left to right.
    pub bars: Vec<(String, f64)>,
}

/// A panel of a figure.
#[derive(Debug, Clone, PartialEq)]
pub enum Panel {
    /// See [`Scatter`].
    Scatter(Scatter),
    /// See [`Lines`].
    Lines(Lines),
    /// See [`Bars`].
    Bars(Bars),
}

/// The colour of class or series `i`: a fixed cycle of ten, colour-blind-aware first (the
/// Okabe–Ito hues), so ten-class data sets get one colour per class.
fn colour(i: usize) -> RGBColor {
    const CYCLE: [RGBColor; 10] = [
        RGBColor(0, 114, 178),
        RGBColor(213, 94, 0),
        RGBColor(0, 158, 115),
        RGBColor(204, 121, 167),
        RGBColor(230, 159, 0),
        RGBColor(86, 180, 233),
        RGBColor(0, 0, 0),
        RGBColor(140, 86, 75),
        RGBColor(128, 128, 128),
        RGBColor(150, 150, 40),
    ];
    CYCLE[i % CYCLE.len()]
}

/// A tick label: at most 3 decimals without trailing zeros, scientific for tiny or huge
/// magnitudes.
fn tick(v: &f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        return format!("{v:.1e}");
    }
    let text = format!("{v:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

/// The tick formatter of an axis spanning `(lo, hi)`: plotters places the tick at zero by
/// adding steps to `lo`, which leaves rounding residue (3.5e-18 for 0); values below 1e-9 of
/// the span are that residue and print as 0.
fn ticks((lo, hi): (f64, f64)) -> impl Fn(&f64) -> String {
    let floor = (hi - lo).abs() * 1e-9;
    move |v| tick(if v.abs() < floor { &0.0 } else { v })
}

/// `[lo, hi]` of finite values with a 5% margin; a unit interval around a single value.
fn range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(v), h.max(v))
        });
    if lo > hi {
        return None;
    }
    let pad = if hi > lo { 0.05 * (hi - lo) } else { 0.5 };
    Some((lo - pad, hi + pad))
}

/// Draws `panels` on a grid of `columns` columns, each panel `panel_size` pixels, under an
/// overall `title`, and writes the PNG to `path` atomically.
///
/// # Errors
/// [`PlotError::Font`] without a usable font, [`PlotError::Data`] for a panel with nothing
/// finite to draw or classes without names, [`PlotError::Write`] naming the file.
pub fn figure(
    path: &Path,
    title: &str,
    panels: &[Panel],
    columns: usize,
    panel_size: (u32, u32),
) -> Result<(), PlotError> {
    ensure_font()?;
    let columns = columns.clamp(1, panels.len().max(1));
    let rows = panels.len().div_ceil(columns).max(1);
    let header = 40;
    let size = (
        panel_size.0 * columns as u32,
        panel_size.1 * rows as u32 + header,
    );
    let write_error = |message: String| PlotError::Write {
        path: path.to_owned(),
        message,
    };
    let name = path
        .file_name()
        .ok_or_else(|| write_error("not a file path".into()))?;
    let temp = path.with_file_name(format!(".{}.partial.png", name.to_string_lossy()));
    let drawn = (|| -> Result<(), PlotError> {
        let root = BitMapBackend::new(&temp, size).into_drawing_area();
        let fail = |e: &dyn std::fmt::Display| write_error(e.to_string());
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let body = root.titled(title, (FAMILY, 26)).map_err(|e| fail(&e))?;
        for (panel, area) in panels.iter().zip(body.split_evenly((rows, columns))) {
            match panel {
                Panel::Scatter(s) => draw_scatter(&area, s),
                Panel::Lines(l) => draw_lines(&area, l),
                Panel::Bars(b) => draw_bars(&area, b),
            }?;
        }
        root.present().map_err(|e| fail(&e))
    })();
    match drawn {
        Ok(()) => std::fs::rename(&temp, path).map_err(|e| write_error(e.to_string())),
        Err(e) => {
            // Best effort: the error being returned matters more than a leftover temp file.
            let _ = std::fs::remove_file(&temp);
            Err(e)
        }
    }
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Maps any plotters error to a data-independent drawing error for `title`.
fn draw_error(title: &str, e: impl std::fmt::Display) -> PlotError {
    PlotError::Data(format!("panel {title:?}: {e}"))
}

fn draw_scatter(area: &Area, s: &Scatter) -> Result<(), PlotError> {
    let title = &s.title;
    if s.classes.len() != s.points.len() {
        return Err(PlotError::Data(format!(
            "panel {title:?}: {} classes for {} points",
            s.classes.len(),
            s.points.len()
        )));
    }
    if let Some(c) = s.classes.iter().find(|&&c| c >= s.class_names.len()) {
        return Err(PlotError::Data(format!(
            "panel {title:?}: class {c} has no name ({} names)",
            s.class_names.len()
        )));
    }
    let no_points = || PlotError::Data(format!("panel {title:?}: no finite point"));
    let x = range(s.points.iter().map(|p| p.0)).ok_or_else(no_points)?;
    let y = range(s.points.iter().map(|p| p.1)).ok_or_else(no_points)?;
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FAMILY, 18))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(52)
        .build_cartesian_2d(x.0..x.1, y.0..y.1)
        .map_err(|e| draw_error(title, e))?;
    chart
        .configure_mesh()
        .label_style((FAMILY, 12))
        .x_labels(5)
        .y_labels(6)
        .x_label_formatter(&ticks(x))
        .y_label_formatter(&ticks(y))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|e| draw_error(title, e))?;
    for (class, name) in s.class_names.iter().enumerate() {
        let points = s
            .points
            .iter()
            .zip(&s.classes)
            .filter(move |(p, c)| **c == class && p.0.is_finite() && p.1.is_finite())
            .map(move |(p, _)| Circle::new(*p, 2, colour(class).mix(0.7).filled()));
        chart
            .draw_series(points)
            .map_err(|e| draw_error(title, e))?
            .label(name.as_str())
            .legend(move |(x, y)| Circle::new((x, y), 4, colour(class).filled()));
    }
    let corner = emptiest_corner(s.points.iter().copied(), x, y);
    legend(&mut chart, title, corner)
}

/// A corner of a panel's plotting area, where its legend goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Corner {
    UpperRight,
    UpperLeft,
    LowerRight,
    LowerLeft,
}

impl Corner {
    fn position(self) -> SeriesLabelPosition {
        match self {
            Self::UpperRight => SeriesLabelPosition::UpperRight,
            Self::UpperLeft => SeriesLabelPosition::UpperLeft,
            Self::LowerRight => SeriesLabelPosition::LowerRight,
            Self::LowerLeft => SeriesLabelPosition::LowerLeft,
        }
    }
}

/// The share of each axis that a corner's box spans when counting what a legend would hide.
const CORNER_SHARE: f64 = 0.4;

/// The corner whose box (`CORNER_SHARE` of each axis) holds the fewest of `points`, on axes
/// spanning `x` and `y`: the upper right unless another is emptier (ties go to the first in
/// the order upper right, upper left, lower right, lower left).
fn emptiest_corner(
    points: impl Iterator<Item = (f64, f64)>,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
) -> Corner {
    let corners = [
        Corner::UpperRight,
        Corner::UpperLeft,
        Corner::LowerRight,
        Corner::LowerLeft,
    ];
    let mut counts = [0usize; 4];
    for (x, y) in points {
        let (u, v) = ((x - x0) / (x1 - x0), (y - y0) / (y1 - y0));
        let (right, left) = (u >= 1.0 - CORNER_SHARE, u <= CORNER_SHARE);
        let (upper, lower) = (v >= 1.0 - CORNER_SHARE, v <= CORNER_SHARE);
        for (count, inside) in
            counts
                .iter_mut()
                .zip([right && upper, left && upper, right && lower, left && lower])
        {
            *count += usize::from(inside);
        }
    }
    let emptiest = (0..4).min_by_key(|&i| counts[i]).expect("four corners");
    corners[emptiest]
}

/// Points every 1/8 of the way along each segment of a polyline, its vertices included: what
/// a legend placed over the line would hide.
fn along(points: &[(f64, f64)]) -> impl Iterator<Item = (f64, f64)> + '_ {
    const STEPS: usize = 8;
    let last = points.last().copied();
    points
        .windows(2)
        .flat_map(|w| {
            let ((xa, ya), (xb, yb)) = (w[0], w[1]);
            (0..STEPS).map(move |i| {
                let t = i as f64 / STEPS as f64;
                (xa + t * (xb - xa), ya + t * (yb - ya))
            })
        })
        .chain(last)
}

/// Draws the series' legend in `corner`.
fn legend<'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, Y>>,
    title: &str,
    corner: Corner,
) -> Result<(), PlotError> {
    chart
        .configure_series_labels()
        .label_font((FAMILY, 12))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK.mix(0.3))
        .position(corner.position())
        .draw()
        .map_err(|e| draw_error(title, e))
}

fn draw_lines(area: &Area, l: &Lines) -> Result<(), PlotError> {
    let title = &l.title;
    let transform = |y: f64| {
        if !l.log_y {
            Some(y)
        } else if y > 0.0 {
            Some(y.log10())
        } else {
            None
        }
    };
    let series: Vec<Vec<(f64, f64)>> = l
        .series
        .iter()
        .map(|s| {
            s.points
                .iter()
                .filter_map(|&(x, y)| transform(y).map(|y| (x, y)))
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .collect()
        })
        .collect();
    let no_points = || PlotError::Data(format!("panel {title:?}: no finite point"));
    let all = || series.iter().flatten();
    let x = range(all().map(|p| p.0)).ok_or_else(no_points)?;
    let y = range(all().map(|p| p.1)).ok_or_else(no_points)?;
    let y_label = if l.log_y {
        format!("log₁₀ {}", l.y_label)
    } else {
        l.y_label.clone()
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FAMILY, 18))
        .margin(8)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x.0..x.1, y.0..y.1)
        .map_err(|e| draw_error(title, e))?;
    chart
        .configure_mesh()
        .label_style((FAMILY, 12))
        .axis_desc_style((FAMILY, 14))
        .x_desc(l.x_label.as_str())
        .y_desc(y_label)
        .x_labels(6)
        .y_labels(8)
        .x_label_formatter(&ticks(x))
        .y_label_formatter(&ticks(y))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|e| draw_error(title, e))?;
    let corner = emptiest_corner(series.iter().flat_map(|s| along(s)), x, y);
    for (i, (points, s)) in series.into_iter().zip(&l.series).enumerate() {
        chart
            .draw_series(LineSeries::new(points, colour(i).stroke_width(2)))
            .map_err(|e| draw_error(title, e))?
            .label(s.name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour(i)));
    }
    legend(&mut chart, title, corner)
}

fn draw_bars(area: &Area, b: &Bars) -> Result<(), PlotError> {
    let title = &b.title;
    if let Some((name, v)) = b.bars.iter().find(|(_, v)| !v.is_finite()) {
        return Err(PlotError::Data(format!(
            "panel {title:?}: bar {name:?} has value {v}"
        )));
    }
    let values = b.bars.iter().map(|(_, v)| *v).chain([0.0]);
    let y = range(values).ok_or_else(|| PlotError::Data(format!("panel {title:?}: no bar")))?;
    let n = b.bars.len();
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FAMILY, 18))
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(60)
        .build_cartesian_2d((0..n).into_segmented(), y.0..y.1)
        .map_err(|e| draw_error(title, e))?;
    let names = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) => b.bars.get(*i).map(|b| b.0.clone()).unwrap_or_default(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .label_style((FAMILY, 12))
        .axis_desc_style((FAMILY, 14))
        .y_desc(b.y_label.as_str())
        .y_label_formatter(&ticks(y))
        .x_labels(n)
        .x_label_formatter(&names)
        .draw()
        .map_err(|e| draw_error(title, e))?;
    let rects = b.bars.iter().enumerate().map(|(i, (_, v))| {
        let mut bar = Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), *v),
            ],
            colour(i).filled(),
        );
        bar.set_margin(0, 0, 10, 10);
        bar
    });
    chart.draw_series(rects).map_err(|e| draw_error(title, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panels() -> Vec<Panel> {
        vec![
            Panel::Scatter(Scatter {
                title: "two classes".into(),
                points: vec![(0.0, 0.0), (1.0, 1.0), (0.5, -1.0)],
                classes: vec![0, 1, 1],
                class_names: vec!["a".into(), "b".into()],
            }),
            Panel::Lines(Lines {
                title: "decay".into(),
                x_label: "step".into(),
                y_label: "σ₂/σ₁".into(),
                log_y: true,
                series: vec![Series {
                    name: "2⁻ᵗ".into(),
                    points: (0..10).map(|t| (t as f64, 0.5f64.powi(t))).collect(),
                }],
            }),
            Panel::Bars(Bars {
                title: "accuracy".into(),
                y_label: "fraction".into(),
                bars: vec![("x".into(), 0.5), ("y".into(), 0.9)],
            }),
        ]
    }

    #[test]
    fn tick_labels_are_short() {
        // By hand: trailing zeros go, tiny and huge values turn scientific.
        assert_eq!(tick(&100.0), "100");
        assert_eq!(tick(&0.25), "0.25");
        assert_eq!(tick(&-0.0), "0");
        assert_eq!(tick(&0.00002), "2.0e-5");
        assert_eq!(tick(&250000.0), "2.5e5");
        // On an axis of span 0.04, the residue 3.5e-18 left where the zero tick lands is 0,
        // while a real small value on a tiny axis keeps its digits.
        assert_eq!(ticks((-0.02, 0.02))(&3.5e-18), "0");
        assert_eq!(ticks((0.0, 1e-5))(&2e-6), "2.0e-6");
    }

    #[test]
    fn the_legend_goes_to_the_emptiest_corner() {
        // By hand, on unit axes where each corner's box is 0.4 × 0.4: nothing anywhere keeps
        // the upper right; points there move it left; points in three corners leave the
        // fourth; the centre (0.5, 0.5) lies in no box.
        let axes = ((0.0, 1.0), (0.0, 1.0));
        let corner = |p: &[(f64, f64)]| emptiest_corner(p.iter().copied(), axes.0, axes.1);
        assert_eq!(corner(&[]), Corner::UpperRight);
        assert_eq!(corner(&[(0.5, 0.5)]), Corner::UpperRight);
        assert_eq!(corner(&[(0.9, 0.9)]), Corner::UpperLeft);
        let three = [(0.9, 0.9), (0.1, 0.9), (0.9, 0.1), (0.1, 0.1), (0.95, 0.2)];
        assert_eq!(corner(&three[1..]), Corner::UpperRight);
        assert_eq!(
            corner(&[three[0], three[1], three[2], three[4]]),
            Corner::LowerLeft
        );
        // A segment from (0.5, 1) to (1, 0.5): neither end lies in a box, but its middle
        // (0.75, 0.75) crosses the upper right one, so only the points along it move the
        // legend.
        let line = [(0.5, 1.0), (1.0, 0.5)];
        assert_eq!(corner(&line), Corner::UpperRight);
        let points: Vec<_> = along(&line).collect();
        assert_eq!(points.len(), 8 + 1);
        assert_eq!(points[4], (0.75, 0.75));
        assert_eq!(corner(&points), Corner::UpperLeft);
    }

    #[test]
    fn writes_a_png_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.png");
        figure(&path, "test figure", &panels(), 2, (300, 240)).unwrap();
        // The PNG signature; what the figure shows is checked by eye on the toy's output.
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "only the figure remains");
    }

    #[test]
    fn bad_panels_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.png");
        let bad = Panel::Scatter(Scatter {
            title: "unnamed".into(),
            points: vec![(0.0, 0.0)],
            classes: vec![3],
            class_names: vec!["a".into()],
        });
        let err = figure(&path, "t", &[bad], 1, (200, 200))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("panel \"unnamed\": class 3 has no name"),
            "{err}"
        );
        assert!(!path.exists() && std::fs::read_dir(dir.path()).unwrap().count() == 0);
        let empty = Panel::Lines(Lines {
            title: "empty".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            log_y: true,
            series: vec![Series {
                name: "zeros".into(),
                points: vec![(0.0, 0.0)],
            }],
        });
        let err = figure(&path, "t", &[empty], 1, (200, 200))
            .unwrap_err()
            .to_string();
        assert!(err.contains("panel \"empty\": no finite point"), "{err}");
    }
}
