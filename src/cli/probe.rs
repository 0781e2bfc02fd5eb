//! `probe`: the server's own readiness check, for images without curl (a distroless container's
//! HEALTHCHECK) and for service managers.

use std::process::ExitCode;
use std::time::Duration;

use crate::config::Config;

/// Where the probe asks.
pub struct Target {
    /// The server's root URL.
    origin: String,
    /// Certificates are not checked when the address is this machine's own server from the
    /// configuration: its certificate names the public host, not the loopback address the probe
    /// connects to, and the probe asks whether the server is ready, not who it is.
    verify_certificate: bool,
}

impl Target {
    /// A URL given on the command line, checked as any HTTPS client would.
    pub fn url(url: String) -> Target {
        Target {
            origin: url,
            verify_certificate: true,
        }
    }

    /// This machine's server, from `server.listen` and `server.tls`.
    pub fn configured(config: &Config) -> anyhow::Result<Target> {
        if config.server.listen.ends_with(":0") {
            anyhow::bail!(
                "server.listen {} picks a free port at start-up: give the server's URL with --url",
                config.server.listen
            );
        }
        Ok(Target {
            origin: super::local_origin(config),
            verify_certificate: false,
        })
    }
}

/// `GET /readyz`: success on 200, failure on anything else (another status, no connection, no
/// answer within `timeout`), printing nothing either way.
pub async fn probe(target: Target, timeout: Duration) -> ExitCode {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        // The server is on this machine or named by the caller: never through HTTP_PROXY.
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .danger_accept_invalid_certs(!target.verify_certificate)
        .build();
    let Ok(client) = client else {
        return ExitCode::FAILURE;
    };
    let url = format!("{}/readyz", target.origin.trim_end_matches('/'));
    match client.get(url).send().await {
        Ok(response) if response.status() == reqwest::StatusCode::OK => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}
