use super::*;

fn iris() -> Arc<Answerer> {
    Arc::new(Answerer {
        model: "iris".into(),
        version: 3,
        classes: vec!["a".into(), "b".into(), "c".into()],
        features: vec!["x".into(), "y".into()],
        target: "t".into(),
    })
}

fn record(window: usize) -> Feedback {
    Feedback::new(FeedbackOptions {
        window,
        max_age: Duration::from_secs(3600),
        live_window: 4,
    })
}

fn remember(f: &Feedback, id: &str, by: &Arc<Answerer>, inputs: &[f64], predicted: &[f64]) {
    f.remember(
        &AnswerId::of(id),
        Instant::now(),
        by,
        inputs,
        predicted.iter().copied(),
    );
}

fn class(c: &str) -> Truth {
    Truth::Class(c.into())
}

#[test]
fn labels_join_once_and_give_live_accuracy_and_recall() {
    let f = record(100);
    let by = iris();
    remember(&f, "r1", &by, &[1.0, 2.0], &[0.0]);
    remember(&f, "r2", &by, &[1.0, 2.0, 3.0, 4.0], &[1.0, 2.0]);
    let (o, joined) = f.label("r1", None, None, class("a"));
    assert_eq!(o, Outcome::Joined);
    assert_eq!(joined.unwrap().inputs, [1.0, 2.0]);
    assert_eq!(
        f.label("r1", None, Some(0), class("a")).0,
        Outcome::Duplicate
    );
    assert_eq!(f.label("r2", None, None, class("b")).0, Outcome::NoSuchRow);
    assert_eq!(
        f.label("r2", None, Some(2), class("b")).0,
        Outcome::NoSuchRow
    );
    assert_eq!(
        f.label("r2", None, Some(1), class("z")).0,
        Outcome::UnknownClass
    );
    assert_eq!(
        f.label("r2", None, Some(1), Truth::Value(1.0)).0,
        Outcome::WrongKind
    );
    assert_eq!(
        f.label("nope", None, None, class("a")).0,
        Outcome::UnknownId
    );
    assert_eq!(f.label("r2", None, Some(0), class("b")).0, Outcome::Joined);
    // Predicted c, truly b: wrong.
    let (_, j) = f.label("r2", None, Some(1), class("b"));
    assert_eq!(j.unwrap().inputs, [3.0, 4.0]);
    let live = &f.live()[0];
    assert_eq!((live.labels, live.correct, live.window), (3, 2, 3));
    assert_eq!(live.accuracy, Some(2.0 / 3.0));
    assert_eq!(live.recall[1], ("b".to_string(), 2, Some(0.5)));
    assert_eq!(live.recall[2], ("c".to_string(), 0, None));
    let outcomes: HashMap<_, _> = f.outcomes().into_iter().collect();
    assert_eq!(outcomes[&Outcome::Joined], 3);
    assert_eq!(outcomes[&Outcome::Duplicate], 1);
}

#[test]
fn the_record_is_bounded_by_count_and_the_window_by_labels() {
    let f = record(SHARDS * 2);
    let by = iris();
    for i in 0..1000 {
        remember(&f, &format!("id-{i}"), &by, &[0.0, 0.0], &[0.0]);
    }
    assert!(f.remembered() <= (SHARDS * 2) as u64, "{}", f.remembered());
    assert_eq!(
        f.label("id-0", None, None, class("a")).0,
        Outcome::UnknownId
    );
    assert_eq!(f.label("id-999", None, None, class("a")).0, Outcome::Joined);
    for i in 990..999 {
        f.label(&format!("id-{i}"), None, None, class("b"));
    }
    let live = &f.live()[0];
    // The window keeps the last 4 labels.
    assert_eq!(live.window, 4);
    assert!(live.labels >= 5);
}

#[test]
fn an_id_answered_again_replaces_its_answer_and_old_ones_expire() {
    let f = Feedback::new(FeedbackOptions {
        window: 100,
        max_age: Duration::ZERO,
        live_window: 10,
    });
    let by = iris();
    remember(&f, "x", &by, &[0.0, 0.0], &[0.0]);
    std::thread::sleep(Duration::from_millis(2));
    assert_eq!(f.label("x", None, None, class("a")).0, Outcome::UnknownId);
    let f = record(100);
    remember(&f, "x", &by, &[0.0, 0.0], &[0.0]);
    remember(&f, "x", &by, &[5.0, 5.0], &[2.0]);
    assert_eq!(f.remembered(), 1);
    let (o, j) = f.label("x", None, None, class("c"));
    assert_eq!((o, j.unwrap().inputs), (Outcome::Joined, vec![5.0, 5.0]));
    assert_eq!(f.live()[0].accuracy, Some(1.0));
}

#[test]
fn a_regressor_gets_mae_and_rmse() {
    let f = record(100);
    let by = Arc::new(Answerer {
        model: "r".into(),
        version: 1,
        classes: vec![],
        features: vec!["x".into()],
        target: "y".into(),
    });
    remember(&f, "a", &by, &[1.0, 2.0], &[10.0, 20.0]);
    f.label("a", None, Some(0), Truth::Value(12.0));
    f.label("a", None, Some(1), Truth::Value(16.0));
    let live = &f.live()[0];
    assert_eq!(live.mae, Some(3.0));
    assert_eq!(live.rmse, Some(10f64.sqrt()));
    assert_eq!(live.accuracy, None);
}

#[test]
fn outcomes_index_their_list() {
    for (i, o) in Outcome::ALL.iter().enumerate() {
        assert_eq!(o.index(), i);
    }
}

#[test]
fn a_large_batch_marks_each_row_once_and_an_id_answered_again_is_the_new_answer() {
    let f = record(100);
    let by = iris();
    let inputs: Vec<f64> = (0..200).map(f64::from).collect();
    let predicted: Vec<f64> = (0..100).map(|r| f64::from(r % 3)).collect();
    remember(&f, "big", &by, &inputs, &predicted);
    for row in [0, 63, 64, 99] {
        let (o, j) = f.label("big", None, Some(row), class("a"));
        assert_eq!(o, Outcome::Joined, "row {row}");
        assert_eq!(
            j.unwrap().inputs,
            [2.0 * row as f64, 2.0 * row as f64 + 1.0]
        );
        assert_eq!(
            f.label("big", None, Some(row), class("a")).0,
            Outcome::Duplicate
        );
    }
    assert_eq!(
        f.label("big", None, Some(100), class("a")).0,
        Outcome::NoSuchRow
    );
    // Answered again: the old rows are gone, the new one is labelled afresh.
    remember(&f, "big", &by, &[7.0, 8.0], &[2.0]);
    assert_eq!(f.remembered(), 1);
    let (o, j) = f.label("big", None, None, class("c"));
    assert_eq!(o, Outcome::Joined);
    assert_eq!(j.unwrap().inputs, [7.0, 8.0]);
}

#[test]
fn the_record_keeps_at_most_its_window_whatever_the_ids() {
    let f = record(64);
    let by = iris();
    for i in 0..10_000 {
        remember(&f, &format!("id-{}", i % 700), &by, &[1.0, 2.0], &[0.0]);
        assert!(f.remembered() <= 64 + 16, "{}", f.remembered());
    }
    assert_eq!(f.label("id-199", None, None, class("a")).0, Outcome::Joined);
    assert_eq!(
        f.label("id-650", None, None, class("a")).0,
        Outcome::UnknownId
    );
}

/// The generated id `n`'s text.
fn generated(n: u64) -> String {
    let (text, len) = id::generated_text(n);
    String::from_utf8(text[..len].to_vec()).unwrap()
}

/// Every shard's count of findable answers is what its slots' ids find.
fn counts_agree(f: &Feedback) {
    for shard in &f.shards {
        let shard = shard.lock().unwrap();
        assert_eq!(shard.len(), shard.findable());
    }
}

#[test]
fn generated_ids_are_found_by_their_text_and_forgotten_oldest_first() {
    let f = record(1000);
    let by = iris();
    for n in 0..5000u64 {
        f.remember(
            &AnswerId::Generated(n),
            Instant::now(),
            &by,
            &[n as f64, 0.0],
            [1.0].into_iter(),
        );
    }
    counts_agree(&f);
    let kept = f.remembered();
    assert!(
        (1000 - SHARDS as u64..=1000 + SHARDS as u64).contains(&kept),
        "{kept}"
    );
    let (o, j) = f.label(&generated(4999), None, None, class("b"));
    assert_eq!(o, Outcome::Joined);
    assert_eq!(j.unwrap().inputs, [4999.0, 0.0]);
    assert_eq!(
        f.label(&generated(4999), Some("iris"), None, class("b")).0,
        Outcome::Duplicate
    );
    assert_eq!(
        f.label(&generated(3000), None, None, class("b")).0,
        Outcome::UnknownId
    );
    // The same number in another spelling is a client's id, never remembered (0x137e:
    // a letter to spell otherwise whatever the process tag; 4998 = 0x1386 had none, and
    // the test failed whenever the random tag had none either).
    let upper = generated(4990).to_uppercase();
    assert_ne!(upper, generated(4990));
    assert_eq!(
        f.label(&upper, None, None, class("b")).0,
        Outcome::UnknownId
    );
    assert_eq!(
        f.label(&generated(4990), None, None, class("b")).0,
        Outcome::Joined
    );
}

#[test]
fn a_client_sending_a_generated_ids_text_replaces_that_answer() {
    let f = record(100);
    let by = iris();
    f.remember(
        &AnswerId::Generated(7),
        Instant::now(),
        &by,
        &[1.0, 1.0],
        [0.0].into_iter(),
    );
    remember(&f, &generated(7), &by, &[2.0, 2.0], &[1.0]);
    assert_eq!(f.remembered(), 1);
    counts_agree(&f);
    let (o, j) = f.label(&generated(7), None, None, class("b"));
    assert_eq!((o, j.unwrap().inputs), (Outcome::Joined, vec![2.0, 2.0]));
}

#[test]
fn the_count_of_findable_answers_holds_whatever_the_ids() {
    // Small windows, so that ids far apart share index entries; repeated, sparse and
    // client ids mixed, answers of many rows.
    let by = iris();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for window in [1, 16, 100, 5000] {
        let f = record(window);
        for i in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = match x % 5 {
                0 => AnswerId::Client(format!("c{}", x % 300).into()),
                1 => AnswerId::Generated(x % 1000),
                2 => AnswerId::Generated(i * 4099),
                _ => AnswerId::Generated(i),
            };
            let rows = if x.is_multiple_of(97) { 70 } else { 1 };
            let inputs = vec![1.0; 2 * rows];
            f.remember(
                &id,
                Instant::now(),
                &by,
                &inputs,
                std::iter::repeat_n(0.0, rows),
            );
            if i % 1000 == 0 {
                counts_agree(&f);
            }
            assert!(f.remembered() <= (window + SHARDS) as u64);
        }
        counts_agree(&f);
    }
}
