//! AWS's published address ranges (`ip-ranges.json`, as downloaded from
//! `https://ip-ranges.amazonaws.com/ip-ranges.json`, or a smaller file of the same shape) →
//! [`AwsIpRanges`], which fills `pkt-src-aws-service` / `pkt-dst-aws-service` (spec §4.2).
//! flowlog never downloads the file: the operator points `ip_ranges_file` at a copy.

use flowlog_model::record::{AwsIpRanges, IpPrefix};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct File {
    prefixes: Vec<V4>,
    #[serde(default)]
    ipv6_prefixes: Vec<V6>,
}

#[derive(Debug, Deserialize)]
struct V4 {
    ip_prefix: String,
    service: String,
}

#[derive(Debug, Deserialize)]
struct V6 {
    ipv6_prefix: String,
    service: String,
}

#[derive(Debug, thiserror::Error)]
pub enum IpRangesError {
    #[error("cannot read AWS ip-ranges file {0}: {1}")]
    Io(String, std::io::Error),
    #[error("AWS ip-ranges file {0} is not ip-ranges.json (prefixes[].ip_prefix/service, ipv6_prefixes[].ipv6_prefix/service): {1}")]
    Json(String, serde_json::Error),
    #[error("AWS ip-ranges file {0}: {1:?} is not an IP prefix")]
    Prefix(String, String),
}

/// Parses the text of an `ip-ranges.json`; `name` is used in errors.
pub fn parse(name: &str, text: &str) -> Result<AwsIpRanges, IpRangesError> {
    let f: File = serde_json::from_str(text).map_err(|e| IpRangesError::Json(name.into(), e))?;
    let mut entries = Vec::with_capacity(f.prefixes.len() + f.ipv6_prefixes.len());
    let v4 = f.prefixes.iter().map(|p| (&p.ip_prefix, &p.service));
    let v6 = f.ipv6_prefixes.iter().map(|p| (&p.ipv6_prefix, &p.service));
    for (prefix, service) in v4.chain(v6) {
        let p = IpPrefix::parse(prefix)
            .ok_or_else(|| IpRangesError::Prefix(name.into(), prefix.clone()))?;
        entries.push((p, service.as_str()));
    }
    Ok(AwsIpRanges::new(entries))
}

/// Reads and parses an `ip-ranges.json` file.
pub fn load(path: &std::path::Path) -> Result<AwsIpRanges, IpRangesError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| IpRangesError::Io(name.clone(), e))?;
    parse(&name, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_published_shape() {
        let text = r#"{"syncToken":"1","createDate":"2026-01-01-00-00-00",
          "prefixes":[
            {"ip_prefix":"3.5.140.0/22","region":"ap-northeast-2","service":"AMAZON","network_border_group":"ap-northeast-2"},
            {"ip_prefix":"3.5.140.0/22","region":"ap-northeast-2","service":"S3","network_border_group":"ap-northeast-2"}],
          "ipv6_prefixes":[
            {"ipv6_prefix":"2600:1f14::/35","region":"us-west-2","service":"EC2","network_border_group":"us-west-2"}]}"#;
        let r = parse("t.json", text).unwrap();
        assert_eq!(r.service("3.5.141.7".parse().unwrap()), Some("S3"));
        assert_eq!(r.service("2600:1f14::9".parse().unwrap()), Some("EC2"));
        assert_eq!(r.service("3.5.144.1".parse().unwrap()), None);
        let e = parse(
            "t.json",
            r#"{"prefixes":[{"ip_prefix":"3.5/99","service":"S3"}]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("t.json"), "{e}");
        assert!(parse("t.json", "[]").is_err());
    }
}
