//! Reading node parameters in both shapes ttnn has written them: older versions make every
//! value a string (`"size": "24576"`), newer ones write numbers for the numeric keys.

use serde_json::{Map, Value};

/// The parameters of one node (`params` may be `null` or absent: then there are none).
pub struct Params<'a> {
    map: Option<&'a Map<String, Value>>,
}

/// Why a parameter could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamError {
    /// Not there.
    Missing,
    /// There, but not of the expected kind.
    Bad(String),
}

impl<'a> Params<'a> {
    /// Wraps a node's `params` value.
    pub fn new(value: Option<&'a Value>) -> Self {
        Params { map: value.and_then(Value::as_object) }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.and_then(|m| m.get(key)).filter(|v| !v.is_null())
    }

    /// An unsigned integer, written as a number or as a decimal string.
    pub fn u64(&self, key: &str) -> Result<u64, ParamError> {
        let v = self.get(key).ok_or(ParamError::Missing)?;
        match v {
            Value::Number(n) => n
                .as_u64()
                .or_else(|| {
                    n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < u64::MAX as f64).map(|f| f as u64)
                })
                .ok_or_else(|| ParamError::Bad(format!("{n} is not an unsigned integer"))),
            Value::String(s) => {
                s.trim().parse::<u64>().map_err(|_| ParamError::Bad(format!("\"{s}\" is not an unsigned integer")))
            }
            other => Err(ParamError::Bad(format!("{other} is not an unsigned integer"))),
        }
    }

    /// An optional unsigned integer: absent is `None`, malformed is an error.
    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>, ParamError> {
        match self.u64(key) {
            Ok(v) => Ok(Some(v)),
            Err(ParamError::Missing) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A string; numbers and booleans are given in their JSON spelling.
    pub fn str(&self, key: &str) -> Option<String> {
        match self.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// A boolean written as `true`/`false`, `"true"`/`"false"`, `"1"`/`"0"` or `1`/`0`
    /// (ttnn uses `std::to_string(bool)` for `globally_allocated`).
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ParamError> {
        let Some(v) = self.get(key) else { return Ok(None) };
        match v {
            Value::Bool(b) => Ok(Some(*b)),
            Value::Number(n) => match n.as_u64() {
                Some(0) => Ok(Some(false)),
                Some(1) => Ok(Some(true)),
                _ => Err(ParamError::Bad(format!("{n} is not a boolean"))),
            },
            Value::String(s) => match s.trim() {
                "1" | "true" | "True" => Ok(Some(true)),
                "0" | "false" | "False" => Ok(Some(false)),
                other => Err(ParamError::Bad(format!("\"{other}\" is not a boolean"))),
            },
            other => Err(ParamError::Bad(format!("{other} is not a boolean"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_strings_and_numbers_alike() {
        let v = json!({"size": "24576", "address": 1048640, "neg": -1, "flag": "0", "t": true, "f": 2.5, "n": null});
        let p = Params::new(Some(&v));
        assert_eq!(p.u64("size"), Ok(24576));
        assert_eq!(p.u64("address"), Ok(1048640));
        assert!(matches!(p.u64("neg"), Err(ParamError::Bad(_))));
        assert!(matches!(p.u64("f"), Err(ParamError::Bad(_))));
        assert_eq!(p.u64("nothing"), Err(ParamError::Missing));
        assert_eq!(p.u64("n"), Err(ParamError::Missing));
        assert_eq!(p.opt_u64("nothing"), Ok(None));
        assert_eq!(p.bool("flag"), Ok(Some(false)));
        assert_eq!(p.bool("t"), Ok(Some(true)));
        assert!(p.bool("size").is_err());
        assert_eq!(p.str("address").as_deref(), Some("1048640"));
        assert_eq!(Params::new(None).u64("size"), Err(ParamError::Missing));
        assert_eq!(Params::new(Some(&Value::Null)).u64("size"), Err(ParamError::Missing));
    }
}
