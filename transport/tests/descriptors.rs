//! A listener out of file descriptors sheds the pending connection (instead of leaving it in
//! the backlog and spinning on a listener that stays readable), and recovers once descriptors
//! are free again. Its own test binary: it lowers the process's open-file limit.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use plasma_stream_certs::{Identity, Trust};
use plasma_stream_transport::{Endpoint, Incoming, TransportConfig, TransportMode};
use tokio::io::AsyncReadExt;

fn open_files() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .map(|entries| entries.count() as u64)
        .unwrap_or(0)
}

fn set_soft_limit(soft: u64) -> libc::rlimit {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        let lowered = libc::rlimit {
            rlim_cur: soft,
            rlim_max: limit.rlim_max,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lowered), 0);
    }
    limit
}

#[tokio::test]
async fn out_of_descriptors_sheds_the_pending_connection_and_recovers() {
    let config = TransportConfig {
        mode: TransportMode::Tcp,
        ..TransportConfig::default()
    };
    let identity = Identity::generate(["server"]).unwrap();
    let server = Endpoint::server(
        SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0),
        &identity,
        &Trust::Insecure,
        config.clone(),
    )
    .await
    .unwrap();
    let addr = server.local_addr().unwrap();
    let accepting = server.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(Incoming::Connection(connection)) = accepting.accept().await {
            held.push(connection);
        }
    });
    let client = Endpoint::client(&identity, &Trust::Insecure, config)
        .await
        .unwrap();

    // Use up every descriptor but one, which the dialing socket takes: the server's accept
    // then fails with EMFILE.
    let original = set_soft_limit(open_files() + 32);
    let mut filler = Vec::new();
    while let Ok(file) = std::fs::File::open("/dev/null") {
        filler.push(file);
    }
    filler.pop();
    let mut shed = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(3), shed.read(&mut byte)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the pending connection is closed at once, not left in the backlog: {read:?}"
    );

    // Descriptors free again: the listener serves as before.
    drop(filler);
    // SAFETY: setrlimit on a struct we own.
    unsafe {
        libc::setrlimit(libc::RLIMIT_NOFILE, &original);
    }
    let connection = tokio::time::timeout(Duration::from_secs(5), client.connect(addr))
        .await
        .expect("connect in time")
        .expect("a TLS connection after recovery");
    drop(connection);
}
