//! `ttsan gpt-oss ...`: GPT-OSS model utilities (random HF checkpoints for now).

use super::exit::{Failure, Outcome, CLEAN};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use ttsan_inference::gpt_oss::{random_weights, write_checkpoint, GptOssConfig, StoreDtype, WriteOptions};

/// Above this many parameters a random f32 model no longer fits the machines ttsan runs on
/// (gpt-oss-20b would need ~84 GB); such configs are for shapes and device plans, not init.
const MAX_INIT_PARAMETERS: usize = 1 << 30;

/// Float dtype of the written tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DtypeArg {
    /// bfloat16, as released checkpoints store unquantized tensors.
    Bf16,
    /// f32, lossless.
    F32,
}

/// Arguments of `ttsan gpt-oss init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to write `config.json` and `model.safetensors` into (created if missing).
    pub dir: PathBuf,
    /// A preset (tiny, tiny-tt, gpt-oss-20b, gpt-oss-120b) or a path to an HF config.json.
    #[arg(long, default_value = "tiny")]
    pub config: String,
    /// Seed of the weights; the same seed and config always give the same checkpoint.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Float dtype of the tensors.
    #[arg(long, value_enum, default_value = "bf16")]
    pub dtype: DtypeArg,
    /// Store expert weights as MXFP4 `_blocks` + `_scales`, as the released checkpoints do.
    #[arg(long)]
    pub mxfp4: bool,
    /// Decoder layers, overriding the config's (alternating sliding and full attention).
    #[arg(long)]
    pub layers: Option<usize>,
}

/// Runs `ttsan gpt-oss init`.
pub fn init(args: &InitArgs) -> Outcome {
    let mut config = resolve_config(&args.config).map_err(Failure::usage)?;
    if let Some(layers) = args.layers {
        config = config.with_layers(layers).map_err(Failure::usage)?;
    }
    let parameters = parameter_count(&config);
    if parameters > MAX_INIT_PARAMETERS {
        return Err(Failure::usage(anyhow::anyhow!(
            "{} has {parameters} parameters; random init is limited to {MAX_INIT_PARAMETERS}",
            args.config
        )));
    }
    let weights = random_weights(&config, args.seed);
    let dtype = match args.dtype {
        DtypeArg::Bf16 => StoreDtype::Bf16,
        DtypeArg::F32 => StoreDtype::F32,
    };
    write_checkpoint(&args.dir, &weights, WriteOptions { dtype, mxfp4_experts: args.mxfp4 }).map_err(Failure::usage)?;
    println!("wrote {} ({parameters} parameters, seed {})", args.dir.display(), args.seed);
    Ok(CLEAN)
}

fn resolve_config(name: &str) -> Result<GptOssConfig, ttsan_inference::gpt_oss::GptOssError> {
    let path = Path::new(name);
    if path.is_file() {
        GptOssConfig::from_file(path)
    } else {
        GptOssConfig::preset(name)
    }
}

fn parameter_count(config: &GptOssConfig) -> usize {
    ttsan_inference::gpt_oss::weights::Param::all(config)
        .into_iter()
        .map(|p| p.shape(config).iter().product::<usize>())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ttsan_inference::gpt_oss::load_checkpoint;

    #[test]
    fn init_writes_a_loadable_checkpoint_of_the_seeded_weights() {
        let dir = tempfile::tempdir().unwrap();
        let args = InitArgs {
            dir: dir.path().join("ck"),
            config: "tiny".to_owned(),
            seed: 5,
            dtype: DtypeArg::F32,
            mxfp4: false,
            layers: None,
        };
        assert_eq!(init(&args).unwrap(), CLEAN);
        let loaded = load_checkpoint(&args.dir).unwrap();
        assert_eq!(loaded, random_weights(&GptOssConfig::tiny(), 5));
    }

    #[test]
    fn init_rejects_unknown_presets_and_huge_models() {
        let dir = tempfile::tempdir().unwrap();
        for config in ["nope", "gpt-oss-120b"] {
            let args = InitArgs {
                dir: dir.path().to_path_buf(),
                config: config.to_owned(),
                seed: 0,
                dtype: DtypeArg::Bf16,
                mxfp4: false,
                layers: None,
            };
            assert_eq!(init(&args).unwrap_err().code, super::super::exit::USAGE);
        }
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "nothing written");
    }

    #[test]
    fn init_layers_overrides_the_depth_and_keeps_the_alternation() {
        let dir = tempfile::tempdir().unwrap();
        let args = InitArgs {
            dir: dir.path().join("deep"),
            config: "tiny-tt".to_owned(),
            seed: 1,
            dtype: DtypeArg::Bf16,
            mxfp4: false,
            layers: Some(5),
        };
        assert_eq!(init(&args).unwrap(), CLEAN);
        let loaded = load_checkpoint(&args.dir).unwrap();
        assert_eq!(loaded.config.num_hidden_layers, 5);
        assert_eq!(loaded.layers.len(), 5);
        let sliding: Vec<bool> = (0..5).map(|l| loaded.config.window(l).is_some()).collect();
        assert_eq!(sliding, [true, false, true, false, true]);
        let zero = InitArgs { dir: dir.path().join("zero"), layers: Some(0), ..args };
        assert_eq!(init(&zero).unwrap_err().code, super::super::exit::USAGE);
        assert!(!zero.dir.exists());
    }
}
