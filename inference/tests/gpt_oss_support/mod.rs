//! Shared helpers of the GPT-OSS device tests: the small model they run, meshes recording
//! into memory, replicated inputs, and the clean-analysis check every run ends with.
#![allow(dead_code)]

use std::sync::Arc;
use ttsan_inference::gpt_oss::config::GptOssConfig;
use ttsan_inference::sim::{DType, Distribution, HostTensor, Mesh, MeshConfig, Tensor, TensorSpec};
use ttsan_sanitizer::{AnalysisOptions, Analyzer};
use ttsan_shim::events::Role;
use ttsan_shim::MemoryRecorder;

/// tiny-tt with a window (24) shorter than the test sequences, so the sliding layer really
/// slides, and hidden 256 (32 per chip, still tile aligned) so the debug-build simulator stays
/// quick.
pub fn quick_config() -> GptOssConfig {
    let mut config = GptOssConfig::tiny_tt();
    config.sliding_window = Some(24);
    config.hidden_size = 256;
    config
}

/// A mesh of `config` whose events go to the returned in-memory recorder.
pub fn recording(config: MeshConfig) -> (Mesh, Arc<MemoryRecorder>) {
    let rec = Arc::new(MemoryRecorder::new());
    (Mesh::new(config, rec.clone()).unwrap(), rec)
}

/// Uploads `x` (`[1, 1, T, hidden]` row-major values) as the replicated activation `x`.
pub fn upload_x(mesh: &mut Mesh, x: &[f32], hidden: usize) -> Tensor {
    let host = HostTensor::new(vec![1, 1, x.len() / hidden, hidden], x.to_vec()).unwrap();
    let spec = TensorSpec::new(&host.shape, DType::Bf16);
    mesh.from_host(&host, &spec, &Distribution::Replicate, "x", Role::Activation).unwrap()
}

/// Finishes `mesh` and asserts the sanitizer finds nothing in what `rec` recorded.
pub fn assert_clean(mesh: Mesh, rec: &MemoryRecorder) {
    mesh.finish().unwrap();
    let mut analyzer = Analyzer::new(AnalysisOptions::default());
    for e in rec.take() {
        analyzer.feed(&e);
    }
    let analysis = analyzer.finish(None);
    assert!(analysis.errors.is_empty(), "{:?}", analysis.errors);
    assert!(analysis.findings.is_empty(), "{:?}", analysis.findings);
}
