//! The tests of `decimal.rs`: every answer against `str::parse`.

use super::{MAX_Q, MIN_Q, parse_prefix};

fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        state ^ (state >> 29)
    }
}

/// Whether `parse_prefix` took a number from `text`; when it did, `str::parse` on the
/// prefix gives the same bits.
fn agrees(text: &str) -> bool {
    let Some((v, used)) = parse_prefix(text.as_bytes()) else {
        return false;
    };
    let prefix = &text[..used];
    let want: f64 = prefix
        .parse()
        .unwrap_or_else(|_| panic!("{text:?}: str::parse refuses {prefix:?}"));
    assert_eq!(v.to_bits(), want.to_bits(), "{text:?}");
    true
}

/// numpy's `%.17g` of `x`: fixed notation from 1e-4 to 1e17, else scientific.
fn g17(x: f64) -> String {
    let e = x.abs().log10().floor() as i32;
    if (-4..17).contains(&e) {
        format!("{x:.*}", (16 - e) as usize)
    } else {
        format!("{x:.16e}")
    }
}

#[test]
fn doubles_written_every_usual_way_parse_exactly_like_str_parse() {
    let mut next = rng(11);
    let (mut taken, mut tried) = (0, 0);
    for _ in 0..100_000 {
        // A double of magnitude 2^-200 .. 2^130 (1e-60 .. 1e39: the table's range).
        let r = next();
        let exponent = 1023 - 200 + (r >> 52) % 331;
        let x = f64::from_bits((r & (1 << 63)) | exponent << 52 | (next() >> 12));
        for s in [
            g17(x),
            format!("{x:.16e}"),
            format!("{x:e}"),
            format!("{x:.6}"),
        ] {
            // A fixed `{:.6}` of a large number has too many digits: not counted.
            let usual = !s.ends_with(&format!("{x:.6}"));
            tried += usual as usize;
            taken += (agrees(&s) && usual) as usize;
            // With a field's end after it, the same number and length.
            let text = format!("{s},1");
            if let Some((_, used)) = parse_prefix(text.as_bytes()) {
                assert_eq!(used, s.len(), "{text:?}");
            }
        }
    }
    // Nearly all are taken: the fast path is the usual one (not: numpy's fixed form
    // below 0.01, more than 19 digits with its leading zeros; rare undecided cases).
    assert!(taken * 100 > tried * 99, "{taken} of {tried}");
}

#[test]
fn every_power_of_the_table_parses_exactly() {
    let mut next = rng(5);
    let (mut taken, mut tried) = (0, 0);
    for q in MIN_Q..=MAX_Q {
        assert!(agrees(&format!("1e{q}")), "1e{q}");
        assert!(agrees(&format!("-9999999999999999999e{q}")), "{q}");
        for _ in 0..1000 {
            let digits = 1 + next() % 19;
            let w = next() % 10u64.pow(digits as u32);
            tried += 1;
            taken += agrees(&format!("{w}e{q}")) as usize;
        }
    }
    assert!(taken * 1000 > tried * 999, "{taken} of {tried}");
    // Outside it, the general parser decides.
    for s in [
        "1e41",
        "1e-101",
        "4.9e-324",
        "1.7976931348623157e308",
        "1e99999",
    ] {
        assert_eq!(parse_prefix(s.as_bytes()), None, "{s}");
    }
}

#[test]
fn halfway_cases_round_to_even_and_edges_agree() {
    for s in [
        "9007199254740993",
        "9007199254740995",
        "9007199254740992.5",
        "4503599627370496.5",
        "4503599627370497.5",
        "0.1",
        "0.2",
        "0.30000000000000004",
        "1.7976931348623157e30",
        "-0",
        "-0.0",
        "+0",
        "0e9999",
        "007.50",
        ".5",
        "5.",
        "-.5e-3",
        "2.2250738585072014e-30",
        "1234567890123456789",
        "0.000000000000001234",
    ] {
        assert!(agrees(s), "{s}");
    }
    for s in [
        "",
        "-",
        "+",
        ".",
        "-.",
        "e5",
        ".e5",
        "1e",
        "1e+",
        "1e-",
        " 1",
        "inf",
        "nan",
        "12345678901234567890",
        "1.2345678901234567890",
    ] {
        assert_eq!(parse_prefix(s.as_bytes()), None, "{s:?}");
    }
    assert_eq!(parse_prefix(b"1.5,2"), Some((1.5, 3)));
    assert_eq!(parse_prefix(b"1.5e3x"), Some((1500.0, 5)));
    assert_eq!(parse_prefix(b"1.2.3"), Some((1.2, 3)));
}

#[test]
fn any_text_of_a_numbers_characters_agrees() {
    const ALPHABET: &[u8] = b"0123456789012345678901234567890123456789.+-eE";
    let mut next = rng(3);
    for _ in 0..300_000 {
        let len = 1 + (next() % 40) as usize;
        let text: String = (0..len)
            .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize] as char)
            .collect();
        agrees(&text);
    }
}

/// Digit runs of every length, at every offset from an eight-byte load, ended by every
/// kind of byte (the bytes around '0' to '9', non-ASCII, the end of the text): the run
/// read eight bytes at a time ends where `str::parse` says.
#[test]
fn digit_runs_of_every_length_end_at_every_kind_of_byte() {
    let mut next = rng(17);
    let ends: &[&[u8]] = &[
        b"",
        b",",
        b"\n",
        b"\r\n",
        b"/",
        b":",
        b" ",
        b"x",
        b"\x7f",
        b"\xc3\xa9",
        b"\xff",
        b".",
        b"e5",
        b"E-3",
        b"e",
        b"-",
    ];
    let digits = |n: usize, next: &mut dyn FnMut() -> u64| -> String {
        (0..n)
            .map(|_| char::from(b'0' + (next() % 10) as u8))
            .collect()
    };
    for sign in ["", "-", "+"] {
        for int_len in 0..=20 {
            for frac_len in [
                None,
                Some(0),
                Some(1),
                Some(7),
                Some(8),
                Some(9),
                Some(15),
                Some(17),
            ] {
                for end in ends {
                    let mut text = format!("{sign}{}", digits(int_len, &mut next));
                    if let Some(f) = frac_len {
                        text.push('.');
                        text.push_str(&digits(f, &mut next));
                    }
                    let number = text.len();
                    let mut bytes = text.into_bytes();
                    bytes.extend_from_slice(end);
                    // 1 to 19 digits are taken, whatever ends them (a lone `e` is not an end).
                    let total = int_len + frac_len.unwrap_or(0);
                    let taken = (1..=19).contains(&total) && *end != b"e";
                    let Some((v, used)) = parse_prefix(&bytes) else {
                        assert!(!taken, "{bytes:?} not taken");
                        continue;
                    };
                    let prefix = std::str::from_utf8(&bytes[..used]).unwrap();
                    let want: f64 = prefix.parse().unwrap();
                    assert_eq!(v.to_bits(), want.to_bits(), "{bytes:?}");
                    // The number ends where its text does (or takes the exponent after it).
                    let exponent =
                        end.first().is_some_and(|c| c.eq_ignore_ascii_case(&b'e')) && end.len() > 1;
                    // A dot after the integer digits is the number's own ("5." is 5).
                    let dot = frac_len.is_none() && end.first() == Some(&b'.');
                    if !exponent && !dot {
                        assert_eq!(used, number, "{bytes:?}");
                    }
                }
            }
        }
    }
}
