// The session sockserv handler for the sessions and churn scenarios: issue 13's StreamRequestHandler
// line echo, the seed-style program a Python user ports — every line written back as it was read.

import { StreamRequestHandler } from 'sockserv';

export default class EchoSession extends StreamRequestHandler {
  override async handle(): Promise<void> {
    for await (const line of this.rfile) await this.wfile.write(line);
  }
}
