//! Splitting pure work over the machine's cores with scoped threads (no runtime, no crate):
//! loading, rendering and observing tens of thousands of objects are independent per item.

/// Runs `f` on consecutive chunks of `items`, one chunk per core, and returns the results in
/// chunk order (so concatenating them keeps the items' order).
pub fn map_chunks<T: Sync, R: Send>(items: &[T], f: impl Fn(&[T]) -> R + Sync) -> Vec<R> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    // Small inputs are not worth a thread.
    let parts = if items.len() < 256 { 1 } else { cores.min(8) };
    let size = items.len().div_ceil(parts).max(1);
    if parts == 1 {
        return vec![f(items)];
    }
    std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = items
            .chunks(size)
            .map(|chunk| scope.spawn(move || f(chunk)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn chunks_come_back_in_order() {
        let items: Vec<u32> = (0..10_000).collect();
        let sums: Vec<Vec<u32>> = super::map_chunks(&items, |c| c.iter().map(|x| x * 2).collect());
        let flat: Vec<u32> = sums.into_iter().flatten().collect();
        assert_eq!(flat, items.iter().map(|x| x * 2).collect::<Vec<_>>());
    }
}
