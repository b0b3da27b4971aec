//! Delivering outcomes: the next call of a chain, the callback (first try inline, then the durable outbox), the completion and progress
//! events, and collecting stored bodies no call needs any more.

pub(crate) mod callback;
pub(crate) mod chain;
pub(crate) mod fanout;
pub(crate) mod outbox;
pub(crate) mod progress;
pub(crate) mod results;
pub(crate) mod sweep;
