// Free TCP port on 127.0.0.1 (bind to port 0, read the assigned port, close): the one bench uses too.

export { freePort } from '../../src/bench/scp-command.js';
