//! Work spread over every core, with results in the order of the input, so
//! that what a command prints never depends on which thread finished first.

/// Splits `items` into one chunk per core (no more chunks than items), runs
/// `work` on each chunk on its own thread, and returns the chunks' results
/// in the order of `items`. Threads get a generous stack: the KDL parser's
/// recursion per block level is large in debug builds.
pub fn by_chunks<T: Sync, R: Send>(items: &[T], work: impl Fn(&[T]) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(items.len().max(1));
    let chunk = items.len().div_ceil(threads).max(1);
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| {
                std::thread::Builder::new()
                    .stack_size(16 << 20)
                    .spawn_scoped(scope, move || work(part))
                    .expect("cannot start a worker thread")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a worker thread panicked"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_the_order_of_the_items() {
        let items: Vec<u32> = (0..1000).collect();
        let sums = by_chunks(&items, |part| part.to_vec());
        assert_eq!(sums.concat(), items);
        assert!(
            by_chunks(&[] as &[u32], |part| part.len())
                .iter()
                .all(|&n| n == 0)
        );
    }
}
