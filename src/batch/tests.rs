use super::csv_field;
use crate::protocol::cursor::exact_decimal;

#[test]
fn simple_decimals_parse_exactly_like_str_parse() {
    let mut state = 7u64;
    for _ in 0..200_000 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let digits = (state >> 60) as usize + 1;
        let frac = ((state >> 56) & 15) as usize % (digits + 1);
        let m = (state >> 8) % 10u64.pow(digits.min(15) as u32);
        let mut s = format!("{m:0digits$}");
        if frac > 0 {
            s.insert(s.len() - frac, '.');
        }
        if state & 1 == 1 {
            s.insert(0, '-');
        }
        let want: f64 = s.parse().unwrap();
        let got = exact_decimal(s.as_bytes());
        assert!(
            got.is_none_or(|g| g.to_bits() == want.to_bits()),
            "{s}: {got:?} vs {want}"
        );
    }
    for s in [
        "",
        "-",
        ".",
        "1e5",
        " 1",
        "1 ",
        "inf",
        "NaN",
        "1.2.3",
        "0x10",
        "1234567890123456",
    ] {
        assert_eq!(exact_decimal(s.as_bytes()), None, "{s:?}");
    }
    assert_eq!(exact_decimal(b"5.1"), Some(5.1));
    assert_eq!(exact_decimal(b"-0.25"), Some(-0.25));
    assert_eq!(exact_decimal(b"+3"), Some(3.0));
    assert_eq!(exact_decimal(b"007.50"), Some(7.5));
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
