//! Running one call: from message to ack — the record's part, the lease, the attempt's outcome, the retry
//! decision, the calls running here (cancelled on request, reporting progress).

pub(crate) mod cancel;
pub(crate) mod execute;
pub(crate) mod lease;
pub(crate) mod outcome;
pub(crate) mod record;
mod report;
pub(crate) mod retry;
pub(crate) mod running;
