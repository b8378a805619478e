//! Comparing a predicted plane with a true one: cell counts accumulated over many rolls and
//! their F1, for reconstruction scores and copy detection.

/// True/false positive and negative cell counts between a predicted and a true plane,
/// accumulated over many rolls before taking F1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub tp: u64,
    pub fp: u64,
    pub fn_: u64,
}

impl Counts {
    pub fn add(&mut self, predicted: &[bool], truth: &[bool]) {
        for (&p, &t) in predicted.iter().zip(truth) {
            match (p, t) {
                (true, true) => self.tp += 1,
                (true, false) => self.fp += 1,
                (false, true) => self.fn_ += 1,
                (false, false) => {}
            }
        }
    }

    /// F1 score; 1 when both sides are empty (nothing to find, nothing found).
    pub fn f1(&self) -> f64 {
        let denom = 2 * self.tp + self.fp + self.fn_;
        if denom == 0 {
            1.0
        } else {
            2.0 * self.tp as f64 / denom as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f1_counts() {
        let mut c = Counts::default();
        c.add(&[true, true, false, false], &[true, false, true, false]);
        assert_eq!(
            c,
            Counts {
                tp: 1,
                fp: 1,
                fn_: 1
            }
        );
        assert!((c.f1() - 0.5).abs() < 1e-12);
        assert_eq!(Counts::default().f1(), 1.0);
    }
}
