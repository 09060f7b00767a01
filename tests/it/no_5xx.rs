//! Property: no request body, however malformed, gets a 5xx or takes the server down.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::common::*;

fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        any::<f64>().prop_map(|v| v.to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        Just("1e400".to_string()),
        Just("-0".to_string()),
        "[a-zA-Z0-9 \\\\\"é]{0,12}".prop_map(|s| format!("{s:?}")),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("SepalLengthCm".to_string()),
                        Just("SepalWidthCm".to_string()),
                        Just("PetalLengthCm".to_string()),
                        Just("PetalWidthCm".to_string()),
                        "[a-z]{0,5}".prop_map(String::from),
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|kv| format!(
                "{{{}}}",
                kv.iter()
                    .map(|(k, v)| format!("{k:?}:{v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            )),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        json_value().prop_map(String::into_bytes),
        // A valid body with one byte changed.
        (0usize..90, any::<u8>()).prop_map(|(i, b)| {
            let mut v = VERSICOLOR.as_bytes().to_vec();
            let i = i % v.len();
            v[i] = b;
            v
        }),
    ]
}

#[test]
fn arbitrary_bodies_never_get_a_5xx() {
    let reg = TestRegistry::with_iris();
    let mut app = App::spawn(reg.path(), &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 600,
        ..Config::default()
    });
    runner
        .run(&(body(), any::<bool>()), |(body, proba)| {
            let path = if proba {
                "/score?probabilities=true"
            } else {
                "/score"
            };
            let (status, text) = rt.block_on(async {
                let resp = app
                    .client
                    .post(app.url(path))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .expect("the server answers");
                let status = resp.status().as_u16();
                (status, resp.text().await.unwrap())
            });
            prop_assert!(
                status == 200 || (400..500).contains(&status),
                "{status} for {:?}: {text}",
                String::from_utf8_lossy(&body)
            );
            let v: serde_json::Value = serde_json::from_str(&text).expect("JSON answer");
            if status == 200 {
                prop_assert!(v.get("output").is_some());
            } else {
                prop_assert!(
                    v["error"].is_string() && v["error_type"].is_string(),
                    "{text}"
                );
            }
            Ok(())
        })
        .unwrap();
    assert!(app.is_running());
    let ok = rt.block_on(app.post("/score", VERSICOLOR));
    assert_eq!(ok.status(), 200);
}
