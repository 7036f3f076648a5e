//! The RPC client against a real transmission-daemon: handshake, auth, add, get, verify, remove.

use crate::world_with;
use odseed_lab::{content, Peer};
use odseed_proto::transmission::{Client, Error};
use serde_json::json;
use std::net::Ipv4Addr;
use std::time::Duration;

each_daemon! {
fn the_rpc_client_speaks_to_a_real_daemon(d: Daemon) {
    let w = world_with("rpc", d);
    let peer = Peer::start_program(w.dir.path(), "p", Ipv4Addr::LOCALHOST, json!({}), &d.program()).unwrap();
    let c = peer.client();
    let session = c.session_get().unwrap();
    assert!(session["rpc-version"].as_i64().is_some_and(|v| v >= 15), "{session}");

    let wrong = Client::new(c.url(), Some(("odseed", "not-the-password")), Duration::from_secs(5));
    assert!(matches!(wrong.session_get(), Err(Error::Unauthorized { .. })));
    let none = Client::new(c.url(), None, Duration::from_secs(5));
    assert!(matches!(none.session_get(), Err(Error::Unauthorized { .. })));

    let t = content::make(&peer.data_dir, "r.bin", 100_000, 7, &[]).unwrap();
    let data_dir = peer.data_dir.to_string_lossy();
    let added = c.torrent_add(&t.bytes, &data_dir).unwrap();
    assert_eq!((added.info_hash, added.new), (t.meta.info_hash, true));
    assert!(!c.torrent_add(&t.bytes, &data_dir).unwrap().new, "a second add is a duplicate");

    let got = c.torrent_get(Some(&[t.meta.info_hash]), &["hashString", "name"]).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].hash(), got[0].name()), (Some(t.meta.info_hash), Some("r.bin")));
    assert_eq!((got[0].status(), got[0].percent_done()), (None, None), "only the fields asked for");
    assert!(matches!(c.torrent_add(b"garbage", &data_dir), Err(Error::Rpc { .. })));

    c.torrent_verify(&[t.meta.info_hash]).unwrap();
    c.torrent_remove(&[t.meta.info_hash]).unwrap();
    assert!(c.torrent_get(None, &["hashString"]).unwrap().is_empty());
    assert!(peer.data_dir.join("r.bin").exists(), "remove keeps the data");
}
}
