//! Decimal text of an integer without `fmt`'s machinery, for the hot path
//! (log lines, signing dates, response headers).

/// Room for the longest `u64` in decimal.
pub type Digits = [u8; 20];

/// `value` in decimal, written at the end of `digits`.
pub fn format(value: u64, digits: &mut Digits) -> &str {
    let mut at = digits.len();
    let mut rest = value;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    // Only ASCII digits were written from `at` on.
    std::str::from_utf8(&digits[at..]).unwrap_or_default()
}

/// Appends `value` in decimal to `out`.
pub fn push(out: &mut String, value: u64) {
    out.push_str(format(value, &mut Digits::default()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn edges() {
        let mut digits = Digits::default();
        assert_eq!(format(0, &mut digits), "0");
        assert_eq!(format(10, &mut digits), "10");
        assert_eq!(format(u64::MAX, &mut digits), "18446744073709551615");
    }

    #[test]
    fn pushes() {
        for v in [0, 7, 10, 86_400, 604_800, u64::MAX] {
            let mut s = String::from("x=");
            push(&mut s, v);
            assert_eq!(s, format!("x={v}"));
        }
    }

    proptest! {
        #[test]
        fn matches_display(value: u64) {
            let mut digits = Digits::default();
            prop_assert_eq!(format(value, &mut digits), value.to_string());
        }
    }
}
