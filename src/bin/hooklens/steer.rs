//! Steering vectors for `generate`: `--steer LAYER:FILE.safetensors:SCALE` (a vector from a
//! file) and `--steer-prompts A B --layer L --scale S` (ActAdd: the difference of the two
//! prompts' `resid_pre` at their last positions), each added to `blocks.L.hook_resid_pre` at
//! every position.

use std::path::Path;

use hooklens::hooks::intervention::{Intervention, Op};
use hooklens::{HookLensError, Model, NamesFilter, Result, RunOptions};
use safetensors::{Dtype, SafeTensors};

/// An intervention adding `scale * vector` to `resid_pre` of `layer` at every position.
pub fn add_at_resid_pre(
    model: &Model,
    layer: usize,
    vector: Vec<f32>,
    scale: f32,
) -> Result<Intervention> {
    let cfg = model.config();
    if layer >= cfg.n_layers {
        return Err(HookLensError::input(format!(
            "steering layer {layer}: the model has {} layers",
            cfg.n_layers
        )));
    }
    if vector.len() != cfg.d_model {
        return Err(HookLensError::input(format!(
            "a steering vector has {} values; the model's d_model is {}",
            vector.len(),
            cfg.d_model
        )));
    }
    let vector = vector.into_iter().map(|v| v * scale).collect();
    Ok(Intervention::new(
        format!("blocks.{layer}.hook_resid_pre").as_str(),
        Op::Add { vector },
    ))
}

/// Parses `LAYER:FILE.safetensors:SCALE` into the intervention.
pub fn from_spec(model: &Model, spec: &str) -> Result<Intervention> {
    let bad = || {
        HookLensError::input(format!(
            "--steer {spec:?}: expected LAYER:FILE.safetensors:SCALE (e.g. 6:happy.safetensors:4)"
        ))
    };
    let (layer, rest) = spec.split_once(':').ok_or_else(bad)?;
    let (file, scale) = rest.rsplit_once(':').ok_or_else(bad)?;
    let layer: usize = layer.parse().map_err(|_| bad())?;
    let scale: f32 = scale
        .parse()
        .ok()
        .filter(|s: &f32| s.is_finite())
        .ok_or_else(bad)?;
    add_at_resid_pre(model, layer, read_vector(Path::new(file))?, scale)
}

/// The one f32 tensor of a safetensors file, flattened.
pub fn read_vector(path: &Path) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).map_err(|e| HookLensError::io(path, e))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| {
        HookLensError::input(format!("{}: not a safetensors file ({e})", path.display()))
    })?;
    let tensors = st.tensors();
    let [(name, view)] = tensors.as_slice() else {
        return Err(HookLensError::input(format!(
            "{}: a steering file holds exactly one tensor, not {}",
            path.display(),
            tensors.len()
        )));
    };
    if view.dtype() != Dtype::F32 {
        return Err(HookLensError::input(format!(
            "{}: tensor {name} is {:?}; a steering vector must be F32",
            path.display(),
            view.dtype()
        )));
    }
    Ok(view
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// ActAdd: `resid_pre` of `layer` at the last position of `a` minus that of `b`.
pub fn from_prompts(
    model: &Model,
    a: &str,
    b: &str,
    layer: usize,
    scale: f32,
) -> Result<Intervention> {
    if layer >= model.config().n_layers {
        return add_at_resid_pre(model, layer, Vec::new(), scale);
    }
    let filter = NamesFilter::regex(&format!(r"^blocks\.{layer}\.hook_resid_pre$"))?;
    let last = |text: &str| -> Result<Vec<f32>> {
        let tokens = model.to_tokens(text, true)?;
        let (_, cache) = model.run_with_cache(&tokens, &filter, &RunOptions::default())?;
        let t = cache.get(("resid_pre", layer as i64))?; // [1, pos, d_model]
        Ok(t.slice(&[0, t.shape[1] - 1])?.to_vec())
    };
    let diff = last(a)?.iter().zip(last(b)?).map(|(x, y)| x - y).collect();
    add_at_resid_pre(model, layer, diff, scale)
}
