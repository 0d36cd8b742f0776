//! Delivery of one-time registration codes: the notifiers of [`cachet_http::notify`]
//! (development file, SMTP, HTTP webhook), shared with the key server.

pub use cachet_http::notify::{
    CodeMessage, CodeNotifier, DevNotifier, NotifierKind, NotifierSettings, Purpose, SmtpNotifier,
    WebhookNotifier, DEV_CODES_FILE,
};
