//! Taking calls: following the deployed functions, one consume loop per function and when its poll is renewed, their queues' metrics,
//! synchronous calls from the queue group, progress reports from running functions, the queues of deleted functions, consumers made before idle functions let theirs go, and the shape every core-NATS listener shares.

pub(crate) mod consume;
pub(crate) mod deleted;
pub(crate) mod notices;
pub(crate) mod old_consumers;
pub(crate) mod pulls;
pub(crate) mod queues;
pub(crate) mod registry;
pub(crate) mod reports;
pub(crate) mod sync;
