use super::*;

#[test]
fn repeating_bodies_have_the_requested_repeat_share() {
    let bodies = repeating(0.7, 10, 42, |p| Bytes::from(p.to_owned()));
    let texts: Vec<Bytes> = (0..10_000).map(|i| bodies.get(i)).collect();
    let recurring = texts.iter().filter(|b| b.starts_with(b"Recurring")).count();
    assert!((6_800..=7_200).contains(&recurring), "{recurring}");
    let distinct: std::collections::HashSet<&Bytes> = texts.iter().collect();
    assert_eq!(distinct.len(), 10 + (10_000 - recurring));
    assert_eq!(bodies.get(5), bodies.get(5), "reproducible");
}

/// A long run keeps one second's histograms, not one per second; quiet
/// seconds are zeros, and every second is stamped from the start.
#[test]
fn seconds_close_into_points_as_the_run_moves_on() {
    let mut seconds = Seconds::default();
    for second in [0, 0, 1, 4, 4, 3] {
        let acc = seconds.at(second);
        acc.requests += 1;
    }
    assert_eq!(seconds.closed.len(), 4, "0, 1 and the quiet 2 and 3 closed");
    let points = seconds.points(1_000);
    let got: Vec<(u64, u64)> = points.iter().map(|p| (p.t, p.requests)).collect();
    assert_eq!(
        got,
        [(1_000, 2), (1_001, 1), (1_002, 0), (1_003, 0), (1_004, 3)],
        "a late completion joins the open second"
    );
}

#[test]
fn a_stream_is_complete_only_with_its_end_marker() {
    let sse = "text/event-stream";
    assert!(completed(sse, b"data: {\"x\":1}\n\ndata: [DONE]\n\n"));
    assert!(!completed(sse, b"data: {\"x\":1}\n\n"), "cut off");
    let nd = "application/x-ndjson";
    assert!(completed(
        nd,
        b"{\"a\":1}\n{\"done\":true,\"eval_count\":3}\n"
    ));
    assert!(!completed(nd, b"{\"a\":1}\n"), "cut off");
    assert!(!completed(
        nd,
        b"{\"a\":1}\n{\"error\":\"upstream broke\"}\n"
    ));
    assert!(completed("application/json", b"{\"x\":1}"));
}

#[test]
fn percentiles_of_an_empty_histogram_are_zero() {
    let h = Histogram::<u64>::new_with_bounds(1, 1000, 3).expect("histogram");
    assert_eq!(Percentiles::of(&h), Percentiles::default());
}

#[tokio::test]
async fn invalid_settings_are_refused() {
    let config = BenchConfig {
        url: "http://127.0.0.1:9/".into(),
        also: Vec::new(),
        method: reqwest::Method::GET,
        bodies: Bodies::List(vec![Bytes::new()]),
        mode: Mode::OpenLoop { rate: 0.0 },
        duration: Duration::from_secs(1),
        max_requests: None,
        warmup: Duration::ZERO,
        timeout: Duration::from_secs(1),
        max_in_flight: 10,
        headers: http::HeaderMap::new(),
        model: None,
    };
    let err = run(config, Arc::default()).await.expect_err("rate 0");
    assert!(err.to_string().contains("rate must be positive"));
}
