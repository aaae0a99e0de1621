//! A minimal XML writer for EC2 responses: the `<{Action}Response>` success root with its
//! `requestId`, nested elements, `<item>` lists, and the `<Response><Errors>` envelope.
//! Text is escaped; optional members are simply not written.

use crate::error::ApiError;

pub const NAMESPACE: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

/// Builds one response document.
pub struct Xml {
    buf: String,
}

impl Xml {
    /// Starts `<{action}Response xmlns=...>` with its `<requestId>`.
    pub fn response(action: &str, request_id: &str) -> Xml {
        let mut buf = String::with_capacity(1024);
        buf.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<");
        buf.push_str(action);
        buf.push_str("Response xmlns=\"");
        buf.push_str(NAMESPACE);
        buf.push_str("\">");
        let mut x = Xml { buf };
        x.leaf("requestId", request_id);
        x
    }

    /// Closes the root and returns the document.
    pub fn finish(mut self, action: &str) -> String {
        self.buf.push_str("</");
        self.buf.push_str(action);
        self.buf.push_str("Response>");
        self.buf
    }

    pub fn open(&mut self, name: &str) -> &mut Xml {
        self.buf.push('<');
        self.buf.push_str(name);
        self.buf.push('>');
        self
    }

    pub fn close(&mut self, name: &str) -> &mut Xml {
        self.buf.push_str("</");
        self.buf.push_str(name);
        self.buf.push('>');
        self
    }

    pub fn leaf(&mut self, name: &str, text: &str) -> &mut Xml {
        self.open(name);
        escape_into(&mut self.buf, text);
        self.close(name)
    }

    pub fn leaf_opt(&mut self, name: &str, text: Option<&str>) -> &mut Xml {
        if let Some(t) = text {
            self.leaf(name, t);
        }
        self
    }

    pub fn bool(&mut self, name: &str, v: bool) -> &mut Xml {
        self.leaf(name, if v { "true" } else { "false" })
    }

    pub fn num(&mut self, name: &str, v: impl std::fmt::Display) -> &mut Xml {
        self.leaf(name, &v.to_string())
    }

    pub fn empty(&mut self, name: &str) -> &mut Xml {
        self.buf.push('<');
        self.buf.push_str(name);
        self.buf.push_str("/>");
        self
    }

    /// A list wrapper with one `<item>` per element; an empty list is `<name/>`.
    pub fn list<T>(
        &mut self,
        name: &str,
        items: &[T],
        mut each: impl FnMut(&mut Xml, &T),
    ) -> &mut Xml {
        if items.is_empty() {
            return self.empty(name);
        }
        self.open(name);
        for it in items {
            self.open("item");
            each(self, it);
            self.close("item");
        }
        self.close(name)
    }

    /// A list of plain strings: `<name><item>a</item>...</name>`.
    pub fn string_list(&mut self, name: &str, items: &[String]) -> &mut Xml {
        if items.is_empty() {
            return self.empty(name);
        }
        self.open(name);
        for it in items {
            self.leaf("item", it);
        }
        self.close(name)
    }

    /// `<tagSet>` with `key`/`value` items.
    pub fn tags(&mut self, tags: &[(String, String)]) -> &mut Xml {
        self.list("tagSet", tags, |x, (k, v)| {
            x.leaf("key", k).leaf("value", v);
        })
    }
}

/// The error envelope: `<Response><Errors><Error>...</Error></Errors><RequestID>`.
pub fn error_body(err: &ApiError, request_id: &str) -> String {
    let mut buf = String::with_capacity(256);
    buf.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>");
    escape_into(&mut buf, &err.code);
    buf.push_str("</Code><Message>");
    escape_into(&mut buf, &err.message);
    buf.push_str("</Message></Error></Errors><RequestID>");
    escape_into(&mut buf, request_id);
    buf.push_str("</RequestID></Response>");
    buf
}

fn escape_into(buf: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => buf.push_str("&amp;"),
            '<' => buf.push_str("&lt;"),
            '>' => buf.push_str("&gt;"),
            '"' => buf.push_str("&quot;"),
            '\'' => buf.push_str("&apos;"),
            // Characters XML 1.0 cannot carry are replaced rather than emitted.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => buf.push('\u{FFFD}'),
            c => buf.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_and_error_bodies_are_exact() {
        let mut x = Xml::response("DeleteFlowLogs", "req-1");
        x.list::<String>("unsuccessful", &[], |_, _| {});
        assert_eq!(
            x.finish("DeleteFlowLogs"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DeleteFlowLogsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>req-1</requestId><unsuccessful/></DeleteFlowLogsResponse>"
        );
        let e = ApiError::bad_request("InvalidParameter", "a < b & \"c\"");
        assert_eq!(
            error_body(&e, "r"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>InvalidParameter</Code><Message>a &lt; b &amp; &quot;c&quot;</Message></Error></Errors><RequestID>r</RequestID></Response>"
        );
    }
}
