//! Delivering outcomes: the callback (first try inline, then the durable outbox), the completion event, and
//! collecting stored bodies no call needs any more.

pub(crate) mod callback;
pub(crate) mod outbox;
pub(crate) mod results;
pub(crate) mod sweep;
