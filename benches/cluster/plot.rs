//! The PNGs: latency (and accepted rate) against offered rate, and the
//! scale mode's latency and CPU against the number of nodes.
//!
//! Text is drawn with a TrueType font read at run time (DejaVu Sans, from
//! Debian's fonts-dejavu-core, or the file `PEERBOOK_BENCH_FONT` names), so
//! building the benchmark needs no font library.

use std::path::Path;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
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
type Series<P> = (&'static str, RGBColor, fn(&P) -> f64);

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
    let (left, right) = canvas(path, &format!("peerbook, 3 nodes on one host ({machine})"))?;
    let max_x = points.iter().map(|p| p.offered).fold(1.0, f64::max) / 1000.0 * 1.05;

    let max_ms = points
        .iter()
        .flat_map(|p| [p.repl_p99, p.take_p99, 50.0])
        .fold(1.0, f64::max)
        * 1.5;
    let offered = "offered (thousand orders/s, cluster-wide)";
    let mut chart = new_chart(
        &left,
        "Latency",
        max_x,
        (0.5..max_ms).log_scale(),
        (offered, "ms (log scale)"),
    )?;
    let series: [Series<Point>; 3] = [
        ("replication p50", BLUE, |p| p.repl_p50),
        ("replication p99", RED, |p| p.repl_p99),
        ("take round trip p99", GREEN, |p| p.take_p99),
    ];
    for (name, color, value) in series {
        let line: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.offered / 1000.0, value(p).max(0.5)))
            .collect();
        line_with_points(&mut chart, line, name, color)?;
    }
    for (goal, name) in [(50.0, "goal: replication p99"), (10.0, "goal: take p99")] {
        goal_line(&mut chart, max_x, goal, name)?;
    }
    legend(&mut chart)?;

    let max_y = points
        .iter()
        .map(|p| p.accepted.max(p.offered))
        .fold(1.0, f64::max)
        / 1000.0
        * 1.1;
    let mut chart = new_chart(
        &right,
        "Throughput",
        max_x,
        0.0..max_y,
        (offered, "accepted (thousand/s)"),
    )?;
    let line: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (p.offered / 1000.0, p.accepted / 1000.0))
        .collect();
    line_with_points(&mut chart, line, "accepted", BLUE)?;
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, 0.0), (max_x, max_x)],
            BLACK.mix(0.35),
        ))
        .map_err(|e| e.to_string())?
        .label("accepted = offered")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.35)));
    legend(&mut chart)?;
    right.present().map_err(|e| e.to_string())?;
    Ok(())
}

/// A chart on `area` from 0 to `max_x`, over `y`, with its caption and axes.
fn new_chart<'a, Y>(
    area: &DrawingArea<BitMapBackend<'a>, Shift>,
    caption: &str,
    max_x: f64,
    y: Y,
    (x_desc, y_desc): (&str, &str),
) -> Result<Chart<'a, Y::CoordDescType>, String>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .caption(caption, ("sans-serif", 18))
        .build_cartesian_2d(0.0..max_x, y)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(chart)
}

/// A white picture at `path` with `title` on top; its two halves below.
type Halves<'a> = (
    DrawingArea<BitMapBackend<'a>, Shift>,
    DrawingArea<BitMapBackend<'a>, Shift>,
);
fn canvas<'a>(path: &'a Path, title: &str) -> Result<Halves<'a>, String> {
    load_font()?;
    let root = BitMapBackend::new(path, (1200, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (top, body) = root.split_vertically(40);
    top.draw_text(title, &("sans-serif", 20).into_text_style(&top), (20, 12))
        .map_err(|e| e.to_string())?;
    Ok(body.split_horizontally(620))
}

/// A chart as the helpers below draw on: linear x, any y.
type Chart<'a, Y> = ChartContext<'a, BitMapBackend<'a>, Cartesian2d<RangedCoordf64, Y>>;

/// A named line through `line`, with a dot at each point.
fn line_with_points<Y>(
    chart: &mut Chart<'_, Y>,
    line: Vec<(f64, f64)>,
    name: &str,
    color: RGBColor,
) -> Result<(), String>
where
    Y: Ranged<ValueType = f64>,
{
    chart
        .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
        .map_err(|e| e.to_string())?
        .label(name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    chart
        .draw_series(line.into_iter().map(|c| Circle::new(c, 3, color.filled())))
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// A grey horizontal line at `goal`, from 0 to `max_x`.
fn goal_line<Y>(chart: &mut Chart<'_, Y>, max_x: f64, goal: f64, name: &str) -> Result<(), String>
where
    Y: Ranged<ValueType = f64>,
{
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, goal), (max_x, goal)],
            BLACK.mix(0.35),
        ))
        .map_err(|e| e.to_string())?
        .label(name)
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.35)));
    Ok(())
}

fn legend<Y>(chart: &mut Chart<'_, Y>) -> Result<(), String>
where
    Y: Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())
}

/// One cluster size of the scale mode.
pub struct ScalePoint {
    pub nodes: f64,
    pub repl_p50: f64,
    pub repl_p99: f64,
    pub take_p99: f64,
    pub cpu_cores: f64,
    pub idle_cores: f64,
}

/// Draw the scale mode's sizes: latency, and the CPU the whole cluster
/// used, against the number of nodes.
pub fn draw_scale(
    path: &Path,
    points: &[ScalePoint],
    machine: &str,
    rate: u64,
) -> Result<(), String> {
    let (left, right) = canvas(
        path,
        &format!("peerbook, sparse clusters on one host ({machine}), {rate} orders/s"),
    )?;
    let max_x = points.iter().map(|p| p.nodes).fold(1.0, f64::max) * 1.05;
    let max_ms = points
        .iter()
        .flat_map(|p| [p.repl_p99, p.take_p99, 100.0])
        .fold(1.0, f64::max)
        * 1.5;
    let mut chart = new_chart(
        &left,
        "Latency",
        max_x,
        (0.5..max_ms).log_scale(),
        ("nodes", "ms (log scale)"),
    )?;
    let series: [Series<ScalePoint>; 3] = [
        ("replication p50", BLUE, |p| p.repl_p50),
        ("replication p99", RED, |p| p.repl_p99),
        ("take round trip p99", GREEN, |p| p.take_p99),
    ];
    for (name, color, value) in series {
        let line = points
            .iter()
            .map(|p| (p.nodes, value(p).max(0.5)))
            .collect();
        line_with_points(&mut chart, line, name, color)?;
    }
    goal_line(
        &mut chart,
        max_x,
        100.0,
        "goal at 20 nodes: replication p99",
    )?;
    legend(&mut chart)?;

    let max_cores = points.iter().map(|p| p.cpu_cores).fold(2.0, f64::max) * 1.15;
    let mut chart = new_chart(
        &right,
        "CPU of the whole cluster",
        max_x,
        0.0..max_cores,
        ("nodes", "cores"),
    )?;
    let series: [Series<ScalePoint>; 2] = [
        ("under the load", RED, |p| p.cpu_cores),
        ("idle, before it", BLUE, |p| p.idle_cores),
    ];
    for (name, color, value) in series {
        let line = points.iter().map(|p| (p.nodes, value(p))).collect();
        line_with_points(&mut chart, line, name, color)?;
    }
    goal_line(&mut chart, max_x, 2.0, "all of the machine")?;
    legend(&mut chart)?;
    right.present().map_err(|e| e.to_string())?;
    Ok(())
}
