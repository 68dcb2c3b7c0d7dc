// The classic chat server: a nickname, then every line goes to everyone else in the room, and "q"
// leaves. One StreamRequestHandler per connection; the room lives on the main thread, so it does
// not matter which worker runs whom. `npm run example:chat`, then a few `nc 127.0.0.1 8002`.

import { StreamRequestHandler } from 'sockserv';

export default class ChatHandler extends StreamRequestHandler {
  override async handle(): Promise<void> {
    await this.wfile.write('nickname: ');
    const nick = (await this.rfile.readline()).toString().trim() || this.clientId;
    await this.join('chat');
    await this.broadcast('chat', `* ${nick} joined\n`);
    for await (const line of this.rfile) {
      const text = line.toString().trim();
      if (text === 'q') break;
      await this.broadcast('chat', `${nick}: ${text}\n`, { exceptSelf: true });
    }
    await this.broadcast('chat', `* ${nick} left\n`, { exceptSelf: true });
  }
}
