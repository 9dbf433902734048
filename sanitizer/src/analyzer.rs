//! The analysis driver: feeds events through the registry, op table and detectors.

use crate::buffer::BufferInfo;
use crate::detect::placement::{CbRegion, Clash};
use crate::detect::{self, guard::GuardState, Context, FindingSet};
use crate::finding::{Finding, Relation};
use crate::model::footprint;
use crate::ops::OpTable;
use crate::options::AnalysisOptions;
use crate::registry::{FreeOutcome, Registry};
use serde::Serialize;
use std::collections::BTreeMap;
use ttsan_events::trace::ReadStats;
use ttsan_events::{CaptureStart, Declared, Event, Runtime, Space, TraceAction};

/// Counts over the whole trace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Events read.
    pub events: u64,
    /// Ops.
    pub ops: u64,
    /// Buffer allocations.
    pub allocations: u64,
    /// Circular-buffer allocations.
    pub circular_buffers: u64,
    /// Buffer frees.
    pub frees: u64,
    /// Write events.
    pub writes: u64,
    /// Guarded buffers.
    pub guards: u64,
    /// Guard and canary digests compared.
    pub digests: u64,
    /// Guard digests the backend could not take.
    pub unreadable_digests: u64,
    /// Distinct findings.
    pub findings: u64,
    /// Occurrences over all findings (repeats included).
    pub occurrences: u64,
    /// Distinct findings per kind.
    pub by_kind: BTreeMap<String, u64>,
    /// Occurrences beyond the distinct-finding limit (not stored).
    pub dropped_findings: u64,
    /// Peak bytes allocated per space, summed over chips.
    pub peak_bytes: BTreeMap<String, u64>,
}

/// The result of analysing a trace.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The capture's first record, when present.
    pub capture: Option<CaptureStart>,
    /// Findings, worst first.
    pub findings: Vec<Finding>,
    /// Counts.
    pub summary: Summary,
    /// Problems that make the analysis untrustworthy (the status becomes `error`).
    pub errors: Vec<String>,
    /// Problems worth saying that do not invalidate the result.
    pub warnings: Vec<String>,
    /// The runtime the producer recorded (real tt-metal runs), when it did.
    pub runtime: Option<Runtime>,
}

/// Consumes events one at a time in bounded memory (live state only, not the history).
pub struct Analyzer {
    options: AnalysisOptions,
    capture: Option<CaptureStart>,
    registry: Option<Registry>,
    ops: OpTable,
    guards: GuardState,
    canary_checks: u64,
    findings: FindingSet,
    summary: Summary,
    errors: Vec<String>,
    warnings: Vec<String>,
    ended: bool,
    orphan_events: u64,
    in_use: BTreeMap<Space, u64>,
    cb_regions: BTreeMap<Option<u64>, CbRegion>,
    clashes: BTreeMap<Option<u64>, Vec<Clash>>,
    runtime: Option<Runtime>,
    traces: MeshTraces,
}

/// Mesh traces: which top-level ops were captured into each, and how often each was replayed.
#[derive(Debug, Default)]
struct MeshTraces {
    capturing: Option<u32>,
    captured: BTreeMap<u32, Vec<String>>,
    /// Per trace: the ops that stood for its replays.
    replays: BTreeMap<u32, Vec<u64>>,
}

impl MeshTraces {
    /// Ops replayed without host calls, one warning per replayed trace.
    fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (trace, replays) in &self.replays {
            let captured = self.captured.get(trace).map(Vec::as_slice).unwrap_or_default();
            let shown: Vec<&str> = captured.iter().take(8).map(String::as_str).collect();
            let more = captured.len().saturating_sub(shown.len());
            let list = if captured.is_empty() {
                "its capture was not recorded".to_string()
            } else if more > 0 {
                format!("{} op(s): {}, and {more} more", captured.len(), shown.join(", "))
            } else {
                format!("{} op(s): {}", captured.len(), shown.join(", "))
            };
            let at: Vec<String> = replays.iter().take(4).map(|op| format!("#{op}")).collect();
            out.push(format!(
                "mesh trace {trace} was replayed {} time(s) (op {}{}); the ops it holds ({list}) ran on the device \
                 without host calls and were not checked one by one: guards were checked around each replay as a whole",
                replays.len(),
                at.join(", "),
                if replays.len() > at.len() { ", ..." } else { "" },
            ));
        }
        out
    }
}

impl Analyzer {
    /// A fresh analyzer.
    pub fn new(options: AnalysisOptions) -> Self {
        Analyzer {
            findings: FindingSet::new(options.max_findings),
            options,
            capture: None,
            registry: None,
            ops: OpTable::default(),
            guards: GuardState::default(),
            canary_checks: 0,
            summary: Summary::default(),
            errors: Vec::new(),
            warnings: Vec::new(),
            ended: false,
            orphan_events: 0,
            in_use: BTreeMap::new(),
            cb_regions: BTreeMap::new(),
            clashes: BTreeMap::new(),
            runtime: None,
            traces: MeshTraces::default(),
        }
    }

    /// The registry, once the capture started.
    pub fn registry(&self) -> Option<&Registry> {
        self.registry.as_ref()
    }

    /// Feeds one event.
    pub fn feed(&mut self, event: &Event) {
        self.summary.events += 1;
        if let Event::StackDef { .. } = event {
            // The trace reader already put the text into the records that refer to it; a
            // definition is no device event (and never an orphan, wherever it sits).
            return;
        }
        if let Event::CaptureStart(start) = event {
            if self.capture.is_some() {
                self.warnings.push("a second capture_start record was ignored".into());
                return;
            }
            self.registry =
                Some(Registry::new(start.geometry.clone(), start.mesh.device_ids.clone(), self.options.quarantine));
            self.capture = Some(start.clone());
            return;
        }
        let Some(registry) = self.registry.as_mut() else {
            self.orphan_events += 1;
            return;
        };
        match event {
            Event::CaptureStart(_) => {}
            Event::BufferAlloc(a) => {
                self.summary.allocations += 1;
                let info = BufferInfo::from_alloc(a);
                let bytes = reserved_bytes(&info, registry);
                let overlaps = registry.insert(info.clone());
                *self.in_use.entry(info.space).or_default() += bytes;
                if let Some(op) = a.op {
                    self.ops.declare(op, &[a.id], Declared::Output);
                }
                if !overlaps.is_empty() {
                    let ctx = Context { registry, ops: &self.ops };
                    let (findings, clashes) = detect::placement::check(&ctx, &info, &overlaps);
                    self.record_placement(findings, clashes);
                }
                self.track_peak(info.space);
            }
            Event::BufferFree(free) => {
                self.summary.frees += 1;
                let outcome = registry.free(free.id, free.op, free.stack.as_deref());
                if let FreeOutcome::Freed(info) = &outcome {
                    let bytes = reserved_bytes(info, registry);
                    let e = self.in_use.entry(info.space).or_default();
                    *e = e.saturating_sub(bytes);
                    self.guards.unregister(free.id);
                }
                let ctx = Context { registry, ops: &self.ops };
                if let Some(f) = detect::frees::check(&ctx, free, &outcome) {
                    self.findings.push(f);
                }
            }
            Event::CbAlloc(cb) => {
                self.summary.circular_buffers += 1;
                if let Some(op) = cb.op {
                    self.ops.declare(op, &[cb.id], Declared::Scratch);
                }
                if !cb.globally_allocated {
                    self.cb_regions.entry(cb.op).or_default().add(cb.address, cb.size, &cb.cores);
                    let info = BufferInfo::from_cb(cb);
                    let overlaps = registry.insert(info.clone());
                    if !overlaps.is_empty() {
                        let ctx = Context { registry, ops: &self.ops };
                        let (findings, clashes) = detect::placement::check(&ctx, &info, &overlaps);
                        self.record_placement(findings, clashes);
                    }
                }
            }
            Event::CbDeallocAll { device } => {
                registry.release_cbs(*device, self.ops.current());
                self.flush_clashes(None);
            }
            Event::OpBegin(begin) => {
                self.summary.ops += 1;
                self.ops.begin(begin);
                if let (Some(trace), None) = (self.traces.capturing, begin.parent) {
                    self.traces.captured.entry(trace).or_default().push(format!("#{} {}", begin.index, begin.name));
                }
            }
            Event::OpEnd { index } => {
                self.ops.end(*index);
                self.flush_clashes(Some(*index));
            }
            Event::OpDeclare { index, buffers, relation } => self.ops.declare(*index, buffers, *relation),
            Event::Write(w) => {
                self.summary.writes += 1;
                let ctx = Context { registry, ops: &self.ops };
                if let Some(f) = detect::writes::check(&ctx, w) {
                    self.findings.push(f);
                }
            }
            Event::GuardRegister { buffer, .. } => {
                self.summary.guards += 1;
                self.guards.register(*buffer);
            }
            Event::GuardUnregister { buffer } => self.guards.unregister(*buffer),
            Event::GuardDigest(g) => {
                let ctx = Context { registry, ops: &self.ops };
                if let Some(f) = self.guards.check(&ctx, g) {
                    let confirmed = match (&f.culprit, &f.victim) {
                        (Some(c), Some(v)) => {
                            self.findings.confirm_by_digest(c.op_index, v.id)
                                || f.related.as_ref().is_some_and(|r| {
                                    matches!(
                                        r.relation,
                                        Relation::PastEnd | Relation::BeforeStart | Relation::StaleAddress
                                    ) && self.findings.confirm_related(c.op_index, r.buffer.id)
                                })
                        }
                        _ => false,
                    };
                    if !confirmed && !self.findings.fold_overrun(&f) {
                        self.findings.push(f);
                    }
                }
            }
            Event::CanaryDigest(c) => {
                self.canary_checks += 1;
                let ctx = Context { registry, ops: &self.ops };
                if let Some(f) = detect::canary::check(&ctx, c) {
                    // Only a write finding can be confirmed; without writes, repeats merge.
                    let confirmed = match &f.culprit {
                        Some(cu) if self.summary.writes > 0 => self.findings.confirm_by_canary(&cu.op),
                        _ => false,
                    };
                    if !confirmed {
                        self.findings.push(f);
                    }
                }
            }
            // Output digests compare two runs (`ttsan diff`); one run has nothing to compare.
            Event::Mark { .. } | Event::StackDef { .. } | Event::Program(_) | Event::OutputDigest(_) => {}
            Event::MeshTrace(t) => match t.action {
                TraceAction::BeginCapture => {
                    self.traces.capturing = Some(t.trace);
                    self.traces.captured.remove(&t.trace);
                }
                TraceAction::EndCapture => self.traces.capturing = None,
                TraceAction::Replay => {
                    self.traces.replays.entry(t.trace).or_default().push(t.op.unwrap_or(0));
                }
                TraceAction::Release => {}
            },
            Event::Runtime(rt) => {
                if let Some(why) = &rt.unsupported {
                    self.errors.push(format!("not checked: unsupported tt-metal build ({}): {why}", rt.build));
                }
                self.runtime = Some(rt.clone());
            }
            Event::CaptureEnd { dropped } => {
                self.ended = true;
                if *dropped > 0 {
                    self.errors.push(format!("the producer dropped {dropped} event(s): the trace is incomplete"));
                }
            }
        }
    }

    fn record_placement(&mut self, findings: Vec<Finding>, clashes: Vec<Clash>) {
        for f in findings {
            self.findings.push(f);
        }
        for c in clashes {
            self.clashes.entry(c.program).or_default().push(c);
        }
    }

    /// Reports the clashes of a finished program (`None`: of every program so far), once its
    /// whole circular-buffer region is known.
    fn flush_clashes(&mut self, program: Option<u64>) {
        let programs: Vec<Option<u64>> = match program {
            Some(p) => vec![Some(p)],
            None => self.cb_regions.keys().copied().collect(),
        };
        for p in programs {
            let region = self.cb_regions.remove(&p).unwrap_or_default();
            let Some(clashes) = self.clashes.remove(&p) else { continue };
            let Some(registry) = self.registry.as_ref() else { continue };
            let ctx = Context { registry, ops: &self.ops };
            for f in detect::placement::clash_findings(&ctx, &clashes, &region) {
                self.findings.push(f);
            }
        }
    }

    fn track_peak(&mut self, space: Space) {
        let now = self.in_use.get(&space).copied().unwrap_or(0);
        let peak = self.summary.peak_bytes.entry(space.as_str().to_string()).or_default();
        *peak = (*peak).max(now);
    }

    /// Ends the analysis. `stats` are the reader's counts, when the events came from a file.
    pub fn finish(mut self, stats: Option<ReadStats>) -> Analysis {
        self.flush_clashes(None);
        if let (true, Some(registry)) = (self.options.leaks, self.registry.as_ref()) {
            let ctx = Context { registry, ops: &self.ops };
            for f in detect::leak::check(&ctx) {
                self.findings.push(f);
            }
        }
        if let Some(stats) = stats {
            self.warnings.extend(stats.warnings());
        }
        self.warnings.extend(self.traces.warnings());
        if self.capture.is_none() {
            if self.summary.events == 0 {
                self.errors.push("the trace holds no readable record".into());
            } else {
                self.errors.push("the trace has no capture_start record, so addresses cannot be mapped".into());
            }
        } else if !self.ended {
            self.warnings
                .push("the trace has no capture_end record: the producer did not finish (crashed or killed?)".into());
        }
        if self.orphan_events > 0 && self.capture.is_some() {
            self.warnings.push(format!("{} event(s) before capture_start were ignored", self.orphan_events));
        }
        self.summary.guards = self.summary.guards.max(self.guards.guarded() as u64);
        self.summary.digests = self.guards.checks + self.canary_checks;
        self.summary.unreadable_digests = self.guards.unreadable;
        if self.guards.unreadable > 0 {
            self.warnings.push(format!(
                "{} guard digest(s) could not be taken (unreadable device memory): those checks did not happen",
                self.guards.unreadable
            ));
        }
        self.summary.dropped_findings = self.findings.dropped();
        let findings = self.findings.into_sorted();
        self.summary.findings = findings.len() as u64;
        self.summary.occurrences = findings.iter().map(|f| f.count).sum::<u64>() + self.summary.dropped_findings;
        for f in &findings {
            *self.summary.by_kind.entry(f.kind.as_str().to_string()).or_default() += 1;
        }
        Analysis {
            capture: self.capture,
            findings,
            summary: self.summary,
            errors: self.errors,
            warnings: self.warnings,
            runtime: self.runtime,
        }
    }
}

/// Bytes an allocation reserves over all the chips it is on.
fn reserved_bytes(info: &BufferInfo, registry: &Registry) -> u64 {
    let geometry = registry.geometry();
    let per_chip = footprint(info, geometry).total(u64::from(geometry.banks(info.space)));
    let chips = if info.device.is_none() { registry.devices().len().max(1) as u64 } else { 1 };
    per_chip * chips
}

/// Analyses a whole trace file.
pub fn analyze_file(
    path: &std::path::Path,
    options: AnalysisOptions,
) -> Result<Analysis, ttsan_events::trace::TraceError> {
    let mut reader = ttsan_events::trace::TraceReader::open(path)?;
    let mut analyzer = Analyzer::new(options);
    reader.for_each_event(|event| analyzer.feed(event))?;
    Ok(analyzer.finish(Some(reader.stats())))
}
