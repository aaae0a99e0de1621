//! The agent: keeps the host's captures in line with the control plane's desired state.

pub mod protocol;
