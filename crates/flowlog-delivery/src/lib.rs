//! Delivery of flow records to where users read them: S3 objects and CloudWatch Logs streams,
//! in the exact layout AWS writes, with an on-disk spool so that an outage, throttling or a
//! `kill -9` loses nothing.
//!
//! Data path: `Delivery::submit(records)` → [`router::Router`] (records → every flow log
//! covering the ENI, filtered by TrafficType) → [`spool::Spool`] (S3: one open gzip-to-be
//! segment per flow log per window; CWL: one unit per (group, ENI) stream) → background task →
//! [`s3::S3Sink`] / [`cwl::CwlSink`] → acknowledged → removed from the spool. Status changes go
//! to the control plane through [`status::StatusListener`]; counters through
//! [`metrics::Metrics::render`].
//!
//! This crate knows nothing about HTTP servers, SQL of the control plane, or packets.

pub mod aws;
pub mod config;
pub mod cwl;
pub mod error;
pub mod metrics;
pub mod router;
pub mod s3;
pub mod service;
pub mod spool;
pub mod status;
pub mod target;

pub use config::{
    CwlConfig, DeliveryConfig, FirehoseConfig, RoleCredential, S3Config, Services, StsConfig,
};
pub use error::{DeliveryError, FailureKind};
pub use metrics::Metrics;
pub use router::Router;
pub use s3::BucketCheck;
pub use service::{Delivery, FlowLogBacklog, SubmitSummary};
pub use status::{DropReport, RecordingListener, StatusListener};
pub use target::{Destination, FlowLogTarget};
