//! One module per subcommand.

pub mod agent;
pub mod capture;
pub mod credentials;
pub mod ddl;
pub mod logs;
pub mod migrate;
pub mod pcap;
pub mod serve;
pub mod status;
