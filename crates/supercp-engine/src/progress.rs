//! Progress of long work on stderr, only when stderr is a terminal.

use std::io::{IsTerminal, Write};

pub struct Progress {
    label: &'static str,
    total: usize,
    done: usize,
    enabled: bool,
}

impl Progress {
    pub fn new(label: &'static str, total: usize) -> Progress {
        let enabled = total >= 1000 && std::io::stderr().is_terminal();
        Progress {
            label,
            total,
            done: 0,
            enabled,
        }
    }

    /// One line for work that runs on several threads at once.
    pub fn announce(label: &str, total: usize) {
        if total >= 1000 && std::io::stderr().is_terminal() {
            eprintln!("{label} {total} objects…");
        }
    }

    pub fn tick(&mut self) {
        self.done += 1;
        if self.enabled && (self.done.is_multiple_of(500) || self.done == self.total) {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r{} {}/{}", self.label, self.done, self.total);
            if self.done == self.total {
                let _ = writeln!(err);
            }
        }
    }
}
