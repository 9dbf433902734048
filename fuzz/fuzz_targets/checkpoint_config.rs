//! A checkpoint: its `config.json` text, and the whole loader (`load_checkpoint`) on a
//! safetensors file of arbitrary bytes beside the tiny config. An error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use ttsan_inference::gpt_oss::{load_checkpoint, GptOssConfig};

/// One checkpoint directory per fuzzing process, its safetensors file rewritten per input.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ttsan-fuzz-checkpoint-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join("config.json"), GptOssConfig::tiny().to_json());
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = GptOssConfig::from_json_str(text, Path::new("config.json"));
    }
    let dir = dir();
    if std::fs::write(dir.join("model.safetensors"), data).is_ok() {
        let _ = load_checkpoint(dir);
    }
});
