# A libtorrent peer for odseed's lab (Debian's python3-libtorrent): one session bound to one
# address, downloading and then seeding every .torrent file that appears in ADD_DIR, and writing
# what it sees to STATUS (JSON, replaced atomically) twice a second. Rates in bytes/s, 0 = none.
# Per peer: [address, payload bytes received, payload rate]. Usage: python3 libtorrent_peer.py ADD_DIR STATUS SAVE_DIR IP DOWN_RATE UP_RATE
import json
import os
import sys
import time

import libtorrent as lt

add_dir, status, save, ip = sys.argv[1:5]
down, up = int(sys.argv[5]), int(sys.argv[6])
s = lt.session({
    'listen_interfaces': ip + ':6881', 'outgoing_interfaces': ip, 'announce_ip': ip,
    'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False, 'enable_natpmp': False,
    'download_rate_limit': down, 'upload_rate_limit': up,
    'alert_mask': lt.alert.category_t.tracker_notification | lt.alert.category_t.error_notification,
})
handles = {}
announced = set()


def bitfield(pieces):
    out = bytearray((len(pieces) + 7) // 8)
    for i, have in enumerate(pieces):
        if have:
            out[i // 8] |= 0x80 >> (i % 8)
    return out.hex()


while True:
    for f in sorted(os.listdir(add_dir)):
        if f.endswith('.torrent') and f not in handles:
            handles[f] = s.add_torrent({'ti': lt.torrent_info(os.path.join(add_dir, f)), 'save_path': save})
    for a in s.pop_alerts():
        if isinstance(a, lt.tracker_reply_alert):
            announced.add(str(a.handle.info_hashes().v1))
    out = {}
    for h in handles.values():
        st = h.status()
        ih = str(st.info_hashes.v1)
        peers = [[p.ip[0], p.total_download, p.payload_down_speed] for p in h.get_peer_info()]
        out[ih] = {
            'done': st.progress, 'downloaded': st.all_time_download, 'uploaded': st.all_time_upload,
            'pieces': bitfield(st.pieces), 'peers': peers, 'announced': ih in announced,
            'error': str(st.errc.message()) if st.errc.value() else '',
        }
    with open(status + '.tmp', 'w') as f:
        json.dump(out, f)
    os.replace(status + '.tmp', status)
    time.sleep(0.5)
