//! The module tests `--modules` names, as tt-metal's `test_modules.py --test-modules` runs them.

use super::error::RunError;
use super::options::Mode;
use std::fmt;
use std::str::FromStr;

/// One module test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Module {
    /// Prefill attention (with sinks) of the layer.
    Attention,
    /// The low-latency prefill experts of the layer, routing from the reference router.
    Experts,
    /// The router of the layer.
    Router,
    /// The whole decoder layer.
    Decoder,
    /// The whole model (every layer of the config) to the logits.
    Model,
}

impl Module {
    /// Every module, in the order `--modules all` runs them.
    pub const ALL: [Module; 5] = [Module::Attention, Module::Router, Module::Experts, Module::Decoder, Module::Model];

    /// The PCC a module must reach to pass (tt-metal's thresholds: attention 0.95, experts
    /// 0.93 as the field saw them).
    pub fn threshold(self) -> f64 {
        match self {
            Module::Experts => 0.93,
            _ => 0.95,
        }
    }

    /// Parses `attention,experts,...` (or `all`).
    pub fn parse_list(text: &str) -> Result<Vec<Module>, RunError> {
        if text.trim() == "all" {
            return Ok(Module::ALL.to_vec());
        }
        let list =
            text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::parse).collect::<Result<Vec<_>, _>>()?;
        if list.is_empty() {
            return Err(RunError::Usage("--modules needs at least one module".into()));
        }
        Ok(list)
    }
}

impl fmt::Display for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Module::Attention => "attention",
            Module::Experts => "experts",
            Module::Router => "router",
            Module::Decoder => "decoder",
            Module::Model => "model",
        })
    }
}

impl FromStr for Module {
    type Err = RunError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Module::ALL.into_iter().find(|m| m.to_string() == s).ok_or_else(|| {
            RunError::Usage(format!("unknown module `{s}` (attention, router, experts, decoder, model, all)"))
        })
    }
}

/// The outcome of one module test.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleResult {
    /// Which module.
    pub module: Module,
    /// The phase it ran: prefill of the prompt, or decode steps after it.
    pub mode: Mode,
    /// PCC against the f32 reference.
    pub pcc: f64,
    /// The pass threshold.
    pub threshold: f64,
    /// The test case (`prefill:2048`) when the run has several (`--cases`).
    pub case: Option<String>,
}

impl ModuleResult {
    /// Whether the PCC reaches the threshold.
    pub fn passed(&self) -> bool {
        self.pcc >= self.threshold
    }
}

impl fmt::Display for ModuleResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.passed() { "PASS" } else { "FAIL" };
        // Prefill keeps the bare module name, so the prefill-only output stays as it was.
        let phase = match self.mode {
            Mode::Prefill => "",
            Mode::Decode => " decode",
        };
        let case = self.case.as_deref().map(|c| format!(" [{c}]")).unwrap_or_default();
        write!(f, "module {}{phase}{case}: PCC {:.5} (threshold {}) {verdict}", self.module, self.pcc, self.threshold)
    }
}
