//! Needs `server-tests` and the throwaway servers of scripts/servers/with.sh: the server on
//! PostgreSQL (directly and through PgBouncer), MariaDB and the MongoDB-compatible server; `serve`
//! waiting for its database; 10,000 sets on PostgreSQL.

#[path = "../common/mod.rs"]
mod common;

mod apps;
mod existing_mongodb;
mod existing_mysql;
mod existing_postgres;
mod load;
mod replay;
mod serving;
mod startup;
mod transfer;
mod users;
