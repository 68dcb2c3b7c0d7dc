// The `sockserv serve` command as a user runs it: a real child process printing exactly one
// `listening on tcp://HOST:PORT` line, served over real sockets, stopped by a signal (exit 0,
// requests in flight answered). Bad arguments exit 2, a handler that cannot load exits 1.

import { Cli, killAll } from './helpers/cli-process.js';
import { fixture } from './helpers/client.js';
import { Registry } from './helpers/net.js';

const LISTENING = /^listening on tcp:\/\/127\.0\.0\.1:(\d+)\n$/;

const registry = new Registry();
afterEach(async () => {
  await registry.cleanup();
  killAll();
});

describe('sockserv serve', () => {
  test.each([
    ['a worker pool', ['--workers', '2']],
    ['--inline', ['--inline']],
  ])('with %s: prints one listening line, serves, and on SIGTERM answers the requests in flight and exits 0', async (_how, flags) => {
    const cli = new Cli(['serve', fixture('announce'), '--port', '0', ...flags]);
    const port = await cli.port();
    const peer = await registry.peer(port);
    peer.write('one\ntwo\n');
    // The handler announces each request on stderr as it starts: both are in flight now.
    await cli.until(() => cli.stderr.includes('start one\n') && cli.stderr.includes('start two\n'), 'both requests started');
    cli.child.kill('SIGTERM');
    const received = await peer.untilClosed();
    expect(received.toString()).toBe('done one\ndone two\n');
    expect(await cli.exit()).toBe(0);
    expect(cli.stdout).toMatch(LISTENING);
  });

  test('--inline with delimiter framing serves upper-case replies; SIGINT exits 0', async () => {
    const cli = new Cli(['serve', fixture('upper'), '--inline', '--port', '0', '--framing', 'delimiter:2d2d']);
    const port = await cli.port();
    const peer = await registry.peer(port);
    peer.write('ab--cd-');
    peer.write('-ef');
    peer.socket.end();
    expect((await peer.untilClosed()).toString()).toBe('AB--CD--EF--');
    cli.child.kill('SIGINT');
    expect(await cli.exit()).toBe(0);
    expect(cli.stdout).toMatch(LISTENING);
  });

  test('--framing length and --max-frame-bytes are honoured', async () => {
    const cli = new Cli(['serve', fixture('upper'), '--port', '0', '--workers', '1', '--framing', 'length', '--max-frame-bytes', '8']);
    const port = await cli.port();
    const peer = await registry.peer(port);
    peer.write(Buffer.from([0, 0, 0, 2, 0x68, 0x69, 0, 0, 0, 9]));
    const received = await peer.untilClosed();
    const error = Buffer.from('ERROR ERR_FRAME_TOO_LONG');
    const expected = Buffer.concat([Buffer.from([0, 0, 0, 2]), Buffer.from('HI'), Buffer.from([0, 0, 0, error.length]), error]);
    expect(received.toString('hex')).toBe(expected.toString('hex'));
    cli.child.kill('SIGTERM');
    expect(await cli.exit()).toBe(0);
  });

  test.each([
    ['an unknown flag', ['serve', fixture('upper'), '--bogus'], /bogus/],
    ['--port abc', ['serve', fixture('upper'), '--port', 'abc'], /--port/],
    ['--port 70000', ['serve', fixture('upper'), '--port', '70000'], /--port/],
    ['no module', ['serve'], /handler module/],
    ['two modules', ['serve', fixture('upper'), fixture('echo')], /handler module/],
    ['--workers 0', ['serve', fixture('upper'), '--workers', '0'], /--workers/],
    ['--workers with --inline', ['serve', fixture('upper'), '--workers', '2', '--inline'], /--inline/],
    ['--framing nope', ['serve', fixture('upper'), '--framing', 'nope'], /framing/],
    ['--framing delimiter:zz', ['serve', fixture('upper'), '--framing', 'delimiter:zz'], /delimiter/],
    ['an unknown command', ['frobnicate'], /frobnicate/],
  ])('%s exits 2 with a one-line message on stderr', async (_what, args, message) => {
    const cli = new Cli(args);
    expect(await cli.exit()).toBe(2);
    expect(cli.stderr).toMatch(/^sockserv( serve)?: [^\n]+\n$/);
    expect(cli.stderr).toMatch(message);
    expect(cli.stdout).not.toMatch(/listening/);
  });

  test.each([
    ['a missing module', 'ERR_HANDLER_LOAD', 'does-not-exist'],
    ['a module that throws on import', 'ERR_HANDLER_LOAD', 'broken-import'],
    ['a module without a handler class', 'ERR_HANDLER_INVALID', 'not-a-class'],
    ['a class that does not extend BaseRequestHandler', 'ERR_HANDLER_INVALID', 'not-extending'],
  ])('%s exits 1 with %s on stderr, pool or inline', async (_what, code, name) => {
    for (const flags of [['--workers', '1'], ['--inline']]) {
      const cli = new Cli(['serve', fixture(name), '--port', '0', ...flags]);
      expect(await cli.exit()).toBe(1);
      expect(cli.stderr).toContain(code);
      expect(cli.stderr.trimEnd().split('\n')).toHaveLength(1); // one line, no stack
      expect(cli.stdout).toBe('');
    }
  });
});
