//! NFLOG over netlink, the pure part: building the configuration request that binds a log
//! group in copy-packet mode, and parsing what the kernel sends back (acks, errors, logged
//! packets with their `NFULA_*` attributes). No sockets here; [`crate::sys::netlink`] moves
//! the bytes.
//!
//! Wire layout (`linux/netlink.h`, `linux/netfilter/nfnetlink_log.h`): each datagram holds
//! netlink messages (`nlmsghdr`: len u32, type u16, flags u16, seq u32, pid u32, native
//! endian, 4-byte aligned). NFLOG messages carry a 4-byte `nfgenmsg` (family, version,
//! res_id = group, big endian) and then attributes (`nlattr`: len u16, type u16, value padded
//! to 4). Attribute values are big endian.

/// `nlmsghdr` length.
const NLMSG_HDR: usize = 16;
const NFGENMSG: usize = 4;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NFNL_SUBSYS_ULOG: u16 = 4;
const NFULNL_MSG_PACKET: u16 = NFNL_SUBSYS_ULOG << 8;
const NFULNL_MSG_CONFIG: u16 = (NFNL_SUBSYS_ULOG << 8) | 1;
const NLA_TYPE_MASK: u16 = !(0x8000 | 0x4000);

// Packet attributes.
const NFULA_PACKET_HDR: u16 = 1;
const NFULA_MARK: u16 = 2;
const NFULA_TIMESTAMP: u16 = 3;
const NFULA_IFINDEX_INDEV: u16 = 4;
const NFULA_IFINDEX_OUTDEV: u16 = 5;
const NFULA_PAYLOAD: u16 = 9;
const NFULA_PREFIX: u16 = 10;

// Configuration attributes and values.
const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULA_CFG_TIMEOUT: u16 = 4;
const NFULA_CFG_QTHRESH: u16 = 5;
const NFULNL_CFG_CMD_BIND: u8 = 1;
const NFULNL_COPY_PACKET: u8 = 2;

/// Netfilter hooks (`NF_INET_*`) as reported in the packet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    PreRouting,
    LocalIn,
    Forward,
    LocalOut,
    PostRouting,
    Other(u8),
}

impl Hook {
    pub fn from_u8(v: u8) -> Hook {
        match v {
            0 => Hook::PreRouting,
            1 => Hook::LocalIn,
            2 => Hook::Forward,
            3 => Hook::LocalOut,
            4 => Hook::PostRouting,
            other => Hook::Other(other),
        }
    }
}

/// One packet logged by an nftables `log group N` rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoggedPacket<'a> {
    /// NFLOG group (`res_id` of the message).
    pub group: u16,
    /// EtherType of the payload (`hw_protocol`).
    pub hw_protocol: u16,
    pub hook: Hook,
    pub mark: Option<u32>,
    /// Unix time of the packet, when the kernel had one.
    pub timestamp: Option<(u64, u32)>,
    pub indev: Option<u32>,
    pub outdev: Option<u32>,
    /// The rule's log prefix, without its trailing NUL.
    pub prefix: Option<&'a [u8]>,
    /// The packet from its network header on (possibly cut at the copy range).
    pub payload: &'a [u8],
}

/// One netlink message of a datagram received from the NFLOG socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    Packet(LoggedPacket<'a>),
    /// An acknowledgement (`errno == 0`) or an error reply to request `seq`.
    Ack {
        seq: u32,
        errno: i32,
    },
    /// Anything else (NLMSG_DONE, other subsystems, packets without a header attribute).
    Other,
    /// A message whose lengths do not fit; the rest of the datagram is not read.
    Malformed,
}

fn ne_u16(b: &[u8], off: usize) -> Option<u16> {
    b.get(off..off + 2)
        .map(|s| u16::from_ne_bytes([s[0], s[1]]))
}

fn ne_u32(b: &[u8], off: usize) -> Option<u32> {
    b.get(off..off + 4)
        .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn be_u32(b: &[u8]) -> Option<u32> {
    b.get(..4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be_u64(b: &[u8]) -> Option<u64> {
    let s = b.get(..8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_be_bytes(a))
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Iterates over the netlink messages of one datagram.
pub fn messages(datagram: &[u8]) -> impl Iterator<Item = Message<'_>> {
    let mut rest = datagram;
    std::iter::from_fn(move || {
        if rest.len() < NLMSG_HDR {
            return None;
        }
        let len = ne_u32(rest, 0)? as usize;
        if len < NLMSG_HDR || len > rest.len() {
            rest = &[];
            return Some(Message::Malformed);
        }
        let msg = &rest[..len];
        rest = rest.get(align4(len)..).unwrap_or(&[]);
        Some(parse_message(msg))
    })
}

fn parse_message(msg: &[u8]) -> Message<'_> {
    let (Some(kind), Some(seq)) = (ne_u16(msg, 4), ne_u32(msg, 8)) else {
        return Message::Malformed;
    };
    let body = &msg[NLMSG_HDR..];
    match kind {
        NLMSG_ERROR => match ne_u32(body, 0) {
            // The error code is a negative errno; the echoed request header follows.
            Some(code) => Message::Ack {
                seq: ne_u32(body, 4 + 8).unwrap_or(seq),
                errno: -(code as i32),
            },
            None => Message::Malformed,
        },
        NLMSG_DONE => Message::Other,
        NFULNL_MSG_PACKET => parse_packet(body).unwrap_or(Message::Malformed),
        _ => Message::Other,
    }
}

fn parse_packet(body: &[u8]) -> Option<Message<'_>> {
    let gen = body.get(..NFGENMSG)?;
    let group = u16::from_be_bytes([gen[2], gen[3]]);
    let mut pkt = LoggedPacket {
        group,
        hw_protocol: 0,
        hook: Hook::Other(255),
        mark: None,
        timestamp: None,
        indev: None,
        outdev: None,
        prefix: None,
        payload: &[],
    };
    let mut have_hdr = false;
    let mut attrs = &body[NFGENMSG..];
    while attrs.len() >= 4 {
        let len = ne_u16(attrs, 0)? as usize;
        let kind = ne_u16(attrs, 2)? & NLA_TYPE_MASK;
        if len < 4 || len > attrs.len() {
            return None;
        }
        let value = &attrs[4..len];
        match kind {
            NFULA_PACKET_HDR => {
                let v = value.get(..3)?;
                pkt.hw_protocol = u16::from_be_bytes([v[0], v[1]]);
                pkt.hook = Hook::from_u8(v[2]);
                have_hdr = true;
            }
            NFULA_MARK => pkt.mark = be_u32(value),
            NFULA_TIMESTAMP => {
                let sec = be_u64(value)?;
                let usec = be_u64(value.get(8..)?)?;
                pkt.timestamp = Some((sec, (usec.min(999_999) * 1000) as u32));
            }
            NFULA_IFINDEX_INDEV => pkt.indev = be_u32(value),
            NFULA_IFINDEX_OUTDEV => pkt.outdev = be_u32(value),
            NFULA_PAYLOAD => pkt.payload = value,
            NFULA_PREFIX => {
                let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
                pkt.prefix = Some(&value[..end]);
            }
            _ => {}
        }
        attrs = attrs.get(align4(len)..).unwrap_or(&[]);
    }
    Some(if have_hdr {
        Message::Packet(pkt)
    } else {
        Message::Other
    })
}

/// Appends one attribute (header, value, padding).
fn put_attr(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(align4(buf.len()), 0);
}

/// How the kernel should batch logged packets for us.
#[derive(Debug, Clone, Copy)]
pub struct NflogConfig {
    pub group: u16,
    /// Bytes of each packet to copy (from the network header); headers are all we parse.
    pub copy_range: u32,
    /// Flush a batch after this many hundredths of a second.
    pub flush_timeout_cs: u32,
    /// Flush a batch once it holds this many packets.
    pub queue_threshold: u32,
}

impl NflogConfig {
    pub fn new(group: u16) -> Self {
        NflogConfig {
            group,
            copy_range: 256,
            flush_timeout_cs: 5,
            queue_threshold: 64,
        }
    }
}

/// The request that binds `cfg.group` to our socket in copy-packet mode, asking for an ack.
pub fn bind_request(cfg: &NflogConfig, seq: u32) -> Vec<u8> {
    let mut buf = vec![0u8; NLMSG_HDR];
    buf.extend_from_slice(&[libc_af_unspec(), 0]);
    buf.extend_from_slice(&cfg.group.to_be_bytes());
    put_attr(&mut buf, NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND]);
    let mut mode = cfg.copy_range.to_be_bytes().to_vec();
    mode.extend_from_slice(&[NFULNL_COPY_PACKET, 0]);
    put_attr(&mut buf, NFULA_CFG_MODE, &mode);
    put_attr(
        &mut buf,
        NFULA_CFG_TIMEOUT,
        &cfg.flush_timeout_cs.to_be_bytes(),
    );
    put_attr(
        &mut buf,
        NFULA_CFG_QTHRESH,
        &cfg.queue_threshold.to_be_bytes(),
    );
    let len = buf.len() as u32;
    buf[0..4].copy_from_slice(&len.to_ne_bytes());
    buf[4..6].copy_from_slice(&NFULNL_MSG_CONFIG.to_ne_bytes());
    buf[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    buf[8..12].copy_from_slice(&seq.to_ne_bytes());
    buf
}

fn libc_af_unspec() -> u8 {
    0
}

/// Builds NFLOG datagrams the way the kernel does; for tests.
pub mod build {
    use super::*;

    /// A packet message for `group` with the given attributes.
    pub fn packet(
        group: u16,
        hook: u8,
        indev: Option<u32>,
        outdev: Option<u32>,
        timestamp: Option<(u64, u64)>,
        prefix: Option<&str>,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut buf = vec![0u8; NLMSG_HDR];
        buf.extend_from_slice(&[2, 0]);
        buf.extend_from_slice(&group.to_be_bytes());
        put_attr(&mut buf, NFULA_PACKET_HDR, &[0x08, 0x00, hook, 0]);
        if let Some(p) = prefix {
            let mut v = p.as_bytes().to_vec();
            v.push(0);
            put_attr(&mut buf, NFULA_PREFIX, &v);
        }
        if let Some((s, us)) = timestamp {
            let mut v = s.to_be_bytes().to_vec();
            v.extend_from_slice(&us.to_be_bytes());
            put_attr(&mut buf, NFULA_TIMESTAMP, &v);
        }
        if let Some(i) = indev {
            put_attr(&mut buf, NFULA_IFINDEX_INDEV, &i.to_be_bytes());
        }
        if let Some(o) = outdev {
            put_attr(&mut buf, NFULA_IFINDEX_OUTDEV, &o.to_be_bytes());
        }
        put_attr(&mut buf, NFULA_PAYLOAD, payload);
        let len = buf.len() as u32;
        buf[0..4].copy_from_slice(&len.to_ne_bytes());
        buf[4..6].copy_from_slice(&NFULNL_MSG_PACKET.to_ne_bytes());
        buf
    }

    /// An NLMSG_ERROR reply (errno 0 = ack) to request `seq`.
    pub fn ack(seq: u32, errno: i32) -> Vec<u8> {
        let mut buf = vec![0u8; NLMSG_HDR];
        buf.extend_from_slice(&(-errno).to_ne_bytes());
        let mut echoed = vec![0u8; NLMSG_HDR];
        echoed[8..12].copy_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&echoed);
        let len = buf.len() as u32;
        buf[0..4].copy_from_slice(&len.to_ne_bytes());
        buf[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_logged_packet_with_all_attributes() {
        let payload = [
            0x45u8, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let d = build::packet(
            5,
            1,
            Some(3),
            None,
            Some((1_700_000_000, 250_000)),
            Some("rej "),
            &payload,
        );
        let msgs: Vec<_> = messages(&d).collect();
        assert_eq!(msgs.len(), 1);
        let Message::Packet(p) = msgs[0] else {
            panic!("{:?}", msgs[0])
        };
        assert_eq!(p.group, 5);
        assert_eq!(p.hw_protocol, 0x0800);
        assert_eq!(p.hook, Hook::LocalIn);
        assert_eq!(p.indev, Some(3));
        assert_eq!(p.outdev, None);
        assert_eq!(p.timestamp, Some((1_700_000_000, 250_000_000)));
        assert_eq!(p.prefix, Some(&b"rej "[..]));
        assert_eq!(p.payload, &payload[..]);
    }

    #[test]
    fn several_messages_in_one_datagram() {
        let mut d = build::packet(1, 3, None, Some(9), None, None, &[0x60; 40]);
        d.extend(build::packet(1, 0, Some(9), None, None, None, &[0x45; 21]));
        d.extend(build::ack(7, 0));
        let msgs: Vec<_> = messages(&d).collect();
        assert_eq!(msgs.len(), 3);
        assert!(
            matches!(msgs[0], Message::Packet(p) if p.hook == Hook::LocalOut && p.outdev == Some(9) && p.payload.len() == 40)
        );
        assert!(
            matches!(msgs[1], Message::Packet(p) if p.hook == Hook::PreRouting && p.payload.len() == 21)
        );
        assert_eq!(msgs[2], Message::Ack { seq: 7, errno: 0 });
    }

    #[test]
    fn error_reply_carries_errno() {
        let d = build::ack(3, 16);
        assert_eq!(
            messages(&d).collect::<Vec<_>>(),
            vec![Message::Ack { seq: 3, errno: 16 }]
        );
    }

    #[test]
    fn bind_request_layout() {
        let r = bind_request(&NflogConfig::new(0x0102), 42);
        assert_eq!(r.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes(r[0..4].try_into().unwrap()) as usize,
            r.len()
        );
        assert_eq!(u16::from_ne_bytes([r[4], r[5]]), 0x0401);
        assert_eq!(u16::from_ne_bytes([r[6], r[7]]), NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(u32::from_ne_bytes(r[8..12].try_into().unwrap()), 42);
        assert_eq!(&r[16..20], &[0, 0, 0x01, 0x02]);
        // CMD attribute: len 5, type 1, value BIND, padded.
        assert_eq!(&r[20..28], &[5, 0, 1, 0, NFULNL_CFG_CMD_BIND, 0, 0, 0]);
        // MODE attribute: len 10, type 2, copy range 256 BE, COPY_PACKET.
        assert_eq!(
            &r[28..40],
            &[10, 0, 2, 0, 0, 0, 1, 0, NFULNL_COPY_PACKET, 0, 0, 0]
        );
    }

    #[test]
    fn lengths_out_of_range_are_malformed() {
        let mut d = build::packet(1, 1, Some(1), None, None, None, &[0x45; 20]);
        // Message length larger than the datagram.
        d[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(messages(&d).collect::<Vec<_>>(), vec![Message::Malformed]);
        // An attribute length running past the message.
        let mut d = build::packet(1, 1, Some(1), None, None, None, &[0x45; 20]);
        d[20..22].copy_from_slice(&500u16.to_ne_bytes());
        assert_eq!(messages(&d).collect::<Vec<_>>(), vec![Message::Malformed]);
        // Short trailing garbage is ignored.
        assert_eq!(messages(&[1, 2, 3]).count(), 0);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let base = build::packet(1, 1, Some(1), Some(2), Some((1, 2)), Some("p"), &[0x45; 30]);
        for round in 0..3000 {
            let mut d = base.clone();
            for _ in 0..(round % 6 + 1) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % d.len();
                d[i] = (x >> 32) as u8;
            }
            d.truncate((x as usize >> 8) % (d.len() + 1));
            for m in messages(&d) {
                let _ = m;
            }
        }
    }
}
