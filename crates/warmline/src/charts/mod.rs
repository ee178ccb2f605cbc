//! Charts of a [`History`], drawn with plotters: SVG for the dashboard's webview,
//! PNG for reports, from the same drawing code.
//!
//! Five charts — latency percentiles over time, time to first token, requests and
//! errors per second, cache hit rate, and a per-model comparison — plus a report
//! that puts all of them and a summary on one image. Every chart has a title,
//! axes with units and a legend; time runs left to right and is labelled as time
//! before the newest point. A missing value (an interval without traffic) is a
//! gap in its line, not a drop to zero.
//!
//! The font (a subset of DejaVu Sans, `assets/`) is compiled in and registered
//! with plotters' pure-Rust rasteriser, so charts render the same on a machine
//! without any system font or fontconfig. A [`Theme`] picks light or dark colours
//! (the dashboard follows the desktop's); reports are light.

use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::metrics::{History, Point};

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

/// Which chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chart {
    Latency,
    Ttft,
    Throughput,
    HitRate,
    Models,
}

impl Chart {
    pub const ALL: [Chart; 5] = [
        Chart::Latency,
        Chart::Ttft,
        Chart::Throughput,
        Chart::HitRate,
        Chart::Models,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Chart::Latency => "Latency (p50 / p95 / p99)",
            Chart::Ttft => "Time to first token",
            Chart::Throughput => "Requests and errors per second",
            Chart::HitRate => "Cache hit rate",
            Chart::Models => "Latency by model",
        }
    }

    /// The chart's name in URLs (`/warmline/charts/latency.svg`).
    pub fn name(self) -> &'static str {
        match self {
            Chart::Latency => "latency",
            Chart::Ttft => "ttft",
            Chart::Throughput => "throughput",
            Chart::HitRate => "hit-rate",
            Chart::Models => "models",
        }
    }

    pub fn from_name(name: &str) -> Option<Chart> {
        Chart::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// Light (dark ink on white) or dark (light ink on the dashboard's dark card).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Theme {
    #[default]
    Light,
    Dark,
}

/// The colours of one theme.
struct Palette {
    background: RGBColor,
    ink: RGBColor,
    muted: RGBColor,
    grid: RGBColor,
    axis: RGBColor,
    legend: RGBColor,
    border: RGBColor,
    series: [RGBColor; 4],
}

impl Theme {
    fn palette(self) -> Palette {
        match self {
            // Series: blue, orange, red, green.
            Theme::Light => Palette {
                background: WHITE,
                ink: BLACK,
                muted: RGBColor(120, 120, 120),
                grid: RGBColor(235, 235, 235),
                axis: RGBColor(60, 60, 60),
                legend: RGBColor(250, 250, 250),
                border: RGBColor(180, 180, 180),
                series: [
                    RGBColor(31, 119, 180),
                    RGBColor(255, 127, 14),
                    RGBColor(214, 39, 40),
                    RGBColor(44, 160, 44),
                ],
            },
            // The same hues, lighter, on the dashboard's dark card colour.
            Theme::Dark => Palette {
                background: RGBColor(0x21, 0x1e, 0x1b),
                ink: RGBColor(0xf5, 0xf5, 0xf4),
                muted: RGBColor(0xb3, 0xad, 0xa8),
                grid: RGBColor(0x34, 0x30, 0x2c),
                axis: RGBColor(0xb3, 0xad, 0xa8),
                legend: RGBColor(0x2a, 0x26, 0x23),
                border: RGBColor(0x4a, 0x45, 0x40),
                series: [
                    RGBColor(96, 165, 250),
                    RGBColor(251, 146, 60),
                    RGBColor(248, 113, 113),
                    RGBColor(74, 222, 128),
                ],
            },
        }
    }
}

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the chart: {0}")]
pub struct ChartError(String);

fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_err() {
            tracing::error!("the bundled chart font is not a valid font");
        }
    });
}

/// One chart as an SVG document.
pub fn svg(chart: Chart, history: &History, size: (u32, u32)) -> Result<String, ChartError> {
    svg_themed(chart, history, size, Theme::Light)
}

/// [`svg`] in a given theme.
pub fn svg_themed(
    chart: Chart,
    history: &History,
    size: (u32, u32),
    theme: Theme,
) -> Result<String, ChartError> {
    fonts();
    let palette = theme.palette();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&palette.background).map_err(err)?;
        draw(chart, &root, history, &palette).map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

/// One chart as a PNG image.
pub fn png(chart: Chart, history: &History, size: (u32, u32)) -> Result<Vec<u8>, ChartError> {
    let palette = Theme::Light.palette();
    bitmap(size, |root| {
        root.fill(&palette.background).map_err(err)?;
        draw(chart, root, history, &palette).map_err(err)
    })
}

/// Every chart and a summary on one image, `title` above them.
pub fn report_svg(history: &History, title: &str) -> Result<String, ChartError> {
    fonts();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, REPORT_SIZE).into_drawing_area();
        draw_report(&root, history, title).map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

/// [`report_svg`] as a PNG image.
pub fn report_png(history: &History, title: &str) -> Result<Vec<u8>, ChartError> {
    bitmap(REPORT_SIZE, |root| {
        draw_report(root, history, title).map_err(err)
    })
}

/// The report's size in pixels.
pub const REPORT_SIZE: (u32, u32) = (1800, 1500);

type Drawn<B> = Result<(), DrawingAreaErrorKind<<B as DrawingBackend>::ErrorType>>;

fn err(e: impl std::fmt::Display) -> ChartError {
    ChartError(e.to_string())
}

fn bitmap(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), ChartError>,
) -> Result<Vec<u8>, ChartError> {
    fonts();
    let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        draw(&root)?;
        root.present().map_err(err)?;
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, size.0, size.1);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(err)?;
    writer.write_image_data(&rgb).map_err(err)?;
    writer.finish().map_err(err)?;
    Ok(out)
}

fn draw_report<B: DrawingBackend>(
    root: &DrawingArea<B, Shift>,
    history: &History,
    title: &str,
) -> Drawn<B> {
    let palette = Theme::Light.palette();
    root.fill(&palette.background)?;
    let body = root.titled(title, (FAMILY, 34))?;
    let panels = body.split_evenly((3, 2));
    for (chart, panel) in Chart::ALL.iter().zip(&panels) {
        draw(*chart, panel, history, &palette)?;
    }
    if let Some(panel) = panels.get(5) {
        draw_summary(panel, history)?;
    }
    Ok(())
}

fn draw<B: DrawingBackend>(
    chart: Chart,
    area: &DrawingArea<B, Shift>,
    history: &History,
    palette: &Palette,
) -> Drawn<B> {
    let step = history.step_s.max(1);
    let ms = |f: fn(&Point) -> Option<f64>| -> Vec<Option<f64>> {
        history.points.iter().map(f).collect()
    };
    match chart {
        Chart::Latency => lines(
            area,
            palette,
            chart.title(),
            "latency (ms)",
            history,
            &[
                ("p50", ms(|p| p.p50_ms)),
                ("p95", ms(|p| p.p95_ms)),
                ("p99", ms(|p| p.p99_ms)),
            ],
            None,
        ),
        Chart::Ttft => lines(
            area,
            palette,
            chart.title(),
            "time to first token (ms)",
            history,
            &[
                ("p50", ms(|p| p.ttft_p50_ms)),
                ("p95", ms(|p| p.ttft_p95_ms)),
            ],
            None,
        ),
        Chart::Throughput => {
            let per_second = |count: fn(&Point) -> u64| -> Vec<Option<f64>> {
                history
                    .points
                    .iter()
                    .map(|p| Some(count(p) as f64 / step as f64))
                    .collect()
            };
            lines(
                area,
                palette,
                chart.title(),
                "per second",
                history,
                &[
                    ("requests/s", per_second(|p| p.requests)),
                    ("errors/s", per_second(|p| p.errors)),
                    ("cold starts/s", per_second(|p| p.cold_starts)),
                ],
                None,
            )
        }
        Chart::HitRate => lines(
            area,
            palette,
            chart.title(),
            "hit rate (%)",
            history,
            &[(
                "hits / lookups",
                history
                    .points
                    .iter()
                    .map(|p| p.hit_rate().map(|r| r * 100.0))
                    .collect(),
            )],
            Some(100.0),
        ),
        Chart::Models => bars(area, history, palette),
    }
}

/// A line chart of `series` over the history's time axis.
fn lines<B: DrawingBackend>(
    area: &DrawingArea<B, Shift>,
    palette: &Palette,
    title: &str,
    y_desc: &str,
    history: &History,
    series: &[(&str, Vec<Option<f64>>)],
    ceiling: Option<f64>,
) -> Drawn<B> {
    let end = history.points.last().map_or(0, |p| p.t) as f64;
    let xs: Vec<f64> = history.points.iter().map(|p| p.t as f64 - end).collect();
    let start = xs
        .first()
        .copied()
        .unwrap_or(-60.0)
        .min(-(history.step_s.max(1) as f64));
    let top = series
        .iter()
        .flat_map(|(_, values)| values.iter().flatten().copied())
        .fold(0.0f64, f64::max);
    let y_max = match ceiling {
        // A share: at most 100 %, however close the data comes to it.
        Some(ceiling) => ceiling,
        None if top > 0.0 => nice(top * 1.1),
        None => 1.0,
    };
    let span = -start;
    let mut chart = ChartBuilder::on(area)
        .caption(title, text(palette.ink, 24))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(start..0.0, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("time before the newest point")
        .y_desc(y_desc)
        .label_style(text(palette.ink, 14))
        .axis_desc_style(text(palette.ink, 16))
        .axis_style(palette.axis)
        .bold_line_style(palette.grid)
        .light_line_style(palette.grid.mix(0.5))
        // One light line between grid lines: enough to read values, and few
        // elements to draw (a webview repaints the charts every two seconds).
        .max_light_lines(1)
        .x_labels(7)
        .y_labels(6)
        .x_label_formatter(&|x| time_label(*x, span))
        .y_label_formatter(&|y| number_label(*y))
        .draw()?;
    let has_data = series.iter().any(|(_, v)| v.iter().any(Option::is_some));
    for (i, (name, values)) in series.iter().enumerate() {
        let color = palette.series[i % palette.series.len()];
        let style = color.stroke_width(2);
        let mut labelled = false;
        for segment in segments(&xs, values) {
            let drawn = chart.draw_series(LineSeries::new(segment, style))?;
            if !labelled {
                drawn.label(*name).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
                labelled = true;
            }
        }
    }
    if has_data {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(text(palette.ink, 14))
            .background_style(palette.legend.mix(0.85))
            .border_style(palette.border)
            .draw()?;
    } else {
        no_data(area, palette)?;
    }
    Ok(())
}

/// Runs of consecutive present values, as (x, y) points.
fn segments(xs: &[f64], values: &[Option<f64>]) -> Vec<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    let mut run = Vec::new();
    for (x, value) in xs.iter().zip(values) {
        match value {
            Some(y) => run.push((*x, *y)),
            None if !run.is_empty() => out.push(std::mem::take(&mut run)),
            None => {}
        }
    }
    if !run.is_empty() {
        out.push(run);
    }
    // A single point draws nothing as a line: give it a short flat stroke.
    for run in &mut out {
        if run.len() == 1 {
            let (x, y) = run[0];
            run.insert(0, (x - 0.5, y));
        }
    }
    out
}

/// p50 and p95 latency per model, two bars each.
fn bars<B: DrawingBackend>(
    area: &DrawingArea<B, Shift>,
    history: &History,
    palette: &Palette,
) -> Drawn<B> {
    let models: Vec<_> = history
        .models
        .iter()
        .filter(|m| m.p50_ms.is_some())
        .collect();
    let n = models.len().max(1) as f64;
    let top = models
        .iter()
        .filter_map(|m| m.p95_ms)
        .fold(0.0f64, f64::max);
    let y_max = if top > 0.0 { nice(top * 1.15) } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(Chart::Models.title(), text(palette.ink, 24))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..n, 0.0..y_max)?;
    let names: Vec<String> = models.iter().map(|m| short(&m.model)).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc("latency (ms)")
        .label_style(text(palette.ink, 14))
        .axis_desc_style(text(palette.ink, 16))
        .axis_style(palette.axis)
        .bold_line_style(palette.grid)
        .light_line_style(palette.grid.mix(0.5))
        // One light line between grid lines: enough to read values, and few
        // elements to draw (a webview repaints the charts every two seconds).
        .max_light_lines(1)
        .x_labels(0)
        .y_labels(6)
        .y_label_formatter(&|y| number_label(*y))
        .draw()?;
    let value_style = text(palette.ink, 13).pos(Pos::new(HPos::Center, VPos::Bottom));
    let name_style = text(palette.ink, 14).pos(Pos::new(HPos::Center, VPos::Top));
    for (series, label) in ["p50", "p95"].into_iter().enumerate() {
        let pick =
            |m: &&crate::metrics::ModelSummary| if series == 0 { m.p50_ms } else { m.p95_ms };
        let color = palette.series[series];
        let offset = series as f64 * 0.4;
        let drawn = chart.draw_series(models.iter().enumerate().filter_map(|(i, m)| {
            let v = pick(m)?;
            let x0 = i as f64 + 0.1 + offset;
            Some(Rectangle::new([(x0, 0.0), (x0 + 0.38, v)], color.filled()))
        }))?;
        drawn
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
        chart.draw_series(models.iter().enumerate().filter_map(|(i, m)| {
            let v = pick(m)?;
            Some(Text::new(
                number_label(v),
                (i as f64 + 0.29 + offset, v),
                value_style.clone(),
            ))
        }))?;
    }
    // Model names under the axis, centred under their bars: outside the plotting
    // area, so placed in the panel's own pixels.
    let (xs, ys) = chart.plotting_area().get_pixel_range();
    let base = area.get_base_pixel();
    let width = f64::from(xs.end - xs.start);
    for (i, name) in names.iter().enumerate() {
        let x = xs.start + ((i as f64 + 0.5) / n * width) as i32 - base.0;
        let y = ys.end + 6 - base.1;
        area.draw(&Text::new(name.clone(), (x, y), name_style.clone()))?;
    }
    if models.is_empty() {
        no_data(area, palette)?;
    } else {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(text(palette.ink, 14))
            .background_style(palette.legend.mix(0.85))
            .border_style(palette.border)
            .draw()?;
    }
    Ok(())
}

/// The window's totals as text.
fn draw_summary<B: DrawingBackend>(area: &DrawingArea<B, Shift>, history: &History) -> Drawn<B> {
    let total = crate::metrics::total(&history.points);
    let secs = history.points.len() as u64 * history.step_s.max(1);
    let pct = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{:.1} %", v * 100.0));
    let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{} ms", number_label(v)));
    let lines = [
        format!(
            "Window: {}",
            humantime::format_duration(std::time::Duration::from_secs(secs))
        ),
        format!(
            "Requests: {} ({:.1}/s)",
            total.requests,
            total.requests as f64 / secs.max(1) as f64
        ),
        format!("Average latency: {}", ms(total.mean_ms)),
        format!(
            "Worst p95 / p99 in an interval: {} / {}",
            ms(total.p95_ms),
            ms(total.p99_ms)
        ),
        format!("Error rate: {}", pct(total.error_rate())),
        format!("Cache hit rate: {}", pct(total.hit_rate())),
        format!("Cold starts: {}", total.cold_starts),
    ];
    area.draw(&Text::new("Summary", (24, 16), (FAMILY, 24).into_font()))?;
    for (i, line) in lines.iter().enumerate() {
        area.draw(&Text::new(
            line.clone(),
            (32, 64 + 34 * i as i32),
            (FAMILY, 20).into_font(),
        ))?;
    }
    Ok(())
}

/// Text in the bundled font.
fn text(color: RGBColor, size: u32) -> TextStyle<'static> {
    TextStyle {
        color: color.to_backend_color(),
        ..TextStyle::from((FAMILY, size).into_font())
    }
}

fn no_data<B: DrawingBackend>(area: &DrawingArea<B, Shift>, palette: &Palette) -> Drawn<B> {
    let (w, h) = area.dim_in_pixel();
    let style = text(palette.muted, 18).pos(Pos::new(HPos::Center, VPos::Center));
    area.draw(&Text::new(
        "no traffic yet",
        (w as i32 / 2, h as i32 / 2),
        style,
    ))
}

/// A round upper bound at or above `v` (1, 2, 2.5 or 5 times a power of ten).
fn nice(v: f64) -> f64 {
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * magnitude)
}

fn number_label(v: f64) -> String {
    if v >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// `-45` as `-45s`, `-90` as `-1m30s`, `-120` as `-2m`, and hours and minutes
/// (`-2h`, `-1h30`) on spans over two hours. Never rounds a tick to a label it
/// is not (`-0m` for half a minute).
fn time_label(x: f64, span: f64) -> String {
    let ago = (-x).max(0.0).round() as u64;
    let (hours, minutes, seconds) = (ago / 3600, (ago % 3600) / 60, ago % 60);
    if ago == 0 {
        "now".to_owned()
    } else if span > 7200.0 && ago >= 3600 {
        if minutes == 0 {
            format!("-{hours}h")
        } else {
            format!("-{hours}h{minutes:02}")
        }
    } else if ago < 60 {
        format!("-{ago}s")
    } else if seconds == 0 {
        format!("-{}m", ago / 60)
    } else {
        format!("-{}m{seconds:02}s", ago / 60)
    }
}

/// A model name short enough for an axis label.
fn short(name: &str) -> String {
    let name = name.strip_suffix(":latest").unwrap_or(name);
    if name.chars().count() > 18 {
        let cut: String = name.chars().take(17).collect();
        format!("{cut}…")
    } else {
        name.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ModelSummary;

    /// A fixed history: 120 s of traffic with a quiet gap and a slow patch.
    fn history() -> History {
        let points = (0..120)
            .map(|i| {
                let quiet = (40..50).contains(&i);
                Point {
                    t: 1_700_000_000 + i,
                    requests: if quiet { 0 } else { 20 + i % 7 },
                    errors: u64::from(i % 30 == 0),
                    hits: if quiet { 0 } else { 14 },
                    misses: if quiet { 0 } else { 6 },
                    cold_starts: u64::from(i == 0),
                    p50_ms: (!quiet).then_some(120.0 + (i % 10) as f64),
                    p95_ms: (!quiet)
                        .then_some(300.0 + if (80..90).contains(&i) { 900.0 } else { 0.0 }),
                    p99_ms: (!quiet).then_some(1400.0),
                    mean_ms: (!quiet).then_some(180.0),
                    ttft_p50_ms: (!quiet).then_some(35.0),
                    ttft_p95_ms: (!quiet).then_some(80.0),
                }
            })
            .collect();
        History {
            step_s: 1,
            points,
            models: vec![
                ModelSummary {
                    model: "llama3.2:latest".into(),
                    requests: 2000,
                    cold_starts: 1,
                    p50_ms: Some(125.0),
                    p95_ms: Some(320.0),
                    ttft_p50_ms: Some(35.0),
                    tokens_per_s: Some(42.0),
                },
                ModelSummary {
                    model: "qwen3:0.6b".into(),
                    requests: 400,
                    cold_starts: 2,
                    p50_ms: Some(60.0),
                    p95_ms: Some(150.0),
                    ttft_p50_ms: Some(20.0),
                    tokens_per_s: Some(90.0),
                },
            ],
        }
    }

    fn svg_size(svg: &str) -> (u32, u32) {
        let attr = |name: &str| {
            let start = svg.find(&format!("{name}=\"")).expect(name) + name.len() + 2;
            svg[start..]
                .split('"')
                .next()
                .expect("value")
                .parse()
                .expect("number")
        };
        (attr("width"), attr("height"))
    }

    #[test]
    fn every_chart_renders_as_svg_with_its_title_and_axes() {
        let history = history();
        for chart in Chart::ALL {
            let svg = svg(chart, &history, (800, 400)).expect("drawn");
            assert!(svg.starts_with("<svg"), "{chart:?}");
            assert!(svg.trim_end().ends_with("</svg>"), "{chart:?}");
            assert_eq!(svg_size(&svg), (800, 400), "{chart:?}");
            assert!(svg.contains(chart.title()), "{chart:?} has its title");
            assert!(svg.contains("ms") || chart == Chart::Throughput || chart == Chart::HitRate);
            assert!(!svg.contains("no traffic yet"), "{chart:?}");
        }
        let latency = svg(Chart::Latency, &history, (800, 400)).expect("drawn");
        for label in [
            "p50",
            "p95",
            "p99",
            "latency (ms)",
            "time before the newest point",
        ] {
            assert!(latency.contains(label), "latency chart shows {label}");
        }
        let models = svg(Chart::Models, &history, (800, 400)).expect("drawn");
        assert!(models.contains("llama3.2") && models.contains("qwen3:0.6b"));
    }

    #[test]
    fn an_empty_history_says_so_instead_of_drawing_nothing() {
        let svg = svg(Chart::Latency, &History::default(), (600, 300)).expect("drawn");
        assert!(svg.contains("no traffic yet"));
    }

    #[test]
    fn png_charts_and_the_report_are_valid_images_of_the_right_size() {
        let history = history();
        let check = |bytes: &[u8], size: (u32, u32)| {
            let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
            let reader = decoder.read_info().expect("a valid PNG");
            let info = reader.info();
            assert_eq!((info.width, info.height), size);
        };
        check(
            &png(Chart::Throughput, &history, (640, 360)).expect("drawn"),
            (640, 360),
        );
        let report = report_png(&history, "Warmline report").expect("drawn");
        check(&report, REPORT_SIZE);
        let svg = report_svg(&history, "Warmline report").expect("drawn");
        for chart in Chart::ALL {
            assert!(svg.contains(chart.title()), "the report has {chart:?}");
        }
        assert!(svg.contains("Cache hit rate: 70.0 %"), "summary");
    }

    #[test]
    fn gaps_stay_gaps_and_labels_read_well() {
        let runs = segments(
            &[-3.0, -2.0, -1.0, 0.0],
            &[Some(1.0), None, Some(2.0), Some(3.0)],
        );
        assert_eq!(
            runs,
            vec![
                vec![(-3.5, 1.0), (-3.0, 1.0)],
                vec![(-1.0, 2.0), (0.0, 3.0)]
            ]
        );
        assert_eq!(nice(0.9), 1.0);
        assert_eq!(nice(1320.0), 2000.0);
        assert_eq!(time_label(-90.0, 900.0), "-1m30s");
        assert_eq!(time_label(-120.0, 900.0), "-2m");
        assert_eq!(time_label(-30.0, 900.0), "-30s", "never -0m");
        assert_eq!(time_label(-30.0, 120.0), "-30s");
        assert_eq!(time_label(0.0, 120.0), "now");
        assert_eq!(time_label(-5400.0, 86_400.0), "-1h30");
        assert_eq!(time_label(-7200.0, 86_400.0), "-2h");
        assert_eq!(time_label(-1800.0, 86_400.0), "-30m");
        assert_eq!(short("llama3.2:latest"), "llama3.2");
    }
}
