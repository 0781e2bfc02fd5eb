//! `ownid-bridge export` and `import`: every user's ownIdData as JSON Lines, to move between
//! backends (SQLite to PostgreSQL, MySQL to PostgreSQL, MongoDB to SQL). One line per user with
//! data: `{"loginId": "...", "ownIdData": "..."}`.
//!
//! Export streams from one statement (or cursor) in batches, so memory stays bounded. Import
//! reads line by line and writes through the same store code as the endpoints, a batch of lines
//! at a time with a few writes in flight; a line whose user already holds that value is
//! `unchanged`, so an interrupted import run again ends in the same state (it is resumable).

use std::io::{BufRead, BufReader, IsTerminal as _, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use futures_util::StreamExt as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ownid_bridge_store::{checks, SetOutcome, StoreError, UserStore};
use serde::{Deserialize, Serialize};

use super::users::{login_id, open};
use crate::config::Config;
use crate::retry::retrying;

/// Rows per batch read from the database (export) or lines per batch written (import).
const BATCH: usize = 1000;
/// Writes in flight at once during an import.
const IN_FLIGHT: usize = 16;

#[derive(Serialize, Deserialize)]
struct Line {
    #[serde(rename = "loginId")]
    login_id: String,
    #[serde(rename = "ownIdData")]
    ownid_data: String,
}

/// A progress display on standard error when it is a terminal; hidden otherwise (a pipe, a log).
fn progress(length: Option<u64>, template: &str) -> ProgressBar {
    let bar = match length {
        Some(length) => ProgressBar::new(length),
        None => ProgressBar::new_spinner(),
    };
    if std::io::stderr().is_terminal() {
        bar.set_style(ProgressStyle::with_template(template).expect("a valid template"));
        bar.enable_steady_tick(Duration::from_millis(200));
    } else {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar
}

/// The store, once its table is known to hold what `export` and `import` read and write: a
/// missing table or column, or a type nothing can be written into, is an error that running the
/// command again cannot fix, said before anything is read or written.
async fn open_usable(config: &Config, command: &str) -> anyhow::Result<Arc<dyn UserStore>> {
    let store = open(config).await?;
    let report = crate::storage::inspect(config, store.as_ref()).await?;
    let essential = [
        checks::TABLE,
        checks::LOGIN_ID_COLUMN,
        checks::OWNID_DATA_COLUMN,
    ];
    let problems: Vec<String> = report
        .problems()
        .filter(|check| essential.contains(&check.name.as_str()))
        .map(|check| format!("{}: {}", check.name, check.detail))
        .collect();
    if !problems.is_empty() {
        anyhow::bail!(
            "the users table cannot be used: {}; nothing was {}. Running {command} again will \
             not help until the configuration or the table is fixed (`ownid-bridge check` says \
             how)",
            problems.join("; "),
            if command == "export" {
                "exported"
            } else {
                "imported"
            }
        );
    }
    Ok(store)
}

/// How a database error stops `export` or `import`: whether running the command again can help.
fn stopped(err: &StoreError, command: &str) -> String {
    if err.is_schema() {
        format!(
            "stopped: the table refused it for a reason of its own, which running {command} \
             again cannot fix; fix the table (`ownid-bridge check`), then run {command} again"
        )
    } else {
        format!("stopped (run {command} again to resume)")
    }
}

pub(super) async fn export(
    mut config: Config,
    output: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    // One statement (or cursor) streams the whole table: it may run for minutes.
    config.storage.pool.statement_timeout = None;
    let store = open_usable(&config, "export").await?;
    let out: Box<dyn Write + Send> = match &output {
        Some(path) => {
            // The cause is in the message: only the outermost one is printed.
            Box::new(
                private_file(path).map_err(|err| anyhow!("creating {}: {err}", path.display()))?,
            )
        }
        None => Box::new(std::io::stdout()),
    };
    let mut out = std::io::BufWriter::new(out);
    let bar = progress(None, "{spinner} {human_pos} users exported ({per_sec})");
    let mut written = Ok(());
    let exported = store
        .export_ownid_data(BATCH, &mut |rows| {
            for (login_id, ownid_data) in rows {
                let line = Line {
                    login_id,
                    ownid_data,
                };
                written = serde_json::to_writer(&mut out, &line)
                    .map_err(std::io::Error::from)
                    .and_then(|()| out.write_all(b"\n"));
                if let Err(err) = &written {
                    return Err(StoreError::Other(format!("writing the export: {err}")));
                }
                bar.inc(1);
            }
            Ok(())
        })
        .await;
    bar.finish_and_clear();
    written.context("writing the export")?;
    let exported = exported.map_err(|err| {
        anyhow!(
            "reading {}: {err}; {}",
            config.storage.url,
            stopped(&err, "the export")
        )
    })?;
    out.flush().context("writing the export")?;
    eprintln!("exported {exported} users with ownIdData");
    Ok(ExitCode::SUCCESS)
}

/// `path` created (or emptied) for writing, readable and writable by its owner only: an export
/// holds every login id and ownIdData. A file that was there keeps its inode, so its mode is set
/// too, before anything is written. A symbolic link is not followed (`O_NOFOLLOW`): in a shared
/// directory such as /tmp, another user's link would have the export written into, and
/// `chmod 0600`-ed, a file of its choosing.
fn private_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
        let file = options.open(path).map_err(|err| {
            if err.raw_os_error() == Some(libc::ELOOP) {
                std::io::Error::other(
                    "it is a symbolic link, which export does not write through; give the \
                     file's own path",
                )
            } else {
                err
            }
        })?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        Ok(file)
    }
    #[cfg(not(unix))]
    options.open(path)
}

/// What happened to one line of an import.
enum Outcome {
    Written,
    Created,
    Unchanged,
    UnknownUser,
    Refused(String),
}

#[derive(Default)]
struct Counts {
    written: u64,
    created: u64,
    unchanged: u64,
    unknown: u64,
    refused: u64,
}

pub(super) async fn import(
    config: Config,
    input: Option<PathBuf>,
    create_missing_users: bool,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let store = open_usable(&config, "import").await?;
    let (reader, length): (Box<dyn Read + Send>, Option<u64>) = match &input {
        Some(path) => {
            let file =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let length = file.metadata().ok().map(|meta| meta.len());
            (Box::new(file), length)
        }
        None => (Box::new(std::io::stdin()), None),
    };
    let bar = progress(
        length,
        "{wide_bar} {binary_bytes}/{binary_total_bytes} ({eta} left)",
    );
    let mut lines = Lines {
        reader: BufReader::new(bar.wrap_read(reader)),
        max: max_line_bytes(&config),
    };
    let config = Arc::new(config);
    let mut counts = Counts::default();
    let mut number = 0_u64;
    loop {
        let mut batch = Vec::with_capacity(BATCH);
        while batch.len() < BATCH {
            let line = match lines.next() {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(err) => {
                    bar.finish_and_clear();
                    print_counts(&counts, dry_run);
                    return Err(anyhow!(
                        "line {}: reading the input: {err}; stopped (the lines before it are \
                         counted above)",
                        number + 1
                    ));
                }
            };
            number += 1;
            batch.push((number, line));
        }
        if batch.is_empty() {
            break;
        }
        let outcomes: Vec<(u64, Result<Outcome, StoreError>)> = futures_util::stream::iter(batch)
            .map(|(number, line)| {
                let (store, config) = (Arc::clone(&store), Arc::clone(&config));
                async move {
                    let outcome = match line {
                        Ok(line) => {
                            import_line(&store, &config, &line, create_missing_users, dry_run).await
                        }
                        Err(reason) => Ok(Outcome::Refused(reason)),
                    };
                    (number, outcome)
                }
            })
            .buffered(IN_FLIGHT)
            .collect()
            .await;
        for (number, outcome) in outcomes {
            match outcome {
                Ok(Outcome::Written) => counts.written += 1,
                Ok(Outcome::Created) => counts.created += 1,
                Ok(Outcome::Unchanged) => counts.unchanged += 1,
                Ok(Outcome::UnknownUser) => {
                    counts.unknown += 1;
                    bar.suspend(|| println!("line {number}: unknown user (not written)"));
                }
                Ok(Outcome::Refused(reason)) => {
                    counts.refused += 1;
                    bar.suspend(|| println!("line {number}: refused: {reason}"));
                }
                // The database failed: stop here. Running the import again resumes after an
                // interruption; the table's own refusal must be fixed first.
                Err(err) => {
                    bar.finish_and_clear();
                    print_counts(&counts, dry_run);
                    return Err(anyhow!(
                        "line {number}: {err}; {}",
                        stopped(&err, "the import")
                    ));
                }
            }
        }
    }
    bar.finish_and_clear();
    print_counts(&counts, dry_run);
    Ok(if counts.refused + counts.unknown == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The longest line an export can hold for this configuration: both values at their longest,
/// every character written as a JSON escaped surrogate pair (12 bytes), and room for the keys.
fn max_line_bytes(config: &Config) -> usize {
    let chars = config.ownid.max_ownid_data_chars + crate::api::MAX_LOGIN_ID_CHARS;
    chars.saturating_mul(12).saturating_add(1024)
}

/// The input's lines, each read into memory only up to `max` bytes: a longer one is skipped to
/// its end and refused, so that one huge line costs no more memory than a long valid one.
struct Lines<R> {
    reader: R,
    max: usize,
}

impl<R: BufRead> Lines<R> {
    /// The next line without its line end, or why it is refused (too long, not UTF-8); `None`
    /// at the end of the input. An error is the input's own (a read failed).
    fn next(&mut self) -> std::io::Result<Option<Result<String, String>>> {
        let mut line = Vec::new();
        let mut length = 0_usize;
        let mut ended = false;
        loop {
            let available = self.reader.fill_buf()?;
            if available.is_empty() {
                break;
            }
            let (part, used) = match available.iter().position(|&byte| byte == b'\n') {
                Some(end) => {
                    ended = true;
                    (&available[..end], end + 1)
                }
                None => (available, available.len()),
            };
            length = length.saturating_add(part.len());
            if length <= self.max {
                line.extend_from_slice(part);
            }
            self.reader.consume(used);
            if ended {
                break;
            }
        }
        if !ended && length == 0 {
            return Ok(None);
        }
        if length > self.max {
            return Ok(Some(Err(format!(
                "the line is {length} bytes, longer than the {} bytes an export line can take \
                 under ownid.max_ownid_data_chars; skipped without being held in memory",
                self.max
            ))));
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(Some(String::from_utf8(line).map_err(|err| {
            let at = err.utf8_error().valid_up_to();
            format!(
                "not UTF-8: the byte at offset {at} (0x{:02x}) does not start or continue a \
                 character",
                err.as_bytes()[at]
            )
        })))
    }
}

fn print_counts(counts: &Counts, dry_run: bool) {
    let verb = if dry_run {
        "would be written"
    } else {
        "written"
    };
    println!(
        "{} {verb} ({} of them new users), {} unchanged, {} unknown users, {} refused{}",
        counts.written + counts.created,
        counts.created,
        counts.unchanged,
        counts.unknown,
        counts.refused,
        if dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        }
    );
}

/// One line: parsed and checked as the endpoint checks a request, compared with what is stored,
/// and written when it differs. Errors are the database's; everything about the line itself is
/// a refusal with its reason.
async fn import_line(
    store: &Arc<dyn UserStore>,
    config: &Config,
    line: &str,
    create_missing_users: bool,
    dry_run: bool,
) -> Result<Outcome, StoreError> {
    let refused = |reason: String| Ok(Outcome::Refused(reason));
    if line.trim().is_empty() {
        return refused("an empty line".into());
    }
    if let Err(err) = crate::json::check_unique_keys(line.as_bytes()) {
        return refused(err.to_string());
    }
    let parsed: Line = match serde_json::from_str(line) {
        Ok(parsed) => parsed,
        Err(err) => return refused(format!("not an export line: {err}")),
    };
    let login_id = match login_id(config, &parsed.login_id) {
        Ok(login_id) => login_id,
        Err(err) => return refused(err.to_string()),
    };
    let data = parsed.ownid_data;
    let max = config.ownid.max_ownid_data_chars;
    if data.is_empty() {
        return refused(format!("{login_id}: ownIdData is empty"));
    }
    if data.chars().count() > max {
        return refused(format!(
            "{login_id}: ownIdData is longer than ownid.max_ownid_data_chars ({max})"
        ));
    }
    if let Err(err) = crate::api::check_ownid_data(&data) {
        return refused(format!("{login_id}: {err}"));
    }
    let retries = &config.storage.retries;
    let exists = match retrying(retries, "import", || store.get_ownid_data(&login_id)).await {
        Ok(Some(value)) if value == data => return Ok(Outcome::Unchanged),
        Ok(_) => true,
        Err(StoreError::NotFound) if !create_missing_users => return Ok(Outcome::UnknownUser),
        Err(StoreError::NotFound) => false,
        Err(err) => return Err(err),
    };
    if dry_run {
        return Ok(if exists {
            Outcome::Written
        } else {
            Outcome::Created
        });
    }
    let set = retrying(retries, "import", || {
        store.set_ownid_data(&login_id, &data, create_missing_users)
    })
    .await;
    match set {
        Ok(SetOutcome::Updated) => Ok(Outcome::Written),
        Ok(SetOutcome::Created) => Ok(Outcome::Created),
        Err(StoreError::NotFound) => Ok(Outcome::UnknownUser),
        Err(err @ (StoreError::TooLarge { .. } | StoreError::Conflict)) => {
            refused(format!("{login_id}: {err}"))
        }
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_interruption_is_called_resumable() {
        let resumable = [
            StoreError::Unavailable("connection reset".into()),
            StoreError::Contention("deadlock".into()),
        ];
        for err in &resumable {
            assert!(stopped(err, "the import").contains("run the import again to resume"));
        }
        let table = StoreError::Schema("no such column: ownid".into());
        let said = stopped(&table, "the import");
        assert!(
            said.contains("cannot fix") && !said.contains("resume"),
            "{said}"
        );
    }
}
