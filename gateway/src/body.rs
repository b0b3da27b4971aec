//! Taking in a request body: inline when it fits in a NATS message, else streamed into the object store
//! (claim check) without ever holding it whole in memory.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, stream};
use sluice_contracts::Payload;

use crate::{ApiError, App};

/// Rejects up front a body whose declared length is over the limit.
pub fn check_declared_length(app: &App, headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let limit = app.cfg.max_body_bytes;
    if sluice_contracts::body::declares_more_than(headers, limit) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    Ok(())
}

/// Reads `body`; small bodies come back inline, large ones are stored as object `object_name`.
pub async fn intake(app: &App, object_name: &str, body: Body) -> Result<Payload, ApiError> {
    let limit = app.cfg.max_body_bytes;
    let inline_limit = app.inline_body_limit().min(limit);
    let mut chunks = body.into_data_stream();
    let mut head = BytesMut::new();
    loop {
        match chunks.next().await {
            None => return Ok(Payload::Inline(head.freeze())),
            Some(Err(err)) => return Err(read_error(err)),
            Some(Ok(chunk)) => {
                head.extend_from_slice(&chunk);
                if head.len() > inline_limit {
                    break;
                }
            }
        }
    }
    if head.len() > limit {
        return Err(ApiError::BodyTooLarge { limit });
    }
    let over_limit = Arc::new(AtomicBool::new(false));
    let mut seen = head.len();
    let flag = over_limit.clone();
    let rest = chunks.map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        seen += chunk.len();
        if seen > limit {
            flag.store(true, Ordering::Relaxed);
            return Err(std::io::Error::other("request body over the limit"));
        }
        Ok::<Bytes, std::io::Error>(chunk)
    });
    let mut reader = tokio_util::io::StreamReader::new(stream::iter([Ok(head.freeze())]).chain(rest));
    match sluice_jetstream::payloads::put(&app.topology, object_name, &mut reader).await {
        Ok(_) => Ok(Payload::Object(object_name.to_owned())),
        Err(_) if over_limit.load(Ordering::Relaxed) => Err(ApiError::BodyTooLarge { limit }),
        Err(err) => Err(ApiError::NotPersisted(format!("storing the request body: {err}"))),
    }
}

fn read_error(err: axum::Error) -> ApiError {
    ApiError::BodyRead(err.to_string())
}
