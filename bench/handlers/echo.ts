// The echo sockserv handler for the many-connections scenario: each line comes back as sent.

import { BaseRequestHandler } from 'sockserv';

export default class EchoHandler extends BaseRequestHandler {
  override handle(): Buffer {
    return this.request;
  }
}
