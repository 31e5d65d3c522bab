//! `hooklens hooks`: every hook point with its shape, in firing order, each slot once with its
//! TransformerLens 4.x aliases.

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
        let aliases = point.aliases(cfg);
        let aliases = if aliases.is_empty() {
            String::new()
        } else {
            format!("  aliases: {}", aliases.join(", "))
        };
        outln!(
            "{:<34} {}{opt_in}{aliases}",
            point.name(),
            point.shape_label(cfg)
        );
    }
}
