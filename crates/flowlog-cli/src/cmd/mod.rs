//! One module per subcommand.

pub mod capture;
pub mod logs;
pub mod pcap;
pub mod serve;
