//! Where the training step waits for the device. On a GPU, every read of a device value on the
//! host (`double_value`, a copy to the CPU, a collective staged through host memory) stalls the
//! host until the GPU has caught up, so the host cannot queue the next step's work. The trainer
//! notes each such read here, on every device (on the CPU the reads cost nothing, but the count
//! shows what a GPU would wait for); `r3m train -v` prints the count per step.

use std::cell::Cell;

thread_local! {
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

/// Notes one host synchronisation on this thread.
pub fn note() {
    COUNT.with(|c| c.set(c.get() + 1));
}

/// Host synchronisations noted on this thread so far.
pub fn count() -> u64 {
    COUNT.with(Cell::get)
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_per_thread() {
        let before = super::count();
        super::note();
        super::note();
        assert_eq!(super::count() - before, 2);
        let other = std::thread::Builder::new().spawn(super::count).unwrap().join().unwrap();
        assert_eq!(other, 0, "another thread's count is its own");
    }
}
