//! Terminal output that never panics.
//!
//! `println!` panics when stdout is a closed pipe (`hooklens ablate ... | head -3`). Here a
//! failed write to stdout ends the terminal output instead: later prints are skipped, the
//! command goes on to write its files and exits normally. A closed pipe is silent (the
//! reader chose to stop); any other stdout error is reported once on stderr. Writes to
//! stderr ignore errors.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a write to stdout has failed.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes to stdout unless it has failed before.
pub fn print(args: fmt::Arguments<'_>) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args) {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprint(format_args!(
                "note: cannot write to stdout ({e}); terminal output stops here\n"
            ));
        }
    }
}

/// Writes to stderr, ignoring errors.
pub fn eprint(args: fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// `println!` that stops quietly at a closed stdout.
macro_rules! outln {
    () => {
        $crate::term::print(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::term::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that stops quietly at a closed stdout.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::term::print(format_args!($($arg)*))
    };
}

/// `eprintln!` that ignores a closed stderr.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::term::eprint(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {errln, out, outln};

/// Flushes stdout (streamed text without a newline yet), unless it has failed before.
pub fn flush() {
    if !STDOUT_CLOSED.load(Ordering::Relaxed) && std::io::stdout().flush().is_err() {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
}
