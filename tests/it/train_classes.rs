//! Classes with no row in the training split (every row of a rare class held out): the
//! model is trained, validated and served, and never answers a class it did not learn.

use crate::common::{TestRegistry, treeserve};

/// Class `a` below 0.4 on feature `x`, class `c` above 0.6, and one row of class `b` in
/// the middle of the class order: when `b`'s row is held out, the learned classes are
/// `a` and `c`, indices 0 and 2 of the manifest's three.
fn rare_middle_class_csv(dir: &std::path::Path) -> std::path::PathBuf {
    let mut csv = String::from("x,y,label\n0.5,0.5,b\n");
    for i in 0..240u32 {
        let x = if i % 2 == 0 {
            0.1 + (i as f64) / 1000.0
        } else {
            0.9 - (i as f64) / 1000.0
        };
        let y = f64::from((i * 37) % 100) / 100.0;
        csv.push_str(&format!("{x},{y},{}\n", if x < 0.5 { "a" } else { "c" }));
    }
    let path = dir.join("rare.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

#[test]
fn a_class_with_no_training_row_does_not_stop_training_and_is_never_predicted() {
    let reg = TestRegistry::new();
    let csv = rare_middle_class_csv(reg.path());
    let csv = csv.to_str().unwrap();
    let mut held_out_b = 0;
    for algorithm in ["decision-tree", "random-forest"] {
        for seed in 1..=6 {
            let model = format!("rare{seed}{}", &algorithm[..1]);
            let out = treeserve(&[
                "train",
                "--data",
                csv,
                "--target",
                "label",
                "--id-column",
                "",
                "--name",
                &model,
                "--algorithm",
                algorithm,
                "--n-trees",
                "5",
                "--seed",
                &seed.to_string(),
                "--publish",
                reg.arg(),
                "--alias",
                "production",
                "--json",
            ]);
            assert!(out.status.success(), "{algorithm} seed {seed}: {out:?}");
            // Whether `b`'s one row was held out: the rows record keeps held-out labels.
            let record = reg.path().join(format!("{model}/records/1.rows.json"));
            let record: serde_json::Value =
                serde_json::from_slice(&std::fs::read(record).unwrap()).unwrap();
            if record["labels"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l == "b")
            {
                held_out_b += 1;
            }
            // Served answers: every `a` and `c` row gets its class (so the tree's class
            // indices are the manifest's), and `b` only if the model learned it.
            let answers = reg.path().join(format!("{model}.out.csv"));
            let out = treeserve(&[
                "predict",
                "--registry",
                reg.arg(),
                "--model",
                &model,
                "--input",
                csv,
                "--output",
                answers.to_str().unwrap(),
            ]);
            assert!(out.status.success(), "{out:?}");
            let answers = std::fs::read_to_string(&answers).unwrap();
            let data = std::fs::read_to_string(csv).unwrap();
            let mut wrong = 0;
            for (row, answer) in data.lines().skip(2).zip(answers.lines().skip(2)) {
                let want = row.rsplit(',').next().unwrap();
                if answer.rsplit(',').next().unwrap() != want {
                    wrong += 1;
                }
            }
            assert!(
                wrong <= 5,
                "{algorithm} seed {seed}: {wrong} of 240 rows wrong"
            );
        }
    }
    // Otherwise this test would not test the case it is about.
    assert!(held_out_b > 0, "no seed held out the rare class");
}
