//! `POST /events`: a CloudEvents HTTP endpoint (binary and structured mode), so any CloudEvents SDK can publish
//! to Sluice. The event keeps its own id, source and type; the router delivers it to matching functions.

use axum::{body::Body, extract::State, http::HeaderMap, response::Response};
use cloudevents::{AttributesReader, Data};
use sluice_contracts::{EventMessage, event::subject_token, names};

use crate::{
    http::{ConnectorError, ConnectorState, accept, read_body},
    metrics, triggers,
};

/// Converts the SDK's event into the wire shape of `SLUICE_EVENTS`.
pub(crate) fn from_sdk(event: cloudevents::Event) -> EventMessage {
    let data = match event.data() {
        Some(Data::Binary(bytes)) => bytes.clone(),
        Some(Data::String(text)) => text.clone().into_bytes(),
        Some(Data::Json(value)) => serde_json::to_vec(value).expect("JSON values serialize"),
        None => Vec::new(),
    };
    EventMessage {
        id: event.id().to_owned(),
        source: event.source().to_string(),
        event_type: event.ty().to_owned(),
        subject: event.subject().map(str::to_owned),
        time: event.time().copied(),
        content_type: event.datacontenttype().map(str::to_owned),
        extensions: event.iter_extensions().map(|(k, v)| (k.to_owned(), v.to_string())).collect(),
        data: data.into(),
    }
}

pub async fn receive(
    State(state): State<ConnectorState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ConnectorError> {
    let body = read_body(&headers, body, state.max_body).await.inspect_err(|_| metrics::rejected("ingress", "body"))?;
    let event = cloudevents::binding::http::to_event(&headers, body.to_vec()).map_err(|e| {
        metrics::rejected("ingress", "not a CloudEvent");
        ConnectorError::BadRequest(format!("not a CloudEvent (binary or structured mode): {e}"))
    })?;
    let event = from_sdk(event);
    if let Some(attribute) = event.ce_headers().into_iter().find(|(_, value)| value.contains(['\r', '\n'])) {
        metrics::rejected("ingress", "line break");
        return Err(ConnectorError::BadRequest(format!("the event's {} contains a line break", attribute.0)));
    }
    if event.event_type.len() > names::MAX_EVENT_TYPE {
        metrics::rejected("ingress", "type");
        return Err(ConnectorError::BadRequest(format!(
            "the event type is longer than {} bytes",
            names::MAX_EVENT_TYPE
        )));
    }
    if let Some(reason) = triggers::impersonation(&event) {
        metrics::rejected("ingress", "reserved");
        return Err(ConnectorError::Forbidden(reason));
    }
    let subject = format!("{}.ingress.{}", names::EVENTS_PREFIX, subject_token(&event.event_type));
    accept(&state, "ingress", subject, event, &headers).await
}
