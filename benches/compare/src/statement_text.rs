//! The costly part of dbinstance's read-session guard, for a peer stack: diesel
//! prints each statement's SQL through its instrumentation, and the text is
//! compared with the last one. The guard's cheaper parts (its flags, the look at a
//! text it has not seen before) are left out: with this a peer does nearly, not
//! exactly, the same work per read as dbinstance.

use diesel::connection::{Instrumentation, InstrumentationEvent};
use std::fmt::{self, Write as _};

/// Prints every statement's SQL and compares it with the last one, as the guard on
/// dbinstance's read connections does.
#[derive(Debug, Default)]
pub(crate) struct PrintEveryStatement {
    text: String,
    last: String,
}

impl Instrumentation for PrintEveryStatement {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            self.text.clear();
            // Stops at the bind values, as the guard does.
            let _ = write!(SqlOnly(&mut self.text), "{query}");
            if self.text != self.last {
                std::mem::swap(&mut self.text, &mut self.last);
            }
        }
    }
}

struct SqlOnly<'a>(&'a mut String);

impl fmt::Write for SqlOnly<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if s == " -- binds: " {
            return Err(fmt::Error);
        }
        self.0.push_str(s);
        Ok(())
    }
}
