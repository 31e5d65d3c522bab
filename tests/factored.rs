//! `Model::ov` / `Model::qk` and `FactoredMatrix` against TransformerLens 2.18's `model.OV` /
//! `model.QK` on the random-weight fixtures (`scripts/golden/make_factored_refs.py`,
//! `tests/fixtures/factored/`): products, `BA`, singular values, norms, corners, one layer and
//! all layers, GPT-2 and grouped-query Llama.

mod common;

use std::collections::HashMap;

use common::{fixtures, read_metadata, read_tensors};
use hooklens::{FactoredMatrix, Model, Tensor};

const FIXTURES: [&str; 2] = ["gpt2_tiny", "llama_gqa"];
const CIRCUITS: [&str; 2] = ["OV", "QK"];

struct Fixture {
    name: &'static str,
    model: Model,
    refs: HashMap<String, Tensor>,
    meta: HashMap<String, String>,
}

impl Fixture {
    fn load(name: &'static str) -> Self {
        let path = fixtures().join(format!("factored/{name}.safetensors"));
        Fixture {
            name,
            model: Model::load(&fixtures().join(name)).unwrap(),
            refs: read_tensors(&path),
            meta: read_metadata(&path),
        }
    }

    fn want(&self, key: &str) -> &Tensor {
        self.refs
            .get(key)
            .unwrap_or_else(|| panic!("{}: no reference {key}", self.name))
    }

    fn circuit(&self, c: &str, layer: Option<usize>) -> FactoredMatrix {
        match c {
            "OV" => self.model.ov(layer).unwrap(),
            _ => self.model.qk(layer).unwrap(),
        }
    }

    /// `got` against reference `key`.
    fn check_key(&self, key: &str, got: &Tensor) {
        self.check(key, got, self.want(key));
    }

    /// `want` within 1e-4 of its own largest magnitude.
    fn check(&self, what: &str, got: &Tensor, want: &Tensor) {
        assert_eq!(got.shape, want.shape, "{} {what}: shape", self.name);
        let scale = want.data.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        let d = got
            .data
            .iter()
            .zip(&want.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            d <= 1e-4 * scale,
            "{} {what}: max |diff| {d} (scale {scale})",
            self.name
        );
    }
}

/// Matrices `h0..h1` of the first axis of a tensor.
fn heads(t: &Tensor, h0: usize, h1: usize) -> Tensor {
    let per = t.numel() / t.shape[0];
    let mut shape = t.shape.clone();
    shape[0] = h1 - h0;
    Tensor::new(t.data[h0 * per..h1 * per].to_vec(), shape).unwrap()
}

#[test]
fn products_of_one_layer_equal_tl() {
    for f in FIXTURES.map(Fixture::load) {
        let hs: Vec<usize> = f.meta["ab_heads"]
            .split(',')
            .map(|s| s.parse().unwrap())
            .collect();
        let l: usize = f.meta["ab_layer"].parse().unwrap();
        for c in CIRCUITS {
            let ab = f.circuit(c, Some(l)).ab(); // [H, d_model, d_model]
            f.check_key(&format!("{c}.AB"), &heads(&ab, hs[0], hs[1]));
            let dense = f.model.tl_weight(&format!("blocks.{l}.attn.{c}")).unwrap();
            assert_eq!(dense, ab, "{} tl_weight {c}", f.name);
        }
    }
}

#[test]
fn ba_singular_values_and_norms_of_all_layers_equal_tl() {
    for f in FIXTURES.map(Fixture::load) {
        for c in CIRCUITS {
            let fm = f.circuit(c, None); // [L, H, d_model, d_model]
            let cfg = f.model.config();
            let (d, dh) = (cfg.d_model, cfg.d_head);
            assert_eq!(fm.shape(), [cfg.n_layers, cfg.n_heads, d, d]);
            assert_eq!(fm.dims(), (d, dh, d));
            f.check_key(&format!("{c}.BA"), &fm.ba().unwrap());
            let s = fm.singular_values();
            f.check_key(&format!("{c}.S"), &s);
            f.check_key(&format!("{c}.norm"), &fm.norm());
        }
    }
}

#[test]
fn corners_equal_tl() {
    for f in FIXTURES.map(Fixture::load) {
        for c in CIRCUITS {
            let all = f.circuit(c, None).get_corner(3);
            f.check_key(&format!("{c}.corner3"), &all);
            let l0 = f.circuit(c, Some(0)).get_corner(3);
            f.check_key(&format!("{c}.l0.corner3"), &l0);
        }
    }
}

#[test]
fn one_layer_and_indexed_circuits_equal_tl() {
    for f in FIXTURES.map(Fixture::load) {
        for c in CIRCUITS {
            let l0 = f.circuit(c, Some(0)).singular_values();
            f.check_key(&format!("{c}.l0.S"), &l0);
            // TL's C[:, 1].S: head 1 of every layer.
            let all = f.circuit(c, None);
            let n_layers = f.model.config().n_layers;
            let mut data = Vec::new();
            for l in 0..n_layers {
                let head = all.index(l).unwrap().index(1).unwrap();
                assert_eq!(head, f.circuit(c, Some(l)).index(1).unwrap());
                data.extend(head.singular_values().data);
            }
            let got = Tensor::new(data, vec![n_layers, f.model.config().d_head]).unwrap();
            f.check_key(&format!("{c}.head1.S"), &got);
        }
    }
}

#[test]
fn factors_are_tl_weights_qk_with_keys_transposed() {
    for f in FIXTURES.map(Fixture::load) {
        let ov = f.model.ov(None).unwrap();
        assert_eq!(ov.a(), &f.model.tl_weight("W_V").unwrap());
        assert_eq!(ov.b(), &f.model.tl_weight("W_O").unwrap());
        let qk = f.model.qk(None).unwrap();
        let k = f.model.tl_weight("W_K").unwrap(); // [L, H, d_model, d_head]
        assert_eq!(qk.a(), &f.model.tl_weight("W_Q").unwrap());
        let cfg = f.model.config();
        let (h, d, dh) = (cfg.n_heads, cfg.d_model, cfg.d_head);
        assert_eq!(qk.b().shape, [cfg.n_layers, h, dh, d]);
        let (l, hh, i, t) = (1, h - 1, d - 2, dh - 1);
        assert_eq!(
            qk.b().at(&[l, hh, t, i]).unwrap(),
            k.at(&[l, hh, i, t]).unwrap()
        );
    }
}

#[test]
fn gqa_heads_of_one_group_share_the_ov_value_factor() {
    let f = Fixture::load("llama_gqa");
    let ov = f.model.ov(Some(1)).unwrap(); // 6 query heads over 2 key/value heads
    let (h0, h2, h3) = (
        ov.index(0).unwrap(),
        ov.index(2).unwrap(),
        ov.index(3).unwrap(),
    );
    assert_eq!(h0.a(), h2.a());
    assert_ne!(h2.a(), h3.a());
}

#[test]
fn bad_layers_are_input_errors() {
    let f = Fixture::load("gpt2_tiny");
    for e in [
        f.model.ov(Some(2)).unwrap_err(),
        f.model.qk(Some(99)).unwrap_err(),
    ] {
        assert!(e.to_string().contains("out of range"), "{e}");
    }
    let head = f.model.ov(Some(0)).unwrap().index(0).unwrap();
    assert!(
        head.index(0).is_err(),
        "a single matrix has no leading axis"
    );
    assert!(f.model.ov(None).unwrap().index(2).is_err());
}
