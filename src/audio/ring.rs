//! A bounded single-producer single-consumer queue for the audio callback: preallocated, no
//! locks, wait-free on both ends. The sequencer thread pushes note events; the callback pops
//! them without ever blocking or allocating.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Ring<T> {
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    mask: usize,
    /// Next slot to read; written only by the consumer. Counts forever (wrapping), so
    /// `tail - head` is the number of queued items even when the ring is full.
    head: AtomicUsize,
    /// Next slot to write; written only by the producer.
    tail: AtomicUsize,
}

// SAFETY: a slot is written only by the producer while it is outside `head..tail`, and read only
// by the consumer while it is inside; the Release stores on `tail`/`head` and the Acquire loads
// on the other side order those accesses. `T: Copy` means slots never need dropping.
unsafe impl<T: Copy + Send> Sync for Ring<T> {}
unsafe impl<T: Copy + Send> Send for Ring<T> {}

/// The writing end. Not `Clone`: there is exactly one producer.
pub struct Producer<T: Copy + Send> {
    ring: Arc<Ring<T>>,
}

/// The reading end. Not `Clone`: there is exactly one consumer.
pub struct Consumer<T: Copy + Send> {
    ring: Arc<Ring<T>>,
}

/// A queue holding at least `capacity` items (rounded up to a power of two, at least 2). All
/// memory is allocated here, none later.
pub fn ring<T: Copy + Send>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let capacity = capacity.max(2).next_power_of_two();
    let slots = (0..capacity)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect();
    let ring = Arc::new(Ring {
        slots,
        mask: capacity - 1,
        head: AtomicUsize::new(0),
        tail: AtomicUsize::new(0),
    });
    (
        Producer {
            ring: Arc::clone(&ring),
        },
        Consumer { ring },
    )
}

impl<T: Copy + Send> Producer<T> {
    /// Queues `item`, or hands it back when the queue is full.
    pub fn push(&mut self, item: T) -> Result<(), T> {
        let ring = &*self.ring;
        let tail = ring.tail.load(Ordering::Relaxed);
        let head = ring.head.load(Ordering::Acquire);
        if tail.wrapping_sub(head) > ring.mask {
            return Err(item);
        }
        // SAFETY: the slot is outside head..tail, so the consumer does not touch it (see Ring).
        unsafe { (*ring.slots[tail & ring.mask].get()).write(item) };
        ring.tail.store(tail.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    /// Items the queue can hold.
    pub fn capacity(&self) -> usize {
        self.ring.mask + 1
    }
}

impl<T: Copy + Send> Consumer<T> {
    /// The oldest queued item, if any.
    pub fn pop(&mut self) -> Option<T> {
        let ring = &*self.ring;
        let head = ring.head.load(Ordering::Relaxed);
        let tail = ring.tail.load(Ordering::Acquire);
        if head == tail {
            return None;
        }
        // SAFETY: the slot is inside head..tail, so the producer has written it and will not
        // write it again until `head` moves past it.
        let item = unsafe { (*ring.slots[head & ring.mask].get()).assume_init_read() };
        ring.head.store(head.wrapping_add(1), Ordering::Release);
        Some(item)
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.ring.head.load(Ordering::Relaxed) == self.ring.tail.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_full_and_wrapping() {
        let (mut tx, mut rx) = ring::<u32>(3);
        assert_eq!(tx.capacity(), 4);
        assert_eq!(rx.pop(), None);
        for round in 0..10u32 {
            for i in 0..4 {
                assert_eq!(tx.push(round * 10 + i), Ok(()));
            }
            assert_eq!(tx.push(99), Err(99), "a full queue refuses");
            for i in 0..4 {
                assert_eq!(rx.pop(), Some(round * 10 + i));
            }
            assert!(rx.is_empty());
        }
    }

    #[test]
    fn two_threads_see_every_item_in_order() {
        let (mut tx, mut rx) = ring::<u64>(64);
        const N: u64 = 200_000;
        let producer = std::thread::spawn(move || {
            let mut i = 0;
            while i < N {
                if tx.push(i).is_ok() {
                    i += 1;
                } else {
                    std::thread::yield_now();
                }
            }
        });
        let mut expected = 0;
        while expected < N {
            match rx.pop() {
                Some(v) => {
                    assert_eq!(v, expected);
                    expected += 1;
                }
                None => std::thread::yield_now(),
            }
        }
        producer.join().unwrap();
        assert_eq!(rx.pop(), None);
    }
}
