// The Redis-protocol example: a handler for `framing: 'resp'` that redis-cli can talk to.
//   npm run build && node dist/examples/resp/server.js 6380     (or: sockserv serve
//   dist/examples/resp/handler.js --framing resp --port 6380), then
//   redis-cli -p 6380 PING  ·  redis-cli -p 6380 ECHO hi  ·  redis-cli -p 6380 PBKDF2 secret sockserv 2000
//   (printf 'PING\r\n'; sleep 1) | nc 127.0.0.1 6380   — inline commands work too
//
// Commands (names are case-insensitive):
//   PING [message]                     +PONG, or the message as a bulk string
//   ECHO message                       the message as a bulk string
//   PBKDF2 password salt iterations    hex of PBKDF2-SHA256 (32 bytes); iterations 1..1000000.
//                                      Pure CPU: this is why the server runs handlers on the pool.
//   COMMAND [anything]                 an empty array (redis-cli sends COMMAND DOCS when it starts)
// Anything else is answered `-ERR unknown command 'name'`; the connection stays open.

import { pbkdf2Sync } from 'node:crypto';
import { BaseRequestHandler, parseCommand, respArray, respBulk, respError, respSimple } from 'sockserv';

export const MAX_ITERATIONS = 1_000_000;

const PONG = respSimple('PONG');
const EMPTY_ARRAY = respArray([]);

export default class RespHandler extends BaseRequestHandler {
  override handle(): Buffer {
    // The frame is one command in multibulk form; its arguments are views into it.
    const [name, ...args] = parseCommand(this.request);
    const command = name!.toString('latin1').toLowerCase();
    switch (command) {
      case 'ping':
        if (args.length > 1) return wrongArity(command);
        return args.length === 0 ? PONG : respBulk(args[0]!);
      case 'echo':
        if (args.length !== 1) return wrongArity(command);
        return respBulk(args[0]!);
      case 'pbkdf2':
        return args.length === 3 ? pbkdf2(args[0]!, args[1]!, args[2]!) : wrongArity(command);
      case 'command':
        return EMPTY_ARRAY;
      default:
        // Shown as sent (at most 128 characters), as Redis does; respError drops any CR/LF.
        return respError(`ERR unknown command '${name!.toString('latin1').slice(0, 128)}'`);
    }
  }
}

function pbkdf2(password: Buffer, salt: Buffer, iterationsArg: Buffer): Buffer {
  const text = iterationsArg.toString('latin1');
  const iterations = /^[1-9][0-9]{0,6}$/.test(text) ? Number(text) : 0;
  if (iterations < 1 || iterations > MAX_ITERATIONS) {
    return respError(`ERR iterations must be an integer from 1 to ${MAX_ITERATIONS}`);
  }
  return respBulk(pbkdf2Sync(password, salt, iterations, 32, 'sha256').toString('hex'));
}

function wrongArity(command: string): Buffer {
  return respError(`ERR wrong number of arguments for '${command}' command`);
}
