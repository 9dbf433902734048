//! Generic fault injection: make a named op call misbehave in a chosen way.
//!
//! Syntax (one fault; several are separated by `;` or given one by one):
//! - `stray-write:op=NAME[#N],device=D,space=dram|l1,bank=B|core=X.Y,addr=A,len=L`
//! - `overrun:op=NAME[#N],bytes=L[,out=GLOB]`
//! - `stale:op=NAME`
//! - `deferred:op=NAME[,scratch=GLOB][,seed=S]`
//!
//! `#N` picks the N-th call of NAME (default the first); numbers are decimal or `0x` hex.
//! `out=GLOB` counts only the calls whose first output is named like GLOB, so a fault can
//! follow one use of a generic op (one `to_layout` among many) wherever it falls in a run.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use thiserror::Error;
use ttsan_events::{CoreCoord, Space, Unit};

/// A fault specification that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("bad fault `{spec}`: {reason}")]
pub struct FaultParseError {
    /// The specification as given.
    pub spec: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Which call of which op a fault applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpCall {
    /// Op name as ttnn spells it.
    pub op: String,
    /// 1-based call number of that op name.
    pub call: u64,
}

impl fmt::Display for OpCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.op, self.call)
    }
}

/// One injected fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The op also writes `len` bytes at a fixed place.
    StrayWrite {
        /// The op call.
        at: OpCall,
        /// The chip.
        device: u32,
        /// DRAM or L1.
        space: Space,
        /// The bank (DRAM) or core (L1).
        unit: Unit,
        /// Bank-local address.
        address: u64,
        /// Bytes.
        len: u64,
    },
    /// The op writes `bytes` past the end of its first output, on the last unit it touches.
    Overrun {
        /// The op call.
        at: OpCall,
        /// Bytes past the end.
        bytes: u64,
        /// Glob over the first output's name: only matching calls count towards `at.call`.
        out: Option<String>,
    },
    /// A stale runtime argument: the op's cached program keeps the address of the buffer it
    /// was built for on its cache miss (a cached scratch, or the per-call intermediate a
    /// collective creates), and later calls, cache hits, write there after that buffer was
    /// freed and its space handed to another.
    Stale {
        /// The op name (every call after the first writes through the stale address).
        op: String,
    },
    /// Cross-chip skew: a peer chip's fabric writes into a receiver's scratch or intermediate
    /// (those named like `scratch`) are still in flight when the op ends on the receiver and
    /// land some ops later, wherever the receiver freed that buffer in between. Without a
    /// seed every receiver's writes land two ops later; with one, each call picks one
    /// receiver and a delay of 0 (on time), 1 or 2 ops from the seed.
    Deferred {
        /// The op name (every call).
        op: String,
        /// Glob over the buffer names whose incoming writes are late.
        scratch: String,
        /// Seed of the skew.
        seed: Option<u64>,
    },
}

impl Fault {
    /// The op name the fault is attached to.
    pub fn op(&self) -> &str {
        match self {
            Fault::StrayWrite { at, .. } | Fault::Overrun { at, .. } => &at.op,
            Fault::Stale { op } | Fault::Deferred { op, .. } => op,
        }
    }
}

fn number(spec: &str, key: &str, v: &str) -> Result<u64, FaultParseError> {
    let parsed = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse::<u64>(),
    };
    parsed.map_err(|_| FaultParseError {
        spec: spec.into(),
        reason: format!("`{key}={v}`: expected a decimal or 0x-hex number"),
    })
}

fn op_call(spec: &str, v: &str) -> Result<OpCall, FaultParseError> {
    let err = |reason: String| FaultParseError { spec: spec.into(), reason };
    let (op, call) = match v.split_once('#') {
        Some((op, n)) => (op, number(spec, "op", n)?),
        None => (v, 1),
    };
    if op.is_empty() {
        return Err(err("`op=` needs an op name, e.g. op=ttnn.matmul".into()));
    }
    if call == 0 {
        return Err(err(format!("`op={v}`: calls are numbered from 1")));
    }
    Ok(OpCall { op: op.to_string(), call })
}

impl FromStr for Fault {
    type Err = FaultParseError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let spec = spec.trim();
        let err = |reason: String| FaultParseError { spec: spec.into(), reason };
        let (kind, rest) = spec
            .split_once(':')
            .ok_or_else(|| err("expected KIND:key=value,... (kinds: stray-write, overrun, stale, deferred)".into()))?;
        let mut fields = BTreeMap::new();
        for part in rest.split(',') {
            let (k, v) = part.split_once('=').ok_or_else(|| err(format!("`{part}` is not key=value")))?;
            if fields.insert(k.trim(), v.trim()).is_some() {
                return Err(err(format!("`{k}` is given twice")));
            }
        }
        let allowed: &[&str] = match kind {
            "stray-write" => &["op", "device", "space", "bank", "core", "addr", "len"],
            "overrun" => &["op", "bytes", "out"],
            "stale" => &["op"],
            "deferred" => &["op", "scratch", "seed"],
            other => return Err(err(format!("unknown fault kind `{other}` (stray-write, overrun, stale, deferred)"))),
        };
        if let Some(k) = fields.keys().find(|k| !allowed.contains(k)) {
            return Err(err(format!("unknown key `{k}` for {kind} (allowed: {})", allowed.join(", "))));
        }
        let need = |k: &str| fields.get(k).copied().ok_or_else(|| err(format!("{kind} needs `{k}=`")));
        match kind {
            "stray-write" => {
                let at = op_call(spec, need("op")?)?;
                let device = u32::try_from(number(spec, "device", need("device")?)?)
                    .map_err(|_| err("device id too large".into()))?;
                let (space, unit) = match need("space")? {
                    "dram" => {
                        if fields.contains_key("core") {
                            return Err(err("space=dram takes bank=B, not core=".into()));
                        }
                        let b = number(spec, "bank", need("bank")?)?;
                        (Space::Dram, Unit::Bank(u32::try_from(b).map_err(|_| err("bank too large".into()))?))
                    }
                    "l1" => {
                        if fields.contains_key("bank") {
                            return Err(err("space=l1 takes core=X.Y, not bank=".into()));
                        }
                        let c = need("core")?;
                        let (x, y) = c.split_once('.').ok_or_else(|| err(format!("`core={c}`: expected X.Y")))?;
                        let coord = |s: &str| {
                            number(spec, "core", s).and_then(|n| {
                                u16::try_from(n).map_err(|_| err(format!("core coordinate {n} too large")))
                            })
                        };
                        (Space::L1, Unit::Core(CoreCoord::new(coord(x)?, coord(y)?)))
                    }
                    other => return Err(err(format!("`space={other}`: expected dram or l1"))),
                };
                let address = number(spec, "addr", need("addr")?)?;
                let len = number(spec, "len", need("len")?)?;
                if len == 0 {
                    return Err(err("len must be positive".into()));
                }
                Ok(Fault::StrayWrite { at, device, space, unit, address, len })
            }
            "overrun" => {
                let at = op_call(spec, need("op")?)?;
                let bytes = number(spec, "bytes", need("bytes")?)?;
                if bytes == 0 {
                    return Err(err("bytes must be positive".into()));
                }
                let out = fields.get("out").map(|g| g.to_string());
                if let Some(g) = &out {
                    globset::Glob::new(g).map_err(|e| err(format!("`out={g}`: {e}")))?;
                }
                Ok(Fault::Overrun { at, bytes, out })
            }
            "deferred" => {
                let at = op_call(spec, need("op")?)?;
                if need("op")?.contains('#') {
                    return Err(err("deferred applies to every call; drop the #N".into()));
                }
                let scratch = fields.get("scratch").copied().unwrap_or("*").to_string();
                globset::Glob::new(&scratch).map_err(|e| err(format!("`scratch={scratch}`: {e}")))?;
                let seed = fields.get("seed").map(|v| number(spec, "seed", v)).transpose()?;
                Ok(Fault::Deferred { op: at.op, scratch, seed })
            }
            _ => {
                let at = op_call(spec, need("op")?)?;
                if at.call != 1 || need("op")?.contains('#') {
                    return Err(err("stale applies to every call after the first; drop the #N".into()));
                }
                Ok(Fault::Stale { op: at.op })
            }
        }
    }
}

/// Parses several faults separated by `;`.
pub fn parse_faults(text: &str) -> Result<Vec<Fault>, FaultParseError> {
    text.split(';').filter(|s| !s.trim().is_empty()).map(str::parse).collect()
}

/// The faults of a run and whether each took effect.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    faults: Vec<(Fault, bool)>,
    /// Per fault, the calls so far whose output matched its `out=` glob.
    matched: Vec<u64>,
}

impl FaultPlan {
    /// A plan of `faults`, none fired yet.
    pub fn new(faults: Vec<Fault>) -> Self {
        let matched = vec![0; faults.len()];
        FaultPlan { faults: faults.into_iter().map(|f| (f, false)).collect(), matched }
    }

    /// Faults planned for call `call` of `op` (stale faults and overruns with an `out=` glob
    /// match every call; the op decides once its outputs exist, through [`FaultPlan::matches`]).
    pub fn for_call(&self, op: &str, call: u64) -> Vec<(usize, Fault)> {
        self.faults
            .iter()
            .enumerate()
            .filter(|(_, (f, _))| match f {
                Fault::Overrun { at, out: Some(_), .. } => at.op == op,
                Fault::StrayWrite { at, .. } | Fault::Overrun { at, .. } => at.op == op && at.call == call,
                Fault::Stale { op: o } | Fault::Deferred { op: o, .. } => o == op,
            })
            .map(|(i, (f, _))| (i, f.clone()))
            .collect()
    }

    /// Whether a stale fault is planned for `op`.
    pub fn stale(&self, op: &str) -> Option<usize> {
        self.faults.iter().position(|(f, _)| matches!(f, Fault::Stale { op: o } if o == op))
    }

    /// Whether fault `i` applies to a call whose first output is named `name`: always without
    /// an `out=` glob; with one, when this is the `#N`-th call whose output matched it.
    pub fn matches(&mut self, i: usize, name: &str) -> bool {
        let Some((Fault::Overrun { at, out: Some(glob), .. }, _)) = self.faults.get(i) else { return true };
        if !globset::Glob::new(glob).is_ok_and(|g| g.compile_matcher().is_match(name)) {
            return false;
        }
        let call = at.call;
        match self.matched.get_mut(i) {
            Some(n) => {
                *n += 1;
                *n == call
            }
            None => false,
        }
    }

    /// Marks fault `i` as having taken effect.
    pub fn fired(&mut self, i: usize) {
        if let Some(f) = self.faults.get_mut(i) {
            f.1 = true;
        }
    }

    /// The faults that never took effect.
    pub fn unfired(&self) -> impl Iterator<Item = &Fault> {
        self.faults.iter().filter(|(_, fired)| !fired).map(|(f, _)| f)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::StrayWrite { at, device, space, unit, address, len } => {
                let place = match unit {
                    Unit::Bank(b) => format!("bank={b}"),
                    Unit::Core(c) => format!("core={}.{}", c.x, c.y),
                };
                write!(f, "stray-write:op={at},device={device},space={space},{place},addr={address:#x},len={len}")
            }
            Fault::Overrun { at, bytes, out: None } => write!(f, "overrun:op={at},bytes={bytes}"),
            Fault::Overrun { at, bytes, out: Some(g) } => write!(f, "overrun:op={at},bytes={bytes},out={g}"),
            Fault::Stale { op } => write!(f, "stale:op={op}"),
            Fault::Deferred { op, scratch, seed: None } => write!(f, "deferred:op={op},scratch={scratch}"),
            Fault::Deferred { op, scratch, seed: Some(s) } => {
                write!(f, "deferred:op={op},scratch={scratch},seed={s}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind() {
        let f: Fault = "stray-write:op=ttnn.matmul#2,device=3,space=dram,bank=5,addr=0x100040,len=64".parse().unwrap();
        assert_eq!(
            f,
            Fault::StrayWrite {
                at: OpCall { op: "ttnn.matmul".into(), call: 2 },
                device: 3,
                space: Space::Dram,
                unit: Unit::Bank(5),
                address: 0x10_0040,
                len: 64
            }
        );
        let f: Fault = "stray-write:op=ttnn.add,device=0,space=l1,core=1.2,addr=1000,len=4".parse().unwrap();
        assert!(matches!(f, Fault::StrayWrite { unit: Unit::Core(CoreCoord { x: 1, y: 2 }), .. }));
        assert_eq!(
            "overrun:op=ttnn.softmax,bytes=32".parse::<Fault>().unwrap(),
            Fault::Overrun { at: OpCall { op: "ttnn.softmax".into(), call: 1 }, bytes: 32, out: None }
        );
        let f: Fault = "overrun:op=ttnn.to_layout,bytes=2048,out=*.out_rm".parse().unwrap();
        assert_eq!(f.to_string().parse::<Fault>().unwrap(), f);
        let mut plan = FaultPlan::new(vec!["overrun:op=ttnn.to_layout#2,bytes=1,out=*.rm".parse().unwrap()]);
        assert_eq!(plan.for_call("ttnn.to_layout", 7).len(), 1, "the op decides once it has outputs");
        let hits: Vec<bool> = ["a.tile", "a.rm", "b.tile", "b.rm", "c.rm"].iter().map(|n| plan.matches(0, n)).collect();
        assert_eq!(hits, [false, false, false, true, false], "the second matching call only");
        let all =
            parse_faults("stale:op=ttnn.experimental.reduce_scatter_minimal_async; overrun:op=x#3,bytes=1").unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].to_string(), "stale:op=ttnn.experimental.reduce_scatter_minimal_async");
        let f: Fault = "deferred:op=rs,scratch=*.rs_intermediate".parse().unwrap();
        assert_eq!(f, Fault::Deferred { op: "rs".into(), scratch: "*.rs_intermediate".into(), seed: None });
        assert_eq!(f.to_string().parse::<Fault>().unwrap(), f);
        let f: Fault = "deferred:op=rs,seed=7".parse().unwrap();
        assert_eq!(f, Fault::Deferred { op: "rs".into(), scratch: "*".into(), seed: Some(7) });
        assert_eq!(f.to_string().parse::<Fault>().unwrap(), f);
    }

    #[test]
    fn rejects_bad_syntax_with_a_reason() {
        for (bad, why) in [
            ("stray-write", "expected KIND"),
            ("boom:op=x", "unknown fault kind"),
            ("overrun:op=x", "needs `bytes=`"),
            ("overrun:op=x,bytes=ten", "decimal or 0x-hex"),
            ("overrun:op=x#0,bytes=1", "numbered from 1"),
            ("stray-write:op=x,device=0,space=dram,core=1.1,addr=0,len=4", "bank=B"),
            ("stray-write:op=x,device=0,space=l1,core=11,addr=0,len=4", "X.Y"),
            ("stray-write:op=x,device=0,space=hbm,bank=1,addr=0,len=4", "dram or l1"),
            ("overrun:op=x,bytes=1,bytes=2", "twice"),
            ("overrun:op=x,bytes=1,len=2", "unknown key"),
            ("stale:op=x#2", "drop the #N"),
            ("deferred:op=x#2", "drop the #N"),
            ("deferred:op=x,scratch=[", "scratch="),
            ("overrun:op=x,bytes=0", "positive"),
            ("overrun:op=x,bytes=1,out=[", "out="),
        ] {
            let e = bad.parse::<Fault>().unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }
}
