//! The replay guard alone (`ownid_bridge::signature::ReplayGuard`): THREADS OS threads each
//! reserve a new signature and mark it used, as every accepted request does, for SECONDS. The
//! server benchmark replays pre-signed requests and so runs with replay protection off; this is
//! the guard's own cost under contention, measured apart.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ownid_bridge::signature::{now_ms, ReplayGuard, SignedOperation};

pub struct GuardOptions {
    pub threads: usize,
    pub seconds: f64,
    /// Signatures already held when the run starts (inside their window for the whole run).
    pub live: u64,
    /// How long each new signature stays in the guard, in milliseconds.
    pub window_ms: u64,
}

/// A distinct 32-byte "signature" per (thread, counter).
fn mac(thread: u64, n: u64) -> [u8; 32] {
    let mut mac = [0u8; 32];
    mac[..8].copy_from_slice(&thread.to_le_bytes());
    mac[8..16].copy_from_slice(&n.to_le_bytes());
    mac
}

pub fn run(options: GuardOptions) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let capacity = usize::try_from(options.live)
        .map_err(|_| "--live is too large".to_owned())?
        .saturating_add(10_000_000);
    let guard = Arc::new(ReplayGuard::new(capacity));
    let far = now_ms() + 3_600_000;
    for n in 0..options.live {
        guard
            .reserve(
                &mac(u64::MAX, n),
                far,
                now_ms(),
                SignedOperation::GetSession,
            )
            .map_err(|err| format!("prefill: {err:?}"))?
            .used();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..options.threads as u64)
        .map(|thread| {
            let (guard, stop, done) = (guard.clone(), stop.clone(), done.clone());
            let window = i128::from(options.window_ms);
            std::thread::spawn(move || -> Result<(), String> {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let now = now_ms();
                    guard
                        .reserve(
                            &mac(thread, n),
                            now + window,
                            now,
                            SignedOperation::GetSession,
                        )
                        .map_err(|err| format!("reserve: {err:?}"))?
                        .used();
                    n += 1;
                }
                done.fetch_add(n, Ordering::Relaxed);
                Ok(())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(options.seconds));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker
            .join()
            .map_err(|_| "a worker panicked".to_owned())??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ops = done.load(Ordering::Relaxed) as f64;
    println!(
        "{{\"threads\":{},\"live\":{},\"ops_per_s\":{:.0},\"ns_per_op_per_thread\":{:.0},\"held_at_end\":{}}}",
        options.threads,
        options.live,
        ops / elapsed,
        elapsed * 1e9 * options.threads as f64 / ops.max(1.0),
        guard.len()
    );
    Ok(())
}
