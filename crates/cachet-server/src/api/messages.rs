//! Store and forward of envelopes (whitepaper 8.1, 8.2).

use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use cachet_proto::v1::{ClientType, EnvelopeList};
use cachet_proto::Message;

use super::{envelope_list, page_limit};
use crate::error::{Error, Result};
use crate::extract::{no_content, PageQuery, Protobuf, RawBody, UserCaller};
use crate::state::{now_ms, AppState};
use crate::store::{AckRequest, Delivery, EnvelopePage, NewMessage, SendOutcome};

pub(crate) async fn send(
    State(state): State<AppState>,
    caller: UserCaller,
    RawBody(bytes): RawBody,
) -> Result<Response> {
    let result = send_checked(&state, &caller, &bytes).await;
    // A refused send is remembered too: replayed later, when a recipient exists or a
    // case admits the sender, it must not succeed. (Its refusal was decided before the
    // cache was consulted, so a replay of it is told so here.)
    if let (Err(e), Some(seen)) = (&result, &caller.replay) {
        if !matches!(e, Error::ReplayedSignature) {
            state.store.remember_or_refuse(seen).await?;
        }
    }
    result
}

async fn send_checked(state: &AppState, caller: &UserCaller, bytes: &[u8]) -> Result<Response> {
    let mut env = cachet_proto::decode::envelope(bytes)?;
    if env.contact_update.is_some() {
        return Err(Error::ContactUpdateForbidden);
    }
    // Server-owned fields: whatever the client wrote is replaced.
    env.sender_id = caller.user_id.clone();
    env.delivery_id = 0;
    env.server_timestamp = 0;
    // The digest covers everything the sender controls, so an identical resend matches.
    let digest = cachet_crypto::sha256(&env.encode_to_vec()).to_vec();
    let now = now_ms();
    env.server_timestamp = now;

    let mut msg = NewMessage {
        sender_id: caller.user_id.clone(),
        message_id: env.message_id.clone(),
        digest,
        created_at: now,
        deliveries: Vec::new(),
        case_entry: None,
        contacts: Vec::new(),
    };

    if let Some(case_message) = &env.case_message {
        let case = state
            .store
            .get_case(&case_message.case_id)
            .await?
            .ok_or(Error::CaseNotFound)?;
        if !case.participants.contains(&caller.user_id) {
            return Err(Error::NotAParticipant);
        }
        let bytes = env.encode_to_vec();
        msg.deliveries = case
            .participants
            .iter()
            .filter(|p| **p != caller.user_id)
            .map(|p| Delivery {
                recipient_id: p.clone(),
                envelope: bytes.clone(),
            })
            .collect();
        msg.case_entry = Some((case.case_id, bytes));
    } else {
        let mut ids: Vec<String> = env
            .recipients
            .iter()
            .map(|r| r.recipient_id.clone())
            .collect();
        ids.sort_unstable();
        // Unknown recipients are refused by the store, in the same transaction (the first
        // in id order is named): no lookup round trip before it.
        // Each recipient gets only their own ciphertext.
        let recipients = std::mem::take(&mut env.recipients);
        for r in recipients {
            let recipient_id = r.recipient_id.clone();
            let mut copy = env.clone();
            copy.recipients = vec![r];
            msg.deliveries.push(Delivery {
                recipient_id,
                envelope: copy.encode_to_vec(),
            });
        }
        msg.contacts = ids;
    }

    // A fixed order of per-mailbox counter updates keeps concurrent fan-outs from
    // deadlocking on databases with row locks.
    msg.deliveries
        .sort_by(|a, b| a.recipient_id.cmp(&b.recipient_id));

    let outcome = match &caller.replay {
        Some(seen) => state.store.store_message_and_remember(&msg, seen).await?,
        None => state.store.store_message(&msg).await?,
    };
    match outcome {
        SendOutcome::Stored => {
            let woken: Vec<String> = msg
                .deliveries
                .iter()
                .map(|d| d.recipient_id.clone())
                .collect();
            state.signal.notify(&woken).await;
            tracing::debug!(
                sender = %msg.sender_id,
                message_id = %msg.message_id,
                recipients = woken.len(),
                "envelope stored"
            );
        }
        SendOutcome::Duplicate => {
            tracing::debug!(sender = %msg.sender_id, message_id = %msg.message_id, "duplicate resend");
        }
    }
    Ok(no_content())
}

fn empty() -> EnvelopeList {
    EnvelopeList {
        envelopes: Vec::new(),
        more: false,
    }
}

pub(crate) async fn receive(
    State(state): State<AppState>,
    caller: UserCaller,
    RawBody(bytes): RawBody,
) -> Result<Protobuf<EnvelopeList>> {
    let ack = cachet_proto::decode::ack(&bytes)?;
    // Web clients read old conversations from the server (whitepaper 8, footnote 2).
    let keep = (caller.client_type == ClientType::Web).then(now_ms);
    // The signature is recorded before anything is answered, with the acks if any.
    match (&caller.replay, ack.delivery_ids.is_empty()) {
        (Some(seen), false) => {
            state
                .store
                .ack_and_remember(
                    AckRequest {
                        user_id: &caller.user_id,
                        delivery_ids: &ack.delivery_ids,
                        keep_acked_at: keep,
                    },
                    seen,
                )
                .await?;
        }
        (Some(seen), true) => state.store.remember_or_refuse(seen).await?,
        (None, false) => {
            state
                .store
                .ack(&caller.user_id, &ack.delivery_ids, keep)
                .await?;
        }
        (None, true) => {}
    }
    let limit = page_limit(Some(ack.limit), state.settings.receive_max_envelopes);
    let wait = Duration::from_secs(u64::from(ack.wait_seconds)).min(state.settings.long_poll_max);
    if wait.is_zero() {
        let page = state.store.pending(&caller.user_id, limit).await?;
        return Ok(Protobuf(envelope_list(page)?));
    }
    let deadline = tokio::time::Instant::now() + wait;
    let mut shutdown = state.shutdown.clone();
    loop {
        // Subscribe before reading, so that mail stored in between still wakes us.
        let wakeup = state.signal.subscribe(&caller.user_id).await;
        let page: EnvelopePage = state.store.pending(&caller.user_id, limit).await?;
        if !page.envelopes.is_empty() || *shutdown.borrow() {
            return Ok(Protobuf(envelope_list(page)?));
        }
        tokio::select! {
            () = wakeup => {}
            () = tokio::time::sleep_until(deadline) => return Ok(Protobuf(empty())),
            () = cachet_http::stopping(&mut shutdown) => return Ok(Protobuf(empty())),
        }
    }
}

pub(crate) async fn history(
    State(state): State<AppState>,
    caller: UserCaller,
    query: PageQuery,
) -> Result<Protobuf<EnvelopeList>> {
    let limit = page_limit(query.limit, state.settings.receive_max_envelopes);
    let page = state
        .store
        .mailbox_history(&caller.user_id, query.after, limit)
        .await?;
    Ok(Protobuf(envelope_list(page)?))
}
