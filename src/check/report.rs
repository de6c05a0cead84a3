//! One PASS/FAIL/SKIP line per check, and whether any failed.

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass(String),
    Fail(String),
    Skip(String),
}

/// Prints each verdict as it comes and remembers whether any failed.
#[derive(Debug, Default)]
pub struct Report {
    failed: bool,
}

impl Report {
    pub fn add(&mut self, name: &str, verdict: Verdict) {
        let (word, detail) = match &verdict {
            Verdict::Pass(d) => ("PASS", d),
            Verdict::Fail(d) => ("FAIL", d),
            Verdict::Skip(d) => ("SKIP", d),
        };
        self.failed |= matches!(verdict, Verdict::Fail(_));
        println!("{word} {name}: {detail}");
    }

    /// No check failed.
    pub fn passed(&self) -> bool {
        !self.failed
    }
}
