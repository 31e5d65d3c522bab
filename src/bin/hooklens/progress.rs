//! The sweep progress bar: drawn on stderr only when stderr is a terminal, with the elapsed
//! time and an estimate of the time left.

use std::cell::Cell;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use crate::term::eprint;

/// Width of the bar in characters.
const WIDTH: usize = 30;

/// Least time between two redraws (the last state is always drawn).
const REDRAW: Duration = Duration::from_millis(100);

/// A progress bar for `label`; the returned callback takes (work done, total work) and draws
/// nothing when stderr is not a terminal.
pub fn progress_bar(label: &str) -> impl Fn(usize, usize) + '_ {
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let last_draw: Cell<Option<Instant>> = Cell::new(None);
    move |done, total| {
        if !tty {
            return;
        }
        let finished = done >= total;
        let now = Instant::now();
        if !finished && last_draw.get().is_some_and(|t| now - t < REDRAW) {
            return;
        }
        last_draw.set(Some(now));
        let line = bar_line(label, done, total, now - started);
        eprint(format_args!("\r{line}{}", if finished { "\n" } else { "" }));
    }
}

/// One state of the bar: `label [#####.....]  42%  1.2 s elapsed, about 1.7 s left`.
pub fn bar_line(label: &str, done: usize, total: usize, elapsed: Duration) -> String {
    let fraction = if total == 0 {
        1.0
    } else {
        (done as f64 / total as f64).clamp(0.0, 1.0)
    };
    let filled = (fraction * WIDTH as f64).floor() as usize;
    let secs = elapsed.as_secs_f64();
    let eta = if fraction >= 1.0 {
        "done".to_string()
    } else if fraction > 0.0 {
        format!("about {} left", seconds(secs * (1.0 - fraction) / fraction))
    } else {
        "estimating".to_string()
    };
    format!(
        "{label} [{}{}] {:>3.0}%  {} elapsed, {eta}  ",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled),
        fraction * 100.0,
        seconds(secs)
    )
}

/// `0.4 s`, `12 s`, `3 min 05 s`.
fn seconds(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.1} s")
    } else if s < 60.0 {
        format!("{s:.0} s")
    } else {
        let whole = s.round() as u64;
        format!("{} min {:02} s", whole / 60, whole % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_shows_the_fraction_elapsed_time_and_eta() {
        let line = bar_line("sweep", 1, 4, Duration::from_secs(2));
        assert!(
            line.starts_with("sweep [#######......................."),
            "{line}"
        );
        assert!(line.contains(" 25%"), "{line}");
        assert!(line.contains("2.0 s elapsed"), "{line}");
        assert!(line.contains("about 6.0 s left"), "{line}");
    }

    #[test]
    fn the_bar_starts_estimating_and_ends_done() {
        let start = bar_line("x", 0, 10, Duration::ZERO);
        assert!(
            start.contains("  0%") && start.contains("estimating"),
            "{start}"
        );
        let end = bar_line("x", 10, 10, Duration::from_secs(75));
        assert!(
            end.contains(&"#".repeat(WIDTH)) && end.contains("100%"),
            "{end}"
        );
        assert!(end.contains("1 min 15 s elapsed, done"), "{end}");
        assert!(bar_line("x", 0, 0, Duration::ZERO).contains("100%"));
    }
}
