//! `requests`: correctly signed requests made ahead of the run, for `bench/wrk.lua` to replay.
//!
//! Every request is stamped with the time it was made plus its number in milliseconds, so that no
//! two carry the same signature (a replay guard accepts each once: bench/replay.sh) and the server
//! must accept a clock skew at least as long as the run plus `count` ms (bench.sh configures
//! `ownid.max_clock_skew: 1h`).

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use ownid_bridge::cli::Operation;
use ownid_bridge::secret::Secret;
use ownid_bridge::signature::{now_ms, SignatureVerifier};

use crate::{login_id, ownid_data, BoxError, Rng};

pub fn write(
    base: &str,
    secret: &str,
    op: Operation,
    users: u64,
    count: u64,
    out: &Path,
) -> Result<(), BoxError> {
    let base = url::Url::parse(base)?;
    let path = format!("{}/{}", base.path().trim_end_matches('/'), op.path());
    let signer = SignatureVerifier::new(&Secret::new(secret), Duration::from_secs(3600))?;
    let start = now_ms();
    let mut rng = Rng::new(match op {
        Operation::GetOwnIdDataByLoginId => 1,
        Operation::SetOwnIdDataByLoginId => 2,
        Operation::GetSessionByLoginId => 3,
    });
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    for n in 0..count {
        let login = login_id(rng.below(users));
        let body = match op {
            Operation::GetOwnIdDataByLoginId => serde_json::json!({ "loginId": login }),
            Operation::SetOwnIdDataByLoginId => {
                serde_json::json!({ "loginId": login, "ownIdData": ownid_data(2_000_000 + n) })
            }
            Operation::GetSessionByLoginId => {
                serde_json::json!({ "loginId": login, "sessionType": "browser" })
            }
        }
        .to_string();
        let timestamp = (start + n as i128).to_string();
        // Compact JSON never holds a raw tab or newline, so the line format is unambiguous.
        let signature = signer.sign(body.as_bytes(), &timestamp);
        writeln!(file, "{path}\t{timestamp}\t{signature}\t{body}")?;
    }
    file.flush()?;
    Ok(())
}
