//! Command-line values for the bench tools (harness = false), checked with a message that names
//! the flag, the value and what was expected.

/// `v` parsed as `T` when `ok` accepts it; else "`flag` "v": expected `expected`".
pub fn parse_arg<T: std::str::FromStr>(
    flag: &str,
    v: &str,
    ok: impl FnOnce(&T) -> bool,
    expected: &str,
) -> Result<T, String> {
    v.parse()
        .ok()
        .filter(ok)
        .ok_or_else(|| format!("{flag} {v:?}: expected {expected}"))
}
