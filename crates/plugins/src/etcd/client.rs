//! A small etcd v3 client over etcd's JSON gateway (`POST /v3/kv/range`, `/v3/auth/authenticate`)
//! with hyper's HTTP/1.1 client: the plugin needs one call (range, optionally by prefix), so the
//! gRPC stack (tonic, prost, h2) would be most of the binary's dependency weight for it. Idle
//! connections are kept per endpoint; endpoints are tried in order.

use base64::{engine::general_purpose::STANDARD as B64, Engine as _};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// CoreDNS's etcd timeout per request.
const TIMEOUT: Duration = Duration::from_secs(5);
const MAX_IDLE: usize = 8;

#[derive(Clone, Debug)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl Endpoint {
    /// `http://host:port`, `https://host:port` (port 2379 by default).
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let (tls, rest) = if let Some(r) = text.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = text.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("endpoint must start with http:// or https://: {text:?}"));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h.to_string(), p.parse::<u16>().map_err(|_| format!("bad port in endpoint {text:?}"))?)
            }
            _ => (rest.to_string(), 2379),
        };
        if host.is_empty() {
            return Err(format!("endpoint without host: {text:?}"));
        }
        Ok(Endpoint { host: host.trim_start_matches('[').trim_end_matches(']').to_string(), port, tls })
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

pub struct Client {
    endpoints: Vec<Endpoint>,
    tls: Option<tokio_rustls::TlsConnector>,
    credentials: Option<(String, String)>,
    token: Mutex<Option<String>>,
    idle: Vec<Mutex<Vec<SendRequest<Full<Bytes>>>>>,
}

/// One key and its value.
pub struct Kv {
    pub key: String,
    pub value: Vec<u8>,
}

impl Client {
    pub fn new(
        endpoints: Vec<Endpoint>,
        tls: Option<Arc<rustls::ClientConfig>>,
        credentials: Option<(String, String)>,
    ) -> Client {
        let idle = endpoints.iter().map(|_| Mutex::new(Vec::new())).collect();
        Client { endpoints, tls: tls.map(tokio_rustls::TlsConnector::from), credentials, token: Mutex::new(None), idle }
    }

    /// The keys at `key` (with `prefix`: every key starting with it), in key order.
    pub async fn range(&self, key: &str, prefix: bool) -> Result<Vec<Kv>, String> {
        let mut body = serde_json::json!({ "key": B64.encode(key) });
        if prefix {
            body["range_end"] = B64.encode(prefix_end(key.as_bytes())).into();
        }
        let reply = self.call("/v3/kv/range", body.to_string()).await?;
        let mut out = Vec::new();
        for kv in reply.get("kvs").and_then(|k| k.as_array()).into_iter().flatten() {
            let field = |name: &str| kv.get(name).and_then(|v| v.as_str()).map(|s| B64.decode(s));
            let key = field("key").ok_or("etcd: a key without name")?.map_err(|e| format!("etcd: bad key: {e}"))?;
            let value = field("value").unwrap_or(Ok(Vec::new())).map_err(|e| format!("etcd: bad value: {e}"))?;
            out.push(Kv { key: String::from_utf8_lossy(&key).into_owned(), value });
        }
        Ok(out)
    }

    async fn call(&self, path: &str, body: String) -> Result<serde_json::Value, String> {
        let mut last = String::from("etcd: no endpoint");
        for (i, ep) in self.endpoints.iter().enumerate() {
            for attempt in 0..2 {
                let token = self.token().await;
                let token = match token {
                    Ok(t) => t,
                    Err(e) => {
                        last = e;
                        break;
                    }
                };
                match tokio::time::timeout(TIMEOUT, self.post(i, ep, path, &body, token.as_deref())).await {
                    Ok(Ok((200, v))) => return Ok(v),
                    Ok(Ok((status, v))) => {
                        let msg =
                            v.get("error").or(v.get("message")).and_then(|m| m.as_str()).unwrap_or("").to_string();
                        last = format!("etcd {}: HTTP {status}: {msg}", ep.authority());
                        // An expired auth token: authenticate again once.
                        if attempt == 0 && self.credentials.is_some() && msg.contains("token") {
                            *self.token.lock().unwrap_or_else(|e| e.into_inner()) = None;
                            continue;
                        }
                        return Err(last);
                    }
                    Ok(Err(e)) => last = format!("etcd {}: {e}", ep.authority()),
                    Err(_) => last = format!("etcd {}: timeout after {TIMEOUT:?}", ep.authority()),
                }
                break;
            }
        }
        Err(last)
    }

    async fn token(&self) -> Result<Option<String>, String> {
        let Some((user, password)) = &self.credentials else { return Ok(None) };
        if let Some(t) = self.token.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(Some(t));
        }
        let body = serde_json::json!({ "name": user, "password": password }).to_string();
        let mut last = String::from("etcd: no endpoint");
        for (i, ep) in self.endpoints.iter().enumerate() {
            match tokio::time::timeout(TIMEOUT, self.post(i, ep, "/v3/auth/authenticate", &body, None)).await {
                Ok(Ok((200, v))) => {
                    let t = v.get("token").and_then(|t| t.as_str()).ok_or("etcd: authenticate returned no token")?;
                    *self.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(t.to_string());
                    return Ok(Some(t.to_string()));
                }
                Ok(Ok((status, v))) => last = format!("etcd {}: authenticate: HTTP {status}: {v}", ep.authority()),
                Ok(Err(e)) => last = format!("etcd {}: {e}", ep.authority()),
                Err(_) => last = format!("etcd {}: timeout", ep.authority()),
            }
        }
        Err(last)
    }

    async fn post(
        &self,
        i: usize,
        ep: &Endpoint,
        path: &str,
        body: &str,
        token: Option<&str>,
    ) -> Result<(u16, serde_json::Value), String> {
        let pooled = self.idle[i].lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut sender = match pooled {
            Some(s) if !s.is_closed() => s,
            _ => self.connect(ep).await?,
        };
        sender.ready().await.map_err(|e| e.to_string())?;
        let mut req = hyper::Request::post(path)
            .header(hyper::header::HOST, ep.authority())
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(t) = token {
            req = req.header(hyper::header::AUTHORIZATION, t);
        }
        let req = req.body(Full::new(Bytes::from(body.to_string()))).map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        {
            let mut idle = self.idle[i].lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push(sender);
            }
        }
        let value = serde_json::from_slice(&bytes)
            .map_err(|e| format!("not JSON ({e}): {:?}", String::from_utf8_lossy(&bytes[..bytes.len().min(120)])))?;
        Ok((status, value))
    }

    async fn connect(&self, ep: &Endpoint) -> Result<SendRequest<Full<Bytes>>, String> {
        let tcp = tokio::net::TcpStream::connect((ep.host.as_str(), ep.port)).await.map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        if !ep.tls {
            return handshake(tcp).await;
        }
        let connector = self.tls.as_ref().ok_or("https endpoint without tls settings")?;
        let name = rustls::pki_types::ServerName::try_from(ep.host.clone()).map_err(|e| e.to_string())?;
        handshake(connector.connect(name, tcp).await.map_err(|e| e.to_string())?).await
    }
}

/// An HTTP/1.1 connection over `io`, driven by its own task.
async fn handshake<S>(io: S) -> Result<SendRequest<Full<Bytes>>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// The end of a prefix range: the prefix with its last byte below 0xff incremented.
fn prefix_end(key: &[u8]) -> Vec<u8> {
    let mut end = key.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_prefix_ends() {
        let e = Endpoint::parse("http://127.0.0.1:2379").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.tls), ("127.0.0.1", 2379, false));
        let e = Endpoint::parse("https://etcd.local").unwrap();
        assert_eq!((e.port, e.tls), (2379, true));
        let e = Endpoint::parse("http://[::1]:12379/").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.authority()), ("::1", 12379, "[::1]:12379".to_string()));
        assert!(Endpoint::parse("127.0.0.1:2379").is_err());
        assert!(Endpoint::parse("http://host:port").is_err());
        assert_eq!(prefix_end(b"/skydns/"), b"/skydns0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
    }
}
