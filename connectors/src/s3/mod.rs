//! The S3/MinIO connector: object notifications, however they arrive (MinIO webhook, SNS, a NATS subject, or
//! polling), become one CloudEvent per object on `SLUICE_EVENTS`.

pub mod http;
pub mod nats;
pub mod poll;
pub mod records;
