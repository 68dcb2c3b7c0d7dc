// The sockserv handler of the broadcast scenario: the chat server's core, as a Python user would
// write it with rooms — "join" puts the connection in the room, every other line goes to every
// member (the sender too: its own line back is its delivery receipt).

import { BaseRequestHandler } from 'sockserv';

const JOIN = Buffer.from('join');

export default class Broadcast extends BaseRequestHandler {
  override async handle(): Promise<string | undefined> {
    if (this.request.equals(JOIN)) {
      await this.join('all');
      return 'joined';
    }
    await this.broadcast('all', this.request);
    return undefined;
  }
}
