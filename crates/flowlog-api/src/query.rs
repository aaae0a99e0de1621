//! Decoding of EC2 Query requests: `application/x-www-form-urlencoded` bodies and URL query
//! strings into a flat, ordered parameter map, plus the typed readers every action uses for
//! EC2's flattened lists (`ResourceId.1`, `Filter.2.Value.3`) and for the member-name schema
//! that turns stray names into `UnknownParameter`.
//!
//! Decoding is strict: `+` is a space, `%XX` must be valid hex, and every decoded name and
//! value must be UTF-8. Nothing here allocates per byte or can panic on hostile input.

use std::collections::BTreeMap;

use crate::error::ApiError;

/// Upper bound on the number of parameters in one request. CreateFlowLogs with 1000 resource
/// IDs plus tags stays far below it; 10 000 names are answered with a clear error.
pub const MAX_PARAMS: usize = 5_000;

/// Why a body or query string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid percent-encoding at byte {0}")]
    BadPercent(usize),
    #[error("a parameter name or value is not valid UTF-8")]
    NotUtf8,
    #[error("the request has more than {MAX_PARAMS} parameters")]
    TooMany,
    #[error("the parameter {0} appears more than once")]
    Duplicate(String),
    #[error("a parameter has an empty name")]
    EmptyName,
}

/// The decoded parameters of one request, keyed by wire name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params {
    map: BTreeMap<String, String>,
}

/// Decodes `a=b&c=d` (form body or query string) into [`Params`].
pub fn decode(input: &[u8]) -> Result<Params, DecodeError> {
    let mut params = Params::default();
    params.extend_from(input)?;
    Ok(params)
}

impl Params {
    /// Adds the pairs of another encoded string (the query string of a POST, say).
    pub fn extend_from(&mut self, input: &[u8]) -> Result<(), DecodeError> {
        let mut offset = 0;
        for pair in input.split(|b| *b == b'&') {
            let start = offset;
            offset += pair.len() + 1;
            if pair.is_empty() {
                continue;
            }
            let (name, value, value_at) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..], start + i + 1),
                None => (pair, &pair[pair.len()..], start + pair.len()),
            };
            let name = unescape(name, start)?;
            if name.is_empty() {
                return Err(DecodeError::EmptyName);
            }
            let value = unescape(value, value_at)?;
            if self.map.len() >= MAX_PARAMS {
                return Err(DecodeError::TooMany);
            }
            if self.map.contains_key(&name) {
                return Err(DecodeError::Duplicate(name));
            }
            self.map.insert(name, value);
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.map.remove(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// All parameters, for fingerprinting a request (ClientToken idempotency).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// A required string parameter.
    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        match self.get(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(ApiError::missing(name)),
        }
    }

    /// An optional string parameter; an empty value counts as absent.
    pub fn optional(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(v) => Err(ApiError::invalid_value(
                name,
                v,
                "Expecting a boolean (true or false).",
            )),
        }
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| ApiError::invalid_value(name, v, "Expecting an integer.")),
        }
    }

    /// A flattened list `Name.1`, `Name.2`, ... in numeric index order (gaps ignored).
    pub fn list<'a>(&'a self, name: &'a str) -> Vec<&'a str> {
        let mut items: Vec<(u32, &str)> = self
            .indexed(name)
            .filter(|(_, rest, _)| rest.is_empty())
            .map(|(i, _, v)| (i, v))
            .collect();
        items.sort_by_key(|(i, _)| *i);
        items.into_iter().map(|(_, v)| v).collect()
    }

    /// Indices of a list of structures `Name.N.<member>`, sorted and deduplicated.
    pub fn struct_indices<'a>(&'a self, name: &'a str) -> Vec<u32> {
        let mut idx: Vec<u32> = self
            .indexed(name)
            .filter(|(_, rest, _)| !rest.is_empty())
            .map(|(i, _, _)| i)
            .collect();
        idx.sort_unstable();
        idx.dedup();
        idx
    }

    /// `(index, rest-after-index-without-dot, value)` for every `Name.<index>[.rest]`.
    fn indexed<'a>(&'a self, name: &'a str) -> impl Iterator<Item = (u32, &'a str, &'a str)> + 'a {
        let prefix_len = name.len() + 1;
        self.map
            .range::<str, _>((std::ops::Bound::Excluded(name), std::ops::Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(name))
            .filter_map(move |(k, v)| {
                let rest = k.get(prefix_len..)?;
                if k.as_bytes()[name.len()] != b'.' {
                    return None;
                }
                let (num, tail) = match rest.find('.') {
                    Some(p) => (&rest[..p], &rest[p + 1..]),
                    None => (rest, ""),
                };
                let i = parse_index(num)?;
                Some((i, tail, v.as_str()))
            })
    }
}

fn parse_index(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|i| *i >= 1)
}

/// A filter of a Describe call: `Filter.N.Name` and `Filter.N.Value.M`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub name: String,
    pub values: Vec<String>,
}

/// Most IDs one `FlowLogId.N` / `VpcId.N` / ... list may hold (AWS: 1000 flow-log IDs).
pub const MAX_IDS: usize = 1000;
/// Most filter values in one call, over all filters (EC2's `FilterLimitExceeded` bound).
pub const MAX_FILTER_VALUES: usize = 200;
/// Longest filter value; keeps wildcard matching cheap (tag values are at most 256).
pub const MAX_FILTER_VALUE_CHARS: usize = 1024;

/// Reads the list `Name.N`, refusing more than [`MAX_IDS`] entries so that the work and
/// the reply of one request stay bounded.
pub fn id_list<'a>(params: &'a Params, name: &'a str) -> Result<Vec<&'a str>, ApiError> {
    let ids = params.list(name);
    if ids.len() > MAX_IDS {
        return Err(ApiError::too_many_ids(&format!("{name}.N"), MAX_IDS));
    }
    Ok(ids)
}

/// Reads `Filter.N.*`. An entry without a name is reported as the filter `null`, as EC2 does.
/// The values are bounded in number ([`MAX_FILTER_VALUES`] in all) and length
/// ([`MAX_FILTER_VALUE_CHARS`]), so no filter can make the store's query unbounded.
pub fn filters(params: &Params) -> Result<Vec<Filter>, ApiError> {
    let mut out = Vec::new();
    let mut total = 0usize;
    for i in params.struct_indices("Filter") {
        if out.len() >= MAX_FILTER_VALUES {
            return Err(ApiError::filter_limit(MAX_FILTER_VALUES));
        }
        let base = format!("Filter.{i}");
        let name = params
            .get(&format!("{base}.Name"))
            .ok_or_else(|| ApiError::invalid_filter("null"))?;
        let values: Vec<String> = params
            .list(&format!("{base}.Value"))
            .into_iter()
            .map(str::to_string)
            .collect();
        total += values.len();
        if total > MAX_FILTER_VALUES {
            return Err(ApiError::filter_limit(MAX_FILTER_VALUES));
        }
        if let Some(v) = values
            .iter()
            .find(|v| v.chars().count() > MAX_FILTER_VALUE_CHARS)
        {
            return Err(ApiError::bad_request(
                "InvalidParameterValue",
                format!(
                    "A value of the filter '{name}' is {} characters long; filter values are at most {MAX_FILTER_VALUE_CHARS} characters.",
                    v.chars().count()
                ),
            ));
        }
        out.push(Filter {
            name: name.to_string(),
            values,
        });
    }
    Ok(out)
}

/// Checks every parameter name against the action's schema. A pattern is a dotted name in
/// which the segment `N` stands for a list index (`Filter.N.Value.N`).
pub fn check_known(params: &Params, schema: &[&str]) -> Result<(), ApiError> {
    for name in params.names() {
        if is_envelope(name) {
            continue;
        }
        if !schema.iter().any(|p| matches_pattern(p, name)) {
            return Err(ApiError::unknown_parameter(name));
        }
    }
    Ok(())
}

/// Parameters every request may carry: the protocol envelope and query-string SigV4.
fn is_envelope(name: &str) -> bool {
    matches!(
        name,
        "Action"
            | "Version"
            | "X-Amz-Algorithm"
            | "X-Amz-Credential"
            | "X-Amz-Date"
            | "X-Amz-Expires"
            | "X-Amz-SignedHeaders"
            | "X-Amz-Signature"
            | "X-Amz-Security-Token"
    )
}

fn matches_pattern(pattern: &str, name: &str) -> bool {
    let mut p = pattern.split('.');
    let mut n = name.split('.');
    loop {
        match (p.next(), n.next()) {
            (None, None) => return true,
            (Some("N"), Some(seg)) => {
                if parse_index(seg).is_none() {
                    return false;
                }
            }
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

fn unescape(raw: &[u8], base: usize) -> Result<String, DecodeError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = raw
                    .get(i + 1..i + 3)
                    .ok_or(DecodeError::BadPercent(base + i))?;
                let hi = hex_val(hex[0]).ok_or(DecodeError::BadPercent(base + i))?;
                let lo = hex_val(hex[1]).ok_or(DecodeError::BadPercent(base + i))?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| DecodeError::NotUtf8)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_form_bodies() {
        let p = decode(
            b"Action=CreateFlowLogs&ResourceId.2=vpc-2&ResourceId.1=vpc-1&LogGroupName=a+b%2Fc",
        )
        .unwrap();
        assert_eq!(p.get("Action"), Some("CreateFlowLogs"));
        assert_eq!(p.get("LogGroupName"), Some("a b/c"));
        assert_eq!(p.list("ResourceId"), vec!["vpc-1", "vpc-2"]);
    }

    #[test]
    fn lists_sort_numerically_and_ignore_gaps_and_nested() {
        let p = decode(b"ResourceId.10=c&ResourceId.2=b&ResourceId.1=a&ResourceIdX.1=z&ResourceId.0=bad&ResourceId.3.x=n").unwrap();
        assert_eq!(p.list("ResourceId"), vec!["a", "b", "c"]);
    }

    #[test]
    fn filters_read_names_and_values() {
        let p = decode(b"Filter.1.Name=resource-id&Filter.1.Value.1=v1&Filter.1.Value.2=v2&Filter.2.Name=traffic-type&Filter.2.Value.1=ALL").unwrap();
        let f = filters(&p).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].name, "resource-id");
        assert_eq!(f[0].values, vec!["v1", "v2"]);
        assert_eq!(f[1].values, vec!["ALL"]);
        let p = decode(b"Filter.1.Value.1=x").unwrap();
        assert_eq!(filters(&p).unwrap_err().code, "InvalidParameterValue");
    }

    #[test]
    fn filters_and_id_lists_are_bounded() {
        let values = |n: usize| {
            (1..=n)
                .map(|i| format!("Filter.1.Value.{i}=v{i}"))
                .collect::<Vec<_>>()
                .join("&")
        };
        let p = decode(format!("Filter.1.Name=tag:a&{}", values(200)).as_bytes()).unwrap();
        assert_eq!(filters(&p).unwrap()[0].values.len(), 200);
        let p = decode(format!("Filter.1.Name=tag:a&{}", values(201)).as_bytes()).unwrap();
        assert_eq!(filters(&p).unwrap_err().code, "FilterLimitExceeded");
        // Spread over two filters, the bound is the same.
        let p = decode(
            format!(
                "Filter.1.Name=a&{}&Filter.2.Name=b&Filter.2.Value.1=x",
                values(200)
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(filters(&p).unwrap_err().code, "FilterLimitExceeded");
        let long = "*".repeat(MAX_FILTER_VALUE_CHARS + 1);
        let p = decode(format!("Filter.1.Name=a&Filter.1.Value.1={long}").as_bytes()).unwrap();
        let e = filters(&p).unwrap_err();
        assert_eq!(e.code, "InvalidParameterValue");
        assert!(e.message.contains("1024"), "{}", e.message);
        let ids = |n: usize| {
            (1..=n)
                .map(|i| format!("FlowLogId.{i}=fl-{i}"))
                .collect::<Vec<_>>()
                .join("&")
        };
        let p = decode(ids(1000).as_bytes()).unwrap();
        assert_eq!(id_list(&p, "FlowLogId").unwrap().len(), 1000);
        let p = decode(ids(1001).as_bytes()).unwrap();
        let e = id_list(&p, "FlowLogId").unwrap_err();
        assert_eq!(e.code, "InvalidParameterValue");
        assert!(e.message.contains("1000"), "{}", e.message);
    }

    #[test]
    fn strict_decoding_errors() {
        assert_eq!(decode(b"a=%zz"), Err(DecodeError::BadPercent(2)));
        assert_eq!(decode(b"x=1&a=%f"), Err(DecodeError::BadPercent(6)));
        assert_eq!(decode(b"a=%ff"), Err(DecodeError::NotUtf8));
        assert_eq!(decode(b"a=\xff"), Err(DecodeError::NotUtf8));
        assert_eq!(decode(b"a=1&a=2"), Err(DecodeError::Duplicate("a".into())));
        assert_eq!(decode(b"=x"), Err(DecodeError::EmptyName));
        let many: Vec<u8> = (0..10_000)
            .map(|i| format!("p{i}=1&"))
            .collect::<String>()
            .into_bytes();
        assert_eq!(decode(&many), Err(DecodeError::TooMany));
        assert!(decode(b"&&a&").unwrap().get("a") == Some(""));
    }

    #[test]
    fn schema_patterns() {
        let p = decode(b"Action=X&Filter.1.Name=a&Filter.1.Value.3=b&DryRun=true").unwrap();
        assert!(check_known(&p, &["DryRun", "Filter.N.Name", "Filter.N.Value.N"]).is_ok());
        let p = decode(b"Foo=1").unwrap();
        assert_eq!(
            check_known(&p, &["DryRun"]).unwrap_err().code,
            "UnknownParameter"
        );
        let p = decode(b"Filter.x.Name=1").unwrap();
        assert!(check_known(&p, &["Filter.N.Name"]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }
    }
}
