//! Decimal text to `f64`, correctly rounded (the same bits as `str::parse`), fast for the
//! numbers data files are made of: an optional sign, at most 19 digits (leading zeros
//! included), an optional fraction and exponent, a magnitude from about 1e-80 to 1e40.
//! numpy's `%.17g` (what `np.savetxt` and pandas write) is 17 digits: too many for the
//! exact `f64` shortcut, so every such number needs the Eisel–Lemire step (Lemire, "Number
//! parsing at a gigabyte per second", 2021), taken here after a digit scan eight bytes at a
//! time. This is the parse `fast-float2` does, without its generality and with fewer
//! branches on a number's shape: anything else (more digits, far exponents, a case the
//! step cannot decide) is `None`, and the caller asks the general parser.

/// The number `bytes` starts with and its length, when it has the shape above and the
/// answer is certain; `None` otherwise (then a general parser decides: `None` never means
/// "not a number"). `Some` is exactly `str::parse` on that prefix.
#[inline]
pub fn parse_prefix(bytes: &[u8]) -> Option<(f64, usize)> {
    let first = *bytes.first()?;
    let negative = first == b'-';
    // The sign without a branch: it is random row to row.
    let mut i = (negative || first == b'+') as usize;
    let integer = i;
    let mut w = 0u64;
    while let Some(d) = digit(bytes, i) {
        w = w.wrapping_mul(10).wrapping_add(d);
        i += 1;
    }
    let mut digits = i - integer;
    let mut any = digits > 0;
    let mut exponent = 0i64;
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        let fraction = i;
        // Eight digits at a time while there are eight.
        while let Some(eight) = bytes.get(i..i + 8) {
            let Ok(eight) = <[u8; 8]>::try_from(eight) else {
                break;
            };
            let v = u64::from_le_bytes(eight);
            let d = v.wrapping_sub(0x3030_3030_3030_3030);
            // Bit 7 of a byte set: not a digit.
            if (v.wrapping_add(0x4646_4646_4646_4646) | d) & 0x8080_8080_8080_8080 != 0 {
                break;
            }
            w = w.wrapping_mul(100_000_000).wrapping_add(value_of_eight(d));
            i += 8;
        }
        while let Some(d) = digit(bytes, i) {
            w = w.wrapping_mul(10).wrapping_add(d);
            i += 1;
        }
        digits += i - fraction;
        any |= i > fraction;
        exponent = -((i - fraction) as i64);
    }
    // A u64 holds 19 digits exactly (so the wrapping above never wrapped). Leading zeros
    // count (skipping them costs a mispredicted branch a number): numpy's 17 digits below
    // 0.01 are more, and take the general parser.
    if !any || digits > 19 {
        return None;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        let negative = bytes.get(i) == Some(&b'-');
        i += (negative || bytes.get(i) == Some(&b'+')) as usize;
        let start = i;
        let mut e = 0i64;
        while let Some(d) = digit(bytes, i) {
            e = e * 10 + d as i64;
            i += 1;
            if i - start > 4 {
                return None;
            }
        }
        if i == start {
            return None;
        }
        exponent += if negative { -e } else { e };
    }
    let bits = if w == 0 {
        0
    } else {
        eisel_lemire(exponent, w)?
    };
    let sign = (negative as u64) << 63;
    Some((f64::from_bits(bits | sign), i))
}

#[inline(always)]
fn digit(bytes: &[u8], i: usize) -> Option<u64> {
    let d = bytes.get(i)?.wrapping_sub(b'0');
    (d < 10).then_some(d as u64)
}

/// The value of eight digits (bytes 0–9, the first byte the most significant), by pairs,
/// then fours, then the eight: three multiplications instead of eight.
#[inline(always)]
fn value_of_eight(v: u64) -> u64 {
    // Each 16-bit lane: 10 × its low byte (the earlier digit) + its high byte.
    let v = (v.wrapping_mul(10) + (v >> 8)) & 0x00ff_00ff_00ff_00ff;
    // Each 32-bit lane: 100 × its low pair + its high pair.
    let v = (v.wrapping_mul(100) + (v >> 16)) & 0x0000_ffff_0000_ffff;
    // The 64 bits: 10,000 × the low four + the high four.
    (v.wrapping_mul(10_000) + (v >> 32)) & 0xffff_ffff
}

/// The smallest and largest decimal exponents of [`POW5`].
const MIN_Q: i64 = -100;
const MAX_Q: i64 = 40;

/// `w × 10^q` correctly rounded to the bits of a positive normal `f64` (`w ≠ 0`), or `None`
/// when `q` is outside the table, the result would not be a normal finite number, or the
/// 128-bit product cannot decide the rounding (rare; the general parser then does).
#[inline]
fn eisel_lemire(q: i64, w: u64) -> Option<u64> {
    if !(MIN_Q..=MAX_Q).contains(&q) {
        return None;
    }
    let (hi5, lo5) = POW5[(q - MIN_Q) as usize];
    let zeros = w.leading_zeros();
    let w = w << zeros;
    // 55 bits are needed: the 52 of the significand, the implicit one, one to round, one
    // for the product's top bit. When the bits below them are all ones the high half alone
    // may be short by one: add the product with the table's low half.
    const BELOW: u64 = u64::MAX >> 55;
    let product = w as u128 * hi5 as u128;
    let (mut hi, mut lo) = ((product >> 64) as u64, product as u64);
    if hi & BELOW == BELOW {
        let carry = ((w as u128 * lo5 as u128) >> 64) as u64;
        lo = lo.wrapping_add(carry);
        if carry > lo {
            hi += 1;
        }
    }
    // Still all ones below: undecidable outside the exponents where 5^q is exact.
    if lo == u64::MAX && !(-27..=55).contains(&q) {
        return None;
    }
    let top = (hi >> 63) as i32;
    let mut mantissa = hi >> (top + 9);
    // floor(log2(10^q)) + 63, biased.
    let mut power2 =
        ((q as i32).wrapping_mul(152_170 + 65_536) >> 16) + 63 + top - zeros as i32 + 1023;
    if power2 <= 0 {
        return None;
    }
    // Exactly halfway (the product exact, the round bit set, nothing below): to even.
    if lo <= 1 && (-4..=23).contains(&q) && mantissa & 3 == 1 && (mantissa << (top + 9)) == hi {
        mantissa &= !1;
    }
    mantissa += mantissa & 1;
    mantissa >>= 1;
    if mantissa >= 2 << 52 {
        mantissa = 1 << 52;
        power2 += 1;
    }
    mantissa &= !(1 << 52);
    (power2 < 0x7ff).then_some(mantissa | (power2 as u64) << 52)
}

/// 5^q for q in `MIN_Q..=MAX_Q`, as the 128 bits from its leading one (high word, low
/// word), truncated; for q < 0 the reciprocal, rounded up as Eisel–Lemire requires. Made by
/// (Python): `c = 5**q` for q ≥ 0, else `z = ceil(log2(5**-q))`, `b = 2*z + 128 if q < -27
/// else z + 127`, `c = 2**b // 5**-q + 1`; then `c` shifted to 128 bits. The tests check
/// every entry by the numbers it parses.
#[rustfmt::skip]
const POW5: [(u64, u64); (MAX_Q - MIN_Q + 1) as usize] = [
    (0xdff9772470297ebd, 0x59787e2b93bc56f7), // 5^-100
    (0x8bfbea76c619ef36, 0x57eb4edb3c55b65a), // 5^-99
    (0xaefae51477a06b03, 0xede622920b6b23f1), // 5^-98
    (0xdab99e59958885c4, 0xe95fab368e45eced), // 5^-97
    (0x88b402f7fd75539b, 0x11dbcb0218ebb414), // 5^-96
    (0xaae103b5fcd2a881, 0xd652bdc29f26a119), // 5^-95
    (0xd59944a37c0752a2, 0x4be76d3346f0495f), // 5^-94
    (0x857fcae62d8493a5, 0x6f70a4400c562ddb), // 5^-93
    (0xa6dfbd9fb8e5b88e, 0xcb4ccd500f6bb952), // 5^-92
    (0xd097ad07a71f26b2, 0x7e2000a41346a7a7), // 5^-91
    (0x825ecc24c873782f, 0x8ed400668c0c28c8), // 5^-90
    (0xa2f67f2dfa90563b, 0x728900802f0f32fa), // 5^-89
    (0xcbb41ef979346bca, 0x4f2b40a03ad2ffb9), // 5^-88
    (0xfea126b7d78186bc, 0xe2f610c84987bfa8), // 5^-87
    (0x9f24b832e6b0f436, 0x0dd9ca7d2df4d7c9), // 5^-86
    (0xc6ede63fa05d3143, 0x91503d1c79720dbb), // 5^-85
    (0xf8a95fcf88747d94, 0x75a44c6397ce912a), // 5^-84
    (0x9b69dbe1b548ce7c, 0xc986afbe3ee11aba), // 5^-83
    (0xc24452da229b021b, 0xfbe85badce996168), // 5^-82
    (0xf2d56790ab41c2a2, 0xfae27299423fb9c3), // 5^-81
    (0x97c560ba6b0919a5, 0xdccd879fc967d41a), // 5^-80
    (0xbdb6b8e905cb600f, 0x5400e987bbc1c920), // 5^-79
    (0xed246723473e3813, 0x290123e9aab23b68), // 5^-78
    (0x9436c0760c86e30b, 0xf9a0b6720aaf6521), // 5^-77
    (0xb94470938fa89bce, 0xf808e40e8d5b3e69), // 5^-76
    (0xe7958cb87392c2c2, 0xb60b1d1230b20e04), // 5^-75
    (0x90bd77f3483bb9b9, 0xb1c6f22b5e6f48c2), // 5^-74
    (0xb4ecd5f01a4aa828, 0x1e38aeb6360b1af3), // 5^-73
    (0xe2280b6c20dd5232, 0x25c6da63c38de1b0), // 5^-72
    (0x8d590723948a535f, 0x579c487e5a38ad0e), // 5^-71
    (0xb0af48ec79ace837, 0x2d835a9df0c6d851), // 5^-70
    (0xdcdb1b2798182244, 0xf8e431456cf88e65), // 5^-69
    (0x8a08f0f8bf0f156b, 0x1b8e9ecb641b58ff), // 5^-68
    (0xac8b2d36eed2dac5, 0xe272467e3d222f3f), // 5^-67
    (0xd7adf884aa879177, 0x5b0ed81dcc6abb0f), // 5^-66
    (0x86ccbb52ea94baea, 0x98e947129fc2b4e9), // 5^-65
    (0xa87fea27a539e9a5, 0x3f2398d747b36224), // 5^-64
    (0xd29fe4b18e88640e, 0x8eec7f0d19a03aad), // 5^-63
    (0x83a3eeeef9153e89, 0x1953cf68300424ac), // 5^-62
    (0xa48ceaaab75a8e2b, 0x5fa8c3423c052dd7), // 5^-61
    (0xcdb02555653131b6, 0x3792f412cb06794d), // 5^-60
    (0x808e17555f3ebf11, 0xe2bbd88bbee40bd0), // 5^-59
    (0xa0b19d2ab70e6ed6, 0x5b6aceaeae9d0ec4), // 5^-58
    (0xc8de047564d20a8b, 0xf245825a5a445275), // 5^-57
    (0xfb158592be068d2e, 0xeed6e2f0f0d56712), // 5^-56
    (0x9ced737bb6c4183d, 0x55464dd69685606b), // 5^-55
    (0xc428d05aa4751e4c, 0xaa97e14c3c26b886), // 5^-54
    (0xf53304714d9265df, 0xd53dd99f4b3066a8), // 5^-53
    (0x993fe2c6d07b7fab, 0xe546a8038efe4029), // 5^-52
    (0xbf8fdb78849a5f96, 0xde98520472bdd033), // 5^-51
    (0xef73d256a5c0f77c, 0x963e66858f6d4440), // 5^-50
    (0x95a8637627989aad, 0xdde7001379a44aa8), // 5^-49
    (0xbb127c53b17ec159, 0x5560c018580d5d52), // 5^-48
    (0xe9d71b689dde71af, 0xaab8f01e6e10b4a6), // 5^-47
    (0x9226712162ab070d, 0xcab3961304ca70e8), // 5^-46
    (0xb6b00d69bb55c8d1, 0x3d607b97c5fd0d22), // 5^-45
    (0xe45c10c42a2b3b05, 0x8cb89a7db77c506a), // 5^-44
    (0x8eb98a7a9a5b04e3, 0x77f3608e92adb242), // 5^-43
    (0xb267ed1940f1c61c, 0x55f038b237591ed3), // 5^-42
    (0xdf01e85f912e37a3, 0x6b6c46dec52f6688), // 5^-41
    (0x8b61313bbabce2c6, 0x2323ac4b3b3da015), // 5^-40
    (0xae397d8aa96c1b77, 0xabec975e0a0d081a), // 5^-39
    (0xd9c7dced53c72255, 0x96e7bd358c904a21), // 5^-38
    (0x881cea14545c7575, 0x7e50d64177da2e54), // 5^-37
    (0xaa242499697392d2, 0xdde50bd1d5d0b9e9), // 5^-36
    (0xd4ad2dbfc3d07787, 0x955e4ec64b44e864), // 5^-35
    (0x84ec3c97da624ab4, 0xbd5af13bef0b113e), // 5^-34
    (0xa6274bbdd0fadd61, 0xecb1ad8aeacdd58e), // 5^-33
    (0xcfb11ead453994ba, 0x67de18eda5814af2), // 5^-32
    (0x81ceb32c4b43fcf4, 0x80eacf948770ced7), // 5^-31
    (0xa2425ff75e14fc31, 0xa1258379a94d028d), // 5^-30
    (0xcad2f7f5359a3b3e, 0x096ee45813a04330), // 5^-29
    (0xfd87b5f28300ca0d, 0x8bca9d6e188853fc), // 5^-28
    (0x9e74d1b791e07e48, 0x775ea264cf55347e), // 5^-27
    (0xc612062576589dda, 0x95364afe032a819e), // 5^-26
    (0xf79687aed3eec551, 0x3a83ddbd83f52205), // 5^-25
    (0x9abe14cd44753b52, 0xc4926a9672793543), // 5^-24
    (0xc16d9a0095928a27, 0x75b7053c0f178294), // 5^-23
    (0xf1c90080baf72cb1, 0x5324c68b12dd6339), // 5^-22
    (0x971da05074da7bee, 0xd3f6fc16ebca5e04), // 5^-21
    (0xbce5086492111aea, 0x88f4bb1ca6bcf585), // 5^-20
    (0xec1e4a7db69561a5, 0x2b31e9e3d06c32e6), // 5^-19
    (0x9392ee8e921d5d07, 0x3aff322e62439fd0), // 5^-18
    (0xb877aa3236a4b449, 0x09befeb9fad487c3), // 5^-17
    (0xe69594bec44de15b, 0x4c2ebe687989a9b4), // 5^-16
    (0x901d7cf73ab0acd9, 0x0f9d37014bf60a11), // 5^-15
    (0xb424dc35095cd80f, 0x538484c19ef38c95), // 5^-14
    (0xe12e13424bb40e13, 0x2865a5f206b06fba), // 5^-13
    (0x8cbccc096f5088cb, 0xf93f87b7442e45d4), // 5^-12
    (0xafebff0bcb24aafe, 0xf78f69a51539d749), // 5^-11
    (0xdbe6fecebdedd5be, 0xb573440e5a884d1c), // 5^-10
    (0x89705f4136b4a597, 0x31680a88f8953031), // 5^-9
    (0xabcc77118461cefc, 0xfdc20d2b36ba7c3e), // 5^-8
    (0xd6bf94d5e57a42bc, 0x3d32907604691b4d), // 5^-7
    (0x8637bd05af6c69b5, 0xa63f9a49c2c1b110), // 5^-6
    (0xa7c5ac471b478423, 0x0fcf80dc33721d54), // 5^-5
    (0xd1b71758e219652b, 0xd3c36113404ea4a9), // 5^-4
    (0x83126e978d4fdf3b, 0x645a1cac083126ea), // 5^-3
    (0xa3d70a3d70a3d70a, 0x3d70a3d70a3d70a4), // 5^-2
    (0xcccccccccccccccc, 0xcccccccccccccccd), // 5^-1
    (0x8000000000000000, 0x0000000000000000), // 5^0
    (0xa000000000000000, 0x0000000000000000), // 5^1
    (0xc800000000000000, 0x0000000000000000), // 5^2
    (0xfa00000000000000, 0x0000000000000000), // 5^3
    (0x9c40000000000000, 0x0000000000000000), // 5^4
    (0xc350000000000000, 0x0000000000000000), // 5^5
    (0xf424000000000000, 0x0000000000000000), // 5^6
    (0x9896800000000000, 0x0000000000000000), // 5^7
    (0xbebc200000000000, 0x0000000000000000), // 5^8
    (0xee6b280000000000, 0x0000000000000000), // 5^9
    (0x9502f90000000000, 0x0000000000000000), // 5^10
    (0xba43b74000000000, 0x0000000000000000), // 5^11
    (0xe8d4a51000000000, 0x0000000000000000), // 5^12
    (0x9184e72a00000000, 0x0000000000000000), // 5^13
    (0xb5e620f480000000, 0x0000000000000000), // 5^14
    (0xe35fa931a0000000, 0x0000000000000000), // 5^15
    (0x8e1bc9bf04000000, 0x0000000000000000), // 5^16
    (0xb1a2bc2ec5000000, 0x0000000000000000), // 5^17
    (0xde0b6b3a76400000, 0x0000000000000000), // 5^18
    (0x8ac7230489e80000, 0x0000000000000000), // 5^19
    (0xad78ebc5ac620000, 0x0000000000000000), // 5^20
    (0xd8d726b7177a8000, 0x0000000000000000), // 5^21
    (0x878678326eac9000, 0x0000000000000000), // 5^22
    (0xa968163f0a57b400, 0x0000000000000000), // 5^23
    (0xd3c21bcecceda100, 0x0000000000000000), // 5^24
    (0x84595161401484a0, 0x0000000000000000), // 5^25
    (0xa56fa5b99019a5c8, 0x0000000000000000), // 5^26
    (0xcecb8f27f4200f3a, 0x0000000000000000), // 5^27
    (0x813f3978f8940984, 0x4000000000000000), // 5^28
    (0xa18f07d736b90be5, 0x5000000000000000), // 5^29
    (0xc9f2c9cd04674ede, 0xa400000000000000), // 5^30
    (0xfc6f7c4045812296, 0x4d00000000000000), // 5^31
    (0x9dc5ada82b70b59d, 0xf020000000000000), // 5^32
    (0xc5371912364ce305, 0x6c28000000000000), // 5^33
    (0xf684df56c3e01bc6, 0xc732000000000000), // 5^34
    (0x9a130b963a6c115c, 0x3c7f400000000000), // 5^35
    (0xc097ce7bc90715b3, 0x4b9f100000000000), // 5^36
    (0xf0bdc21abb48db20, 0x1e86d40000000000), // 5^37
    (0x96769950b50d88f4, 0x1314448000000000), // 5^38
    (0xbc143fa4e250eb31, 0x17d955a000000000), // 5^39
    (0xeb194f8e1ae525fd, 0x5dcfab0800000000), // 5^40
];

#[cfg(test)]
#[path = "decimal_tests.rs"]
mod tests;
