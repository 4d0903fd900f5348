//! The PNG of latency (and accepted rate) against offered rate.
//!
//! Text is drawn with a TrueType font read at run time (DejaVu Sans, from
//! Debian's fonts-dejavu-core, or the file `PEERBOOK_BENCH_FONT` names), so
//! building the benchmark needs no font library.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

/// One measured step of the benchmark.
pub struct Point {
    pub offered: f64,
    pub accepted: f64,
    pub repl_p50: f64,
    pub repl_p99: f64,
    pub take_p99: f64,
}

/// A line of the latency chart: its name, colour and value.
type Series = (&'static str, RGBColor, fn(&Point) -> f64);

const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

pub fn load_font() -> Result<(), String> {
    let candidates: Vec<String> = std::env::var("PEERBOOK_BENCH_FONT")
        .into_iter()
        .chain(FONTS.iter().map(|s| s.to_string()))
        .collect();
    for path in &candidates {
        if let Ok(bytes) = std::fs::read(path) {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            return register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| format!("{path} is not a font plotters can read"));
        }
    }
    Err(format!(
        "no font found (tried {}); install fonts-dejavu-core or set PEERBOOK_BENCH_FONT",
        candidates.join(", ")
    ))
}

/// Draw `points` (in the order of the offered rate) to `path`.
pub fn draw(path: &Path, points: &[Point], machine: &str) -> Result<(), String> {
    load_font()?;
    let root = BitMapBackend::new(path, (1200, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (title, body) = root.split_vertically(40);
    title
        .draw_text(
            &format!("peerbook, 3 nodes on one host ({machine})"),
            &("sans-serif", 20).into_text_style(&title),
            (20, 12),
        )
        .map_err(|e| e.to_string())?;
    let (left, right) = body.split_horizontally(620);
    let max_x = points.iter().map(|p| p.offered).fold(1.0, f64::max) / 1000.0 * 1.05;

    let max_ms = points
        .iter()
        .flat_map(|p| [p.repl_p99, p.take_p99, 50.0])
        .fold(1.0, f64::max)
        * 1.5;
    let mut chart = ChartBuilder::on(&left)
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .caption("Latency", ("sans-serif", 18))
        .build_cartesian_2d(0.0..max_x, (0.5..max_ms).log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("offered (thousand orders/s, cluster-wide)")
        .y_desc("ms (log scale)")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    let series: [Series; 3] = [
        ("replication p50", BLUE, |p| p.repl_p50),
        ("replication p99", RED, |p| p.repl_p99),
        ("take round trip p99", GREEN, |p| p.take_p99),
    ];
    for (name, color, value) in series {
        let line: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.offered / 1000.0, value(p).max(0.5)))
            .collect();
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .draw_series(line.into_iter().map(|c| Circle::new(c, 3, color.filled())))
            .map_err(|e| e.to_string())?;
    }
    for (goal, name) in [(50.0, "goal: replication p99"), (10.0, "goal: take p99")] {
        chart
            .draw_series(LineSeries::new(
                vec![(0.0, goal), (max_x, goal)],
                BLACK.mix(0.35),
            ))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.35)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;

    let max_y = points
        .iter()
        .map(|p| p.accepted.max(p.offered))
        .fold(1.0, f64::max)
        / 1000.0
        * 1.1;
    let mut chart = ChartBuilder::on(&right)
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .caption("Throughput", ("sans-serif", 18))
        .build_cartesian_2d(0.0..max_x, 0.0..max_y)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("offered (thousand orders/s, cluster-wide)")
        .y_desc("accepted (thousand/s)")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    let line: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (p.offered / 1000.0, p.accepted / 1000.0))
        .collect();
    chart
        .draw_series(LineSeries::new(line.clone(), BLUE.stroke_width(2)))
        .map_err(|e| e.to_string())?
        .label("accepted")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(line.into_iter().map(|c| Circle::new(c, 3, BLUE.filled())))
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, 0.0), (max_x, max_x)],
            BLACK.mix(0.35),
        ))
        .map_err(|e| e.to_string())?
        .label("accepted = offered")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.35)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}
