//! Where each method of tt-metal's `IGraphProcessor` sits in its vtable, found by name in the
//! loaded library rather than assumed.
//!
//! The wheel ships no headers, and the interface moves between builds: ttnn 0.81.1's
//! `IGraphProcessor` has `track_function_start` at slot 8 (after `track_allocate_dataflow_buffer`
//! and `track_allocate_scratchpad`), while `graph_tracking.hpp` on tt-metal's main branch has it
//! at slot 6. So the slots are read off the exported vtable `_ZTVN2tt8tt_metal15IGraphProcessorE`:
//! its symbol size gives the slot count, each entry is named (see [`crate::symbols`]) and
//! demangled, and each method the shim overrides must be found exactly once with the exact
//! parameter list it is called with. When ttnn's own processor (`ttnn::graph::GraphProcessor`,
//! whose overrides are exported) is loaded too, its vtable must name the same methods at the
//! same slots. Anything else means an unsupported build: the shim then registers nothing and the
//! run is reported as not checked.

use crate::symbols;
use std::ffi::CStr;

/// `vtable for tt::tt_metal::IGraphProcessor`.
const BASE_VTABLE: &CStr = c"_ZTVN2tt8tt_metal15IGraphProcessorE";
/// `vtable for ttnn::graph::GraphProcessor` (in `_ttnncpp.so`).
const TTNN_VTABLE: &CStr = c"_ZTVN4ttnn5graph14GraphProcessorE";
/// A vtable symbol starts with offset-to-top and the typeinfo pointer; objects point past them.
const HEADER_WORDS: usize = 2;
/// More slots than any plausible interface: a size beyond it is not a vtable we understand.
const MAX_SLOTS: usize = 64;

/// One method the shim overrides: its name and its parameter list as demangled (spaces removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Method {
    pub name: &'static str,
    pub params: &'static str,
}

/// The methods overridden, in [`Slots`] order.
pub(crate) const METHODS: [Method; 7] = [
    Method { name: "is_capture_processor", params: "()const" },
    Method {
        name: "track_function_start",
        params: "(std::basic_string_view<char,std::char_traits<char>>,std::span<tt::tt_metal::TrackedArgument,(unsignedlong)18446744073709551615>)",
    },
    Method { name: "track_function_end", params: "()" },
    Method { name: "track_function_end", params: "(std::anyconst&)" },
    Method {
        name: "track_allocate_cb",
        params: "(tt::tt_metal::CoreRangeSetconst&,unsignedlong,unsignedlong,bool,tt::tt_metal::IDeviceconst*)",
    },
    Method { name: "track_deallocate_cb", params: "(tt::tt_metal::IDeviceconst*)" },
    Method { name: "track_program", params: "(tt::tt_metal::Program*,tt::tt_metal::IDeviceconst*)" },
];

/// Slot index of each overridden method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slots {
    pub is_capture_processor: usize,
    pub function_start: usize,
    pub function_end: usize,
    pub function_end_any: usize,
    pub allocate_cb: usize,
    pub deallocate_cb: usize,
    pub program: usize,
}

impl Slots {
    fn from_found(found: [usize; 7]) -> Slots {
        Slots {
            is_capture_processor: found[0],
            function_start: found[1],
            function_end: found[2],
            function_end_any: found[3],
            allocate_cb: found[4],
            deallocate_cb: found[5],
            program: found[6],
        }
    }

    /// `name=slot` pairs for the trace.
    pub(crate) fn describe(&self) -> String {
        format!(
            "is_capture_processor={} track_function_start={} track_function_end()={} \
             track_function_end(any)={} track_allocate_cb={} track_deallocate_cb={} track_program={}",
            self.is_capture_processor,
            self.function_start,
            self.function_end,
            self.function_end_any,
            self.allocate_cb,
            self.deallocate_cb,
            self.program
        )
    }
}

/// The interface as this build lays it out.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// The base vtable's words, header included: the template of the shim's own vtable, so
    /// every slot the shim does not override keeps tt-metal's default body.
    pub words: Vec<usize>,
    /// Slots of the methods the shim overrides.
    pub slots: Slots,
    /// Whether ttnn's processor confirmed the layout (it is not loaded in plain C++ programs).
    pub confirmed_by_ttnn: bool,
}

/// Splits a demangled function name into its unqualified name and its parameter list (spaces
/// removed): `a::B::f(int const&) const` gives `("f", "(intconst&)const")`.
pub(crate) fn split_method(demangled: &str) -> Option<(String, String)> {
    let open = demangled.find('(')?;
    let qualified = &demangled[..open];
    let name = qualified.rsplit("::").next()?.to_string();
    let params: String = demangled[open..].chars().filter(|c| !c.is_whitespace()).collect();
    Some((name, params))
}

fn demangle(mangled: &str) -> Option<String> {
    let sym = cpp_demangle::Symbol::new(mangled).ok()?;
    sym.demangle().ok()
}

/// The words of the exported vtable at `addr`, `words` long (its symbol size), header included.
fn read_words(addr: usize, words: usize) -> Vec<usize> {
    // SAFETY: the symbol spans `words` words.
    (0..words).map(|i| unsafe { *((addr as *const usize).add(i)) }).collect()
}

/// The methods each slot of a vtable (its words, header included) holds: several names when
/// identical bodies were folded, none for an unnamed slot.
fn slot_methods(words: &[usize]) -> Vec<Vec<(String, String)>> {
    let entries = &words[HEADER_WORDS..];
    let names = symbols::names_at(entries);
    entries
        .iter()
        .map(|e| {
            names
                .get(e)
                .map(|ns| ns.iter().filter_map(|n| demangle(n)).filter_map(|d| split_method(&d)).collect())
                .unwrap_or_default()
        })
        .collect()
}

/// Finds each of [`METHODS`] exactly once among `per_slot`.
fn find_slots(per_slot: &[Vec<(String, String)>]) -> Result<[usize; 7], String> {
    let mut found = [0usize; 7];
    for (k, m) in METHODS.iter().enumerate() {
        let hits: Vec<usize> = per_slot
            .iter()
            .enumerate()
            .filter(|(_, ms)| ms.iter().any(|(n, p)| n == m.name && p == m.params))
            .map(|(i, _)| i)
            .collect();
        match hits.as_slice() {
            [one] => found[k] = *one,
            [] => {
                let seen: Vec<String> =
                    per_slot.iter().flatten().filter(|(n, _)| n == m.name).map(|(n, p)| format!("{n}{p}")).collect();
                return Err(if seen.is_empty() {
                    format!("IGraphProcessor has no method `{}`", m.name)
                } else {
                    format!("IGraphProcessor's `{}` takes {} here, not {}", m.name, seen.join(" / "), m.params)
                });
            }
            many => return Err(format!("IGraphProcessor's `{}{}` is in {} slots", m.name, m.params, many.len())),
        }
    }
    Ok(found)
}

/// Reads the layout of this process's tt-metal, or says why it cannot be trusted.
pub(crate) fn discover() -> Result<Layout, String> {
    let (base, size) = symbols::exported_object(BASE_VTABLE)
        .ok_or_else(|| "`vtable for tt::tt_metal::IGraphProcessor` is not exported".to_string())?;
    let words = size / std::mem::size_of::<usize>();
    if size % std::mem::size_of::<usize>() != 0 || words <= HEADER_WORDS || words - HEADER_WORDS > MAX_SLOTS {
        return Err(format!("IGraphProcessor's vtable spans {size} bytes, not a vtable ttsan understands"));
    }
    let words = read_words(base, words);
    let per_slot = slot_methods(&words);
    if per_slot.iter().any(Vec::is_empty) {
        let unnamed: Vec<String> =
            per_slot.iter().enumerate().filter(|(_, m)| m.is_empty()).map(|(i, _)| i.to_string()).collect();
        return Err(format!(
            "slots {} of IGraphProcessor's vtable are named by no symbol table (a stripped library?)",
            unnamed.join(", ")
        ));
    }
    let found = find_slots(&per_slot)?;
    let mut confirmed_by_ttnn = false;
    if let Some((ttnn, ttnn_size)) = symbols::exported_object(TTNN_VTABLE) {
        if ttnn_size != size {
            return Err(format!(
                "ttnn's GraphProcessor vtable spans {ttnn_size} bytes, IGraphProcessor's {size}: the two libraries disagree"
            ));
        }
        let theirs = find_slots(&slot_methods(&read_words(ttnn, words.len())))
            .map_err(|e| format!("in ttnn's GraphProcessor: {e}"))?;
        // Slot 0 of ttnn's processor is the base's own body; every override must agree.
        if theirs[1..] != found[1..] {
            return Err("ttnn's GraphProcessor puts the tracked methods in other slots than IGraphProcessor".into());
        }
        confirmed_by_ttnn = true;
    }
    Ok(Layout { words, slots: Slots::from_found(found), confirmed_by_ttnn })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_split_into_name_and_parameters() {
        assert_eq!(
            split_method("tt::tt_metal::IGraphProcessor::track_function_end(std::any const&)"),
            Some(("track_function_end".into(), "(std::anyconst&)".into()))
        );
        assert_eq!(
            split_method("tt::tt_metal::IGraphProcessor::is_capture_processor() const"),
            Some(("is_capture_processor".into(), "()const".into()))
        );
        assert_eq!(split_method("no_parens"), None);
    }

    #[test]
    fn real_mangled_names_demangle_to_the_expected_parameter_lists() {
        // The names as they stand in ttnn 0.81.1's libtt_metal.so symbol table.
        let names = [
            "_ZNK2tt8tt_metal15IGraphProcessor20is_capture_processorEv",
            "_ZN2tt8tt_metal15IGraphProcessor20track_function_startESt17basic_string_viewIcSt11char_traitsIcEESt4spanINS0_15TrackedArgumentELm18446744073709551615EE",
            "_ZN2tt8tt_metal15IGraphProcessor18track_function_endEv",
            "_ZN2tt8tt_metal15IGraphProcessor18track_function_endERKSt3any",
            "_ZN2tt8tt_metal15IGraphProcessor17track_allocate_cbERKNS0_12CoreRangeSetEmmbPKNS0_7IDeviceE",
            "_ZN2tt8tt_metal15IGraphProcessor19track_deallocate_cbEPKNS0_7IDeviceE",
            "_ZN2tt8tt_metal15IGraphProcessor13track_programEPNS0_7ProgramEPKNS0_7IDeviceE",
        ];
        let per_slot: Vec<Vec<(String, String)>> =
            names.iter().map(|n| vec![split_method(&demangle(n).unwrap()).unwrap()]).collect();
        let found = find_slots(&per_slot).unwrap();
        assert_eq!(found, [0, 1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn a_changed_parameter_list_is_refused_with_what_was_seen() {
        let per_slot = vec![vec![("track_function_start".to_string(), "(std::string)".to_string())]];
        let err = find_slots(&per_slot).unwrap_err();
        assert!(err.contains("is_capture_processor"), "{err}");
        let mut per_slot: Vec<Vec<(String, String)>> =
            METHODS.iter().map(|m| vec![(m.name.to_string(), m.params.to_string())]).collect();
        per_slot[1] = vec![("track_function_start".into(), "(std::string)".into())];
        let err = find_slots(&per_slot).unwrap_err();
        assert!(err.contains("takes track_function_start(std::string)"), "{err}");
        per_slot[1] = per_slot[2].clone();
        let err = find_slots(&per_slot).unwrap_err();
        assert!(err.contains("track_function_start"), "{err}");
    }
}
