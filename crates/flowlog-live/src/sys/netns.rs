//! Running socket-opening code inside another network namespace: a scoped thread calls
//! `setns(CLONE_NEWNET)` and runs the closure there. Sockets keep the namespace they were
//! created in, so they work from the calling thread afterwards; the helper thread ends and the
//! process itself never changes namespace.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::error::{LiveError, Result};

/// Runs `f` in the network namespace at `netns` (a file such as `/run/netns/NAME` or
/// `/proc/PID/ns/net`), or in the current one when `netns` is `None`.
pub fn in_netns<T: Send>(netns: Option<&Path>, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let Some(path) = netns else {
        return f();
    };
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let file = File::open(path).map_err(|e| match e.kind() {
                    io::ErrorKind::NotFound => LiveError::NetnsMissing {
                        path: path.to_path_buf(),
                    },
                    _ => LiveError::from_os("opening the network namespace", e),
                })?;
                // SAFETY: setns on a valid fd only changes this (helper) thread's namespace.
                let ret = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                if ret < 0 {
                    return Err(LiveError::from_os(
                        "entering the network namespace",
                        io::Error::last_os_error(),
                    ));
                }
                f()
            })
            .join()
            .map_err(|_| LiveError::Io {
                op: "namespace helper thread",
                source: io::Error::other("panicked"),
            })?
    })
}
