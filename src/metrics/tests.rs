//! Unit tests of the metrics: exposition, sharding, in-flight, histograms, docs.

use super::*;

#[test]
fn every_metric_and_reason_is_documented() {
    let doc = include_str!("../../docs/metrics.md");
    for name in NAMES {
        assert!(
            doc.contains(&format!("| `{NAMESPACE}_{name}` |")),
            "docs/metrics.md has no row for {NAMESPACE}_{name}"
        );
    }
    let row = doc
        .lines()
        .find(|l| l.starts_with(&format!("| `{NAMESPACE}_{REJECTED_REQUESTS_TOTAL}`")))
        .expect("rejected row");
    for t in ErrorType::ALL {
        // Server errors (500) are not rejections: they are not counted.
        if matches!(t, ErrorType::Internal | ErrorType::VersionUnavailable) {
            continue;
        }
        assert!(
            row.contains(&format!("`{}`", t.as_str())),
            "{t:?} undocumented"
        );
    }
}

fn line(m: &Metrics, prefix: &str) -> String {
    let text = String::from_utf8(m.render()).unwrap();
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
        .to_owned()
}

#[test]
fn in_flight_is_started_minus_answered_and_abandoned_across_threads() {
    let m = Arc::new(Metrics::new());
    // Three start here; one ends on another thread, one is abandoned there.
    (0..3).for_each(|_| m.request_started());
    let other = m.clone();
    std::thread::spawn(move || {
        other.request_finished(Route::Score, &http::Method::POST, 200, 0.000_2);
        other.request_abandoned();
    })
    .join()
    .unwrap();
    assert_eq!(
        line(&m, "treeserve_http_requests_in_flight "),
        "treeserve_http_requests_in_flight 1"
    );
    m.request_finished(Route::Score, &http::Method::POST, 503, 0.000_2);
    assert_eq!(
        line(&m, "treeserve_http_requests_in_flight "),
        "treeserve_http_requests_in_flight 0"
    );
}

#[test]
fn histogram_counts_include_values_above_every_bound() {
    let m = Metrics::new();
    for seconds in [0.000_005, 0.000_3, 60.0] {
        m.request_started();
        m.request_finished(Route::Score, &http::Method::POST, 200, seconds);
    }
    let d = "treeserve_http_request_duration_seconds";
    assert_eq!(
        line(
            &m,
            &format!("{d}_bucket{{route=\"/score\",le=\"0.00001\"}}")
        ),
        format!("{d}_bucket{{route=\"/score\",le=\"0.00001\"}} 1")
    );
    assert_eq!(
        line(&m, &format!("{d}_bucket{{route=\"/score\",le=\"10\"}}")),
        format!("{d}_bucket{{route=\"/score\",le=\"10\"}} 2")
    );
    assert_eq!(
        line(&m, &format!("{d}_bucket{{route=\"/score\",le=\"+Inf\"}}")),
        format!("{d}_bucket{{route=\"/score\",le=\"+Inf\"}} 3")
    );
    assert_eq!(
        line(&m, &format!("{d}_count{{route=\"/score\"}}")),
        format!("{d}_count{{route=\"/score\"}} 3")
    );
    for rows in [1, 100, 20_000] {
        m.observe_batch(rows);
    }
    assert_eq!(
        line(&m, "treeserve_batch_rows_bucket{le=\"10000\"}"),
        "treeserve_batch_rows_bucket{le=\"10000\"} 2"
    );
    assert_eq!(
        line(&m, "treeserve_batch_rows_count"),
        "treeserve_batch_rows_count 3"
    );
    assert_eq!(
        line(&m, "treeserve_batch_rows_sum"),
        "treeserve_batch_rows_sum 20101"
    );
}
