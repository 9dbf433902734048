//! Loading an HF checkpoint directory into [`ModelWeights`], with typed errors for every way a
//! checkpoint can be wrong.

use super::dtype::to_f32;
use crate::gpt_oss::config::GptOssConfig;
use crate::gpt_oss::error::{GptOssError, Result};
use crate::gpt_oss::mxfp4;
use crate::gpt_oss::tensor::Tensor;
use crate::gpt_oss::weights::{ModelWeights, Param};
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Loads `dir/config.json` and every `dir/*.safetensors`, dequantizing MXFP4 experts.
///
/// Tensors the model does not use are ignored; a missing, misshapen or mistyped tensor, or one
/// defined twice, is an error.
pub fn load_checkpoint(dir: &Path) -> Result<ModelWeights> {
    let config = GptOssConfig::from_file(&dir.join("config.json"))?;
    let files = safetensors_files(dir)?;
    let buffers = files
        .iter()
        .map(|path| std::fs::read(path).map_err(|e| GptOssError::io(path, e)))
        .collect::<Result<Vec<_>>>()?;
    let parsed = files
        .iter()
        .zip(&buffers)
        .map(|(path, bytes)| {
            SafeTensors::deserialize(bytes).map_err(|source| GptOssError::Safetensors { path: path.clone(), source })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut index: HashMap<String, usize> = HashMap::new();
    for (file, tensors) in parsed.iter().enumerate() {
        for name in tensors.names() {
            if let Some(&first) = index.get(name) {
                return Err(GptOssError::DuplicateTensor {
                    name: name.to_owned(),
                    first: files[first].clone(),
                    second: files[file].clone(),
                });
            }
            index.insert(name.to_owned(), file);
        }
    }
    let source = Source { parsed: &parsed, index: &index };
    ModelWeights::build(config.clone(), |param| source.take(param, &config))
}

fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| GptOssError::io(dir, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| GptOssError::io(dir, e))?.path();
        if path.extension().is_some_and(|ext| ext == "safetensors") {
            files.push(path);
        }
    }
    // Sorted so that which file "first" holds a duplicate is reproducible.
    files.sort();
    if files.is_empty() {
        return Err(GptOssError::NoSafetensors { dir: dir.to_path_buf() });
    }
    Ok(files)
}

struct Source<'a, 'data> {
    parsed: &'a [SafeTensors<'data>],
    index: &'a HashMap<String, usize>,
}

impl<'data> Source<'_, 'data> {
    fn view(&self, name: &str) -> Option<safetensors::tensor::TensorView<'data>> {
        let &file = self.index.get(name)?;
        self.parsed.get(file)?.tensor(name).ok()
    }

    fn take(&self, param: Param, config: &GptOssConfig) -> Result<Tensor> {
        let name = param.name();
        let expected = param.shape(config);
        if let Some(view) = self.view(&name) {
            if view.shape() != expected.as_slice() {
                return Err(GptOssError::WrongShape { name, expected, found: view.shape().to_vec() });
            }
            let data = to_f32(view.dtype(), view.data()).ok_or_else(|| GptOssError::BadDtype {
                name: name.clone(),
                expected: "BF16, F16 or F32",
                found: format!("{:?}", view.dtype()),
            })?;
            return Tensor::new(&expected, data).ok_or(GptOssError::WrongShape {
                name,
                expected: param.shape(config),
                found: view.shape().to_vec(),
            });
        }
        let mxfp4_candidate = matches!(param, Param::Layer(_, p) if p.is_mxfp4_candidate());
        let blocks_name = format!("{name}_blocks");
        if !mxfp4_candidate || !self.index.contains_key(&blocks_name) {
            return Err(GptOssError::MissingTensor { name });
        }
        self.take_mxfp4(name, &blocks_name, expected)
    }

    fn take_mxfp4(&self, name: String, blocks_name: &str, expected: Vec<usize>) -> Result<Tensor> {
        let scales_name = format!("{name}_scales");
        let blocks =
            self.view(blocks_name).ok_or_else(|| GptOssError::MissingTensor { name: blocks_name.to_owned() })?;
        let scales = self.view(&scales_name).ok_or_else(|| GptOssError::MissingTensor { name: scales_name.clone() })?;
        for (tensor_name, view) in [(blocks_name, &blocks), (scales_name.as_str(), &scales)] {
            if view.dtype() != Dtype::U8 {
                return Err(GptOssError::BadDtype {
                    name: tensor_name.to_owned(),
                    expected: "U8",
                    found: format!("{:?}", view.dtype()),
                });
            }
        }
        let t = mxfp4::dequantize(blocks.data(), blocks.shape(), scales.data(), scales.shape())
            .map_err(|source| GptOssError::Mxfp4 { name: name.clone(), source })?;
        if t.shape != expected {
            return Err(GptOssError::WrongShape { name: blocks_name.to_owned(), expected, found: t.shape });
        }
        Ok(t)
    }
}
