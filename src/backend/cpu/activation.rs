//! Elementwise activations.

/// GPT-2's tanh approximation of GELU, in place:
/// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
pub fn gelu_new_inplace(x: &mut [f32]) {
    const C: f32 = 0.797_884_6; // sqrt(2 / pi)
    for v in x.iter_mut() {
        let u = *v;
        *v = 0.5 * u * (1.0 + (C * (u + 0.044_715 * u * u * u)).tanh());
    }
}

/// `silu(gate) * linear`, written into `linear`: the gated MLP's `hook_post`.
pub fn silu_mul_inplace(gate: &[f32], linear: &mut [f32]) {
    for (l, &g) in linear.iter_mut().zip(gate) {
        *l *= g / (1.0 + (-g).exp());
    }
}

/// `acc += x`, elementwise (residual adds).
pub fn add_inplace(acc: &mut [f32], x: &[f32]) {
    for (a, &b) in acc.iter_mut().zip(x) {
        *a += b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_new_matches_hand_values() {
        // Values from the formula evaluated in f64 by hand-checked arithmetic.
        let xs = [-3.0f32, -1.0, 0.0, 0.5, 2.0];
        let mut y = xs;
        gelu_new_inplace(&mut y);
        for (x, y) in xs.iter().zip(y) {
            let x = *x as f64;
            let want = 0.5
                * x
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh());
            assert!((y as f64 - want).abs() < 1e-6, "{x}: {y} vs {want}");
        }
    }

    #[test]
    fn silu_mul_matches_definition() {
        let gate = [-2.0f32, 0.0, 1.5];
        let mut lin = [3.0f32, 2.0, -1.0];
        silu_mul_inplace(&gate, &mut lin);
        for (i, g) in gate.iter().enumerate() {
            let g = *g as f64;
            let want = g / (1.0 + (-g).exp()) * [3.0, 2.0, -1.0][i];
            assert!((lin[i] as f64 - want).abs() < 1e-6);
        }
    }
}
