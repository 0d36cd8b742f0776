//! Wake-ups for long-polling receivers.
//!
//! This is the one piece of state that lives only in a node's memory: a missed wake-up
//! costs at most one long-poll period, never a message, because receivers always read the
//! mailbox from the database. Several nodes need a shared bus instead (NATS or PostgreSQL
//! `LISTEN/NOTIFY`) behind the same trait.

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
        if let Ok(mut map) = self.waiters.lock() {
            for id in user_ids {
                if let Some(n) = map.get(id) {
                    n.notify_waiters();
                    if Arc::strong_count(n) == 1 {
                        map.remove(id);
                    }
                }
            }
        }
    }

    async fn sweep(&self) {
        if let Ok(mut map) = self.waiters.lock() {
            map.retain(|_, n| Arc::strong_count(n) > 1);
        }
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
