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
            regression: model.is_regression(),
            scores: model.num_scores(),
            missing_aware: model.missing_aware(),
        };
        let m = Some(&model);
        let (out, rows, _) =
            super::score::score_plain_chunk(m, &layout, &chunk.bytes, 6, Vec::new())
                .expect("plain");
        let (csv, csv_rows, _) = super::score::score_csv_chunk(m, &layout, &chunk, 6).unwrap();
        assert_eq!(rows, 3000);
        assert_eq!((&out, rows), (&csv, csv_rows));
        // Parsed while the model loads, then predicted: the same bytes.
        let (none, kept_rows, kept) =
            super::score::score_plain_chunk(None, &layout, &chunk.bytes, 6, Vec::new())
                .expect("plain");
        assert!(none.is_empty());
        assert_eq!((kept.finish(&model, Vec::new()), kept_rows), (out, rows));
    }
}

#[test]
fn csv_fields_are_quoted_when_needed() {
    assert_eq!(csv_field("Iris-setosa"), "Iris-setosa");
    assert_eq!(csv_field("a,b"), "\"a,b\"");
    assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
}

/// An input that hands out at most 1,000 bytes a read and, once `at` bytes are read,
/// ends the model's load: `Some` model or a failed load.
struct LoadsAt<'a> {
    text: &'a [u8],
    read: usize,
    at: usize,
    slot: &'a std::sync::OnceLock<Option<crate::Model>>,
    model: Option<crate::Model>,
}

impl std::io::Read for LoadsAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.read >= self.at
            && let Some(m) = self.model.take().map(Some).or(Some(None))
            && self.slot.get().is_none()
        {
            let _ = self.slot.set(m);
        }
        let n = buf.len().min(1000).min(self.text.len() - self.read);
        buf[..n].copy_from_slice(&self.text[self.read..self.read + n]);
        self.read += n;
        Ok(n)
    }
}

#[test]
fn rows_parsed_while_the_model_loads_come_out_as_with_it_loaded() {
    let bytes = std::fs::read("models/iris/versions/1/model.tsm").unwrap();
    let model = crate::Model::from_bytes(&bytes, 1, &Default::default()).unwrap();
    let mut text = String::from("Id,SepalLengthCm,SepalWidthCm,PetalLengthCm,PetalWidthCm\n");
    for i in 0..4000 {
        let x = |k: u32| f64::from((i * 7 + k * 13) % 80) / 10.0;
        text += &format!("{i},{},{},{},{}\n", x(1), x(2), x(3), x(4));
    }
    let opts = super::PredictOptions {
        threads: 3,
        chunk_rows: 7,
        probabilities: true,
        ..Default::default()
    };
    let mut want = Vec::new();
    super::predict_csv(&model, text.as_bytes(), &mut want, &opts).unwrap();
    assert_eq!(want.iter().filter(|&&b| b == b'\n').count(), 4001);
    // The model arrives after ~20 small chunks were read (some parsed ahead, some not), or
    // at the end of the input (its 8 chunks parsed ahead, then predicted; an input of more
    // than `PARSED_AHEAD` chunks waits for the loader: a test input that only then loads
    // the model would never end).
    for (rows, at) in [(7, 10_000), (200, text.len())] {
        let opts = super::PredictOptions {
            chunk_rows: rows,
            ..opts.clone()
        };
        let slot = std::sync::OnceLock::new();
        let input = LoadsAt {
            text: text.as_bytes(),
            read: 0,
            at,
            slot: &slot,
            model: Some(model.clone()),
        };
        let source = super::ModelSource::Loading {
            manifest: model.manifest(),
            slot: &slot,
        };
        let mut got = Vec::new();
        let summary = super::predict_csv_from(source, input, &mut got, &opts).unwrap();
        assert_eq!(summary.rows, 4000);
        assert!(got == want, "model loaded at byte {at}");
    }
    // A load that fails: the run fails, and nothing is written, not even the header.
    let slot = std::sync::OnceLock::new();
    let input = LoadsAt {
        text: text.as_bytes(),
        read: 0,
        at: 10_000,
        slot: &slot,
        model: None,
    };
    let source = super::ModelSource::Loading {
        manifest: model.manifest(),
        slot: &slot,
    };
    let mut got = Vec::new();
    let err = super::predict_csv_from(source, input, &mut got, &opts).unwrap_err();
    assert!(matches!(err, super::BatchError::NotLoaded), "{err}");
    assert!(got.is_empty());
    // The same with a header and no row.
    let header = text.lines().next().unwrap().to_string() + "\n";
    let slot = std::sync::OnceLock::new();
    slot.set(None).unwrap();
    let source = super::ModelSource::Loading {
        manifest: model.manifest(),
        slot: &slot,
    };
    let mut got = Vec::new();
    let err = super::predict_csv_from(source, header.as_bytes(), &mut got, &opts).unwrap_err();
    assert!(matches!(err, super::BatchError::NotLoaded), "{err}");
    assert!(got.is_empty());
}
