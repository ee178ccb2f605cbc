use super::*;
use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A raw HTTP/1.1 server: answers each request on a connection with `hello`,
/// and closes the connection after `per_connection` answers.
async fn server(per_connection: usize) -> (Endpoint, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Relaxed);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                for _ in 0..per_connection {
                    let mut seen = Vec::new();
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
                    if socket.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let url = url::Url::parse(&format!("http://{addr}")).expect("url");
    (Endpoint::of(&url).expect("endpoint"), accepted)
}

fn client() -> (UpstreamClient, Arc<AtomicU64>) {
    let connects = Arc::new(AtomicU64::new(0));
    let client = UpstreamClient::new(
        4,
        Duration::from_secs(30),
        Duration::from_secs(2),
        Arc::clone(&connects),
    );
    (client, connects)
}

fn get(endpoint: &Endpoint) -> http::Request<Body> {
    let mut request = http::Request::new(Body::empty());
    request
        .headers_mut()
        .insert(http::header::HOST, endpoint.host().clone());
    *request.uri_mut() = http::Uri::from_static("/api/tags");
    request
}

async fn text(client: &UpstreamClient, endpoint: &Endpoint) -> String {
    let response = client
        .request(Some(endpoint), get(endpoint))
        .await
        .expect("an answer");
    let body = response.into_body().collect().await.expect("a body");
    String::from_utf8(body.to_bytes().to_vec()).expect("utf-8")
}

#[tokio::test]
async fn a_connection_is_reused_once_its_body_has_ended() {
    let (endpoint, accepted) = server(usize::MAX).await;
    let (client, connects) = client();
    for _ in 0..5 {
        assert_eq!(text(&client, &endpoint).await, "hello");
    }
    assert_eq!(connects.load(Relaxed), 1);
    assert_eq!(accepted.load(Relaxed), 1);
}

#[tokio::test]
async fn a_body_dropped_before_its_end_takes_its_connection_with_it() {
    let (endpoint, _) = server(usize::MAX).await;
    let (client, connects) = client();
    let unread = client
        .request(Some(&endpoint), get(&endpoint))
        .await
        .expect("an answer");
    drop(unread);
    assert_eq!(text(&client, &endpoint).await, "hello");
    assert_eq!(connects.load(Relaxed), 2);
}

#[tokio::test]
async fn a_connection_the_upstream_closed_is_replaced_without_an_error() {
    // One answer per connection, closed without saying so.
    let (endpoint, accepted) = server(1).await;
    let (client, connects) = client();
    for _ in 0..5 {
        assert_eq!(text(&client, &endpoint).await, "hello");
        // Let the closed connection's task notice the close, or not: both
        // paths (dropped at checkout, retried after a failed send) must hold.
        tokio::task::yield_now().await;
    }
    assert_eq!(accepted.load(Relaxed), 5);
    assert!(connects.load(Relaxed) >= 5);
}

#[tokio::test]
async fn no_listener_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let url = url::Url::parse(&format!("http://{addr}")).expect("url");
    let endpoint = Endpoint::of(&url).expect("endpoint");
    let (client, _) = client();
    let err = client
        .request(Some(&endpoint), get(&endpoint))
        .await
        .expect_err("nothing listens");
    assert!(err.is_connect());
    assert_eq!(crate::wire::describe(&err), "connection refused");
}

#[test]
fn endpoints_name_their_host_as_requests_must() {
    let of = |url: &str| Endpoint::of(&url::Url::parse(url).expect("url"));
    let local = of("http://127.0.0.1:11434/").expect("http");
    assert_eq!(local.host(), "127.0.0.1:11434");
    assert_eq!(local.key().as_ref(), "127.0.0.1:11434");
    let named = of("http://ollama.lan").expect("http");
    assert_eq!(named.host(), "ollama.lan");
    assert_eq!(named.key().as_ref(), "ollama.lan:80");
    assert_eq!(of("http://[::1]:8080").expect("v6").host(), "[::1]:8080");
    assert!(of("https://example.com").is_none());
}

/// A raw server that reads one request (head and `body_len` bytes after it, or
/// a chunked body up to its last chunk), hands what it read to `seen`, then
/// writes `parts` one by one with a pause between them, and closes.
async fn scripted(
    parts: Vec<&'static [u8]>,
    chunked_request: bool,
) -> (Endpoint, tokio::sync::oneshot::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 4096];
        let done = |seen: &[u8]| {
            let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") else {
                return false;
            };
            if chunked_request {
                seen.ends_with(b"0\r\n\r\n") && seen.len() > end + 4
            } else {
                let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |n| n.trim().parse::<usize>().unwrap_or(0));
                seen.len() >= end + 4 + len
            }
        };
        while !done(&seen) {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        let _ = tx.send(seen);
        for part in parts {
            if socket.write_all(part).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let url = url::Url::parse(&format!("http://{addr}")).expect("url");
    (Endpoint::of(&url).expect("endpoint"), rx)
}

async fn fetch(
    endpoint: &Endpoint,
    request: http::Request<Body>,
) -> (http::Response<()>, Result<Vec<Bytes>, std::io::Error>) {
    let (client, _) = client();
    let response = client
        .request(Some(endpoint), request)
        .await
        .expect("an answer");
    let (parts, mut body) = response.into_parts();
    let mut frames = Vec::new();
    let result = loop {
        match body.frame().await {
            None => break Ok(frames),
            Some(Ok(frame)) => frames.extend(frame.into_data().ok()),
            Some(Err(err)) => break Err(err),
        }
    };
    (http::Response::from_parts(parts, ()), result)
}

/// A GET answered by a [`scripted`] server writing `parts`.
async fn answered(
    parts: Vec<&'static [u8]>,
) -> (http::Response<()>, Result<Vec<Bytes>, std::io::Error>) {
    let (endpoint, _) = scripted(parts, false).await;
    fetch(&endpoint, get(&endpoint)).await
}

fn post(endpoint: &Endpoint, body: Body) -> http::Request<Body> {
    let mut request = get(endpoint);
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = http::Uri::from_static("/api/generate");
    *request.body_mut() = body;
    request
}

#[tokio::test]
async fn a_chunked_answer_split_anywhere_comes_out_whole_and_as_it_streams() {
    let (head, body) = answered(vec![
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: application/x-ndjson\r\n\r\n",
            b"7\r\n{\"a\":",
            b"1}\r\n",
            b"A;ext=1\r\n{\"done\":1}\r",
            b"\n0\r\nx-trailer: 1\r\n\r\n",
        ]).await;
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-type"], "application/x-ndjson");
    let frames = body.expect("a whole body");
    assert!(frames.len() >= 3, "streamed as it came: {frames:?}");
    assert_eq!(frames.concat(), b"{\"a\":1}{\"done\":1}");
}

#[tokio::test]
async fn interim_answers_are_skipped_and_a_close_delimited_body_ends_with_the_connection() {
    let (head, body) = answered(vec![
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil ",
        b"the end",
    ])
    .await;
    assert_eq!(head.status(), 200);
    assert_eq!(body.expect("a body").concat(), b"until the end");
}

#[tokio::test]
async fn an_interim_answer_and_the_answer_in_one_segment_are_both_read() {
    let parts =
        vec![&b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"[..]];
    let answer = tokio::time::timeout(Duration::from_secs(5), answered(parts));
    let (head, body) = answer.await.expect("not left waiting for more");
    assert_eq!(head.status(), 200);
    assert_eq!(body.expect("a body").concat(), b"ok");
}

#[tokio::test]
async fn an_answer_cut_short_is_an_error_not_an_end() {
    let (_, body) = answered(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf"]).await;
    assert_eq!(
        body.expect_err("cut short").kind(),
        std::io::ErrorKind::UnexpectedEof
    );
    let (_, body) = answered(vec![
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel",
    ])
    .await;
    assert!(body.is_err());
}

#[tokio::test]
async fn bodies_are_framed_as_hyper_framed_them() {
    // Held whole: a content-length, in the head's write.
    let (endpoint, seen) = scripted(vec![b"HTTP/1.1 204 No Content\r\n\r\n"], false).await;
    let (head, _) = fetch(&endpoint, post(&endpoint, Body::from("{\"x\":1}"))).await;
    assert_eq!(head.status(), 204);
    let sent = String::from_utf8(seen.await.expect("seen")).expect("utf-8");
    assert!(
        sent.starts_with("POST /api/generate HTTP/1.1\r\nhost: "),
        "{sent}"
    );
    assert!(
        sent.ends_with("content-length: 7\r\n\r\n{\"x\":1}"),
        "{sent}"
    );

    // A stream of unknown length: chunked.
    let (endpoint, seen) = scripted(
        vec![b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"],
        true,
    )
    .await;
    let parts =
        ["ab", "cde"].map(|p| Ok::<_, std::convert::Infallible>(Bytes::from_static(p.as_bytes())));
    let stream = Body::from_stream(futures_util::stream::iter(parts));
    let (_, body) = fetch(&endpoint, post(&endpoint, stream)).await;
    assert_eq!(body.expect("a body").concat(), b"ok");
    let sent = String::from_utf8(seen.await.expect("seen")).expect("utf-8");
    assert!(
        sent.contains("transfer-encoding: chunked\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"),
        "{sent}"
    );

    // Nothing: neither header.
    let (endpoint, seen) =
        scripted(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"], false).await;
    let _ = fetch(&endpoint, get(&endpoint)).await;
    let sent = String::from_utf8(seen.await.expect("seen")).expect("utf-8");
    assert!(
        !sent.contains("content-length") && !sent.contains("transfer-encoding"),
        "{sent}"
    );
}

#[tokio::test]
async fn a_head_request_has_no_body_whatever_its_length_says() {
    let (endpoint, _) = scripted(
        vec![b"HTTP/1.1 200 OK\r\ncontent-length: 99\r\n\r\n"],
        false,
    )
    .await;
    let mut request = get(&endpoint);
    *request.method_mut() = http::Method::HEAD;
    let (head, body) = fetch(&endpoint, request).await;
    assert_eq!(head.headers()["content-length"], "99");
    assert!(body.expect("no body").is_empty());
}
