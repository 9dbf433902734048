//! The text forms of `ttsan run gpt-oss`'s flags (`--mesh 4x8`, `--layers 0-3`,
//! `--cases prefill:128,decode:32`, `--input-ids 1,2,3`); errors name the flag.

use ttsan_inference::gpt_oss::run::{Case, Mode};

/// Parses `prefill:128,prefill:2048` (`MODE:TOKENS`, comma separated).
pub fn parse_cases(text: &str) -> Result<Vec<Case>, String> {
    let bad = |p: &str| format!("bad case `{p}` in --cases {text}: expected MODE:TOKENS (prefill:128, decode:32)");
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (mode, tokens) = part.split_once(':').ok_or_else(|| bad(part))?;
        let mode = match mode.trim() {
            "prefill" => Mode::Prefill,
            "decode" => Mode::Decode,
            _ => return Err(bad(part)),
        };
        let tokens: usize = tokens.trim().parse().map_err(|_| bad(part))?;
        out.push(Case { mode, tokens });
    }
    if out.is_empty() {
        return Err("--cases names no case".to_string());
    }
    Ok(out)
}

/// Parses `RxC` (`1x8`, `4x8`).
pub fn parse_mesh(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("bad mesh `{text}`: expected RxC with R, C >= 1, e.g. 1x8 or 4x8");
    let (r, c) = text.split_once(['x', 'X']).ok_or_else(bad)?;
    let (r, c): (u32, u32) = (r.trim().parse().map_err(|_| bad())?, c.trim().parse().map_err(|_| bad())?);
    if r == 0 || c == 0 || r * c > 64 {
        return Err(bad());
    }
    Ok((r, c))
}

/// Parses `0,1` or `0-3`.
pub fn parse_layers(text: &str) -> Result<Vec<usize>, String> {
    let bad = |p: &str| format!("bad layer `{p}` in --layers {text}: expected N, N-M, comma separated");
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().map_err(|_| bad(part))?, b.parse().map_err(|_| bad(part))?);
                if a > b {
                    return Err(bad(part));
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad(part))?),
        }
    }
    if out.is_empty() {
        return Err("--layers names no layer".to_string());
    }
    Ok(out)
}

/// Parses `1,2,3`.
pub fn parse_ids(text: &str) -> Result<Vec<u32>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().map_err(|_| format!("bad token id `{p}` in --input-ids")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_bad_text_names_the_flag() {
        assert_eq!(parse_mesh("4x8"), Ok((4, 8)));
        assert!(parse_mesh("0x8").is_err() && parse_mesh("9x9").is_err());
        assert_eq!(parse_layers("0,2-4"), Ok(vec![0, 2, 3, 4]));
        assert!(parse_layers("3-1").unwrap_err().contains("--layers"));
        let cases = parse_cases("prefill:128, decode:32").unwrap();
        assert_eq!(cases, [Case { mode: Mode::Prefill, tokens: 128 }, Case { mode: Mode::Decode, tokens: 32 }]);
        assert!(parse_cases("train:1").unwrap_err().contains("--cases"));
        assert_eq!(parse_ids("1, 2,3"), Ok(vec![1, 2, 3]));
        assert!(parse_ids("1,x").unwrap_err().contains("--input-ids"));
    }
}
