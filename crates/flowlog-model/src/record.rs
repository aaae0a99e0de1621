//! The flow log record (spec §4) and its text form.
//!
//! A [`FlowRecord`] holds every field any record format can print; a format is a list of
//! [`Field`]s, so the default v2 line and later custom `LogFormat`s (v3–v5) share one
//! formatter. Absent values print as `-`.

use std::fmt::Write as _;
use std::net::IpAddr;

/// ACCEPT or REJECT, as decided by the host firewall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Accept,
    Reject,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Accept => "ACCEPT",
            Action::Reject => "REJECT",
        }
    }
}

/// `log-status` of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogStatus {
    Ok,
    NoData,
    SkipData,
}

impl LogStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStatus::Ok => "OK",
            LogStatus::NoData => "NODATA",
            LogStatus::SkipData => "SKIPDATA",
        }
    }
}

/// The traffic part of a record; absent in NODATA and SKIPDATA records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Traffic {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub protocol: u8,
    pub packets: u64,
    pub bytes: u64,
    pub action: Action,
    /// OR of the TCP flags seen (FIN 1, SYN 2, RST 4, ... as in the TCP header byte).
    pub tcp_flags: u8,
}

/// One record of one network interface for one aggregation window.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowRecord {
    pub account_id: String,
    pub interface_id: String,
    /// Unix seconds of the first packet in the window (window start for NODATA/SKIPDATA).
    pub start: u64,
    /// Unix seconds of the last packet in the window (window end for NODATA/SKIPDATA).
    pub end: u64,
    pub traffic: Option<Traffic>,
    pub status: LogStatus,
}

impl FlowRecord {
    pub fn action(&self) -> Option<Action> {
        self.traffic.map(|t| t.action)
    }
}

/// A field that a record format can print (names as in `${...}` of a LogFormat).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Version,
    AccountId,
    InterfaceId,
    SrcAddr,
    DstAddr,
    SrcPort,
    DstPort,
    Protocol,
    Packets,
    Bytes,
    Start,
    End,
    Action,
    LogStatus,
    TcpFlags,
}

impl Field {
    pub fn name(self) -> &'static str {
        match self {
            Field::Version => "version",
            Field::AccountId => "account-id",
            Field::InterfaceId => "interface-id",
            Field::SrcAddr => "srcaddr",
            Field::DstAddr => "dstaddr",
            Field::SrcPort => "srcport",
            Field::DstPort => "dstport",
            Field::Protocol => "protocol",
            Field::Packets => "packets",
            Field::Bytes => "bytes",
            Field::Start => "start",
            Field::End => "end",
            Field::Action => "action",
            Field::LogStatus => "log-status",
            Field::TcpFlags => "tcp-flags",
        }
    }

    /// Every field, in the order of the v2 format then later additions.
    pub const ALL: [Field; 15] = [
        Field::Version,
        Field::AccountId,
        Field::InterfaceId,
        Field::SrcAddr,
        Field::DstAddr,
        Field::SrcPort,
        Field::DstPort,
        Field::Protocol,
        Field::Packets,
        Field::Bytes,
        Field::Start,
        Field::End,
        Field::Action,
        Field::LogStatus,
        Field::TcpFlags,
    ];

    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Record format version that introduced the field (spec §4.1).
    pub fn version(self) -> u8 {
        match self {
            Field::TcpFlags => 3,
            _ => 2,
        }
    }
}

/// The default format: version 2, the first fourteen of [`Field::ALL`].
pub const V2_FIELDS: [Field; 14] = {
    let mut v = [Field::Version; 14];
    let mut i = 0;
    while i < 14 {
        v[i] = Field::ALL[i];
        i += 1;
    }
    v
};

/// A record format: the fields to print, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFormat {
    fields: Vec<Field>,
    version: u8,
}

impl Default for RecordFormat {
    fn default() -> Self {
        RecordFormat::new(V2_FIELDS.to_vec())
    }
}

impl RecordFormat {
    pub fn new(fields: Vec<Field>) -> RecordFormat {
        let version = fields.iter().map(|f| f.version()).max().unwrap_or(2);
        RecordFormat { fields, version }
    }

    /// Parses a `LogFormat`: `${field}` tokens separated by single spaces, at least one.
    /// None when a token is malformed or names a field flowlog cannot produce.
    pub fn parse(text: &str) -> Option<RecordFormat> {
        if text.is_empty() {
            return None;
        }
        let fields = text
            .split(' ')
            .map(|t| {
                t.strip_prefix("${")?
                    .strip_suffix('}')
                    .and_then(Field::from_name)
            })
            .collect::<Option<Vec<Field>>>()?;
        Some(RecordFormat::new(fields))
    }

    /// The S3 header line: field names separated by single spaces (no newline).
    pub fn header(&self) -> String {
        let names: Vec<&str> = self.fields.iter().map(|f| f.name()).collect();
        names.join(" ")
    }

    /// Appends the record's line (without newline) to `out`.
    pub fn write_line(&self, r: &FlowRecord, out: &mut String) {
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            self.write_field(*field, r, out);
        }
    }

    pub fn line(&self, r: &FlowRecord) -> String {
        let mut s = String::with_capacity(128);
        self.write_line(r, &mut s);
        s
    }

    fn write_field(&self, field: Field, r: &FlowRecord, out: &mut String) {
        let t = r.traffic.as_ref();
        match (field, t) {
            (Field::Version, _) => push_u64(out, self.version as u64),
            (Field::AccountId, _) => out.push_str(&r.account_id),
            (Field::InterfaceId, _) => out.push_str(&r.interface_id),
            (Field::Start, _) => push_u64(out, r.start),
            (Field::End, _) => push_u64(out, r.end),
            (Field::LogStatus, _) => out.push_str(r.status.as_str()),
            (Field::SrcAddr, Some(t)) => push_ip(out, t.src),
            (Field::DstAddr, Some(t)) => push_ip(out, t.dst),
            (Field::SrcPort, Some(t)) => push_u64(out, t.src_port as u64),
            (Field::DstPort, Some(t)) => push_u64(out, t.dst_port as u64),
            (Field::Protocol, Some(t)) => push_u64(out, t.protocol as u64),
            (Field::Packets, Some(t)) => push_u64(out, t.packets),
            (Field::Bytes, Some(t)) => push_u64(out, t.bytes),
            (Field::Action, Some(t)) => out.push_str(t.action.as_str()),
            (Field::TcpFlags, Some(t)) => push_u64(out, (t.tcp_flags & 0x17) as u64),
            (_, None) => out.push('-'),
        }
    }
}

/// Appends the decimal digits of `v` (no allocation, no `fmt` machinery). `itoa` writes
/// two digits per step and appends them at once: formatting was a fifth of `flowlog pcap`'s
/// time on a window of 1.8 M flows with a digit-by-digit loop.
fn push_u64(out: &mut String, v: u64) {
    out.push_str(itoa::Buffer::new().format(v));
}

/// Appends an address: dotted quad for IPv4, RFC 5952 canonical text for IPv6.
fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, o) in v4.octets().iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_u64(out, *o as u64);
            }
        }
        IpAddr::V6(v6) => {
            // Writing into a String cannot fail.
            let _ = write!(out, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(traffic: Option<Traffic>, status: LogStatus) -> FlowRecord {
        FlowRecord {
            account_id: "123456789010".into(),
            interface_id: "eni-abc123de".into(),
            start: 1418530010,
            end: 1418530070,
            traffic,
            status,
        }
    }

    #[test]
    fn log_formats_parse() {
        let f = RecordFormat::parse("${version} ${srcaddr} ${tcp-flags}").unwrap();
        assert_eq!(f.header(), "version srcaddr tcp-flags");
        assert!(RecordFormat::parse("").is_none());
        assert!(RecordFormat::parse("${version}  ${srcaddr}").is_none());
        assert!(RecordFormat::parse("${vpc-id}").is_none());
        let v2: Vec<String> = V2_FIELDS
            .iter()
            .map(|f| format!("${{{}}}", f.name()))
            .collect();
        assert_eq!(
            RecordFormat::parse(&v2.join(" ")).unwrap(),
            RecordFormat::default()
        );
    }

    #[test]
    fn v2_lines_match_the_guide() {
        let f = RecordFormat::default();
        let t = Traffic {
            src: "172.31.16.139".parse().unwrap(),
            dst: "172.31.16.21".parse().unwrap(),
            src_port: 20641,
            dst_port: 22,
            protocol: 6,
            packets: 20,
            bytes: 4249,
            action: Action::Accept,
            tcp_flags: 0,
        };
        assert_eq!(
            f.line(&rec(Some(t), LogStatus::Ok)),
            "2 123456789010 eni-abc123de 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK"
        );
        assert_eq!(
            f.line(&rec(None, LogStatus::NoData)),
            "2 123456789010 eni-abc123de - - - - - - - 1418530010 1418530070 - NODATA"
        );
        let v6 = Traffic {
            src: "2001:db8:1234:a100:8d6e:3477:df66:f105".parse().unwrap(),
            dst: "2001:0db8:1234:a102:3304:8879:34cf:4071".parse().unwrap(),
            ..t
        };
        assert!(f.line(&rec(Some(v6), LogStatus::Ok)).contains(
            " 2001:db8:1234:a100:8d6e:3477:df66:f105 2001:db8:1234:a102:3304:8879:34cf:4071 "
        ));
        assert_eq!(
            f.header(),
            "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status"
        );
    }

    #[test]
    fn numbers_addresses_and_v3_fields_format_exactly() {
        let t = Traffic {
            src: "0.0.0.0".parse().unwrap(),
            dst: "255.255.255.255".parse().unwrap(),
            src_port: 0,
            dst_port: 65535,
            protocol: 255,
            packets: u64::MAX,
            bytes: 10,
            action: Action::Reject,
            tcp_flags: 0x12,
        };
        let mut r = rec(Some(t), LogStatus::Ok);
        r.start = 0;
        r.end = 9;
        assert_eq!(
            RecordFormat::default().line(&r),
            "2 123456789010 eni-abc123de 0.0.0.0 255.255.255.255 0 65535 255 18446744073709551615 10 0 9 REJECT OK"
        );
        let v6 = Traffic {
            src: "::1".parse().unwrap(),
            dst: "fe80:0:0:0:0:0:0:a".parse().unwrap(),
            ..t
        };
        let f = RecordFormat::new(vec![
            Field::Version,
            Field::SrcAddr,
            Field::DstAddr,
            Field::TcpFlags,
        ]);
        assert_eq!(f.line(&rec(Some(v6), LogStatus::Ok)), "3 ::1 fe80::a 18");
        assert_eq!(f.line(&rec(None, LogStatus::SkipData)), "3 - - -");
    }
}
