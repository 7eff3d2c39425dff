// An SCP that is killed (SIGKILL, by itself) as soon as a peer sends it a byte: bench's "SCP dies in the
// middle of a setting". A connection that sends nothing (bench's is-it-listening probe) leaves it alive.
//
//   node dying-scp.mjs PORT

import net from 'node:net';

const port = Number(process.argv[2]);
const server = net.createServer((socket) => {
  socket.once('data', () => {
    process.stderr.write('dying-scp: a peer sent data: killing myself\n');
    process.kill(process.pid, 'SIGKILL');
  });
  socket.on('error', () => undefined);
});
server.listen(port, '127.0.0.1', () => process.stdout.write(`dying-scp: listening ${port}\n`));
