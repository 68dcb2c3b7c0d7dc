// The classic socket-server exercise, ported: on connect the client is greeted with
// "Beijing welcomes you"; every message it sends comes back with " good" appended; the message
// "q" ends the conversation. In Python it is a blocking recv() loop per connection:
//
//   conn.sendall(b"Beijing welcomes you")
//   while True:
//       data = conn.recv(1024)
//       if not data or data == b"q": break
//       conn.sendall(data + b" good")
//
// Here it is the same loop in a StreamRequestHandler. A trailing line ending is kept after
// " good" so line-based tools (nc, telnet) read one reply per line; raw clients get exactly
// data + " good".

import { StreamRequestHandler } from 'sockserv';

export const GREETING = 'Beijing welcomes you';

export default class SeedHandler extends StreamRequestHandler {
  override async handle(): Promise<void> {
    await this.request.sendall(GREETING);
    for (;;) {
      const data = await this.request.recv(1024);
      if (data.length === 0) break;
      const text = data.toString();
      const message = text.replace(/\r?\n$/, '');
      if (message === 'q') break;
      await this.request.sendall(`${message} good${text.slice(message.length)}`);
    }
  }
}
