//! One NFLOG listener per network namespace, shared by every capture in it. The kernel lets
//! only one socket bind an NFLOG group in a namespace, so a hub thread binds it once and hands
//! a copy of each datagram to every subscribed capture worker; each capture keeps the packets
//! of its own interface (`Capture::feed_nflog`). A hub ends when its last subscriber is gone.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowlog_live::{NflogConfig, Source};

type Subscribers = Arc<Mutex<Vec<Sender<Arc<[u8]>>>>>;

/// Hubs by namespace (None = the agent's own).
#[derive(Default)]
pub struct NflogHubs {
    hubs: Mutex<Vec<(Option<String>, Subscribers)>>,
}

impl NflogHubs {
    /// A receiver of the NFLOG datagrams of `group` in `netns`, binding the group on first use.
    pub fn subscribe(
        &self,
        netns: Option<&str>,
        group: u16,
    ) -> Result<Receiver<Arc<[u8]>>, flowlog_live::LiveError> {
        let (tx, rx) = mpsc::channel();
        let mut hubs = self.hubs.lock().unwrap_or_else(|e| e.into_inner());
        hubs.retain(|(_, subs)| {
            !subs.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
                || Arc::strong_count(subs) > 1
        });
        if let Some((_, subs)) = hubs.iter().find(|(ns, _)| ns.as_deref() == netns) {
            subs.lock().unwrap_or_else(|e| e.into_inner()).push(tx);
            return Ok(rx);
        }
        let path = netns.map(flowlog_live::netns_path);
        let mut sock = flowlog_live::open_nflog(path.as_deref(), NflogConfig::new(group))?;
        let subs: Subscribers = Arc::new(Mutex::new(vec![tx]));
        let thread_subs = subs.clone();
        let name = netns.unwrap_or("-").to_string();
        std::thread::Builder::new()
            .name(format!("nflog-{name}"))
            .spawn(move || loop {
                let chunk = match sock.next_chunk(Duration::from_millis(200)) {
                    Ok(Some(d)) => Some(Arc::<[u8]>::from(d)),
                    Ok(None) => None,
                    Err(e) => {
                        tracing::warn!(netns = %name, error = %e, "NFLOG listener failed");
                        return;
                    }
                };
                let mut s = thread_subs.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(d) = chunk {
                    s.retain(|tx| tx.send(d.clone()).is_ok());
                }
                if s.is_empty() {
                    tracing::info!(netns = %name, "NFLOG listener stopped: no capture left");
                    return;
                }
            })
            .map_err(|e| flowlog_live::LiveError::from_os("spawning the NFLOG thread", e))?;
        tracing::info!(netns = netns.unwrap_or("-"), group, "NFLOG listener bound");
        hubs.push((netns.map(str::to_string), subs));
        Ok(rx)
    }
}
