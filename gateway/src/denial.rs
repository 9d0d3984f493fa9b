//! Every answer the gateway makes itself (404, 405, 400, 413, 431, 502, 503, 504, and the auth
//! and rate-limit refusals later stages add) is one [`Denial`], rendered in one place: a JSON
//! body over HTTP, or a trailers-only gRPC status for gRPC requests.

use std::borrow::Cow;

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

#[derive(Debug, Clone)]
pub struct Denial {
    pub status: u16,
    /// Machine-readable code: the `error` of the JSON body and the access log's `auth` field
    /// for auth refusals.
    pub code: &'static str,
    pub description: Cow<'static, str>,
    pub headers: Vec<(&'static str, String)>,
    /// Close the client connection after answering (the request could not be read safely).
    pub close: bool,
    /// A JSON body of its own instead of `error` and `error_description` (for the few answers
    /// that are not refusals, like the RFC 9728 document).
    pub body: Option<Bytes>,
}

impl Denial {
    pub fn new(
        status: u16,
        code: &'static str,
        description: impl Into<Cow<'static, str>>,
    ) -> Denial {
        Denial {
            status,
            code,
            description: description.into(),
            headers: Vec::new(),
            close: false,
            body: None,
        }
    }

    /// A 200 with this JSON document.
    pub fn document(body: Bytes) -> Denial {
        Denial {
            body: Some(body),
            ..Denial::new(200, "ok", "")
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Denial {
        self.headers.push((name, value.into()));
        self
    }

    pub fn closing(mut self) -> Denial {
        self.close = true;
        self
    }

    pub fn not_found() -> Denial {
        Denial::new(404, "not_found", "no route matches this request")
    }

    pub fn method_not_allowed(allow: &str) -> Denial {
        Denial::new(
            405,
            "method_not_allowed",
            "the route does not allow this method",
        )
        .header("allow", allow)
    }

    pub fn bad_request(description: impl Into<Cow<'static, str>>) -> Denial {
        Denial::new(400, "bad_request", description)
    }

    /// `max_body` exceeded; the rest of the body is not read, so the connection closes.
    pub fn payload_too_large() -> Denial {
        Denial::new(413, "payload_too_large", "request body is too large").closing()
    }

    pub fn bad_gateway() -> Denial {
        Denial::new(
            502,
            "bad_gateway",
            "the upstream could not be reached or answered badly",
        )
    }

    pub fn no_upstream() -> Denial {
        Denial::new(503, "unavailable", "no upstream target is available")
            .header("retry-after", "1")
    }

    pub fn gateway_timeout() -> Denial {
        Denial::new(
            504,
            "gateway_timeout",
            "the upstream did not answer in time",
        )
    }

    /// gRPC status for a gRPC request (grpc/doc/http-grpc-status-mapping.md, and the contract's
    /// choices for the auth and limit codes).
    pub fn grpc_status(&self) -> u8 {
        match self.status {
            400 => 3,             // INVALID_ARGUMENT
            401 => 16,            // UNAUTHENTICATED
            403 => 7,             // PERMISSION_DENIED
            404 | 405 => 12,      // UNIMPLEMENTED
            413 | 429 | 431 => 8, // RESOURCE_EXHAUSTED
            502 | 503 => 14,      // UNAVAILABLE
            504 => 4,             // DEADLINE_EXCEEDED
            500 => 13,            // INTERNAL
            _ => 2,               // UNKNOWN
        }
    }

    pub fn json_body(&self) -> Bytes {
        if let Some(body) = &self.body {
            return body.clone();
        }
        let body = serde_json::json!({
            "error": self.code,
            "error_description": self.description,
        });
        Bytes::from(body.to_string())
    }

    /// Writes the answer. `grpc`: the request was gRPC (`content-type: application/grpc*`).
    pub async fn render(&self, session: &mut Session, request_id: &str, grpc: bool) -> Result<()> {
        if self.close {
            session.set_keepalive(None);
        }
        if grpc {
            let mut resp = ResponseHeader::build(200, Some(6))?;
            resp.insert_header("content-type", "application/grpc")?;
            resp.insert_header("grpc-status", self.grpc_status().to_string())?;
            resp.insert_header("grpc-message", grpc_message(&self.description))?;
            // Over HTTP/1.1 an empty body still needs framing. Over HTTP/2 the END_STREAM flag
            // frames it, and gRPC clients reject a trailers-only answer that has one.
            if !session.is_http2() {
                resp.insert_header("content-length", "0")?;
            }
            self.common_headers(&mut resp, request_id)?;
            // Trailers-only: the status travels in the only HEADERS frame, which ends the
            // stream. Pingora's `write_response_header` never sets END_STREAM on HTTP/2 (an
            // empty DATA frame follows, which gRPC clients read as a broken stream), so the
            // header goes out as a task that carries the end flag.
            if session.is_http2() {
                let task = pingora::protocols::http::HttpTask::Header(Box::new(resp), true);
                session
                    .as_downstream_mut()
                    .response_duplex_vec(vec![task])
                    .await?;
                return Ok(());
            }
            return session.write_response_header(Box::new(resp), true).await;
        }
        if self.status == 204 {
            let mut resp = ResponseHeader::build(204, Some(6))?;
            self.common_headers(&mut resp, request_id)?;
            return session.write_response_header(Box::new(resp), true).await;
        }
        let body = self.json_body();
        let mut resp = ResponseHeader::build(self.status, Some(6))?;
        resp.insert_header("content-type", "application/json")?;
        resp.insert_header("content-length", body.len().to_string())?;
        if !self.headers.iter().any(|(n, _)| *n == "cache-control") {
            resp.insert_header("cache-control", "no-store")?;
        }
        self.common_headers(&mut resp, request_id)?;
        if self.close {
            resp.insert_header("connection", "close")?;
        }
        let head_only = session.req_header().method == http::Method::HEAD;
        session
            .write_response_header(Box::new(resp), head_only)
            .await?;
        if !head_only {
            session.write_response_body(Some(body), true).await?;
        }
        Ok(())
    }

    fn common_headers(&self, resp: &mut ResponseHeader, request_id: &str) -> Result<()> {
        for (name, value) in &self.headers {
            resp.append_header(*name, value.as_str())?;
        }
        if !request_id.is_empty() {
            resp.insert_header("x-request-id", request_id)?;
        }
        Ok(())
    }
}

/// gRPC's `grpc-message` is percent-encoded: everything outside printable ASCII, and `%`.
fn grpc_message(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_follow_the_contract() {
        assert_eq!(Denial::not_found().grpc_status(), 12);
        assert_eq!(Denial::bad_gateway().grpc_status(), 14);
        assert_eq!(Denial::no_upstream().grpc_status(), 14);
        assert_eq!(Denial::gateway_timeout().grpc_status(), 4);
        assert_eq!(Denial::new(401, "invalid_token", "x").grpc_status(), 16);
        assert_eq!(Denial::new(403, "forbidden", "x").grpc_status(), 7);
        assert_eq!(Denial::new(429, "rate_limited", "x").grpc_status(), 8);
    }

    #[test]
    fn json_body_has_error_and_description() {
        let v: serde_json::Value =
            serde_json::from_slice(&Denial::not_found().json_body()).unwrap();
        assert_eq!(v["error"], "not_found");
        assert_eq!(v["error_description"], "no route matches this request");
    }

    #[test]
    fn grpc_message_is_percent_encoded() {
        assert_eq!(grpc_message("100% sure\n"), "100%25 sure%0A");
        assert_eq!(grpc_message("caf\u{e9}"), "caf%C3%A9");
    }
}
