//! Clerk's scoped lists (`fea`, `pla`: `o:dashboard,u:billing`) and the v2
//! org permissions encoded in `o.per` and the bit masks of `o.fpm`, decoded
//! exactly as `@clerk/shared` decodes them (`splitByScope`,
//! `parsePermissions`, `buildOrgPermissions`). The identity headers and the
//! per-location rules both read permissions through here, so
//! `X-Org-Permissions` and `?permission=` never disagree.

/// The `(scope, value)` entries of a scoped list like `o:a,u:b` (Clerk's
/// `splitByScope` before it sorts them); check [`is_scoped_list`] first.
pub fn scoped_entries(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split(',')
        .filter(move |_| !text.is_empty())
        .filter_map(|part| js_trim(part).split_once(':'))
}

/// Whether `splitByScope` accepts the list (every entry has a `:`).
pub fn is_scoped_list(text: &str) -> bool {
    text.is_empty() || text.split(',').all(|part| js_trim(part).contains(':'))
}

pub fn is_org_scope(scope: &str) -> bool {
    matches!(scope, "o" | "ou" | "uo")
}

pub fn is_user_scope(scope: &str) -> bool {
    matches!(scope, "u" | "ou" | "uo")
}

/// Calls `grant(feature, name)` for each org permission of v2 claims: bit j
/// of the i-th mask of `fpm` grants `per[j]` on the i-th org feature of
/// `fea`. The work is bounded by the input's length plus the permissions
/// granted (only set bits are visited). Check [`is_scoped_list`] first.
pub fn for_each_org_permission<'a, E>(
    fea: &'a str,
    per: &'a str,
    fpm: &'a str,
    mut grant: impl FnMut(&'a str, &'a str) -> Result<(), E>,
) -> Result<(), E> {
    if per.is_empty() || fpm.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = per.split(',').map(js_trim).collect();
    let org_features = scoped_entries(fea)
        .filter(|(scope, _)| is_org_scope(scope))
        .map(|(_, feature)| feature);
    for (feature, mask) in org_features.zip(fpm.split(',').map(js_trim)) {
        let Some(mask) = Mask::parse(mask, names.len()) else {
            continue;
        };
        for name in mask.ones().map_while(|j| names.get(j)) {
            grant(feature, name)?;
        }
    }
    Ok(())
}

/// The low bits of a decimal number of any length, exactly (arithmetic
/// modulo 2^128, or 2^(64·limbs) when `per` has more than 128 names).
enum Mask {
    /// Up to 128 names: two limbs, least significant first.
    Small([u64; 2]),
    Big(Vec<u64>),
}

impl Mask {
    /// `None` unless `decimal` is all ASCII digits (the SDK's `/^\d+$/`).
    fn parse(decimal: &str, bits: usize) -> Option<Mask> {
        if decimal.is_empty() || !decimal.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits = decimal.bytes().map(|b| u64::from(b - b'0'));
        if bits <= 128 {
            let value = digits.fold(0u128, |v, d| v.wrapping_mul(10).wrapping_add(u128::from(d)));
            return Some(Mask::Small([value as u64, (value >> 64) as u64]));
        }
        let mut limbs = vec![0u64; bits.div_ceil(64)];
        for digit in digits {
            let mut carry = digit;
            for limb in limbs.iter_mut() {
                let wide = u128::from(*limb) * 10 + u128::from(carry);
                *limb = wide as u64;
                carry = (wide >> 64) as u64;
            }
        }
        Some(Mask::Big(limbs))
    }

    /// The positions of the set bits, lowest first.
    fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        let limbs: &[u64] = match self {
            Mask::Small(limbs) => limbs,
            Mask::Big(limbs) => limbs,
        };
        limbs.iter().enumerate().flat_map(|(i, &limb)| {
            let mut rest = limb;
            std::iter::from_fn(move || {
                if rest == 0 {
                    return None;
                }
                let bit = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                Some(i * 64 + bit)
            })
        })
    }
}

/// JavaScript's `String.prototype.trim`: WhiteSpace and LineTerminator,
/// which is not Rust's `trim` (JS trims U+FEFF, Rust trims U+0085).
pub fn js_trim(s: &str) -> &str {
    s.trim_matches(js_space)
}

/// JavaScript's StrWhiteSpaceChar: WhiteSpace and LineTerminator.
pub fn js_space(c: char) -> bool {
    matches!(
        c,
        '\u{9}'..='\u{d}'
            | ' '
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
            | '\u{feff}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(fea: &str, per: &str, fpm: &str) -> Vec<String> {
        let mut out = Vec::new();
        for_each_org_permission(fea, per, fpm, |f, n| {
            out.push(format!("org:{f}:{n}"));
            Ok::<(), ()>(())
        })
        .unwrap();
        out
    }

    #[test]
    fn js_trim_is_not_rust_trim() {
        assert_eq!(js_trim("\u{feff}\u{a0} a \u{3000}\n"), "a");
        assert_eq!(js_trim("\u{85}a"), "\u{85}a");
    }

    #[test]
    fn permissions_decode_as_the_sdk_does() {
        // Only o, ou, uo are org scopes (not "org"); the index counts org
        // features only.
        assert_eq!(
            granted("o:a,u:b,org:c,uo:d", "read,write", "1,3,2"),
            ["org:a:read", "org:d:read", "org:d:write"]
        );
        // An empty name keeps its bit position; JavaScript's trim applies.
        assert_eq!(
            granted("o:a", "read,,\u{feff}write", "5"),
            ["org:a:read", "org:a:write"]
        );
        // Masks are all digits ("+5" is not), and wider than 128 bits exactly.
        assert!(granted("o:a", "read", "+1").is_empty());
        let names: Vec<String> = (0..130).map(|i| format!("p{i}")).collect();
        let bit_129 = "680564733841876926926749214863536422912"; // 2^129
        assert_eq!(granted("o:a", &names.join(","), bit_129), ["org:a:p129"]);
    }
}
