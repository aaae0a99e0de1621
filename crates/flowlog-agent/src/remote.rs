//! The control plane over HTTP, for `flowlog agent` on another host: one SigV4-signed
//! `POST /agent/v1/sync` with a JSON body, signed like every other call (service `ec2`).
//!
//! It keeps the last full answer and sends its `cursor`; while the control plane's state is
//! unchanged the answer is a short `unchanged` and the kept one is returned (at a thousand
//! hosts syncing every 2 s that is most of the traffic). A control plane that knows no cursor
//! always answers in full.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context};
use flowlog_sigv4::{self as sigv4, Credentials};

use crate::protocol::{SyncRequest, SyncResponse, SYNC_PATH};
use crate::ControlPlane;

pub struct RemoteControlPlane {
    url: reqwest::Url,
    region: String,
    creds: Credentials,
    client: reqwest::Client,
    rt: tokio::runtime::Handle,
    /// The last full answer (with its cursor).
    last: Mutex<Option<SyncResponse>>,
}

impl RemoteControlPlane {
    /// `ca_file`: PEM bundle of the CAs that may sign the control plane's certificate;
    /// `None`: the system's roots.
    pub fn new(
        base: &str,
        region: &str,
        creds: Credentials,
        ca_file: Option<&std::path::Path>,
        rt: tokio::runtime::Handle,
    ) -> anyhow::Result<Self> {
        let url = reqwest::Url::parse(base)
            .and_then(|u| u.join(SYNC_PATH))
            .with_context(|| format!("invalid control plane URL {base:?}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!("control plane URL {base:?} must start with https:// (or http:// on loopback)");
        }
        let host = url
            .host_str()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_loopback());
        if url.scheme() == "http" && !loopback {
            eprintln!(
                "flowlog: WARNING: syncing with {base} over plain HTTP: inventory and delivery \
                 status cross the network unencrypted; use https:// (and --ca-file for a private CA)"
            );
        }
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(15));
        if let Some(path) = ca_file {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read CA file {}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
                format!("CA file {} is not a PEM certificate bundle", path.display())
            })?;
            if certs.is_empty() {
                bail!("CA file {} holds no CERTIFICATE block", path.display());
            }
            // Only these CAs: a private control plane's certificate is not for the public
            // roots to vouch for.
            builder = builder.tls_built_in_root_certs(false);
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let client = builder.build()?;
        Ok(RemoteControlPlane {
            url,
            region: region.to_string(),
            creds,
            client,
            rt,
            last: Mutex::new(None),
        })
    }
}

impl ControlPlane for RemoteControlPlane {
    fn sync(&self, req: &SyncRequest) -> anyhow::Result<SyncResponse> {
        let cursor = self.last_answer().and_then(|a| a.cursor);
        let body = if cursor.is_some() {
            serde_json::to_vec(&SyncRequest {
                cursor,
                ..req.clone()
            })?
        } else {
            serde_json::to_vec(req)?
        };
        let host = match self.url.port() {
            Some(p) => format!("{}:{p}", self.url.host_str().unwrap_or_default()),
            None => self.url.host_str().unwrap_or_default().to_string(),
        };
        let payload = sigv4::sha256_hex(&body);
        // The declared (and signed) body hash lets the control plane check the signature
        // before it reads the body.
        let signed = sigv4::sign(
            &sigv4::Request {
                method: "POST",
                host: &host,
                path: SYNC_PATH,
                query: &[],
                headers: &[
                    ("content-type", "application/json"),
                    ("x-amz-content-sha256", &payload),
                ],
                payload_sha256: &payload,
            },
            &self.creds,
            &self.region,
            "ec2",
            time::OffsetDateTime::now_utc(),
        );
        let mut rb = self
            .client
            .post(self.url.clone())
            .header("content-type", "application/json")
            .header("x-amz-content-sha256", payload.as_str())
            .body(body);
        for (k, v) in signed {
            rb = rb.header(k, v);
        }
        let resp = self.rt.block_on(async move {
            let r = rb.send().await?;
            let status = r.status();
            let text = r.text().await?;
            Ok::<_, reqwest::Error>((status, text))
        });
        let (status, text) = resp.map_err(|e| {
            let chain = format!("{:?}", anyhow::Error::from(e));
            let hint = if chain.contains("certificate") || chain.contains("Certificate") {
                " (TLS certificate verification failed: pass --ca-file with the CA that signed the control plane's certificate)"
            } else {
                ""
            };
            anyhow::anyhow!("cannot reach the control plane at {}{hint}: {chain}", self.url)
        })?;
        if !status.is_success() {
            bail!(
                "control plane answered {status}: {}",
                text.chars().take(300).collect::<String>()
            );
        }
        let answer: SyncResponse =
            serde_json::from_str(&text).context("control plane sent an invalid sync answer")?;
        if answer.unchanged {
            // Only ever sent for the cursor we sent, i.e. of the answer we hold.
            return self.last_answer().ok_or_else(|| {
                anyhow::anyhow!("control plane answered `unchanged` to a sync without cursor")
            });
        }
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(answer.clone());
        Ok(answer)
    }
}

impl RemoteControlPlane {
    fn last_answer(&self) -> Option<SyncResponse> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
