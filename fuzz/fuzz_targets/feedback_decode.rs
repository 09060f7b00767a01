//! `/feedback` bodies and the ids they name: no input may panic. What decodes is at most
//! the limit of labels; each label by id is joined against a small record holding
//! generated and client ids (answers of one and of many rows), so that any text, row and
//! truth meets the id parser and the record's lookups; a label never joins an id that was
//! not remembered, and never joins twice. An id starting with `@` stands for this
//! process's tag and a dash (the tag changes with every run), so that the corpus reaches
//! generated ids.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use treeserve::feedback::id::process_tag;
use treeserve::feedback::{AnswerId, Answerer, Feedback, FeedbackOptions, Outcome};
use treeserve::protocol::feedback::{Label, decode};

fuzz_target!(|body: &[u8]| {
    let Ok(labels) = decode(body, 16) else {
        return;
    };
    assert!(labels.len() <= 16);
    let f = Feedback::new(FeedbackOptions {
        window: 64,
        max_age: Duration::from_secs(3600),
        live_window: 8,
    });
    let by = Arc::new(Answerer {
        model: "m".into(),
        version: 1,
        classes: vec!["a".into(), "b".into()],
        features: vec!["x".into()],
        target: "y".into(),
    });
    let now = Instant::now();
    let ids = [
        AnswerId::Generated(0),
        AnswerId::Generated(1),
        AnswerId::Generated(u64::MAX),
        AnswerId::of("r1"),
        AnswerId::of(""),
    ];
    for id in &ids {
        f.remember(id, now, &by, &[1.0], [0.0].into_iter());
    }
    let rows: Vec<f64> = (0..70).map(f64::from).collect();
    f.remember(
        &AnswerId::of("batch"),
        now,
        &by,
        &rows,
        (0..70).map(|r| f64::from(r % 2)),
    );
    let mut joined = std::collections::HashSet::new();
    let tag = format!("{:08x}-", process_tag());
    for label in labels {
        let Label::ById(mut l) = label else { continue };
        if let Some(rest) = l.request_id.strip_prefix('@') {
            l.request_id = format!("{tag}{rest}");
        }
        let (outcome, _) = f.label(&l.request_id, None, l.row, l.label);
        if outcome == Outcome::Joined {
            let known = ids.contains(&AnswerId::of(&l.request_id)) || l.request_id == "batch";
            assert!(known, "joined an id never remembered: {:?}", l.request_id);
            assert!(
                joined.insert((l.request_id, l.row.unwrap_or(0))),
                "joined twice"
            );
        }
    }
});
