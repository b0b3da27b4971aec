//! `GET /system/calls/{id}/events`: a call's life as Server-Sent Events. The first event is the record as it
//! stands (`state`); then one per change, named for what changed (`queued`, `running`, `progress`,
//! `heartbeat`, `retrying`, `succeeded`, `failed`, `cancelled`, `callback`, `record`), each carrying the whole
//! record and its revision as the event id; then `end` once the call is final and its callback settled, and the
//! stream closes. A client that goes away is noticed at the next keep-alive at the latest, and nothing of it
//! is left behind.

use std::{collections::VecDeque, convert::Infallible, time::Duration};

use axum::{
    extract::{Path, State},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use sluice_contracts::{CallRecord, CallStatus, CallbackDelivery, call::is_valid_call_id};
use tokio::sync::broadcast::error::RecvError;

use super::calls::public;
use crate::{
    ApiError, App,
    call_watch::{Change, Subscription},
};

/// How often an idle stream sends a comment, so proxies keep it and a gone client is noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub async fn events(
    State(app): State<App>,
    Path(super::CallPath { id }): Path<super::CallPath>,
) -> Result<Response, ApiError> {
    if !is_valid_call_id(&id) {
        return Err(ApiError::UnknownCall(id));
    }
    // Watching starts before the record is read, so no change between the two is missed.
    let subscription = app.call_watch.subscribe(&id).await?;
    let Some((record, revision)) = app.calls.entry(&id).await? else { return Err(ApiError::UnknownCall(id)) };
    let mut follow = Follow { app, subscription, id, last: None, revision: 0, queue: VecDeque::new(), done: false };
    follow.saw(record, revision, Some("state"));
    let stream = futures::stream::unfold(follow, |mut follow| async move {
        follow.next().await.map(|event| (Ok::<_, Infallible>(event), follow))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)).into_response())
}

/// One watcher's position in its call's life.
struct Follow {
    app: App,
    subscription: Subscription,
    id: String,
    last: Option<CallRecord>,
    revision: u64,
    queue: VecDeque<Event>,
    /// Set once `end` is queued: the stream closes when the queue is empty.
    done: bool,
}

impl Follow {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(event);
            }
            if self.done {
                return None;
            }
            let change = tokio::select! {
                _ = self.app.stop.cancelled() => return None,
                change = self.subscription.changes.recv() => change,
            };
            match change {
                Ok(Change::Record(revision, Some(record))) if revision > self.revision => {
                    self.saw((*record).clone(), revision, None);
                }
                Ok(Change::Record(_, Some(_))) => {}
                Ok(Change::Record(_, None)) => self.gone(),
                // Fell behind or the watch restarted: the record as it is now says what was missed.
                Ok(Change::Resync) | Err(RecvError::Lagged(_)) => match self.app.calls.entry(&self.id).await {
                    Ok(Some((record, revision))) if revision > self.revision => self.saw(record, revision, None),
                    Ok(Some(_)) => {}
                    Ok(None) => self.gone(),
                    Err(err) => tracing::warn!(%err, call_id = %self.id, "cannot read a watched call's record"),
                },
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// Queues the event for `record` at `revision`, and `end` when the call is settled.
    fn saw(&mut self, record: CallRecord, revision: u64, name: Option<&'static str>) {
        let name = name.unwrap_or_else(|| change_name(self.last.as_ref(), &record));
        let data = serde_json::to_string(&public(record.clone())).expect("a record always serialises");
        self.queue.push_back(Event::default().event(name).id(revision.to_string()).data(data));
        if settled(&record) {
            let end = serde_json::json!({ "callId": record.call_id, "status": record.status });
            self.queue.push_back(Event::default().event("end").data(end.to_string()));
            self.done = true;
        }
        self.last = Some(record);
        self.revision = revision;
    }

    fn gone(&mut self) {
        let why = serde_json::json!({ "callId": self.id, "error": "the call's record expired or was removed" });
        self.queue.push_back(Event::default().event("end").data(why.to_string()));
        self.done = true;
    }
}

/// Whether nothing more will happen to the call: final, and its callback and destination URL (if any)
/// delivered or given up.
fn settled(record: &CallRecord) -> bool {
    let done =
        |c: &Option<sluice_contracts::CallbackState>| c.as_ref().is_none_or(|c| c.state != CallbackDelivery::Pending);
    record.status.is_final() && done(&record.callback) && done(&record.destination)
}

/// What a change from `before` to `after` was, as the event's name.
fn change_name(before: Option<&CallRecord>, after: &CallRecord) -> &'static str {
    let Some(before) = before else { return "state" };
    if before.status != after.status {
        return match after.status {
            CallStatus::Queued => "retrying",
            status => status.as_str(),
        };
    }
    if before.progress != after.progress {
        "progress"
    } else if before.heartbeat_at != after.heartbeat_at {
        "heartbeat"
    } else if before.callback != after.callback {
        "callback"
    } else if before.destination != after.destination {
        "destination"
    } else {
        "record"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use sluice_contracts::{CallProgress, FunctionRef};

    #[test]
    fn changes_are_named_for_what_changed() {
        let queued = CallRecord::queued("c", &FunctionRef::new("ns", "f"), Utc::now());
        assert_eq!(change_name(None, &queued), "state");
        let running = CallRecord { status: CallStatus::Running, ..queued.clone() };
        assert_eq!(change_name(Some(&queued), &running), "running");
        assert_eq!(change_name(Some(&running), &queued), "retrying");
        let progress = CallProgress { percent: Some(5.0), message: None, updated_at: Utc::now() };
        let reported = CallRecord { progress: Some(progress), heartbeat_at: Some(Utc::now()), ..running.clone() };
        assert_eq!(change_name(Some(&running), &reported), "progress");
        let beat = CallRecord { heartbeat_at: Some(Utc::now() + chrono::Duration::seconds(1)), ..reported.clone() };
        assert_eq!(change_name(Some(&reported), &beat), "heartbeat");
        assert_eq!(change_name(Some(&beat), &beat), "record");
    }

    #[test]
    fn a_call_is_settled_once_final_with_its_callback_done() {
        let mut record = CallRecord::queued("c", &FunctionRef::new("ns", "f"), Utc::now());
        assert!(!settled(&record));
        record.status = CallStatus::Succeeded;
        assert!(settled(&record));
        record.callback =
            Some(sluice_contracts::CallbackState { state: CallbackDelivery::Pending, attempts: 1, last_error: None });
        assert!(!settled(&record));
    }
}
