//! `pcc` (tt-metal comp_pcc semantics) and the `.npy` writer/reader.

use std::process::Command;
use ttsan_inference::common::npy;
use ttsan_inference::common::pcc::pcc;
use ttsan_inference::common::rng::SplitMix64;
use ttsan_inference::common::CommonError;

#[test]
fn pcc_is_pearson_correlation() {
    let a: Vec<f32> = SplitMix64::new(1).normal_vec(1000, 0.0, 1.0);
    // Affine maps with a positive slope keep PCC at 1, a negative slope gives -1.
    let affine: Vec<f32> = a.iter().map(|x| 3.0 * x + 2.0).collect();
    assert!((pcc(&a, &affine).unwrap() - 1.0).abs() < 1e-9);
    let negated: Vec<f32> = a.iter().map(|x| -x).collect();
    assert!((pcc(&a, &negated).unwrap() + 1.0).abs() < 1e-9);
    // Independent noise: near 0. Half signal + half noise: near 1/sqrt(2).
    let noise: Vec<f32> = SplitMix64::new(2).normal_vec(1000, 0.0, 1.0);
    assert!(pcc(&a, &noise).unwrap().abs() < 0.15);
    let mixed: Vec<f32> = a.iter().zip(&noise).map(|(x, n)| x + n).collect();
    assert!((pcc(&a, &mixed).unwrap() - std::f64::consts::FRAC_1_SQRT_2).abs() < 0.05);
}

#[test]
fn pcc_follows_comp_pcc_special_cases() {
    let nan = [f32::NAN; 4];
    assert_eq!(pcc(&nan, &nan).unwrap(), 1.0);
    assert_eq!(pcc(&nan, &[1.0, 2.0, 3.0, 4.0]).unwrap(), 0.0);
    assert_eq!(pcc(&[0.0; 4], &[0.0, 0.0, 1.0, 0.0]).unwrap(), 0.0);
    assert_eq!(pcc(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]).unwrap(), 1.0);
    assert_eq!(pcc(&[2.0; 3], &[1.0, 2.0, 3.0]).unwrap(), 1.0, "constant input: numpy masks it, comp_pcc says 1");
    // inf entries are zeroed before comparing.
    let with_inf = [1.0, f32::INFINITY, 3.0, 4.0];
    let zeroed = [1.0, 0.0, 3.0, 4.0];
    assert_eq!(pcc(&with_inf, &zeroed).unwrap(), 1.0);
    assert!(matches!(pcc(&[1.0], &[1.0, 2.0]), Err(CommonError::LengthMismatch { left: 1, right: 2 })));
}

#[test]
fn npy_header_is_v1_aligned_and_round_trips() {
    let data: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
    let bytes = npy::encode_f32(&[2, 3, 4], &data).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + header_len) % 64, 0);
    assert_eq!(bytes[10 + header_len - 1], b'\n');
    assert_eq!(bytes.len(), 10 + header_len + 24 * 4);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.npy");
    npy::write_f32(&path, &[2, 3, 4], &data).unwrap();
    assert_eq!(npy::read_f32(&path).unwrap(), (vec![2, 3, 4], data));
    npy::write_f32(&path, &[5], &[1.0; 5]).unwrap();
    assert_eq!(npy::read_f32(&path).unwrap().0, vec![5]);
    assert!(matches!(npy::encode_f32(&[2, 2], &[1.0]), Err(CommonError::LengthMismatch { .. })));
    std::fs::write(&path, b"not npy").unwrap();
    assert!(matches!(npy::read_f32(&path), Err(CommonError::Npy { .. })));
}

/// numpy reads what we write (skipped, with a note, when python3 or numpy is absent).
#[test]
fn numpy_loads_the_written_file() {
    let probe = Command::new("python3").args(["-c", "import numpy"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("note: python3 with numpy not available; numpy read-back not checked");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logits.npy");
    let data: Vec<f32> = SplitMix64::new(3).normal_vec(3 * 7, 0.0, 1.0);
    npy::write_f32(&path, &[3, 7], &data).unwrap();
    let script = "import numpy, sys\na = numpy.load(sys.argv[1])\nprint(a.dtype, a.shape)\nprint(' '.join(repr(float(v)) for v in a.ravel()))";
    let out = Command::new("python3").args(["-c", script]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("float32 (3, 7)"));
    let values: Vec<f32> = lines.next().unwrap().split(' ').map(|v| v.parse::<f64>().unwrap() as f32).collect();
    assert_eq!(values, data);
}
