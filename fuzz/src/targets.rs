//! The targets: every parser that reads bytes from outside odseed, and what must hold for any input.

use crate::Target;
use odseed_proto::infohash::InfoHash;
use std::path::{Component, Path};

pub const ALL: &[Target] = &[
    Target {
        name: "http_head",
        run: http_head,
        dictionary: &[
            b"GET ",
            b"PUT ",
            b" HTTP/1.1\r\n",
            b"HTTP/2.0",
            b"Content-Length: ",
            b"Transfer-Encoding: chunked\r\n",
            b"Connection: close\r\n",
            b"Expect: 100-continue\r\n",
            b"Authorization: Bearer ",
            b"\r\n\r\n",
            b": ",
        ],
    },
    Target {
        name: "bencode",
        run: bencode,
        dictionary: &[b"d", b"l", b"e", b"i", b"4:", b"0:", b"i-0e", b"i00e", b"1:", b"99999999999:"],
    },
    Target {
        name: "metainfo",
        run: metainfo,
        dictionary: &[
            b"4:info",
            b"6:pieces",
            b"12:piece length",
            b"6:length",
            b"4:name",
            b"5:files",
            b"4:path",
            b"2:..",
            b"1:/",
            b"10:name.utf-8",
            b"12:meta version",
            b"9:file tree",
        ],
    },
    Target {
        name: "http_scrape",
        run: http_scrape,
        dictionary: &[
            b"5:files",
            b"8:complete",
            b"10:incomplete",
            b"10:downloaded",
            b"14:failure reason",
            b"20:",
            b"d",
            b"e",
            b"i",
        ],
    },
    Target {
        name: "udp_scrape",
        run: udp_scrape,
        dictionary: &[b"\0\0\0\0", b"\0\0\0\x01", b"\0\0\0\x02", b"\0\0\0\x03", b"\xff\xff\xff\xff"],
    },
    Target {
        name: "ec2_xml",
        run: ec2_xml,
        dictionary: &[
            b"<reservationSet>",
            b"<item>",
            b"</item>",
            b"<instanceId>",
            b"<instanceState><code>16</code><name>running</name></instanceState>",
            b"<nextToken>",
            b"<Errors><Error><Code>",
            b"<![CDATA[",
            b"&amp;",
            b"&#0;",
            b"<!DOCTYPE",
        ],
    },
    Target {
        name: "transmission_answer",
        run: transmission_answer,
        dictionary: &[
            b"\"result\"",
            b"\"success\"",
            b"\"arguments\"",
            b"\"torrents\"",
            b"\"hashString\"",
            b"\"status\"",
            b"\"percentDone\"",
            b"\"trackerStats\"",
            b"null",
            b"1e999",
            b"-1",
            b"[",
            b"{",
        ],
    },
    Target {
        name: "transmission_http",
        run: transmission_http,
        dictionary: &[
            b"HTTP/1.1 200 OK\r\n",
            b"HTTP/1.1 409 Conflict\r\n",
            b"Content-Length: ",
            b"Transfer-Encoding: chunked\r\n",
            b"X-Transmission-Session-Id: ",
            b"\r\n\r\n",
            b"0\r\n\r\n",
            b"ffffffffffffffff\r\n",
        ],
    },
    Target {
        name: "agent_config",
        run: agent_config,
        dictionary: &[
            b"listen = ",
            b"[daemon]",
            b"max_connections = ",
            b"max_torrents = ",
            b"bind_address = ",
            b"peer_port = ",
            b"\"",
            b"'''",
            b"= {",
            b"[[",
            b"1e400",
            b"inf",
            b"nan",
        ],
    },
    Target {
        name: "controller_config",
        run: controller_config,
        dictionary: &[
            b"[policy]",
            b"[[board]]",
            b"[ec2]",
            b"[[ec2.pool]]",
            b"[transmission]",
            b"interval = ",
            b"url = ",
            b"token_file = ",
            b"region = ",
            b"\"",
            b"= {",
            b"1e400",
        ],
    },
];

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

fn hashes() -> [InfoHash; 2] {
    [InfoHash::from_bytes([0xab; 20]), InfoHash::from_bytes([0x01; 20])]
}

fn http_head(data: &[u8]) {
    if let Ok(Some((head, used))) = odseed_agent::http::head::parse(data) {
        assert!(used <= data.len(), "the head claims {used} of {} bytes", data.len());
        assert!(head.minor_version <= 1);
    }
}

fn bencode(data: &[u8]) {
    let _ = odseed_proto::bencode::decode(data);
}

fn metainfo(data: &[u8]) {
    if let Ok(m) = odseed_proto::metainfo::parse(data) {
        assert!(m.piece_length >= 1 && m.piece_length <= odseed_proto::metainfo::MAX_PIECE_LENGTH);
        for (path, _) in &m.files {
            assert!(path.starts_with(&m.name), "{path:?} is outside the torrent's {:?}", m.name);
            assert!(path.components().all(|c| matches!(c, Component::Normal(_))), "unsafe path {path:?}");
        }
        assert_eq!(m.total_size, m.files.iter().map(|(_, n)| n).sum::<u64>());
    }
}

fn http_scrape(data: &[u8]) {
    let hashes = hashes();
    if let Ok(counts) = odseed::tracker::http::parse(data, &hashes) {
        assert!(counts.keys().all(|h| hashes.contains(h)), "a torrent nobody asked about");
    }
}

fn udp_scrape(data: &[u8]) {
    let _ = odseed::tracker::udp::parse_connect(data);
    let hashes = hashes();
    if let Ok(counts) = odseed::tracker::udp::parse_scrape(data, &hashes) {
        assert!(counts.keys().all(|h| hashes.contains(h)));
    }
}

fn ec2_xml(data: &[u8]) {
    let xml = text(data);
    let _ = odseed::ec2::xml::describe(&xml);
    let _ = odseed::ec2::xml::changes(&xml);
    let _ = odseed::ec2::xml::error(&xml);
}

fn transmission_answer(data: &[u8]) {
    use odseed_proto::transmission::TorrentInfo;
    let Ok(args) = odseed_proto::transmission::rpc::parse_answer("torrent-get", &text(data)) else { return };
    for t in args.get("torrents").and_then(|t| t.as_array()).into_iter().flatten() {
        let t = TorrentInfo::from_json(t.clone());
        let _ = (t.hash(), t.status(), t.name(), t.percent_done(), t.peers_connected(), t.peers_getting_from_us());
        let _ = (t.rate_upload(), t.uploaded_ever(), t.error(), t.error_string(), t.torrent_file());
        let _ = (t.tracker_counts(), t.announced());
    }
}

fn transmission_http(data: &[u8]) {
    const MAX: u64 = 4096;
    let mut reader = std::io::BufReader::new(data);
    if let Ok(r) = odseed_proto::transmission::http1::read_response(&mut reader, "POST", MAX) {
        assert!(r.body.len() as u64 <= MAX, "a body of {} bytes", r.body.len());
    }
}

fn agent_config(data: &[u8]) {
    if let Err(e) = odseed_agent::config::Config::parse(&text(data)) {
        assert!(!e.contains('\n'), "a config error spans lines: {e:?}");
    }
}

fn controller_config(data: &[u8]) {
    // Relative paths resolve under a directory that does not exist: nothing is read from disk.
    let base = Path::new("/nonexistent/odseed-fuzz");
    if let Err(e) = odseed::config::parse(&text(data), base) {
        assert!(!e.contains('\n'), "a config error spans lines: {e:?}");
    }
}
