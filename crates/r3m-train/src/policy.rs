//! The checkpoint policy as pure functions of steps and names, so it is tested apart from the
//! training loop: when a checkpoint is written, whether it is the best so far, and which older
//! `step-*` checkpoints go.

/// Checkpoint directories the policy manages are named `step-` + the step, zero-padded to 8
/// digits, so names sort by step.
pub const STEP_PREFIX: &str = "step-";

/// The directory name of `step`'s checkpoint.
pub fn step_name(step: u64) -> String {
    format!("{STEP_PREFIX}{step:08}")
}

/// `--checkpoint-every`, `--steps`, `--keep-last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// Steps between checkpoints (0 is read as 1).
    pub every: u64,
    /// The step the run ends at.
    pub steps: u64,
    /// `step-*` checkpoints kept (0 is read as 1: the newest always stays).
    pub keep_last: usize,
}

impl CheckpointPolicy {
    /// Whether a checkpoint is written after `step`: every `every` steps, at the last step, and
    /// when the run stops early (Ctrl-C, a callback).
    pub fn due(&self, step: u64, stopping: bool) -> bool {
        step.is_multiple_of(self.every.max(1)) || step == self.steps || stopping
    }

    /// Whether an interval whose mean training loss is `mean` gives a new `best/` (strictly lower
    /// than the best so far; a non-finite mean never does).
    pub fn is_best(mean: f64, best_so_far: f64) -> bool {
        mean.is_finite() && mean < best_so_far
    }

    /// The `step-*` names among `existing` to delete once `newest` is written: the oldest ones
    /// beyond `keep_last` (the newest counted), never `newest` itself, never anything not named
    /// `step-*` (`best/`, temporaries).
    pub fn to_remove(&self, existing: &[String], newest: &str) -> Vec<String> {
        let mut older: Vec<&String> = existing.iter().filter(|n| n.starts_with(STEP_PREFIX) && *n != newest).collect();
        older.sort();
        let keep_older = self.keep_last.max(1) - 1;
        let n = older.len().saturating_sub(keep_older);
        older.into_iter().take(n).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_every_n_at_the_end_and_on_stop() {
        let p = CheckpointPolicy { every: 5, steps: 12, keep_last: 3 };
        let due: Vec<u64> = (1..=12).filter(|&s| p.due(s, false)).collect();
        assert_eq!(due, vec![5, 10, 12]);
        assert!(p.due(7, true), "a stop writes one");
        let zero = CheckpointPolicy { every: 0, ..p };
        assert!((1..=12).all(|s| zero.due(s, false)), "every 0 is every step");
    }

    #[test]
    fn best_is_strictly_lower_and_finite() {
        assert!(CheckpointPolicy::is_best(1.0, f64::INFINITY));
        assert!(CheckpointPolicy::is_best(0.9, 1.0));
        assert!(!CheckpointPolicy::is_best(1.0, 1.0));
        assert!(!CheckpointPolicy::is_best(f64::NAN, f64::INFINITY));
    }

    #[test]
    fn keeps_the_newest_few_and_nothing_else_is_touched() {
        let names = |v: &[u64]| v.iter().map(|&s| step_name(s)).collect::<Vec<_>>();
        let p = CheckpointPolicy { every: 1, steps: 100, keep_last: 3 };
        let mut existing = names(&[40, 10, 30, 20, 50]);
        existing.push("best".into());
        existing.push(".step-00000060.tmp".into());
        assert_eq!(p.to_remove(&existing, &step_name(50)), names(&[10, 20]));
        // the newest is never removed, even when it sorts first
        let two = CheckpointPolicy { keep_last: 2, ..p };
        assert_eq!(two.to_remove(&names(&[5, 40, 50]), &step_name(5)), names(&[40]));
        // keep_last 0 keeps only the newest; fewer than keep_last: nothing goes
        let one = CheckpointPolicy { keep_last: 0, ..p };
        assert_eq!(one.to_remove(&names(&[1, 2, 3]), &step_name(3)), names(&[1, 2]));
        assert!(p.to_remove(&names(&[1, 2]), &step_name(2)).is_empty());
        assert_eq!(step_name(7), "step-00000007");
    }
}
