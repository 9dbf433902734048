//! Parsing tt-metal's `CoreRangeSet::str()`:
//! `{[(x=0,y=0) - (x=0,y=7)], [(x=1,y=0) - (x=1,y=3)]}`.

use ttsan_events::{CoreCoord, CoreRange};

/// Parses a core range set. Every range is a pair of `(x=..,y=..)` coordinates; a lone
/// coordinate (a single-core range printed without its end) is accepted as that one core.
pub fn parse_core_range_set(text: &str) -> Result<Vec<CoreRange>, String> {
    let mut ranges = Vec::new();
    for (i, chunk) in text.split('[').enumerate().skip(1) {
        let body = chunk.split(']').next().unwrap_or_default();
        let coords = coords_in(body).map_err(|e| format!("range {i}: {e}"))?;
        match coords.as_slice() {
            [one] => ranges.push(CoreRange::single(*one)),
            [start, end] => {
                if start.x > end.x || start.y > end.y {
                    return Err(format!("range {i}: start {start} is past end {end}"));
                }
                ranges.push(CoreRange::new(*start, *end));
            }
            other => return Err(format!("range {i}: expected 2 coordinates, found {}", other.len())),
        }
    }
    if ranges.is_empty() {
        // A bare coordinate pair without brackets, as some versions print a single CoreRange.
        let coords = coords_in(text)?;
        match coords.as_slice() {
            [] => {}
            [one] => ranges.push(CoreRange::single(*one)),
            [start, end] => ranges.push(CoreRange::new(*start, *end)),
            other => return Err(format!("expected bracketed ranges, found {} bare coordinates", other.len())),
        }
    }
    Ok(ranges)
}

fn coords_in(text: &str) -> Result<Vec<CoreCoord>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('(') {
        let after = &rest[open + 1..];
        let close = after.find(')').ok_or_else(|| format!("unclosed coordinate in `{text}`"))?;
        out.push(coord(&after[..close])?);
        rest = &after[close + 1..];
    }
    Ok(out)
}

fn coord(inner: &str) -> Result<CoreCoord, String> {
    let mut x = None;
    let mut y = None;
    for part in inner.split(',') {
        let (key, value) = part.split_once('=').ok_or_else(|| format!("bad coordinate `({inner})`"))?;
        let value: u16 = value.trim().parse().map_err(|_| format!("bad coordinate value in `({inner})`"))?;
        match key.trim() {
            "x" => x = Some(value),
            "y" => y = Some(value),
            _ => return Err(format!("bad coordinate key in `({inner})`")),
        }
    }
    match (x, y) {
        (Some(x), Some(y)) => Ok(CoreCoord::new(x, y)),
        _ => Err(format!("coordinate `({inner})` needs x and y")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(x0: u16, y0: u16, x1: u16, y1: u16) -> CoreRange {
        CoreRange::new(CoreCoord::new(x0, y0), CoreCoord::new(x1, y1))
    }

    #[test]
    fn parses_ttnn_core_range_sets() {
        assert_eq!(
            parse_core_range_set("{[(x=0,y=0) - (x=0,y=7)], [(x=1,y=0) - (x=1,y=3)]}").unwrap(),
            vec![r(0, 0, 0, 7), r(1, 0, 1, 3)]
        );
        assert_eq!(parse_core_range_set("{[(x=2,y=3) - (x=2,y=3)]}").unwrap(), vec![r(2, 3, 2, 3)]);
        assert_eq!(parse_core_range_set("[(x = 1, y = 2) - (x = 7, y = 6)]").unwrap(), vec![r(1, 2, 7, 6)]);
        assert_eq!(parse_core_range_set("(x=0,y=0) - (x=7,y=7)").unwrap(), vec![r(0, 0, 7, 7)]);
        assert_eq!(parse_core_range_set("{}").unwrap(), vec![]);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_core_range_set("{[(x=0,y=0) - (x=0,y=7)(x=1,y=1)]}").is_err());
        assert!(parse_core_range_set("{[(x=5,y=0) - (x=0,y=7)]}").is_err());
        assert!(parse_core_range_set("{[(x=a,y=0) - (x=0,y=7)]}").is_err());
        assert!(parse_core_range_set("{[(x=0 - (x=0,y=7)]}").is_err());
        assert!(parse_core_range_set("{[(x=0,z=0) - (x=0,y=7)]}").is_err());
    }
}
