//! Colour scales for heatmaps: diverging blue-white-red around 0 when values have both signs,
//! sequential white-red (all >= 0) or white-blue (all <= 0) otherwise. Positive is always red
//! and negative always blue, so a figure's colours mean the same thing in either mode.

/// An 8-bit sRGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// `#rrggbb`.
    pub(crate) fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

pub(crate) const WHITE: Rgb = Rgb(255, 255, 255);
/// Fill of missing (NaN) cells.
pub(crate) const MISSING: Rgb = Rgb(168, 168, 168);
/// Text, tick marks and frames.
pub(crate) const INK: Rgb = Rgb(34, 34, 34);

/// White to red, evenly spaced stops (ColorBrewer RdBu, positive half).
const RED: [Rgb; 5] = [
    WHITE,
    Rgb(253, 219, 199),
    Rgb(244, 165, 130),
    Rgb(214, 96, 77),
    Rgb(178, 24, 43),
];
/// White to blue, evenly spaced stops (ColorBrewer RdBu, negative half).
const BLUE: [Rgb; 5] = [
    WHITE,
    Rgb(209, 229, 240),
    Rgb(146, 197, 222),
    Rgb(67, 147, 195),
    Rgb(33, 102, 172),
];
/// The red end (t = 1).
#[cfg(test)]
pub(crate) const RED_END: Rgb = RED[4];
/// The blue end (t = -1).
#[cfg(test)]
pub(crate) const BLUE_END: Rgb = BLUE[4];

/// Colour at signed position `t` in [-1, 1]: 0 white, 1 [`RED_END`], -1 [`BLUE_END`].
pub(crate) fn ramp(t: f64) -> Rgb {
    let stops = if t < 0.0 { &BLUE } else { &RED };
    let x = t.abs().clamp(0.0, 1.0) * (stops.len() - 1) as f64;
    let i = (x.floor() as usize).min(stops.len() - 2);
    let f = x - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (a, b) = (stops[i], stops[i + 1]);
    Rgb(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// How values map to colours.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Scale {
    /// Symmetric around 0: `-limit` blue end, 0 white, `limit` red end.
    Diverging {
        /// max |v| over the finite values (> 0).
        limit: f64,
    },
    /// One sign: `lo < hi`; if `lo >= 0` then `lo` is white and `hi` red, otherwise (`hi <= 0`)
    /// `hi` is white and `lo` blue.
    Sequential {
        /// Smallest value.
        lo: f64,
        /// Largest value.
        hi: f64,
    },
}

impl Scale {
    /// Picks the scale for `values` from their finite entries (NaN and ±inf are ignored; ±inf
    /// are drawn as the ends of the scale).
    pub(crate) fn for_values(values: &[f64]) -> Scale {
        let finite = values.iter().copied().filter(|v| v.is_finite());
        let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        if lo > hi || (lo == 0.0 && hi == 0.0) {
            Scale::Diverging { limit: 1.0 } // nothing finite, or all zero: all white
        } else if lo < 0.0 && hi > 0.0 {
            Scale::Diverging { limit: hi.max(-lo) }
        } else if lo == hi {
            // One non-zero value: scale from 0 so the cells get the full colour.
            let (lo, hi) = if lo > 0.0 { (0.0, hi) } else { (lo, 0.0) };
            Scale::Sequential { lo, hi }
        } else {
            Scale::Sequential { lo, hi }
        }
    }

    /// The value range the colour bar spans, `lo < hi`.
    pub(crate) fn range(self) -> (f64, f64) {
        match self {
            Scale::Diverging { limit } => (-limit, limit),
            Scale::Sequential { lo, hi } => (lo, hi),
        }
    }

    /// Signed ramp position of `v` (see [`ramp`]); NaN gives NaN.
    fn position(self, v: f64) -> f64 {
        match self {
            Scale::Diverging { limit } => (v / limit).clamp(-1.0, 1.0),
            Scale::Sequential { lo, hi } if lo >= 0.0 => ((v - lo) / (hi - lo)).clamp(0.0, 1.0),
            Scale::Sequential { lo, hi } => -((hi - v) / (hi - lo)).clamp(0.0, 1.0),
        }
    }

    /// Colour of `v`; NaN is [`MISSING`].
    pub(crate) fn colour(self, v: f64) -> Rgb {
        if v.is_nan() {
            MISSING
        } else {
            ramp(self.position(v))
        }
    }

    /// The values labelled on the colour bar: its ends, and 0 when it lies strictly inside.
    pub(crate) fn ticks(self) -> Vec<f64> {
        let (lo, hi) = self.range();
        let mut ticks = vec![hi, lo];
        if lo < 0.0 && hi > 0.0 {
            ticks.push(0.0);
        }
        ticks
    }

    /// Gradient stops along the colour bar, bottom (offset 0, `lo`) to top (offset 1, `hi`):
    /// the ends plus every ramp stop in between, so linear interpolation between them is exact.
    pub(crate) fn bar_stops(self) -> Vec<(f64, Rgb)> {
        let (lo, hi) = self.range();
        let (t0, t1) = (self.position(lo), self.position(hi));
        let mut stops = vec![(0.0, ramp(t0))];
        for k in -3..=3 {
            let t = k as f64 / 4.0;
            if t > t0 && t < t1 {
                stops.push(((t - t0) / (t1 - t0), ramp(t)));
            }
        }
        stops.push((1.0, ramp(t1)));
        stops
    }
}

/// A short label for `v`: about three significant digits, exponent form when very large or
/// small, no trailing zeros.
pub(crate) fn format_value(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        return "0".into();
    }
    if !v.is_finite() {
        return format!("{v}");
    }
    if !(1e-2..1e4).contains(&a) {
        return format!("{v:.2e}");
    }
    let decimals = (2 - a.log10().floor() as i32).clamp(0, 4) as usize;
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diverging_maps_zero_white_and_extremes_to_ends() {
        let s = Scale::for_values(&[-2.0, 0.5, 1.0, f64::NAN]);
        assert_eq!(s, Scale::Diverging { limit: 2.0 });
        assert_eq!(s.colour(0.0), WHITE);
        assert_eq!(s.colour(2.0), RED_END);
        assert_eq!(s.colour(-2.0), BLUE_END);
        assert_eq!(s.colour(f64::INFINITY), RED_END);
        assert_eq!(s.colour(f64::NAN), MISSING);
        let half = s.colour(1.0);
        assert!(half.0 > half.2, "positive values are reddish: {half:?}");
        assert_eq!(s.ticks(), vec![2.0, -2.0, 0.0]);
    }

    #[test]
    fn sequential_for_one_sign() {
        let pos = Scale::for_values(&[1.0, 3.0, 2.0]);
        assert_eq!(pos, Scale::Sequential { lo: 1.0, hi: 3.0 });
        assert_eq!(pos.colour(1.0), WHITE);
        assert_eq!(pos.colour(3.0), RED_END);
        let neg = Scale::for_values(&[-1.0, -3.0]);
        assert_eq!(neg.colour(-1.0), WHITE);
        assert_eq!(neg.colour(-3.0), BLUE_END);
        let zero_based = Scale::for_values(&[0.0, 4.0]);
        assert_eq!(zero_based.colour(0.0), WHITE);
        assert_eq!(zero_based.ticks(), vec![4.0, 0.0]);
        // Constant, all-zero and all-NaN inputs still give a valid range.
        assert_eq!(Scale::for_values(&[5.0; 3]).colour(5.0), RED_END);
        assert_eq!(Scale::for_values(&[0.0; 3]).colour(0.0), WHITE);
        assert_eq!(Scale::for_values(&[f64::NAN]).range(), (-1.0, 1.0));
    }

    #[test]
    fn bar_stops_are_ordered_and_match_the_scale() {
        for s in [
            Scale::Diverging { limit: 3.0 },
            Scale::Sequential { lo: 0.5, hi: 2.0 },
            Scale::Sequential { lo: -4.0, hi: -1.0 },
        ] {
            let stops = s.bar_stops();
            assert!(stops.windows(2).all(|w| w[0].0 < w[1].0));
            let (lo, hi) = s.range();
            for (off, c) in stops {
                assert_eq!(c, s.colour(lo + off * (hi - lo)));
            }
        }
        assert_eq!(Scale::Diverging { limit: 1.0 }.bar_stops().len(), 9);
    }

    #[test]
    fn value_labels_are_short() {
        let cases = [
            (0.0, "0"),
            (1.0, "1"),
            (-0.5, "-0.5"),
            (12.345, "12.3"),
            (0.012345, "0.0123"),
            (1234.0, "1234"),
            (123456.0, "1.23e5"),
            (-0.00012, "-1.20e-4"),
            (-0.0001, "-1.00e-4"),
        ];
        for (v, want) in cases {
            assert_eq!(format_value(v), want, "{v}");
        }
    }
}
