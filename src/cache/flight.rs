//! Single-flight: concurrent askers of one key share one piece of work.
//!
//! The work runs in its own task, so an asker that goes away (a client that
//! disconnects) does not cancel it for the others. The work's own first step
//! re-checks the cache: it may start just after an earlier flight of the same
//! key stored its result and left the table.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

/// The flights in progress, by key.
#[derive(Debug)]
pub struct Flights<T> {
    running: Mutex<HashMap<String, watch::Receiver<Option<T>>>>,
}

impl<T> Default for Flights<T> {
    fn default() -> Self {
        Self {
            running: Mutex::default(),
        }
    }
}

impl<T: Clone + Send + Sync + 'static> Flights<T> {
    /// The result of the flight for `key`: joins the one in progress, or
    /// starts `work` as it. `None` when the work's task died (a panic, or the
    /// runtime shutting down).
    pub async fn run<F>(self: &Arc<Self>, key: String, work: F) -> Option<T>
    where
        F: Future<Output = T> + Send + 'static,
    {
        let mut done = self.join_or_start(key, work);
        let value = done.wait_for(Option::is_some).await.ok()?;
        value.clone()
    }

    /// How many flights are in progress.
    pub fn in_progress(&self) -> usize {
        self.table().len()
    }

    fn join_or_start<F>(self: &Arc<Self>, key: String, work: F) -> watch::Receiver<Option<T>>
    where
        F: Future<Output = T> + Send + 'static,
    {
        let mut running = self.table();
        if let Some(done) = running.get(&key) {
            return done.clone();
        }
        let (sender, done) = watch::channel(None);
        running.insert(key.clone(), done.clone());
        let flights = Arc::clone(self);
        tokio::spawn(async move {
            let value = work.await;
            // Out of the table first: whoever asks from now on finds the
            // result where the work stored it.
            flights.table().remove(&key);
            let _ = sender.send(Some(value));
        });
        done
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Receiver<Option<T>>>> {
        // The table stays consistent even if a holder panicked: every
        // operation on it is a single insert, get or remove.
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_askers_share_one_run() {
        let flights = Arc::new(Flights::<usize>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let (release, gate) = watch::channel(false);
        // Sixteen askers join while the work is held at the gate.
        let mut joined = Vec::new();
        for _ in 0..16 {
            let runs = runs.clone();
            let mut gate = gate.clone();
            joined.push(flights.join_or_start("k".into(), async move {
                let _ = gate.wait_for(|open| *open).await;
                runs.fetch_add(1, Ordering::SeqCst) + 41
            }));
        }
        assert_eq!(flights.in_progress(), 1);
        release.send_replace(true);
        for mut done in joined {
            let value = done.wait_for(Option::is_some).await.ok().and_then(|v| *v);
            assert_eq!(value, Some(41));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(flights.in_progress(), 0);
        let again = flights.run("k".into(), async { 5 }).await;
        assert_eq!(again, Some(5), "a later asker starts a new flight");
    }

    #[tokio::test]
    async fn an_asker_that_leaves_does_not_cancel_the_work() {
        let flights = Arc::new(Flights::<u8>::default());
        let (finished, mut seen) = watch::channel(false);
        let (release, mut gate) = watch::channel(false);
        let asker = {
            let flights = flights.clone();
            tokio::spawn(async move {
                flights
                    .run("k".into(), async move {
                        let _ = gate.wait_for(|open| *open).await;
                        finished.send_replace(true);
                        7
                    })
                    .await
            })
        };
        while flights.in_progress() == 0 {
            tokio::task::yield_now().await;
        }
        asker.abort();
        let _ = asker.await;
        release.send_replace(true);
        let ran = tokio::time::timeout(std::time::Duration::from_secs(5), seen.wait_for(|f| *f));
        assert!(ran.await.is_ok(), "the work ran to its end");
    }
}
