//! Where a hook's [`ActivationMut`](super::ActivationMut) finds its values: a slice the pass
//! already computed, or a computation the pass runs only when a hook first reads or writes
//! the values. The second lets a slot whose hooks never touch the activation (a hook that
//! only counts calls, or acts in one layer and returns early elsewhere) keep the fused
//! kernels that never materialise it.

use std::cell::{Cell, OnceCell};

/// The values behind an activation view.
pub(crate) trait HostValues {
    /// The values, computed first if they are deferred.
    fn values(&self) -> &[f32];
    /// The values, writable, computed first if they are deferred.
    fn values_mut(&mut self) -> &mut [f32];
}

/// Values the pass has already computed.
pub(crate) struct Ready<'b>(pub &'b mut [f32]);

impl HostValues for Ready<'_> {
    fn values(&self) -> &[f32] {
        self.0
    }

    fn values_mut(&mut self) -> &mut [f32] {
        self.0
    }
}

/// Values computed by `produce` the first time anyone asks for them, at most once.
pub(crate) struct Deferred<'b, F: FnOnce() -> &'b mut [f32]> {
    computed: OnceCell<&'b mut [f32]>,
    produce: Cell<Option<F>>,
}

impl<'b, F: FnOnce() -> &'b mut [f32]> Deferred<'b, F> {
    /// Values `produce` computes on first use.
    pub fn new(produce: F) -> Self {
        Deferred {
            computed: OnceCell::new(),
            produce: Cell::new(Some(produce)),
        }
    }

    /// True once the values were computed (someone read or wrote them).
    pub fn was_computed(&self) -> bool {
        self.computed.get().is_some()
    }

    /// The computed values, computing them now if nobody has yet.
    fn force(&self) -> &&'b mut [f32] {
        self.computed.get_or_init(|| match self.produce.take() {
            Some(produce) => produce(),
            // Unreachable: `produce` is taken only here, inside the cell's one initialisation.
            None => Default::default(),
        })
    }
}

impl<'b, F: FnOnce() -> &'b mut [f32]> HostValues for Deferred<'b, F> {
    fn values(&self) -> &[f32] {
        self.force()
    }

    fn values_mut(&mut self) -> &mut [f32] {
        self.force();
        match self.computed.get_mut() {
            Some(values) => values,
            None => &mut [],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deferred_values_are_computed_once_and_only_when_asked() {
        let mut buf = vec![0.0f32; 3];
        let calls = Cell::new(0);
        {
            let mut d = Deferred::new(|| {
                calls.set(calls.get() + 1);
                buf.iter_mut().for_each(|v| *v = 2.0);
                &mut buf[..]
            });
            assert!(!d.was_computed());
            assert_eq!(calls.get(), 0);
            assert_eq!(d.values(), &[2.0, 2.0, 2.0]);
            d.values_mut()[1] = 5.0;
            assert_eq!(d.values(), &[2.0, 5.0, 2.0]);
            assert!(d.was_computed());
        }
        assert_eq!(calls.get(), 1);
        assert_eq!(buf, [2.0, 5.0, 2.0]);
    }

    #[test]
    fn ready_values_are_the_slice() {
        let mut buf = [1.0f32, 2.0];
        let mut r = Ready(&mut buf);
        r.values_mut()[0] = 3.0;
        assert_eq!(r.values(), &[3.0, 2.0]);
    }
}
