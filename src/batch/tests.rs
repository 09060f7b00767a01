use super::csv_field;
use super::score::number_at;

/// `number_at` on `text`, checked against `str::parse` on the field it claims.
fn agrees(text: &[u8]) {
    let Some((v, used)) = number_at(text) else {
        return;
    };
    let field = std::str::from_utf8(&text[..used]).unwrap();
    let want: f64 = field
        .parse()
        .unwrap_or_else(|_| panic!("{text:?}: str::parse refuses {field:?}"));
    assert_eq!(v.to_bits(), want.to_bits(), "{field}");
    assert!(v.is_finite(), "{field}");
    assert!(
        matches!(text.get(used), None | Some(b',' | b'\n' | b'\r')),
        "{text:?}"
    );
}

#[test]
fn numbers_at_a_field_parse_exactly_like_str_parse() {
    let mut state = 7u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        state
    };
    for _ in 0..100_000 {
        // Any finite double, as numpy's %.17g, Rust's shortest and a fixed 6 decimals write it.
        let x = f64::from_bits(next());
        if !x.is_finite() {
            continue;
        }
        for s in [format!("{x:.16e}"), format!("{x}"), format!("{x:.6}")] {
            for end in ["", ",1", "\n", "\r\n"] {
                let text = format!("{s}{end}");
                let (v, used) = number_at(text.as_bytes()).unwrap_or_else(|| panic!("{text:?}"));
                assert_eq!(
                    (v.to_bits(), used),
                    (x_of(&s).to_bits(), s.len()),
                    "{text:?}"
                );
            }
        }
    }
    // Random text from a number's alphabet: whatever is taken agrees with `str::parse`.
    const ALPHABET: &[u8] = b"0123456789.+-eE,\n\r i";
    for _ in 0..300_000 {
        let r = next();
        let len = (r >> 59) as usize + 1;
        let text: Vec<u8> = (0..len)
            .map(|i| ALPHABET[((r >> (i * 3 % 56)) as usize + i) % ALPHABET.len()])
            .collect();
        agrees(&text);
    }
    for s in [
        "", "-", ".", "+", "e5", " 1", "1 ", "inf", "NaN", "nan", "infinity", "1.2.3", "0x10",
        "1e400", "-1e400", "1e", "1e+", "--1", "1,2",
    ] {
        agrees(s.as_bytes());
    }
    for (s, v) in [
        ("1e400", None),
        (" 1", None),
        ("1 ", None),
        ("inf", None),
        ("1,2", Some(1.0)),
    ] {
        assert_eq!(number_at(s.as_bytes()).map(|p| p.0), v, "{s:?}");
    }
    assert_eq!(number_at(b"5.1"), Some((5.1, 3)));
    assert_eq!(number_at(b"+3,"), Some((3.0, 2)));
    assert_eq!(number_at(b"007.50\n"), Some((7.5, 6)));
    assert_eq!(number_at(b".5"), Some((0.5, 2)));
}

fn x_of(s: &str) -> f64 {
    s.parse().unwrap()
}

#[test]
fn the_plain_path_writes_what_the_csv_path_writes() {
    let bytes = std::fs::read("models/iris/versions/1/model.tsm").unwrap();
    let model = crate::Model::from_bytes(&bytes, 1, &Default::default()).unwrap();
    let mut state = 3u64;
    let mut next = move |n: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % n
    };
    let mut text = String::new();
    for i in 0..3000 {
        let v = |x: u64| match x % 5 {
            0 => format!("{}", x % 9),
            1 => format!("{}.{}", x % 8, x % 10),
            2 => format!(" {}.{:02} ", x % 7, x % 100),
            3 => format!("{}e-1", x % 70),
            _ => format!("-0.{}", x % 1000),
        };
        let feats: Vec<String> = (0..4).map(|_| v(next(1000))).collect();
        text += &format!(
            "{i},{},extra,{}\r\n",
            feats[..2].join(","),
            feats[2..].join(",")
        );
        if next(50) == 0 {
            text += "\n";
        }
    }
    let chunk = super::Chunk {
        index: 0,
        first_line: 2,
        bytes: text.into_bytes(),
        quoted: false,
    };
    for probabilities in [false, true] {
        let layout = super::Layout {
            feature_columns: vec![1, 2, 4, 5],
            id_column: Some(0),
            features: model.features().to_vec(),
            labels: model
                .classes()
                .iter()
                .map(|c| super::csv_field(c))
                .collect(),
            probabilities,
            columns: 6,
        };
        let plain = super::score::score_plain_chunk(&model, &layout, &chunk.bytes, 6, Vec::new())
            .expect("plain");
        let csv = super::score::score_csv_chunk(&model, &layout, &chunk, 6).unwrap();
        assert_eq!(plain.1, 3000);
        assert_eq!(plain, csv);
    }
}

#[test]
fn csv_fields_are_quoted_when_needed() {
    assert_eq!(csv_field("Iris-setosa"), "Iris-setosa");
    assert_eq!(csv_field("a,b"), "\"a,b\"");
    assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
}
