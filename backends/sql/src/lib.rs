//! What the SQL backends (SQLite, PostgreSQL, MySQL/MariaDB) share. Each backend crate keeps only
//! its dialect apart: how it connects, and how it reads the table's shape (`TableFacts`) from its
//! catalogue. The statements, the schema report and plan, the error mapping and the data path
//! ([`SqlStore`] over a [`SqlBackend`]) are written once here.

use ownid_bridge_store::StoreError;

mod classify;
mod dialect;
mod facts;
mod ledger;
pub mod pool;
mod schema;
mod statements;
mod store;
pub use classify::{classify, mysql_number};
pub use dialect::Dialect;
pub use facts::{declared_width, Capacity, Column, ColumnKind, Repertoire, TableFacts};
pub use ledger::SqlLedger;
pub use pool::{connector, Connect, Pool, Pooled, PING_IF_IDLE_FOR};
pub use schema::{plan, report, Plan};
pub use statements::Statements;
pub use store::{Conn, SqlBackend, SqlStore};

/// Bounds a first contact with the database (the acquire timeout bounds each later request).
/// The limit is the longer of the pool's connect and acquire timeouts.
pub async fn within<T>(
    settings: &ownid_bridge_store::PoolSettings,
    what: &str,
    future: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let limit = settings.connect_timeout.max(settings.acquire_timeout);
    tokio::time::timeout(limit, future).await.map_err(|_| {
        StoreError::Unavailable(format!("timed out after {limit:?} connecting to {what}"))
    })?
}
