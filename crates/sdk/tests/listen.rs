//! `tolem_sdk::listen::serve`'s shutdown, on a real socket: once told to stop it closes its
//! listener at once, so no new client waits in the backlog for an answer that will not come,
//! and it returns after the drain even while a client holds a request open (here a body that
//! never comes, which the request deadline alone would hold for a minute).

use std::time::Duration;

use axum::Router;
use axum::routing::post;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tolem_sdk::listen::{DRAIN, serve};

#[tokio::test]
async fn shutdown_closes_the_listener_at_once_and_ends_held_requests_after_the_drain() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bound");
    let addr = listener.local_addr().expect("an address");
    let router = Router::new().route("/refund", post(|body: String| async move { body }));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(serve(listener, router, async move {
        let _ = stopped.await;
    }));
    // A request whose body stops half-way: its handler waits for the rest.
    let mut held = TcpStream::connect(addr).await.expect("connected");
    held.write_all(b"POST /refund HTTP/1.1\r\nHost: bank\r\nContent-Length: 100\r\n\r\n{\"a\":")
        .await
        .expect("sent");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(()).expect("told to stop");
    // The listener goes at once: a new client is refused, not left waiting.
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if TcpStream::connect(addr).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        refused.is_ok(),
        "the listener still takes connections after shutdown"
    );
    // The held request does not keep the server: it returns once the drain is over.
    let ended = tokio::time::timeout(DRAIN + Duration::from_secs(10), served).await;
    assert!(
        matches!(ended, Ok(Ok(Ok(())))),
        "serve did not return after the drain: {ended:?}"
    );
    drop(held);
}
