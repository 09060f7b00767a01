//! TLS (`--tls-cert`, `--tls-key`) with a CA and certificates made by openssl: HTTPS for
//! curl, Python and reqwest, HTTP/2 or HTTP/1.1 by ALPN on one port, gRPC over TLS with
//! tritonclient, files that do not load refused in one line, and the certificate rotated
//! on disk under load with no failed request.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::common::*;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`ca.pem`) in `dir`.
fn ca(dir: &Path) -> PathBuf {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=treeserve test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    );
    dir.join("ca.pem")
}

/// A server certificate for 127.0.0.1 and localhost, common name `cn`, signed by the CA:
/// `{cn}.pem` and `{cn}.key`.
fn server_cert(dir: &Path, cn: &str) -> (PathBuf, PathBuf) {
    let ext = dir.join("ext.cnf");
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         extendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let (key, csr, pem) = (
        format!("{cn}.key"),
        format!("{cn}.csr"),
        format!("{cn}.pem"),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    (dir.join(pem), dir.join(key))
}

/// The served certificate's common name, as a fresh handshake sees it.
fn served_cn(addr: std::net::SocketAddr) -> String {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "localhost",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("subject=").map(|s| s.trim().to_owned()))
        .unwrap_or_default()
}

fn https_client(ca: &Path) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    http_client()
        .add_root_certificate(ca)
        .no_proxy()
        .build()
        .unwrap()
}

/// A registry, a CA and certificate `a` copied to `server.pem`/`server.key` (the files
/// the server is given, so that a test can replace them).
fn setup() -> (TestRegistry, PathBuf, PathBuf, PathBuf) {
    let reg = TestRegistry::with_iris();
    let dir = reg.path().join("tls");
    std::fs::create_dir_all(&dir).unwrap();
    let ca = ca(&dir);
    let (pem, key) = server_cert(&dir, "treeserve-a");
    let (cert_file, key_file) = (dir.join("server.pem"), dir.join("server.key"));
    std::fs::copy(pem, &cert_file).unwrap();
    std::fs::copy(key, &key_file).unwrap();
    (reg, ca, cert_file, key_file)
}

fn tls_args<'a>(cert: &'a Path, key: &'a Path) -> [&'a str; 4] {
    [
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]
}

#[tokio::test]
async fn https_by_alpn_for_curl_python_and_rust_and_grpc_over_tls() {
    let (reg, ca, cert, key) = setup();
    let mut args = vec!["--grpc-listen", "127.0.0.1:0"];
    args.extend(tls_args(&cert, &key));
    let app = App::spawn(reg.path(), &args);
    let port = app.addr.port();

    // reqwest offers h2 and gets it.
    let client = https_client(&ca);
    let url = format!("https://localhost:{port}/score");
    let resp = client
        .post(&url)
        .header("content-type", "application/json")
        .body(VERSICOLOR)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);

    let ca_arg = ca.to_str().unwrap().to_owned();
    let (curl_ca, live) = (
        ca_arg.clone(),
        format!("https://localhost:{port}/health/live"),
    );
    let curl = move |version: &str| {
        let out = Command::new("curl")
            .args(["-sS", "-i", "--cacert", &curl_ca, version, &live])
            .output()
            .expect("curl is installed (.ci/run installs it)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let h2 = curl("--http2");
    assert!(h2.starts_with("HTTP/2 200"), "{h2}");
    let h1 = curl("--http1.1");
    assert!(h1.starts_with("HTTP/1.1 200"), "{h1}");

    // Plain HTTP on the TLS port gets nothing served.
    let plain = app.raw(
        b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(!plain.contains("200 OK"), "{plain}");
    // An unknown CA: the handshake fails for the client.
    assert!(
        http_client()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("https://localhost:{port}/health/live"))
            .send()
            .await
            .is_err()
    );

    // Python's ssl (urllib) and tritonclient.grpc over TLS.
    let bin = std::env::var_os("TREESERVE_PYENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/pyenv"))
        .join("bin/python");
    assert!(
        bin.exists(),
        "no Python venv at {}: run `bash .ci/run`",
        bin.display()
    );
    let grpc = format!("localhost:{}", app.grpc.unwrap().port());
    let script = format!(
        r#"
import json, ssl, urllib.request
import numpy as np
import tritonclient.grpc as grpcclient
ctx = ssl.create_default_context(cafile={ca:?})
req = urllib.request.Request("https://localhost:{port}/score", data=json.dumps({row}).encode(),
                             headers={{"Content-Type": "application/json"}})
with urllib.request.urlopen(req, context=ctx) as r:
    assert r.status == 200
    want = json.load(r)["output"]
c = grpcclient.InferenceServerClient(url={grpc:?}, ssl=True, root_certificates={ca:?})
assert c.is_server_live()
inp = grpcclient.InferInput("input", [1, 4], "FP64")
inp.set_data_from_numpy(np.array([[6.6, 3, 4.4, 1.4]]))
got = c.infer("iris", [inp]).as_numpy("label")[0].decode()
assert got == next(iter(want.values())), (got, want)
print("python over TLS: ok")
"#,
        ca = ca_arg,
        row = VERSICOLOR,
    );
    let out = Command::new(bin).args(["-c", &script]).output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn files_that_do_not_load_are_refused_in_one_line() {
    let (reg, _ca, cert, key) = setup();
    let (other, other_key) = server_cert(&reg.path().join("tls"), "treeserve-b");
    let garbage = reg.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let missing = reg.path().join("missing.pem");
    for (c, k, needle) in [
        (&garbage, &key, "no certificate"),
        (&cert, &garbage, "not a PEM private key"),
        (&cert, &other_key, "does not match"),
        (&missing, &key, "missing.pem"),
        (&other, &missing, "missing.pem"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_treeserve"))
            .args(["serve", "--listen", "127.0.0.1:0", "--registry", reg.arg()])
            .args(tls_args(c, k))
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{c:?} {k:?} started");
        assert!(err.contains(needle), "{needle:?} not in {err}");
        assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    }
    // Either flag alone is a usage error.
    let out = treeserve(&[
        "serve",
        "--registry",
        reg.arg(),
        "--tls-cert",
        cert.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key"));
}

#[tokio::test]
async fn a_certificate_rotated_on_disk_is_served_without_a_failed_request() {
    let (reg, ca, cert, key) = setup();
    let dir = reg.path().join("tls");
    let app = App::spawn(reg.path(), &tls_args(&cert, &key));
    let addr = app.addr;
    assert!(
        served_cn(addr).contains("treeserve-a"),
        "{}",
        served_cn(addr)
    );

    // Load: keep-alive clients, and clients opening a connection per request (each a new
    // handshake), all checking every answer.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let url = format!("https://localhost:{}/score", addr.port());
    let mut load = Vec::new();
    for fresh in [false, false, true, true] {
        let (stop, ok, failed, url, ca) = (
            stop.clone(),
            ok.clone(),
            failed.clone(),
            url.clone(),
            ca.clone(),
        );
        load.push(tokio::spawn(async move {
            let mut client = https_client(&ca);
            while !stop.load(Ordering::Relaxed) {
                if fresh {
                    client = https_client(&ca);
                }
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(SETOSA)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    wait_for(Duration::from_secs(20), || {
        let ok = ok.clone();
        async move { ok.load(Ordering::Relaxed) > 50 }
    })
    .await;

    // A half-written rotation (a key that does not match yet) keeps the old pair.
    let (b_pem, b_key) = server_cert(&dir, "treeserve-b");
    let tmp = dir.join("server.pem.tmp");
    std::fs::copy(&b_pem, &tmp).unwrap();
    std::fs::rename(&tmp, &cert).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        served_cn(addr).contains("treeserve-a"),
        "a mismatched pair was served"
    );
    // The key follows: the new pair is served to new handshakes.
    std::fs::copy(&b_key, dir.join("server.key.tmp")).unwrap();
    std::fs::rename(dir.join("server.key.tmp"), &key).unwrap();
    wait_for(Duration::from_secs(20), || async move {
        served_cn(addr).contains("treeserve-b")
    })
    .await;
    let before = ok.load(Ordering::Relaxed);
    wait_for(Duration::from_secs(20), || {
        let ok = ok.clone();
        async move { ok.load(Ordering::Relaxed) > before + 50 }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed across the rotation"
    );
}
