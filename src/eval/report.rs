//! Reports: Markdown tables for people, JSON lines for scripts (`report.json`, `--json`), and
//! a PNG chart of every model's curve.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use super::coco::Retrieval;
use super::disc21::CopyDetection;
use super::metrics::CurvePoint;
use super::ExtractionStats;
use crate::error::{Error, Result};

/// One line of `report.json` and of `imgsim eval --json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EvalLine {
    /// One model's result on a copy-detection benchmark (disc21, synth, score).
    CopyDetection {
        benchmark: String,
        model: String,
        metrics: serde_json::Value,
        extraction: Option<serde_json::Value>,
        predictions_file: Option<String>,
        /// synth: recall at rank 1 per edit kind.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recall_at_rank1_by_edit: Option<serde_json::Value>,
    },
    /// One model's result on COCO.
    Retrieval {
        benchmark: String,
        model: String,
        result: serde_json::Value,
        predictions_file: String,
    },
    /// A model that could not run.
    ModelFailed { model: String, error: String },
    Summary {
        benchmark: String,
        references: usize,
        queries: usize,
        distractors: usize,
        k: usize,
        models: usize,
        failed_models: usize,
        failed_files: usize,
        seconds: f64,
        out: Option<String>,
    },
}

/// The end of every benchmark run: `report.md` (the Markdown a person reads) and
/// `report.json` (the same as JSON lines) in `out`.
pub fn write_reports(out: &Path, markdown: &str, lines: &[EvalLine]) -> Result<()> {
    let write = |name: &str, text: String| {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|cause| Error::Io { path, cause })
    };
    write("report.md", markdown.to_string())?;
    let json: Vec<String> = lines
        .iter()
        .map(|l| serde_json::to_string(l).expect("serialisable"))
        .collect();
    write("report.json", json.join("\n") + "\n")
}

/// A model name fit for a file name (`predictions-<label>.csv`).
pub fn file_label(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn pct(x: f64) -> String {
    format!("{:.2}", 100.0 * x)
}

/// Images/s and time of the embedding done in this run; images from the cache are named, as
/// they took no time.
fn throughput(e: &ExtractionStats) -> (String, String) {
    let cached = if e.from_cache > 0 {
        format!(" ({} of {} cached)", e.from_cache, e.images)
    } else {
        String::new()
    };
    match e.images_per_second {
        Some(rate) => (format!("{rate:.1}"), format!("{:.1} s{cached}", e.seconds)),
        None => ("-".into(), format!("all {} cached", e.images)),
    }
}

/// The copy-detection table: one row per model.
pub fn copy_detection_table(rows: &[(String, &CopyDetection)]) -> String {
    let mut out = String::from(
        "| model | µAP | R@P90 | threshold@P90 | R@1 | R@10 | acc@1 | acc@3 | images/s | extraction |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (model, r) in rows {
        let m = &r.metrics;
        let (rate, time) = throughput(&r.extraction);
        let _ = writeln!(
            out,
            "| {model} | {} | {} | {} | {} | {} | {} | {} | {rate} | {time} |",
            pct(m.micro_ap),
            m.recall_at_p90.map_or("-".into(), pct),
            m.threshold_at_p90.map_or("-".into(), |t| format!("{t:.4}")),
            pct(m.recall_at_rank1),
            pct(m.recall_at_rank10),
            pct(m.accuracy_top1),
            pct(m.accuracy_top3),
        );
    }
    out
}

/// The COCO table: one row per model.
pub fn retrieval_table(rows: &[(String, &Retrieval)]) -> String {
    let k = rows.first().map_or(10, |(_, r)| r.k);
    let mut out = format!(
        "| model | mAP@{k} | P@{k} | P@1 | images/s | extraction |\n|---|---:|---:|---:|---:|---:|\n"
    );
    for (model, r) in rows {
        let (rate, time) = throughput(&r.extraction);
        let _ = writeln!(
            out,
            "| {model} | {} | {} | {} | {rate} | {time} |",
            pct(r.map_at_k),
            pct(r.precision_at_k),
            pct(r.precision_at_rank.first().copied().unwrap_or(0.0)),
        );
    }
    out
}

/// Recall at rank 1 per edit kind: one row per edit, one column per model.
pub fn edit_table(models: &[String], rows: &[(String, usize, Vec<f64>)]) -> String {
    let mut out = format!("| edit | queries | {} |\n|---|---:|", models.join(" | "));
    out.push_str(&"---:|".repeat(models.len()));
    out.push('\n');
    for (edit, count, recalls) in rows {
        let cells: Vec<String> = recalls.iter().map(|r| pct(*r)).collect();
        let _ = writeln!(out, "| {edit} | {count} | {} |", cells.join(" | "));
    }
    out
}

/// At most `max` points of a curve, evenly spaced, the last one kept.
pub fn thin(curve: &[CurvePoint], max: usize) -> Vec<(f64, f64)> {
    if curve.is_empty() {
        return Vec::new();
    }
    let step = curve.len().div_ceil(max).max(1);
    let mut points: Vec<(f64, f64)> = curve
        .iter()
        .step_by(step)
        .map(|p| (p.recall, p.precision))
        .collect();
    let last = curve[curve.len() - 1];
    points.push((last.recall, last.precision));
    points
}

/// A line chart of one curve per model, as a PNG.
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub x_range: (f64, f64),
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

const FONT: &str = "sans-serif";

/// Colours that stay apart on white (matplotlib's "tab10").
const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

impl Chart<'_> {
    pub fn save(&self, path: &Path) -> Result<()> {
        static REGISTER: Once = Once::new();
        REGISTER.call_once(|| {
            // The font is compiled in: charts never depend on the fonts a machine has.
            let _ = plotters::style::register_font(
                FONT,
                FontStyle::Normal,
                epaint_default_fonts::UBUNTU_LIGHT,
            );
        });
        let (width, height) = (960u32, 640u32);
        let mut pixels = vec![255u8; (width * height * 3) as usize];
        self.draw(&mut pixels, (width, height))
            .map_err(|e| Error::Io {
                path: path.to_path_buf(),
                cause: std::io::Error::other(format!("drawing the chart failed: {e}")),
            })?;
        let image = image::RgbImage::from_raw(width, height, pixels).expect("buffer size");
        image.save(path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            cause: std::io::Error::other(e),
        })
    }

    fn draw(
        &self,
        pixels: &mut [u8],
        size: (u32, u32),
    ) -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::with_buffer(pixels, size).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(self.title, (FONT, 24))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(self.x_range.0..self.x_range.1, 0.0..1.02)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .label_style((FONT, 15))
            .draw()?;
        for (i, (name, points)) in self.series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()].to_rgba();
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_a_png_with_the_curves_drawn() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pr.png");
        Chart {
            title: "test",
            x_label: "recall",
            y_label: "precision",
            x_range: (0.0, 1.0),
            series: vec![
                ("a".into(), vec![(0.0, 1.0), (0.5, 0.8), (1.0, 0.2)]),
                ("b".into(), vec![(0.0, 0.5), (1.0, 0.5)]),
            ],
        }
        .save(&path)
        .unwrap();
        let image = image::open(&path).unwrap().to_rgb8();
        assert_eq!(image.dimensions(), (960, 640));
        let coloured = image
            .pixels()
            .filter(|p| p.0.iter().max().unwrap() - p.0.iter().min().unwrap() > 60)
            .count();
        assert!(coloured > 500, "only {coloured} coloured pixels");
    }

    #[test]
    fn thinning_keeps_the_ends() {
        let curve: Vec<CurvePoint> = (0..1000)
            .map(|i| CurvePoint {
                recall: i as f64 / 999.0,
                precision: 1.0,
                score: 0.0,
            })
            .collect();
        let points = thin(&curve, 100);
        assert!(points.len() <= 101);
        assert_eq!(points.first().unwrap().0, 0.0);
        assert_eq!(points.last().unwrap().0, 1.0);
    }
}
