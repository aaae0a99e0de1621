//! One module per subcommand.

pub mod capture;
pub mod pcap;
pub mod serve;
