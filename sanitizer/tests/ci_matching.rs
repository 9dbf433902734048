//! Suppression and baseline matching, as properties over findings of every kind with random
//! op and victim names: an entry written from a finding's own fields matches it and no finding
//! that differs in one of them; a baseline knows exactly its findings, whatever their
//! addresses and chips, before and after a round trip through its file.

mod support;

use proptest::prelude::*;
use std::path::Path;
use ttsan_sanitizer::ci::Baseline;
use ttsan_sanitizer::ci::Suppressions;
use ttsan_sanitizer::Finding;
use ttsan_test_support::fixtures;

/// One finding of each kind the fixtures produce.
fn kinds() -> Vec<Finding> {
    fixtures::all().into_iter().flat_map(|(_, events)| support::findings_of(&events).into_iter().take(1)).collect()
}

/// Op and buffer names as tt-metal spells them (no glob metacharacters).
fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_.:]{0,24}"
}

fn renamed(mut f: Finding, op: &str, victim: &str) -> Finding {
    if let Some(c) = f.culprit.as_mut() {
        c.op = op.to_string();
    }
    if let Some(v) = f.victim.as_mut() {
        v.name = victim.to_string();
    }
    f
}

fn entry(f: &Finding) -> String {
    let mut fields = vec![format!("kind={}", f.kind)];
    if let Some(c) = &f.culprit {
        fields.push(format!("op=\"{}\"", c.op));
    }
    if let Some(v) = &f.victim {
        fields.push(format!("victim=\"{}\"", v.name));
    }
    fields.push("reason=\"known\"".into());
    fields.join(" ")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn a_suppression_matches_its_finding_and_nothing_that_differs(
        which in 0usize..64, op in name(), victim in name(), other in name(), shift in 1u64..1 << 20,
    ) {
        let all = kinds();
        let f = renamed(all[which % all.len()].clone(), &op, &victim);
        let supp = Suppressions::parse(&entry(&f), Path::new("s.supp")).unwrap();
        prop_assert!(supp.find(&f).is_some(), "{} does not match {:?}", entry(&f), f);
        // Where and on which chip do not matter.
        let mut moved = f.clone();
        moved.address = moved.address.wrapping_add(shift);
        moved.device = Some(7);
        prop_assert!(supp.find(&moved).is_some());
        // Another op, victim or kind does.
        if other != op && f.culprit.is_some() {
            prop_assert!(supp.find(&renamed(f.clone(), &other, &victim)).is_none());
        }
        if other != victim && f.victim.is_some() {
            prop_assert!(supp.find(&renamed(f.clone(), &op, &other)).is_none());
        }
        for g in all.iter().filter(|g| g.kind != f.kind) {
            prop_assert!(supp.find(&renamed(g.clone(), &op, &victim)).is_none(), "{} matched {:?}", entry(&f), g.kind);
        }
        // Globs widen it, for findings that have the fields (a field given for a finding
        // without it, no culprit or no victim, does not match: docs of ci::suppress).
        let wide = Suppressions::parse(&format!("kind={} op=* victim=* reason=any", f.kind), Path::new("s")).unwrap();
        let has_both = f.culprit.is_some() && f.victim.is_some();
        prop_assert_eq!(wide.find(&renamed(f.clone(), &other, &other)).is_some(), has_both);
    }

    #[test]
    fn a_baseline_knows_exactly_its_findings(
        picks in prop::collection::vec((0usize..64, name(), name()), 1..12), other in name(),
    ) {
        let all = kinds();
        let known: Vec<Finding> =
            picks.iter().map(|(w, op, v)| renamed(all[w % all.len()].clone(), op, v)).collect();
        let b = Baseline::from_findings(&known);
        let back = Baseline::parse(&b.to_json(), Path::new("b.json")).unwrap();
        prop_assert_eq!(&back, &b);
        for f in &known {
            let mut moved = f.clone();
            moved.address ^= 0x1000;
            moved.device = Some(3);
            prop_assert!(back.contains(&moved));
        }
        for f in &known {
            let stranger = renamed(f.clone(), &other, &other);
            let same_key = known.iter().any(|k| {
                k.kind == stranger.kind
                    && k.culprit.as_ref().map(|c| &c.op) == stranger.culprit.as_ref().map(|c| &c.op)
                    && k.victim.as_ref().map(|v| &v.name) == stranger.victim.as_ref().map(|v| &v.name)
            });
            prop_assert_eq!(back.contains(&stranger), same_key);
        }
    }
}
