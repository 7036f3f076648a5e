// WebTorrent's bittorrent-tracker, HTTP and UDP on one port of one address, for odseed's tests.
// Usage: node tracker.mjs ADDRESS PORT. Prints "listening" once both sockets are bound.
import Server from 'bittorrent-tracker/server'

const [host, port] = [process.argv[2], Number(process.argv[3])]
if (!host || !(port > 0)) {
  console.error('usage: node tracker.mjs ADDRESS PORT')
  process.exit(2)
}
const server = new Server({ http: true, udp: true, ws: false, stats: false, trustProxy: false })
server.on('error', (e) => {
  console.error(`tracker: ${e.message}`)
  process.exit(1)
})
server.on('warning', (e) => console.error(`tracker warning: ${e.message}`))
server.listen(port, { http: host, udp: host }, () => console.log(`listening on ${host}:${port}`))
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)))
