//! End-to-end tests against real servers: a `nats-server` with JetStream per test, `sluice` processes and
//! HTTP callback receivers on 127.0.0.1.

mod api_errors;
mod async_calls;
mod browser;
mod chain;
mod cli;
mod compose;
mod console;
mod dashboards;
mod docker;
mod events;
mod fairness;
mod fanout;
mod large_body;
mod limits;
mod namespaces;
mod openapi;
mod openfaas;
mod progress;
mod records;
mod reliability;
mod results;
mod s3;
mod security;
mod support;
mod sync_calls;
mod traces;
mod video;
mod workers;
