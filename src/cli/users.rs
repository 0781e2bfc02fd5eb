//! `ownid-bridge users`: add, show and reset users in the configured table. Login ids are
//! normalized (`ownid.login_id_normalization`) and checked exactly as the endpoints do, and
//! matched byte for byte by the store.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::anyhow;
use ownid_bridge_store::{StoreError, UserStore};

use crate::api::check_login_id;
use crate::config::Config;
use crate::retry::retrying;
use crate::storage;

/// A login id as the endpoints would look it up, or why it is refused.
pub(super) fn login_id(config: &Config, raw: &str) -> anyhow::Result<String> {
    let login_id = config.ownid.login_id_normalization.apply(raw);
    check_login_id(&login_id).map_err(|err| anyhow!("{raw:?}: {err}"))?;
    Ok(login_id.into_owned())
}

/// The configured store, opened without creating anything (a support tool changes data only).
pub(super) async fn open(config: &Config) -> anyhow::Result<Arc<dyn UserStore>> {
    storage::open(&config.storage, false)
        .await
        .map_err(|err| anyhow!("storage ({}): {err}", config.storage.url))
}

fn size(data: &str) -> String {
    format!("{} characters, {} bytes", data.chars().count(), data.len())
}

pub(super) async fn add(config: Config, login_ids: Vec<String>) -> anyhow::Result<ExitCode> {
    let store = storage::open_for_serving(&config).await?;
    for raw in login_ids {
        let login_id = login_id(&config, &raw)?;
        let added = store
            .create_user(&login_id)
            .await
            .map_err(|err| anyhow!("adding {login_id}: {err}"))?;
        if added {
            println!("added {login_id}");
        } else {
            println!("{login_id} already exists");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn show(config: Config, raw: &str, reveal: bool) -> anyhow::Result<ExitCode> {
    let login_id = login_id(&config, raw)?;
    let store = open(&config).await?;
    let data = retrying(&config.storage.retries, "users show", || {
        store.get_ownid_data(&login_id)
    })
    .await;
    match data {
        Err(StoreError::NotFound) => {
            println!("{login_id}: no such user");
            return Ok(ExitCode::FAILURE);
        }
        Err(err) => return Err(anyhow!("reading {login_id}: {err}")),
        Ok(None) => println!("{login_id}: exists; no ownIdData (the next OwnID login enrols)"),
        Ok(Some(data)) => {
            println!("{login_id}: exists; ownIdData present ({})", size(&data));
            if reveal {
                println!("{data}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks on the terminal (or reads one line from a pipe) whether to go on; only `y` or `yes`
/// does.
fn confirmed(question: &str) -> anyhow::Result<bool> {
    let stdin = std::io::stdin();
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    if stdin.lock().read_line(&mut answer)? == 0 && !stdin.is_terminal() {
        eprintln!();
        eprintln!("no answer on standard input; pass --yes to reset without asking");
        return Ok(false);
    }
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

pub(super) async fn reset(
    config: Config,
    login_ids: Vec<String>,
    yes: bool,
) -> anyhow::Result<ExitCode> {
    // Every login id is checked before anything is changed.
    let login_ids: Vec<String> = login_ids
        .iter()
        .map(|raw| login_id(&config, raw))
        .collect::<anyhow::Result<_>>()?;
    let store = open(&config).await?;
    let question = format!(
        "Clear the ownIdData of {} (their next OwnID login enrols afresh)?",
        login_ids.join(", ")
    );
    if !yes && !confirmed(&question)? {
        println!("nothing changed");
        return Ok(ExitCode::FAILURE);
    }
    let retries = &config.storage.retries;
    let mut unknown = 0;
    for login_id in &login_ids {
        let before = retrying(retries, "users reset", || store.get_ownid_data(login_id)).await;
        match before {
            Err(StoreError::NotFound) => {
                unknown += 1;
                println!("{login_id}: no such user");
            }
            Err(err) => return Err(anyhow!("reading {login_id}: {err}")),
            Ok(None) => println!("{login_id}: had no ownIdData; unchanged"),
            Ok(Some(data)) => {
                retrying(retries, "users reset", || {
                    store.set_ownid_data(login_id, "", false)
                })
                .await
                .map_err(|err| anyhow!("clearing {login_id}: {err}"))?;
                println!("{login_id}: ownIdData cleared (was {})", size(&data));
            }
        }
    }
    Ok(if unknown == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
