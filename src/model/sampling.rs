//! Choosing the next token from a row of logits: greedy (temperature 0), or sampling with a
//! temperature, top-k and top-p (nucleus) from a seeded generator, so a seed reproduces a run.

use crate::error::{HookLensError, Result};
use crate::sweep::noise::Gaussian;

/// How the next token is chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingOptions {
    /// 0 for greedy (the most likely token; ties go to the lower id), else the softmax
    /// temperature.
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (sampling only).
    pub top_k: Option<usize>,
    /// Keep the smallest set of most likely tokens whose probability reaches `p` (sampling
    /// only; in (0, 1]).
    pub top_p: Option<f32>,
    /// The generator's seed.
    pub seed: u64,
}

impl Default for SamplingOptions {
    fn default() -> Self {
        SamplingOptions {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            seed: 0,
        }
    }
}

impl SamplingOptions {
    /// Checks the values: temperature finite and at least 0, top-k at least 1, top-p in (0, 1].
    pub fn validate(&self) -> Result<()> {
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(HookLensError::input(format!(
                "temperature must be finite and at least 0, not {}",
                self.temperature
            )));
        }
        if self.top_k == Some(0) {
            return Err(HookLensError::input("top-k must be at least 1"));
        }
        if let Some(p) = self.top_p.filter(|p| !(*p > 0.0 && *p <= 1.0)) {
            return Err(HookLensError::input(format!(
                "top-p must be in (0, 1], not {p}"
            )));
        }
        Ok(())
    }
}

/// A sampler: the options and the generator's state.
pub struct Sampler {
    opts: SamplingOptions,
    rng: Gaussian,
}

impl Sampler {
    /// A sampler with checked options.
    pub fn new(opts: SamplingOptions) -> Result<Self> {
        opts.validate()?;
        Ok(Sampler {
            opts,
            rng: Gaussian::new(opts.seed),
        })
    }

    /// The next token for a row of logits. `[d_vocab]`
    pub fn next(&mut self, logits: &[f32]) -> u32 {
        if self.opts.temperature == 0.0 {
            return argmax(logits);
        }
        let kept = self.candidates(logits);
        let u = self.rng.uniform() * kept.iter().map(|&(_, p)| p).sum::<f64>();
        let mut acc = 0.0;
        for &(id, p) in &kept {
            acc += p;
            if u <= acc {
                return id;
            }
        }
        kept.last().map_or(0, |&(id, _)| id)
    }

    /// The tokens that may be drawn with their unnormalised probabilities, most likely first.
    fn candidates(&self, logits: &[f32]) -> Vec<(u32, f64)> {
        let t = self.opts.temperature as f64;
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        let first =
            |a: &u32, b: &u32| (logits[*b as usize].total_cmp(&logits[*a as usize])).then(a.cmp(b));
        // With top-k, select the k first in linear time and sort only those.
        let keep = self.opts.top_k.unwrap_or(order.len()).max(1);
        if keep < order.len() {
            order.select_nth_unstable_by(keep - 1, first);
            order.truncate(keep);
        }
        order.sort_unstable_by(first);
        let max = logits[order[0] as usize] as f64;
        let mut kept: Vec<(u32, f64)> = (order.iter())
            .map(|&id| (id, ((logits[id as usize] as f64 - max) / t).exp()))
            .collect();
        if let Some(p) = self.opts.top_p {
            let total: f64 = kept.iter().map(|&(_, w)| w).sum();
            let mut acc = 0.0;
            let keep = kept
                .iter()
                .position(|&(_, w)| {
                    acc += w / total;
                    acc >= p as f64
                })
                .map_or(kept.len(), |i| i + 1);
            kept.truncate(keep);
        }
        kept
    }
}

/// The index of the largest value (the first of equal ones).
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler(temperature: f32, top_k: Option<usize>, top_p: Option<f32>) -> Sampler {
        let opts = SamplingOptions {
            temperature,
            top_k,
            top_p,
            seed: 7,
        };
        Sampler::new(opts).unwrap()
    }

    #[test]
    fn greedy_takes_the_first_largest() {
        assert_eq!(sampler(0.0, None, None).next(&[0.0, 3.0, 3.0, 1.0]), 1);
    }

    #[test]
    fn top_k_one_is_greedy_and_top_p_keeps_the_nucleus() {
        let logits = [0.0, 2.0, 1.0, 2.5];
        let mut s = sampler(1.0, Some(1), None);
        assert!((0..50).all(|_| s.next(&logits) == 3));
        // p = softmax: [0.046, 0.344, 0.127, 0.483]: top-p 0.8 keeps ids 3 and 1.
        let mut s = sampler(1.0, None, Some(0.8));
        let drawn: Vec<u32> = (0..400).map(|_| s.next(&logits)).collect();
        assert!(drawn.iter().all(|&t| t == 3 || t == 1));
        assert!(drawn.contains(&1) && drawn.contains(&3));
    }

    #[test]
    fn sampling_follows_the_softmax() {
        // p = [0.2, 0.8] at temperature 1 for logits [0, ln 4].
        let mut s = sampler(1.0, None, None);
        let ones = (0..20_000)
            .filter(|_| s.next(&[0.0, 4f32.ln()]) == 1)
            .count();
        let freq = ones as f64 / 20_000.0;
        assert!((freq - 0.8).abs() < 0.02, "{freq}");
    }

    #[test]
    fn top_k_candidates_are_the_first_k_of_the_sorted_row_ties_by_id() {
        // Coarse logits so many tie; k below, at and above the row's length.
        let logits: Vec<f32> = (0..1013u32)
            .map(|i| ((i * 7919) % 41) as f32 * 0.5)
            .collect();
        let mut sorted: Vec<u32> = (0..logits.len() as u32).collect();
        sorted.sort_by(|&a, &b| {
            logits[b as usize]
                .total_cmp(&logits[a as usize])
                .then(a.cmp(&b))
        });
        for k in [1, 2, 40, 1013, 2000] {
            let ids: Vec<u32> = (sampler(0.9, Some(k), None).candidates(&logits).iter())
                .map(|&(id, _)| id)
                .collect();
            assert_eq!(ids, sorted[..k.min(sorted.len())], "k {k}");
        }
    }

    #[test]
    fn bad_options_are_errors() {
        let bad = |t, k, p| {
            Sampler::new(SamplingOptions {
                temperature: t,
                top_k: k,
                top_p: p,
                seed: 0,
            })
            .is_err()
        };
        assert!(bad(-1.0, None, None));
        assert!(bad(f32::NAN, None, None));
        assert!(bad(1.0, Some(0), None));
        assert!(bad(1.0, None, Some(0.0)));
        assert!(bad(1.0, None, Some(1.5)));
        assert!(!bad(0.7, Some(5), Some(0.9)));
    }
}
