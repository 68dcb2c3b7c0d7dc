// The echo example: each line comes back as it was sent. `npm start` serves it through the
// worker pool on 127.0.0.1:8001; try `nc 127.0.0.1 8001`.

import { BaseRequestHandler } from 'sockserv';

export default class EchoHandler extends BaseRequestHandler {
  override handle(): Buffer {
    return this.request;
  }
}
