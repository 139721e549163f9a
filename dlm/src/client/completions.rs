//! One lock's completions, from the reader task to the lock's handle: a FIFO with the
//! handle's waker. It replaces a tokio unbounded channel per lock, whose first send
//! allocated a block of 32 slots (and the channel itself): with one inline slot, a lock
//! whose completions are taken as they come (the usual request, grant, unlock) costs one
//! allocation, the shared state.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use super::Completion;

#[derive(Default)]
struct State {
    /// The oldest completion not taken, when `more` is empty (then it is the only one).
    first: Option<Completion>,
    /// The rest, in order.
    more: VecDeque<Completion>,
    waker: Option<Waker>,
    /// The sender is gone: nothing follows what is queued.
    closed: bool,
}

type Shared = Arc<Mutex<State>>;

fn lock(s: &Shared) -> MutexGuard<'_, State> {
    // Nothing panics while holding it; a poisoned queue is still consistent.
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// The reader's end (in the lock's route). Dropping it ends the queue.
pub(super) struct Sender(Shared);

/// The handle's end.
pub(super) struct Receiver(Shared);

pub(super) fn queue() -> (Sender, Receiver) {
    let s = Shared::default();
    (Sender(s.clone()), Receiver(s))
}

impl Sender {
    pub fn send(&self, c: Completion) {
        let waker = {
            let mut st = lock(&self.0);
            if st.first.is_none() && st.more.is_empty() {
                st.first = Some(c);
            } else {
                st.more.push_back(c);
            }
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let waker = {
            let mut st = lock(&self.0);
            st.closed = true;
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Receiver {
    /// The next completion; `None` once the sender is gone and everything is taken.
    pub async fn recv(&mut self) -> Option<Completion> {
        poll_fn(|cx| {
            let mut st = lock(&self.0);
            if let Some(c) = st.first.take() {
                return Poll::Ready(Some(c));
            }
            if let Some(c) = st.more.pop_front() {
                return Poll::Ready(Some(c));
            }
            if st.closed {
                return Poll::Ready(None);
            }
            match &st.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => st.waker = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::Status;

    fn c(sbflags: u8) -> Completion {
        Completion {
            status: Status::Granted,
            mode: None,
            sbflags,
            lvb: None,
        }
    }

    #[tokio::test]
    async fn completions_come_in_order_then_the_end() {
        let (tx, mut rx) = queue();
        for i in 0..5 {
            tx.send(c(i));
        }
        assert_eq!(rx.recv().await, Some(c(0)));
        tx.send(c(5));
        for i in 1..6 {
            assert_eq!(rx.recv().await, Some(c(i)));
        }
        let wait = tokio::spawn(async move { (rx.recv().await, rx.recv().await) });
        tokio::task::yield_now().await;
        tx.send(c(9));
        drop(tx);
        assert_eq!(wait.await.unwrap(), (Some(c(9)), None));
    }
}
