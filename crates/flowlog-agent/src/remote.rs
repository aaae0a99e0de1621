//! The control plane over HTTP, for `flowlog agent` on another host: one SigV4-signed
//! `POST /agent/v1/sync` with a JSON body, signed like every other call (service `ec2`).

use std::time::Duration;

use anyhow::{bail, Context};
use flowlog_delivery::sigv4::{self, Credentials};

use crate::protocol::{SyncRequest, SyncResponse, SYNC_PATH};
use crate::ControlPlane;

pub struct RemoteControlPlane {
    url: reqwest::Url,
    region: String,
    creds: Credentials,
    client: reqwest::Client,
    rt: tokio::runtime::Handle,
}

impl RemoteControlPlane {
    pub fn new(
        base: &str,
        region: &str,
        creds: Credentials,
        rt: tokio::runtime::Handle,
    ) -> anyhow::Result<Self> {
        let url = reqwest::Url::parse(base)
            .and_then(|u| u.join(SYNC_PATH))
            .with_context(|| format!("invalid control plane URL {base:?}"))?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()?;
        Ok(RemoteControlPlane {
            url,
            region: region.to_string(),
            creds,
            client,
            rt,
        })
    }
}

impl ControlPlane for RemoteControlPlane {
    fn sync(&self, req: &SyncRequest) -> anyhow::Result<SyncResponse> {
        let body = serde_json::to_vec(req)?;
        let host = match self.url.port() {
            Some(p) => format!("{}:{p}", self.url.host_str().unwrap_or_default()),
            None => self.url.host_str().unwrap_or_default().to_string(),
        };
        let payload = sigv4::sha256_hex(&body);
        let signed = sigv4::sign(
            &sigv4::Request {
                method: "POST",
                host: &host,
                path: SYNC_PATH,
                query: &[],
                headers: &[("content-type", "application/json")],
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
        let (status, text) =
            resp.with_context(|| format!("cannot reach the control plane at {}", self.url))?;
        if !status.is_success() {
            bail!(
                "control plane answered {status}: {}",
                text.chars().take(300).collect::<String>()
            );
        }
        serde_json::from_str(&text).context("control plane sent an invalid sync answer")
    }
}
