//! Wake-ups for long-polling receivers.
//!
//! This is the one piece of state that lives only in a node's memory: a missed wake-up
//! costs at most one long-poll period, never a message, because receivers always read the
//! mailbox from the database. [`LocalSignal`] serves one node; [`NatsSignal`] carries
//! wake-ups between nodes that share a database, over NATS.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::Notify;

/// A future that completes at the first wake-up of its user after it was created.
pub type Wakeup = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Publishes "new mail for user X" and lets receivers wait for it.
#[async_trait]
pub trait MailboxSignal: Send + Sync + 'static {
    /// Registers interest in `user_id`'s mailbox. Any `notify` for that user that starts
    /// after this returns completes the future.
    async fn subscribe(&self, user_id: &str) -> Wakeup;
    /// Wakes every receiver waiting on these mailboxes.
    async fn notify(&self, user_ids: &[String]);
    /// Drops bookkeeping of users nobody waits for; called now and then.
    async fn sweep(&self) {}
}

/// In-process [`MailboxSignal`]: one `tokio::sync::Notify` per user with waiters.
#[derive(Debug, Default)]
pub struct LocalSignal {
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
}

impl LocalSignal {
    /// An empty signal.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl MailboxSignal for LocalSignal {
    async fn subscribe(&self, user_id: &str) -> Wakeup {
        let notify = match self.waiters.lock() {
            Ok(mut map) => map.entry(user_id.to_owned()).or_default().clone(),
            // A poisoned lock only loses wake-ups; receivers still time out and re-read.
            Err(_) => Arc::new(Notify::new()),
        };
        let mut notified = Box::pin(notify.notified_owned());
        // Registers the waiter now, so a notify between here and the first poll counts.
        notified.as_mut().enable();
        notified
    }

    async fn notify(&self, user_ids: &[String]) {
        self.notify_now(user_ids);
    }

    async fn sweep(&self) {
        if let Ok(mut map) = self.waiters.lock() {
            map.retain(|_, n| Arc::strong_count(n) > 1);
        }
    }
}

impl LocalSignal {
    /// Wakes every waiter of every mailbox (they re-read the database).
    pub fn wake_all(&self) {
        if let Ok(mut map) = self.waiters.lock() {
            for n in map.values() {
                n.notify_waiters();
            }
            map.retain(|_, n| Arc::strong_count(n) > 1);
        }
    }

    fn notify_now<S: AsRef<str>>(&self, user_ids: impl IntoIterator<Item = S>) {
        if let Ok(mut map) = self.waiters.lock() {
            for id in user_ids {
                let id = id.as_ref();
                if let Some(n) = map.get(id) {
                    n.notify_waiters();
                    if Arc::strong_count(n) == 1 {
                        map.remove(id);
                    }
                }
            }
        }
    }
}

/// NATS subject the wake-ups travel on, unless configured otherwise.
pub const DEFAULT_NATS_SUBJECT: &str = "cachet.mailbox.wake";

/// [`MailboxSignal`] shared by every node connected to one NATS server or cluster.
///
/// Each node keeps a [`LocalSignal`] for its own long polls and one subscription to a
/// single subject. `notify` wakes local waiters at once and publishes the user ids (one
/// message per send, ids separated by `\n`); every other node wakes its own waiters for
/// them. Publishes are fire-and-forget: a lost one costs a receiver at most one long-poll
/// period, and after a reconnection every local waiter is woken to re-read the database,
/// since wake-ups published while disconnected are gone.
pub struct NatsSignal {
    local: Arc<LocalSignal>,
    client: async_nats::Client,
    subject: String,
    listener: tokio::task::JoinHandle<()>,
}

cachet_http::debug_some_fields!(NatsSignal { subject });

impl NatsSignal {
    /// Connects to `url` (e.g. `nats://127.0.0.1:4222`, several separated by commas) and
    /// subscribes to `subject`. Fails if no server answers.
    pub async fn connect(url: &str, subject: &str) -> crate::error::Result<Self> {
        use crate::error::Error;
        use futures_util::StreamExt;

        if subject.is_empty() || subject.contains([' ', '*', '>']) {
            return Err(Error::Config(
                "nats_subject must be a literal subject".into(),
            ));
        }
        let local = Arc::new(LocalSignal::new());
        let on_event = local.clone();
        let client = async_nats::ConnectOptions::new()
            .name("cachet-server")
            // Our own wake-ups are delivered locally without the round trip.
            .no_echo()
            .event_callback(move |event| {
                let local = on_event.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            tracing::info!("nats connected; waking local long polls");
                            local.wake_all();
                        }
                        async_nats::Event::Disconnected => {
                            tracing::warn!("nats disconnected; wake-ups from other nodes pause");
                        }
                        other => tracing::debug!(event = %other, "nats event"),
                    }
                }
            })
            .connect(url.split(',').map(str::trim).collect::<Vec<_>>())
            .await
            .map_err(|e| Error::Config(format!("nats_url: cannot connect: {e}")))?;
        let mut subscriber = client
            .subscribe(subject.to_owned())
            .await
            .map_err(|e| Error::Config(format!("nats: cannot subscribe: {e}")))?;
        // Make sure the server has the subscription before the node serves requests: the
        // server handles a connection's operations in order, so once a request sent after
        // the subscription comes back (answered, or "no responders"), it is in place.
        let probe = format!("{subject}.ready");
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            client.request(probe, bytes::Bytes::new()),
        )
        .await;
        let listening = local.clone();
        let listener = tokio::spawn(async move {
            while let Some(message) = subscriber.next().await {
                let ids = String::from_utf8_lossy(&message.payload);
                listening.notify_now(ids.split('\n').filter(|s| !s.is_empty()));
            }
        });
        Ok(NatsSignal {
            local,
            client,
            subject: subject.to_owned(),
            listener,
        })
    }
}

impl Drop for NatsSignal {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

#[async_trait]
impl MailboxSignal for NatsSignal {
    async fn subscribe(&self, user_id: &str) -> Wakeup {
        self.local.subscribe(user_id).await
    }

    async fn notify(&self, user_ids: &[String]) {
        if user_ids.is_empty() {
            return;
        }
        self.local.notify(user_ids).await;
        let payload = bytes::Bytes::from(user_ids.join("\n"));
        if let Err(e) = self.client.publish(self.subject.clone(), payload).await {
            tracing::warn!(error = %e, "nats publish failed; remote long polls wake on timeout");
        }
    }

    async fn sweep(&self) {
        self.local.sweep().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_notify_after_subscribe_wakes_and_others_do_not() {
        let s = LocalSignal::new();
        let w = s.subscribe("u_a").await;
        s.notify(&["u_b".to_owned()]).await;
        s.notify(&["u_a".to_owned()]).await;
        tokio::time::timeout(Duration::from_secs(5), w)
            .await
            .expect("woken");
        let mut w = s.subscribe("u_b").await;
        assert!(tokio::time::timeout(Duration::from_millis(20), &mut w)
            .await
            .is_err());
        drop(w);
        s.sweep().await;
        assert!(s.waiters.lock().expect("lock").is_empty());
    }
}
