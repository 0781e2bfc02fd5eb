//! `ownid-bench`: the Rust half of `scripts/bench.sh`.
//!
//! - `seed` creates the demo table with the server's own code and bulk-inserts users.
//! - `raw` runs the server's single-row statements straight through the same driver, with no
//!   HTTP, to measure what the database itself allows on this machine.
//! - `requests` pre-signs requests for wrk (`bench/wrk.lua` replays them).
//! - `server-version` prints the database server's version for the report.

mod guard;
mod raw;
mod requests;
mod seed;

use std::process::ExitCode;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand};
use ownid_bridge::cli::Operation;
use ownid_bridge::config::Backend;

#[derive(Parser, Debug)]
#[command(
    name = "ownid-bench",
    about = "Seeding, raw driver load and pre-signed requests for scripts/bench.sh"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Drop and re-create the demo table (through ownid-bridge's own schema code), then
    /// bulk-insert `user{i}@bench.example` for i in 0..N, each with about 1 KB of ownIdData.
    Seed {
        #[arg(long, value_enum)]
        backend: Backend,
        /// The database URL, as in `storage.url` (MySQL and MongoDB: with the database name).
        #[arg(long)]
        url: String,
        #[arg(long)]
        users: u64,
    },
    /// The server's statements, issued directly through the same driver by C tasks over a pool.
    /// Prints one JSON line: {"rps":..,"p50_ms":..,"p99_ms":..,"errors":..}.
    Raw {
        #[arg(long, value_enum)]
        backend: Backend,
        #[arg(long)]
        url: String,
        /// How many seeded users to pick from (uniformly at random).
        #[arg(long)]
        users: u64,
        #[arg(long, value_parser = operation_parser())]
        op: Operation,
        /// Concurrent tasks, each issuing one statement after another.
        #[arg(long)]
        concurrency: u32,
        /// Measured seconds (after the warm-up).
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Unmeasured seconds first, while the pool fills and the caches warm.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        /// Pool size (default: the concurrency). SQLite writes always use one connection, as
        /// in the server.
        #[arg(long)]
        pool: Option<u32>,
    },
    /// Pre-sign COUNT requests for wrk, each for a random user, stamped now.
    Requests {
        /// The server's base URL including the base path, e.g. http://127.0.0.1:8080/ownid.
        #[arg(long)]
        url: String,
        /// The shared secret (base64), as in `ownid.shared_secret`.
        #[arg(long)]
        secret: String,
        #[arg(long, value_parser = operation_parser())]
        op: Operation,
        #[arg(long)]
        users: u64,
        #[arg(long)]
        count: u64,
        /// Output: one request a line, `path TAB ownid-timestamp TAB ownid-signature TAB body`.
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// The replay guard alone under contention: threads reserving and using new signatures.
    /// Prints one JSON line.
    Guard {
        #[arg(long, default_value_t = 4)]
        threads: usize,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Signatures already held (inside their window) when the run starts.
        #[arg(long, default_value_t = 0)]
        live: u64,
        /// How long each new signature is held, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        window_ms: u64,
    },
    /// Print the database server's version.
    ServerVersion {
        #[arg(long, value_enum)]
        backend: Backend,
        #[arg(long)]
        url: String,
    },
}

/// `--op get|set|session`, the bench's short names for the server's three operations: mapped here
/// rather than added as aliases to `Operation`, so that the server's own CLI (src/cli.rs, `sign`)
/// keeps accepting exactly the operation names.
fn operation_parser() -> impl TypedValueParser<Value = Operation> {
    PossibleValuesParser::new(["get", "set", "session"]).map(|name| match name.as_str() {
        "get" => Operation::GetOwnIdDataByLoginId,
        "set" => Operation::SetOwnIdDataByLoginId,
        _ => Operation::GetSessionByLoginId,
    })
}

/// The login id of seeded user `i`.
pub fn login_id(i: u64) -> String {
    format!("user{i}@bench.example")
}

/// Length of the ownIdData written by the benchmark (seeded and set).
pub const OWNID_DATA_LEN: usize = 1024;

/// About 1 KB of base64-alphabet text, different for each `seed`.
pub fn ownid_data(seed: u64) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = Rng::new(seed);
    (0..OWNID_DATA_LEN)
        .map(|_| ALPHABET[(rng.next_u64() % 64) as usize] as char)
        .collect()
}

/// xorshift64*: fast, dependency-free, good enough to pick users.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so that small seeds still give unrelated sequences.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform enough in `0..n` for n far below 2^64.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Seed {
                backend,
                url,
                users,
            } => seed::seed(backend, &url, users).await,
            Command::Raw {
                backend,
                url,
                users,
                op,
                concurrency,
                seconds,
                warmup,
                pool,
            } => {
                raw::run(raw::RawOptions {
                    backend,
                    url,
                    users,
                    op,
                    concurrency: concurrency.max(1),
                    pool: pool.unwrap_or(concurrency).max(1),
                    seconds,
                    warmup,
                })
                .await
            }
            Command::Requests {
                url,
                secret,
                op,
                users,
                count,
                out,
            } => requests::write(&url, &secret, op, users, count, &out),
            Command::Guard {
                threads,
                seconds,
                live,
                window_ms,
            } => guard::run(guard::GuardOptions {
                threads: threads.max(1),
                seconds,
                live,
                window_ms,
            }),
            Command::ServerVersion { backend, url } => seed::server_version(backend, &url)
                .await
                .map(|version| println!("{version}")),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ownid-bench: {err}");
            ExitCode::FAILURE
        }
    }
}
