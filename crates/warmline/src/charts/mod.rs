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
//!
//! Where it sits: off the request path. `GET /warmline/charts/<name>.svg` (the
//! admin routes) and the desktop app's events call [`svg_themed`] with the
//! gateway's current history; `warmline report` calls [`report_png`] or
//! [`report_svg`] with a history fetched from a gateway or built by a benchmark.
//! Drawing is synchronous CPU work on a history the caller already holds.
//!
//! Design decisions:
//! - the x axis is relative ("-5m", "now") rather than wall-clock time, so a chart
//!   needs no time zone and reads the same in a report produced later;
//! - a y axis is rounded up to a "nice" bound (1, 2, 2.5 or 5 times a power of
//!   ten) above the data, except shares, which stop at 100 %;
//! - a chart with nothing to show says "no traffic yet" instead of drawing empty
//!   axes that look like a fault.
//!
//! Errors: every public function returns [`ChartError`] rather than panicking; it
//! fails only when plotters or the PNG encoder report an error.

use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::metrics::{History, Point};

/// The bundled font (a DejaVu Sans subset), compiled into the binary.
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
/// The family name [`FONT`] is registered under; every text style uses it.
const FAMILY: &str = "sans-serif";

/// Which chart. Each has a title ([`Chart::title`]) and a URL name
/// ([`Chart::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chart {
    /// Latency p50, p95 and p99 per interval, in milliseconds.
    Latency,
    /// Time to first token (first body byte) p50 and p95 per interval.
    Ttft,
    /// Requests, errors and cold starts per second.
    Throughput,
    /// Cache hits (and coalesced joins) as a share of cache lookups, in percent.
    HitRate,
    /// p50 and p95 latency per model, as bars (from the history's model
    /// summaries, not its points).
    Models,
}

impl Chart {
    /// Every chart, in the order the dashboard and the report show them.
    pub const ALL: [Chart; 5] = [
        Chart::Latency,
        Chart::Ttft,
        Chart::Throughput,
        Chart::HitRate,
        Chart::Models,
    ];

    /// The caption drawn above the chart (and in the report).
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

    /// The chart whose [`Chart::name`] is `name` (exact, lower case); `None` for
    /// anything else, which the admin route answers with 404.
    pub fn from_name(name: &str) -> Option<Chart> {
        Chart::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// Light (dark ink on white) or dark (light ink on the dashboard's dark card).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Theme {
    /// Dark ink on white: reports, and the default.
    #[default]
    Light,
    /// Light ink on the dashboard's dark card colour (`?theme=dark`).
    Dark,
}

/// The colours of one theme.
struct Palette {
    /// The whole image's fill.
    background: RGBColor,
    /// Titles, labels and legend text.
    ink: RGBColor,
    /// The "no traffic yet" notice.
    muted: RGBColor,
    /// Grid lines (light lines are drawn at half this colour's opacity).
    grid: RGBColor,
    axis: RGBColor,
    /// The legend box's fill and border.
    legend: RGBColor,
    border: RGBColor,
    /// Line and bar colours, used in order; a fifth series would reuse the first.
    series: [RGBColor; 4],
}

impl Theme {
    /// This theme's colours.
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

/// Why a chart could not be drawn: the drawing backend's or the PNG encoder's
/// error, as text (it is only ever shown, never matched on).
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the chart: {0}")]
pub struct ChartError(String);

/// Registers the bundled font with plotters, once per process; every entry
/// point calls it first. A font that fails to load is logged, not fatal: text
/// then fails to draw and the chart function returns a [`ChartError`].
fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_err() {
            tracing::error!("the bundled chart font is not a valid font");
        }
    });
}

/// One chart as an SVG document of `size` (width, height) pixels, light theme.
/// An empty history gives axes and a "no traffic yet" notice, not an error.
pub fn svg(chart: Chart, history: &History, size: (u32, u32)) -> Result<String, ChartError> {
    svg_themed(chart, history, size, Theme::Light)
}

/// [`svg`] in a given theme: what the dashboard and the admin route use.
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

/// One chart as a PNG image (8-bit RGB) of `size` pixels, light theme. Needs a
/// `width × height × 3` byte buffer while drawing.
pub fn png(chart: Chart, history: &History, size: (u32, u32)) -> Result<Vec<u8>, ChartError> {
    let palette = Theme::Light.palette();
    bitmap(size, |root| {
        root.fill(&palette.background).map_err(err)?;
        draw(chart, root, history, &palette).map_err(err)
    })
}

/// Every chart and a summary on one image of [`REPORT_SIZE`], `title` above
/// them: a 3 × 2 grid of the five charts of [`Chart::ALL`] and the window's totals
/// (requests, mean latency, worst p95/p99, error and hit rates, cold starts).
/// Always light.
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

/// [`report_svg`] as a PNG image (what `warmline report` writes for a `.png`).
pub fn report_png(history: &History, title: &str) -> Result<Vec<u8>, ChartError> {
    bitmap(REPORT_SIZE, |root| {
        draw_report(root, history, title).map_err(err)
    })
}

/// The report's size in pixels.
pub const REPORT_SIZE: (u32, u32) = (1800, 1500);

/// What a drawing step returns: plotters' error for backend `B`, converted to a
/// [`ChartError`] at the public boundary.
type Drawn<B> = Result<(), DrawingAreaErrorKind<<B as DrawingBackend>::ErrorType>>;

/// Any displayable error as a [`ChartError`].
fn err(e: impl std::fmt::Display) -> ChartError {
    ChartError(e.to_string())
}

/// Draws with `draw` into an RGB buffer of `size` and encodes it as PNG.
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

/// The report's layout: `title` on top, then the five charts and the summary
/// in a grid of three rows and two columns.
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

/// Draws `chart` of `history` filling `area`. Per-second rates divide by the
/// history's step, so a per-minute history shows the same units.
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
///
/// `series` are (legend name, one value per point); `None` values break the line.
/// `ceiling` fixes the top of the y axis (for shares); otherwise it is a nice
/// bound 10 % above the highest value. With no values at all, the axes are drawn
/// with a "no traffic yet" notice instead of a legend.
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

/// Runs of consecutive present values, as (x, y) points: one line segment per
/// run, so a missing value leaves a gap. A run of one point gets a second point
/// half a step to its left, since a one-point line draws nothing.
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

/// p50 and p95 latency per model, two bars each, each bar labelled with its
/// value and each pair with the model's shortened name. Models without a p50
/// are left out; with none left, the axes carry the "no traffic yet" notice.
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

/// The window's totals as text (the report's sixth panel), from
/// `metrics::total` over the history's points; unknown values show as `-`.
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

/// "no traffic yet", centred in `area`.
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
/// Only called with a positive `v` (callers fall back to 1.0 otherwise).
fn nice(v: f64) -> f64 {
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * magnitude)
}

/// A value with as many decimals as it needs to read well: none from 100 up
/// (and for 0), one from 10, two below.
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
mod tests;
