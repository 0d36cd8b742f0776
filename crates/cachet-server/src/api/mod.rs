//! Request handlers, one module per area of the API.

use cachet_proto::v1::{Envelope, EnvelopeList};
use cachet_proto::Message;

use crate::error::{Error, Result};
use crate::store::EnvelopePage;

pub(crate) mod attachments;
pub(crate) mod cases;
pub(crate) mod directory;
pub(crate) mod log;
pub(crate) mod messages;
pub(crate) mod operator;
pub(crate) mod recovery;
pub(crate) mod register;
pub(crate) mod vault;

/// Checks an id from a path or a body (length and alphabet).
pub(crate) fn check_id(value: &str, field: &'static str) -> Result<()> {
    cachet_proto::decode::validate_id(value, field).map_err(Error::from)
}

/// Turns stored envelopes into the wire list, filling in `delivery_id`.
pub(crate) fn envelope_list(page: EnvelopePage) -> Result<EnvelopeList> {
    let envelopes = page
        .envelopes
        .into_iter()
        .map(|stored| {
            let mut env = Envelope::decode(stored.envelope.as_slice())
                .map_err(|e| Error::Internal(format!("stored envelope does not decode: {e}")))?;
            env.delivery_id = stored.delivery_id;
            Ok(env)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(EnvelopeList {
        envelopes,
        more: page.more,
    })
}

/// Page size of a request: the asked limit, defaulted and capped.
pub(crate) fn page_limit(asked: Option<u32>, cap: u32) -> u32 {
    const DEFAULT: u32 = 100;
    match asked {
        None | Some(0) => DEFAULT.min(cap),
        Some(n) => n.min(cap),
    }
}
