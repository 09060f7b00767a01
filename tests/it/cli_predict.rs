//! `treeserve predict`: a CSV scored in order on every thread, blocks cut only between
//! records, and `treeserve health` finding the port a server was told to listen on.

use crate::common::*;

#[test]
fn predict_scores_a_csv_in_order_on_every_thread() {
    let reg = TestRegistry::with_iris();
    let out = reg.path().join("out.csv");
    let csv = iris_csv();
    let run = |extra: &[&str], out: &std::path::Path| {
        let mut args = vec![
            "predict",
            "--registry",
            reg.arg(),
            "--input",
            csv.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        treeserve(&args)
    };
    let one = run(&["--threads", "1", "--probabilities"], &out);
    assert!(one.status.success(), "{one:?}");
    assert!(String::from_utf8_lossy(&one.stderr).contains("predicted 150 rows"));
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "Id,predicted_species,p_Iris-setosa,p_Iris-versicolor,p_Iris-virginica"
    );
    // Every row agrees with the model, in input order.
    let bytes = std::fs::read(reg.path().join("iris/versions/1/model.tsm")).unwrap();
    let model = treeserve::Model::from_bytes(&bytes, 1, &Default::default()).unwrap();
    let data = std::fs::read_to_string(iris_csv()).unwrap();
    for (row, line) in data.lines().skip(1).zip(lines) {
        let cells: Vec<&str> = row.split(',').collect();
        let values: Vec<f64> = cells[1..5].iter().map(|c| c.parse().unwrap()).collect();
        let got: Vec<&str> = line.split(',').collect();
        assert_eq!(got[0], cells[0], "id");
        assert_eq!(
            got[1],
            model.classes()[model.predict(&values)],
            "row {}",
            cells[0]
        );
    }
    // Many threads and tiny chunks give the same file.
    let many = reg.path().join("many.csv");
    assert!(
        run(
            &["--threads", "4", "--chunk-rows", "7", "--probabilities"],
            &many
        )
        .status
        .success()
    );
    assert_eq!(std::fs::read_to_string(&many).unwrap(), text);

    // Bad input: a clear error, exit 1, no output file left behind.
    let bad = reg.path().join("bad.csv");
    std::fs::write(
        &bad,
        "SepalLengthCm,SepalWidthCm,PetalLengthCm,PetalWidthCm\n1,2,3,4\n5,x,1,1\n",
    )
    .unwrap();
    let failed = reg.path().join("failed.csv");
    let args = [
        "predict",
        "--registry",
        reg.arg(),
        "--input",
        bad.to_str().unwrap(),
    ];
    let out = treeserve(&[&args[..], &["--output", failed.to_str().unwrap()]].concat());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(r#"line 3, column "SepalWidthCm": "x""#),
        "{out:?}"
    );
    assert!(!failed.exists() && !reg.path().join("failed.csv.partial").exists());
    std::fs::write(&bad, "SepalLengthCm,PetalWidthCm\n1,2\n").unwrap();
    let out = treeserve(&[&args[..], &["--output", failed.to_str().unwrap()]].concat());
    assert!(String::from_utf8_lossy(&out.stderr).contains(r#"no column "SepalWidthCm""#));

    // A model that fails its checks (it loads while the CSV is read and parsed): its
    // error alone, and nothing written, to a file or to stdout.
    let tsm = reg.path().join("iris/versions/1/model.tsm");
    let mut b = std::fs::read(&tsm).unwrap();
    let n = b.len();
    b[n - 5] ^= 1;
    let mut perm = std::fs::metadata(&tsm).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    std::fs::set_permissions(&tsm, perm).unwrap();
    std::fs::write(&tsm, b).unwrap();
    for output in [failed.to_str().unwrap(), "-"] {
        let args = [
            "predict",
            "--registry",
            reg.arg(),
            "--input",
            csv.to_str().unwrap(),
        ];
        let out = treeserve(&[&args[..], &["--output", output]].concat());
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("iris version 1: checksum mismatch: body") && err.lines().count() == 1,
            "{err}"
        );
        assert!(out.stdout.is_empty(), "{out:?}");
        assert!(!failed.exists() && !reg.path().join("failed.csv.partial").exists());
    }
}

#[test]
fn predict_cuts_blocks_only_between_records() {
    // Quoted ids with commas, quotes and newlines, over many small blocks.
    let reg = TestRegistry::with_iris();
    let input = reg.path().join("quoted.csv");
    let mut text = String::from("Id,SepalLengthCm,SepalWidthCm,PetalLengthCm,PetalWidthCm\n");
    for i in 0..300 {
        text.push_str(&format!("\"row {i},\n\"\"quoted\"\"\",5.1,3.5,1.4,0.2\n"));
    }
    std::fs::write(&input, &text).unwrap();
    let out = reg.path().join("out.csv");
    let run = treeserve(&[
        "predict",
        "--registry",
        reg.arg(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--chunk-rows",
        "1",
        "--threads",
        "3",
    ]);
    assert!(run.status.success(), "{run:?}");
    let mut reader = csv_rows(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(reader.remove(0), ["Id", "predicted_species"]);
    assert_eq!(reader.len(), 300);
    for (i, row) in reader.iter().enumerate() {
        assert_eq!(row[0], format!("row {i},\n\"quoted\""));
        assert_eq!(row[1], "Iris-setosa");
    }
}

/// A tiny CSV reader for the tests: quoted fields with commas, quotes and newlines.
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut field) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (c, _) => field.push(c),
        }
    }
    rows
}

#[tokio::test]
async fn health_finds_the_port_in_treeserve_listen_and_predict_streams() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &[]);
    let listen = format!("0.0.0.0:{}", app.addr.port());
    let health = tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN)
            .arg("health")
            .env("TREESERVE_LISTEN", listen)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(health.status.success(), "{health:?}");

    // `-` reads stdin and writes stdout.
    let mut child = std::process::Command::new(BIN)
        .args([
            "predict",
            "--registry",
            reg.arg(),
            "--input",
            "-",
            "--output",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SepalLengthCm,SepalWidthCm,PetalLengthCm,PetalWidthCm\n6.6,3,4.4,1.4\n5.1,3.5,1.4,0.2\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "predicted_species\nIris-versicolor\nIris-setosa\n"
    );
}
