use super::guard::H2_PREFACE;
use super::*;
use axum::Router;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn server(limits: HeadLimits) -> (SocketAddr, watch::Sender<bool>) {
    let router = Router::new().route(
        "/",
        axum::routing::any(|request: axum::extract::Request| async move {
            let peer = request.extensions().get::<Peer>().map(|p| p.addr.ip());
            format!("hello {peer:?}")
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stop_rx) = watch::channel(false);
    spawn(listener, router, move || limits, Arc::new(|_| {}), stop_rx);
    (addr, stop)
}

async fn read_all(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

const LIMITS: HeadLimits = HeadLimits {
    timeout: Duration::from_millis(300),
    max_bytes: 1024,
    idle: Duration::from_millis(900),
    max_connections: 1000,
};

async fn get(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 512];
    let n = stream.read(&mut buf).await.expect("read");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let (addr, _stop) = server(LIMITS).await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let started = std::time::Instant::now();
    assert_eq!(read_all(&mut stream).await, "", "closed quietly");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_lone_p_does_not_lift_the_deadline() {
    // `P` could begin an HTTP/2 preface; only all 24 bytes of one lift the guard.
    let (addr, _stop) = server(LIMITS).await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"PRI * HTTP/2.0\r\n")
        .await
        .expect("write");
    let text = read_all(&mut stream).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_closes_after_client_idle() {
    let (addr, _stop) = server(LIMITS).await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    assert!(get(&mut stream).await.starts_with("HTTP/1.1 200"));
    let started = std::time::Instant::now();
    assert_eq!(read_all(&mut stream).await, "");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[tokio::test]
async fn at_the_cap_the_oldest_idle_connection_makes_room() {
    let limits = HeadLimits {
        max_connections: 3,
        timeout: Duration::from_secs(30),
        idle: Duration::from_secs(30),
        ..LIMITS
    };
    let (addr, _stop) = server(limits).await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        assert!(get(&mut stream).await.starts_with("HTTP/1.1 200"));
        idle.push(stream);
    }
    // A fourth client is served; the oldest idle connection was shed for it.
    let mut fourth = TcpStream::connect(addr).await.expect("connect");
    assert!(get(&mut fourth).await.starts_with("HTTP/1.1 200"));
    assert_eq!(read_all(&mut idle[0]).await, "", "the oldest was closed");
    assert!(
        get(&mut idle[2]).await.starts_with("HTTP/1.1 200"),
        "the newest stays"
    );
}

#[tokio::test]
async fn at_the_cap_with_nothing_idle_a_new_connection_gets_503() {
    let limits = HeadLimits {
        max_connections: 1,
        timeout: Duration::from_secs(30),
        ..LIMITS
    };
    let (addr, _stop) = server(limits).await;
    // Busy: in the middle of sending a head.
    let mut busy = TcpStream::connect(addr).await.expect("connect");
    busy.write_all(b"GET / HTTP/1.1\r\n").await.expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut refused = TcpStream::connect(addr).await.expect("connect");
    let text = read_all(&mut refused).await;
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("limits.max_connections"), "{text}");
}

#[test]
fn only_a_whole_preface_is_http2() {
    let mut reader = HeadReader::first(1024);
    for byte in H2_PREFACE[..23].chunks(5) {
        assert_eq!(reader.observe(byte), Seen::Head);
    }
    assert_eq!(reader.observe(&H2_PREFACE[23..]), Seen::Http2);

    let mut reader = HeadReader::first(1024);
    assert_eq!(reader.observe(b"P"), Seen::Head);
    assert_eq!(reader.observe(b"OST / HTTP/1.1\r\n"), Seen::Head);
    assert_eq!(
        reader.observe(H2_PREFACE),
        Seen::Head,
        "too late for a preface"
    );

    let mut reader = HeadReader::first(10);
    assert_eq!(reader.observe(b"GET / HTTP"), Seen::Head);
    assert_eq!(reader.observe(b"/"), Seen::TooLarge);
    reader.next_head();
    assert_eq!(
        reader.observe(H2_PREFACE),
        Seen::TooLarge,
        "a second head is never h2"
    );
}

#[tokio::test]
async fn keep_alive_requests_are_served_and_see_their_peer() {
    let (addr, _stop) = server(LIMITS).await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    for _ in 0..3 {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 512];
        let n = stream.read(&mut buf).await.expect("read");
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.contains("hello Some(127.0.0.1)"), "{text}");
    }
}

#[tokio::test]
async fn a_head_that_trickles_in_gets_408_in_ollamas_shape() {
    let (addr, _stop) = server(LIMITS).await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"POST /api/chat HTTP/1.1\r\nHost: loc")
        .await
        .expect("write");
    let text = read_all(&mut stream).await;
    assert!(
        text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{text}"
    );
    assert!(text.contains("connection: close"), "{text}");
    assert!(
        text.ends_with(
            "{\"error\":\"the request's headers did not arrive within 300ms (timeouts.header)\"}"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn an_oversized_head_gets_431_in_ollamas_shape() {
    let (addr, _stop) = server(LIMITS).await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut head = b"GET / HTTP/1.1\r\nHost: localhost\r\n".to_vec();
    for i in 0..200 {
        head.extend_from_slice(format!("x-filler-{i}: {}\r\n", "y".repeat(20)).as_bytes());
    }
    // Sent in pieces, as a real client's large head arrives.
    for piece in head.chunks(512) {
        if stream.write_all(piece).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let text = read_all(&mut stream).await;
    assert!(
        text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{text}"
    );
    assert!(text.contains("(limits.max_header)"), "{text}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_not_timed_out() {
    let (addr, _stop) = server(LIMITS).await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 512];
    let _ = stream.read(&mut buf).await.expect("read");
    // Longer than the head timeout between two requests: still served.
    tokio::time::sleep(Duration::from_millis(600)).await;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let n = stream.read(&mut buf).await.expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn stop_refuses_new_connections_and_finishes_open_ones() {
    let (addr, stop) = server(LIMITS).await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stop.send(true).expect("stop");
    // The accept loop is gone: a new connection is refused (or never answered).
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(TcpStream::connect(addr).await.is_err());
    // The open, idle connection was closed gracefully.
    assert_eq!(read_all(&mut stream).await, "");
}
