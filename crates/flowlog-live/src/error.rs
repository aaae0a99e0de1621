//! Errors of live capture: what went wrong talking to the kernel, worded so the user can act
//! on it (missing privilege, unknown interface, unknown namespace) instead of a bare errno.

use std::io;
use std::path::PathBuf;

/// An error from opening or reading a capture socket.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("no such interface: {name}")]
    NoSuchInterface { name: String },
    #[error("network namespace {path} not found (create it with `ip netns add` or pass a path such as /proc/PID/ns/net)")]
    NetnsMissing { path: PathBuf },
    #[error("permission denied while {op}: live capture needs root or CAP_NET_RAW (plus CAP_NET_ADMIN for NFLOG, CAP_SYS_ADMIN for --netns)")]
    PermissionDenied { op: &'static str },
    #[error("NFLOG group {group} is already bound by another process")]
    NflogGroupBusy { group: u16 },
    #[error("{op} failed: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("netlink: {0}")]
    Netlink(String),
}

impl LiveError {
    /// Maps an OS error of operation `op` to the most helpful variant.
    pub fn from_os(op: &'static str, source: io::Error) -> Self {
        match source.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => LiveError::PermissionDenied { op },
            _ => LiveError::Io { op, source },
        }
    }
}

pub type Result<T, E = LiveError> = std::result::Result<T, E>;
