//! `hooklens hooks`: every hook point with its shape, in firing order.

use hooklens::Model;

use crate::term::outln;

/// Prints the listing.
pub fn run(model: &Model) {
    let cfg = model.config();
    for point in model.hook_points(true) {
        let opt_in = if point.kind.is_opt_in() {
            "  (opt-in)"
        } else {
            ""
        };
        outln!("{:<34} {}{opt_in}", point.name(), point.shape_label(cfg));
    }
}
