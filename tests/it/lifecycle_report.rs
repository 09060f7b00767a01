//! The lifecycle's HTML report rendered by headless Chromium, and training past its memory
//! budget stopping with one line before it allocates.

use std::process::Command;

use crate::common::*;

fn chromium() -> &'static str {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {c}")])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return c;
        }
    }
    panic!("no chromium: apt-get install chromium (bash .ci/run installs it)");
}

#[test]
fn the_html_report_renders_its_charts_in_headless_chromium() {
    let reg = TestRegistry::new();
    let csv = iris_csv();
    reg.add_iris_dataset(&csv);
    for extra in [
        &[][..],
        &["--max-depth", "1"][..],
        &["--max-depth", "2"][..],
    ] {
        reg.train_iris_dataset(extra);
    }
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    let out = treeserve(&[
        "report",
        "iris",
        "--registry",
        reg.arg(),
        "--out",
        page.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page must need no network"
    );
    let url = format!("file://{}", page.display());
    let browser = chromium();
    let profile = format!("--user-data-dir={}", dir.path().join("profile").display());
    let base = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        &profile,
    ];
    let dom = Command::new(browser)
        .args(base)
        .args(["--virtual-time-budget=2000", "--dump-dom", &url])
        .output()
        .unwrap();
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    // The script ran after layout and wrote each chart's rendered size and marks.
    assert!(
        dom.contains(r#"data-ready="yes""#),
        "the page's script did not run"
    );
    let charts: Vec<&str> = dom.split("<svg class=\"chart\"").skip(1).collect();
    assert_eq!(charts.len(), 2);
    for c in &charts {
        let rendered = c
            .split("data-rendered=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let (w, h) = rendered.split_once('x').unwrap();
        assert!(
            w.parse::<u32>().unwrap() >= 600 && h.parse::<u32>().unwrap() >= 280,
            "{rendered}"
        );
        let marks: usize = c
            .split("data-marks=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(marks >= 6, "{marks} marks");
    }
    assert_eq!(dom.matches("<table class=\"confusion\"").count(), 3);
    assert!(dom.contains("Gate decisions") && dom.contains("Dataset iris"));
    // And a screenshot is taken (that it exists and is a PNG, not what its pixels are).
    let shot = dir.path().join("report.png");
    let out = Command::new(browser)
        .args(base)
        .arg(format!("--screenshot={}", shot.display()))
        .args(["--window-size=1280,2400", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn training_past_the_memory_budget_stops_with_one_line_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("m.tsm");
    let one_line = |out: &std::process::Output| {
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(
            err.contains("training would need about") && err.contains("--max-memory"),
            "{err}"
        );
        assert!(!out_file.exists());
    };
    // A budget IRIS does not fit in.
    let csv = iris_csv();
    one_line(&treeserve(&[
        "train",
        "--data",
        csv.to_str().unwrap(),
        "--max-memory",
        "1K",
        "--output",
        out_file.to_str().unwrap(),
    ]));
    // 10,000 classes (cost grows with classes²): refused under the default budget
    // instead of an allocation failure minutes later.
    let many = dir.path().join("many.csv");
    let mut body = String::from("a,b,label\n");
    for c in 0..10_000 {
        for r in 0..2 {
            body += &format!("{}.{r},{}.5,c{c}\n", c % 97, c % 89);
        }
    }
    std::fs::write(&many, body).unwrap();
    one_line(&treeserve(&[
        "train",
        "--data",
        many.to_str().unwrap(),
        "--target",
        "label",
        "--output",
        out_file.to_str().unwrap(),
    ]));
    // Within the budget it trains.
    treeserve_ok(&[
        "train",
        "--data",
        csv.to_str().unwrap(),
        "--max-memory",
        "64M",
        "--output",
        out_file.to_str().unwrap(),
    ]);
    assert!(out_file.is_file());
}
