//! Connection handling: the request-head timeout, idle keep-alive connections, graceful
//! shutdown, and request metrics under concurrency.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

fn post_raw(s: &mut TcpStream) -> String {
    let req = format!(
        "POST /score HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{VERSICOLOR}",
        VERSICOLOR.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn idle_keep_alive_connections_are_closed_after_the_head_timeout() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &["--header-read-timeout", "400ms"]);
    let mut s = TcpStream::connect(app.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Requests keep the connection alive past the timeout as long as each head comes in time.
    for _ in 0..4 {
        assert!(post_raw(&mut s).starts_with("HTTP/1.1 200"));
        std::thread::sleep(Duration::from_millis(200));
    }
    // Then silence: the server closes it.
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "expected EOF");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(150) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[test]
fn sigterm_drains_and_exits_promptly() {
    let reg = TestRegistry::with_iris();
    let (mut child, addr) = start(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--registry",
            reg.arg(),
            "--shutdown-grace",
            "20s",
        ],
        Stdio::null(),
    );
    // An idle keep-alive connection must not hold the shutdown for the grace period.
    let mut idle = TcpStream::connect(addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert!(post_raw(&mut idle).starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = loop {
        if let Some(code) = child.try_wait().unwrap() {
            break code;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "still running");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(code.success(), "{code:?}");
    assert!(TcpStream::connect(addr).is_err(), "still accepting");
}

#[tokio::test]
async fn shutdown_delay_answers_not_ready_while_still_serving() {
    let reg = TestRegistry::with_iris();
    let mut app = App::spawn(reg.path(), &["--shutdown-delay", "1s"]);
    assert_eq!(app.get("/health/ready").await.status(), 200);
    let started = Instant::now();
    app.signal("TERM");
    wait_for(Duration::from_millis(500), || async {
        app.get("/health/ready").await.status() == 503
    })
    .await;
    let ready = app.get("/health/ready").await;
    assert_error(ready, 503, "shutting_down", "shutting down").await;
    // Still serving while a load balancer drains it.
    assert_eq!(app.post("/score", VERSICOLOR).await.status(), 200);
    assert!(app.is_running());
    while app.is_running() {
        assert!(started.elapsed() < Duration::from_secs(5), "still running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn request_metrics_add_up_across_threads() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &["--workers", "4"]);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let client = crate::common::http_client().no_proxy().build().unwrap();
            let url = app.url("/score");
            tokio::spawn(async move {
                for _ in 0..50 {
                    let r = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(VERSICOLOR)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains(
            r#"treeserve_http_requests_total{method="POST",route="/score",status="200"} 400"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"treeserve_http_request_duration_seconds_count{route="/score"} 400"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"treeserve_http_request_duration_seconds_bucket{route="/score",le="+Inf"} 400"#
        ),
        "{text}"
    );
    let sum: f64 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix(r#"treeserve_http_request_duration_seconds_sum{route="/score"} "#)
        })
        .unwrap()
        .parse()
        .unwrap();
    assert!(sum > 0.0 && sum < 10.0, "{sum}");
}

#[test]
fn a_slow_body_gets_408_within_the_body_timeout() {
    let reg = TestRegistry::with_iris();
    let mut app = App::spawn(
        reg.path(),
        &[
            "--body-read-timeout",
            "300ms",
            "--header-read-timeout",
            "10s",
        ],
    );
    let started = Instant::now();
    let raw = app.raw(
        b"POST /score HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"SepalL",
        Duration::from_secs(10),
    );
    let waited = started.elapsed();
    assert!(raw.starts_with("HTTP/1.1 408"), "{raw}");
    assert!(raw.contains("body_timeout"), "{raw}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert!(app.is_running());
}

/// The library's entry point, as an embedding program (or a benchmark) uses it: build on
/// port 0, serve, follow the registry, stop when the shutdown future resolves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_library_entry_point_serves_follows_and_stops() {
    let reg = TestRegistry::with_iris();
    let mut config = treeserve::ServeConfig::new(reg.path());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.poll_interval = Some(Duration::ZERO);
    config.no_watch = true;
    let app = treeserve::Application::build(config).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    assert!(app.state().fleet().ready(), "loaded before build returns");
    let reloader = app.reloader();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let client = crate::common::http_client().build().unwrap();
    let score = || async {
        client
            .post(format!("{base}/score"))
            .body(VERSICOLOR)
            .send()
            .await
            .unwrap()
    };
    let resp = score().await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-model-version"], "1");
    // Neither file events nor polling: only an explicit reload picks up version 2.
    let bytes = std::fs::read(reg.path().join("iris/versions/1/model.tsm")).unwrap();
    let registry = treeserve::registry::FsRegistry::new(reg.path());
    use treeserve::registry::Registry;
    let v2 = registry.publish("iris", &bytes).unwrap();
    registry.set_alias("iris", "production", v2).unwrap();
    assert_eq!(score().await.headers()["x-model-version"], "1");
    reloader.reload();
    wait_for(Duration::from_secs(5), || async {
        score().await.headers()["x-model-version"] == "2"
    })
    .await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("stops")
        .unwrap();
    assert!(
        client
            .get(format!("{base}/health/live"))
            .send()
            .await
            .is_err()
    );
}
