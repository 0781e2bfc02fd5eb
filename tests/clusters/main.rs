//! Needs `server-tests` and `scripts/servers/with.sh --clusters`: each database killed under load,
//! PostgreSQL failover to its synchronous standby, a Galera cluster, and a Galera node and server
//! instances killed behind HAProxy.

#[path = "../common/mod.rs"]
mod common;

mod failover;
mod faults;
mod galera;
mod killed;
