//! Running a storage operation again when the database refused it for a conflict with another
//! statement ([`StoreError::Contention`]): a serialization failure, a deadlock, a Galera
//! certification conflict. Every operation is safe to repeat (a set overwrites the value, the
//! reads change nothing), so the request should not fail because two writers met.
//!
//! Exponential backoff with jitter from `backon`, bounded by `storage.retries` in tries and in
//! total waiting; each retry is counted in `ownid_bridge_storage_retries_total`.

use std::future::Future;

use backon::{ExponentialBuilder, Retryable as _};
use ownid_bridge_store::StoreError;

use crate::config::RetrySettings;

/// Runs `call` until it succeeds, fails for another reason than contention, or the settings'
/// tries or total delay run out; the last result is returned.
pub async fn retrying<T, Fut>(
    settings: &RetrySettings,
    operation: &'static str,
    call: impl FnMut() -> Fut,
) -> Result<T, StoreError>
where
    Fut: Future<Output = Result<T, StoreError>>,
{
    let backoff = ExponentialBuilder::default()
        .with_min_delay(settings.first_delay)
        .with_max_delay(settings.max_delay)
        .with_max_times(settings.attempts.saturating_sub(1) as usize)
        .with_total_delay(Some(settings.total_delay))
        .with_jitter();
    call.retry(backoff)
        .when(StoreError::is_contention)
        .notify(|err, delay| {
            crate::metrics::record_storage_retry(operation);
            tracing::debug!(operation, ?delay, error = %err, "retrying after contention");
        })
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use super::*;

    fn settings(attempts: u32) -> RetrySettings {
        RetrySettings {
            attempts,
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            total_delay: Duration::from_secs(1),
        }
    }

    /// Fails with `err` the first `failures` calls, then succeeds; counts the calls.
    async fn run(
        attempts: u32,
        failures: u32,
        err: fn() -> StoreError,
    ) -> (Result<(), StoreError>, u32) {
        let calls = AtomicU32::new(0);
        let result = retrying(&settings(attempts), "test", || async {
            if calls.fetch_add(1, Ordering::SeqCst) < failures {
                Err(err())
            } else {
                Ok(())
            }
        })
        .await;
        (result, calls.load(Ordering::SeqCst))
    }

    fn contention() -> StoreError {
        StoreError::Contention("40001".into())
    }

    #[tokio::test]
    async fn contention_is_retried_until_it_passes() {
        let (result, calls) = run(6, 3, contention).await;
        assert!(result.is_ok());
        assert_eq!(calls, 4);
    }

    #[tokio::test]
    async fn retries_stop_at_the_number_of_attempts() {
        let (result, calls) = run(3, 100, contention).await;
        assert!(matches!(result, Err(StoreError::Contention(_))));
        assert_eq!(calls, 3);
        let (result, calls) = run(1, 100, contention).await;
        assert!(matches!(result, Err(StoreError::Contention(_))));
        assert_eq!(calls, 1, "one attempt is no retry");
    }

    #[tokio::test]
    async fn retries_stop_at_the_total_delay() {
        let calls = AtomicU32::new(0);
        let slow = RetrySettings {
            attempts: 100,
            first_delay: Duration::from_millis(40),
            max_delay: Duration::from_millis(40),
            total_delay: Duration::from_millis(200),
        };
        let started = std::time::Instant::now();
        let result: Result<(), _> = retrying(&slow, "test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(contention())
        })
        .await;
        assert!(result.is_err());
        assert!(
            started.elapsed() <= Duration::from_millis(400),
            "{:?}",
            started.elapsed()
        );
        // Each wait is 40-80 ms, so 200 ms of waiting allow 2 to 5 retries.
        let calls = calls.load(Ordering::SeqCst);
        assert!((3..=6).contains(&calls), "{calls} calls");
    }

    #[tokio::test]
    async fn other_errors_are_not_retried() {
        let (result, calls) = run(6, 100, || StoreError::Unavailable("down".into())).await;
        assert!(matches!(result, Err(StoreError::Unavailable(_))));
        assert_eq!(calls, 1);
        let (result, calls) = run(6, 100, || StoreError::NotFound).await;
        assert!(matches!(result, Err(StoreError::NotFound)));
        assert_eq!(calls, 1);
    }
}
