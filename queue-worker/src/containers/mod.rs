//! What only container functions have: autoscaling and manual scale requests, log streaming, and secret
//! files mounted into the containers.

pub(crate) mod logs;
pub(crate) mod scaling;
pub(crate) mod secrets;
