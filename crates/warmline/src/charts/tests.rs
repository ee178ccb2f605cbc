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
                p95_ms: (!quiet).then_some(300.0 + if (80..90).contains(&i) { 900.0 } else { 0.0 }),
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
