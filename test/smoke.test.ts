import { silentLogger, TCPServer, ThreadingTCPServer } from '../src/index.js';
import { exchange, fixture } from './helpers/client.js';

describe('smoke', () => {
  test.each([
    ['inline', TCPServer],
    ['pool', ThreadingTCPServer],
  ] as const)('%s server upper-cases lines', async (_name, Server) => {
    const server = new Server({ host: '127.0.0.1', port: 0 }, fixture('upper'), { workers: 2, logger: silentLogger });
    const { port } = await server.listen();
    try {
      const reply = await exchange(port, ['ab\nc', 'd\r\n', 'x']);
      expect(reply.toString()).toBe('AB\nCD\nX\n');
    } finally {
      await server.close();
    }
  });
});
