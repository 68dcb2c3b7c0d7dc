// handler.ts: one instance per request; this.request is the line, without its "\n".
// Served as written — `npx sockserv serve handler.ts` — with no build step.
import { BaseRequestHandler } from 'sockserv';

export default class Upper extends BaseRequestHandler {
  override handle(): string {
    return this.request.toString().toUpperCase();
  }
}
