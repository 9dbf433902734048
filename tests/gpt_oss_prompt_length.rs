//! Prompts of any length through `ttsan run gpt-oss` (no Hugging Face needed; the comparison
//! with HF of a 12-token prompt is in tests/hf_gpt_oss.rs): the whole model pads the prompt to a
//! tile and returns the real rows only; module tests, which feed random activations straight
//! to one module, still need whole tiles and say so (exit 2).

mod support;

use ttsan_inference::common::npy;

#[test]
fn twelve_input_ids_give_twelve_prefill_rows_then_the_decode_rows() {
    let dir = support::tempdir();
    let logits = dir.path().join("l.npy");
    let out = support::ttsan()
        .args(["run", "gpt-oss", "--mesh", "1x8", "--input-ids", "5,9,2,33,7,100,4,61,8,250,3,12"])
        .args(["--decode-steps", "2", "--logits-out"])
        .arg(&logits)
        .output()
        .unwrap();
    let stdout = support::stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("module model: PCC") && stdout.contains("module model decode: PCC"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
    let (shape, _) = npy::read_f32(&logits).unwrap();
    assert_eq!(shape, vec![14, 1024]);
}

#[test]
fn module_tests_still_need_whole_tiles() {
    let out = support::ttsan()
        .args(["run", "gpt-oss", "--mesh", "1x8", "--mode", "prefill", "--seq-len", "12", "--modules", "attention"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("multiple of 32"), "{stderr}");
}
