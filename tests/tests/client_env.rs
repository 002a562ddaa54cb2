//! `Client::connect` as in the README: trust comes from the environment (one test function,
//! since the environment is per process).

use plasma_stream_tests::{oid, put, verify, Server};
use stream::{Client, PeerRequest};

#[tokio::test(flavor = "multi_thread")]
async fn readme_connect_takes_trust_from_the_environment() {
    let source = Server::embedded(16 << 20);
    let destination = Server::embedded(16 << 20);
    let home = tempfile::tempdir().unwrap();
    std::env::set_var("HOME", home.path());
    std::env::remove_var("XDG_CONFIG_HOME");
    for name in [
        "PLASMA_STREAM_INSECURE",
        "PLASMA_STREAM_TRUST",
        "PLASMA_STREAM_TRUST_FILE",
    ] {
        std::env::remove_var(name);
    }
    let address = destination.addr.to_string();

    // Nothing trusted: a clear error that says how to fix it.
    match Client::connect(address.as_str()).await {
        Err(error @ stream::Error::NoTrust) => {
            assert!(error.to_string().contains("PLASMA_STREAM_TRUST"))
        }
        other => panic!("expected NoTrust, got {other:?}"),
    }

    // The README example, verbatim apart from the addresses.
    std::env::set_var("PLASMA_STREAM_INSECURE", "1");
    let id = oid(70, 1);
    put(&mut source.store(), id, 20, 0);
    async fn readme(address: &str, from: String, id: String) -> stream::Result<()> {
        let client = Client::connect(address).await?;
        let peer_requests = vec![PeerRequest::Copy {
            from: from.parse()?,
            objects: vec![id.parse()?],
        }];
        client.sync(peer_requests).await?;
        Ok(())
    }
    readme(&address, source.addr.to_string(), id.to_string())
        .await
        .unwrap();
    verify(&mut destination.store(), id, 20, 0);
}
