import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import {
  VpcdError,
  VpcdFrameDecoder,
  attachToVpcd,
  encodeVpcdFrame,
  parseVpcdAddress,
  type VpcdCard,
  type VpcdEvent,
} from '../../src/vpcd/attach.js';

describe('vpcd frames', () => {
  it('encodes a big-endian u16 length before the payload', () => {
    assert.deepEqual(encodeVpcdFrame(new Uint8Array([0x04])), new Uint8Array([0x00, 0x01, 0x04]));
    const long = encodeVpcdFrame(new Uint8Array(0x1234));
    assert.equal(long.length, 0x1236);
    assert.deepEqual(long.subarray(0, 2), new Uint8Array([0x12, 0x34]));
  });

  it('refuses a payload longer than 65535 bytes', () => {
    assert.throws(() => encodeVpcdFrame(new Uint8Array(65536)), (e) => e instanceof VpcdError && e.code === 'VPCD_FRAME');
  });

  it('decodes a header and body that arrive in separate chunks, as vpcd 0.8 sends them', () => {
    const d = new VpcdFrameDecoder();
    assert.deepEqual(d.push(new Uint8Array([0x00, 0x05])), []);
    assert.equal(d.pending, 2);
    assert.deepEqual(d.push(new Uint8Array([0x00, 0xa4, 0x04])), []);
    assert.deepEqual(d.push(new Uint8Array([0x00, 0x00])), [new Uint8Array([0x00, 0xa4, 0x04, 0x00, 0x00])]);
    assert.equal(d.pending, 0);
  });

  it('decodes several frames from one chunk and keeps the incomplete tail', () => {
    const d = new VpcdFrameDecoder();
    const frames = d.push(new Uint8Array([0, 1, 0x01, 0, 1, 0x04, 0, 3, 0xaa]));
    assert.deepEqual(frames, [new Uint8Array([0x01]), new Uint8Array([0x04])]);
    assert.equal(d.pending, 3);
    assert.deepEqual(d.push(new Uint8Array([0xbb, 0xcc])), [new Uint8Array([0xaa, 0xbb, 0xcc])]);
  });

  it('yields an empty frame for a zero length', () => {
    assert.deepEqual(new VpcdFrameDecoder().push(new Uint8Array([0, 0])), [new Uint8Array(0)]);
  });

  it('property: any frames, cut into any chunks, come back whole and in order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }),
        (payloads, cuts) => {
          const stream = Buffer.concat(payloads.map((p) => encodeVpcdFrame(p)));
          const d = new VpcdFrameDecoder();
          const out: Uint8Array[] = [];
          let offset = 0;
          for (let i = 0; offset < stream.length; i++) {
            const size = cuts[i % cuts.length]!;
            out.push(...d.push(stream.subarray(offset, offset + size)));
            offset += size;
          }
          assert.deepEqual(out.map((f) => Buffer.from(f)), payloads.map((p) => Buffer.from(p)));
          assert.equal(d.pending, 0);
        },
      ),
    );
  });
});

describe('vpcd addresses', () => {
  it('parses HOST:PORT, HOST alone and :PORT alone', () => {
    assert.deepEqual(parseVpcdAddress('127.0.0.2:35964'), { host: '127.0.0.2', port: 35964 });
    assert.deepEqual(parseVpcdAddress('localhost'), { host: 'localhost', port: 35963 });
    assert.deepEqual(parseVpcdAddress(':40000'), { host: '127.0.0.2', port: 40000 });
    assert.deepEqual(parseVpcdAddress('[::1]:40000'), { host: '::1', port: 40000 });
  });

  it('rejects a bad port with a typed error', () => {
    for (const bad of ['host:0', 'host:70000', 'host:x', 'a:b:c']) {
      assert.throws(() => parseVpcdAddress(bad), (e) => e instanceof VpcdError && e.code === 'VPCD_ADDRESS', bad);
    }
  });
});

/**
 * A stand-in for the vpcd driver: it listens like vpcd does in server mode and speaks its framing,
 * so the card side can be tested without pcscd.
 */
class FakeVpcd {
  readonly server: Server;
  socket: Socket | undefined;
  private decoder = new VpcdFrameDecoder();
  private replies: Uint8Array[] = [];
  private wake: (() => void) | undefined;

  constructor() {
    this.server = createServer((sock) => {
      this.socket = sock;
      this.decoder = new VpcdFrameDecoder();
      sock.on('data', (chunk) => {
        this.replies.push(...this.decoder.push(chunk));
        this.wake?.();
      });
      sock.on('error', () => {});
      this.wake?.();
    });
  }

  async listen(port = 0): Promise<number> {
    this.server.listen(port, '127.0.0.1');
    await once(this.server, 'listening');
    return (this.server.address() as AddressInfo).port;
  }

  async connection(): Promise<Socket> {
    while (!this.socket || this.socket.destroyed) await new Promise<void>((r) => (this.wake = r));
    return this.socket;
  }

  /** Sends one frame the way vpcd 0.8 does (header and body in two writes). */
  async send(payload: Uint8Array): Promise<void> {
    const sock = await this.connection();
    const frame = encodeVpcdFrame(payload);
    sock.write(frame.subarray(0, 2));
    sock.write(frame.subarray(2));
  }

  async reply(timeoutMs = 2000): Promise<Uint8Array> {
    const deadline = Date.now() + timeoutMs;
    while (this.replies.length === 0) {
      if (Date.now() > deadline) throw new Error('no reply from the card');
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, 20);
      });
    }
    return this.replies.shift()!;
  }

  /** True when nothing arrives within the window (power codes must get no reply). */
  async silent(ms = 150): Promise<boolean> {
    await new Promise((r) => setTimeout(r, ms));
    return this.replies.length === 0;
  }

  async close(): Promise<void> {
    this.socket?.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

function testCard(): VpcdCard & { resets: number; seen: Uint8Array[] } {
  const card = {
    atr: new Uint8Array([0x3b, 0x8c, 0x01, 0x01]),
    resets: 0,
    seen: [] as Uint8Array[],
    process(apdu: Uint8Array): Uint8Array {
      card.seen.push(apdu);
      if (apdu[1] === 0xee) throw new Error('emulator bug');
      if (apdu[1] === 0xb0) return new Uint8Array([...new Uint8Array(1000).fill(0x5a), 0x90, 0x00]);
      return new Uint8Array([apdu[1]!, 0x90, 0x00]);
    },
    reset(): void {
      card.resets++;
    },
  };
  return card;
}

describe('attachToVpcd', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  async function setup(): Promise<{ vpcd: FakeVpcd; card: ReturnType<typeof testCard>; events: VpcdEvent[]; attachment: ReturnType<typeof attachToVpcd>; port: number }> {
    const vpcd = new FakeVpcd();
    const port = await vpcd.listen();
    const card = testCard();
    const events: VpcdEvent[] = [];
    const ac = new AbortController();
    const attachment = attachToVpcd(card, { host: '127.0.0.1', port, signal: ac.signal, retryMs: 30, onEvent: (e) => events.push(e) });
    cleanups.push(() => ac.abort(), () => vpcd.close());
    await attachment.whenConnected();
    return { vpcd, card, events, attachment, port };
  }

  it('answers GET ATR with the ATR, and APDUs with the processor response', async () => {
    const { vpcd, card, attachment } = await setup();
    await vpcd.send(new Uint8Array([0x04]));
    assert.deepEqual(await vpcd.reply(), card.atr);
    await vpcd.send(new Uint8Array([0x00, 0xa4, 0x04, 0x00]));
    assert.deepEqual(await vpcd.reply(), new Uint8Array([0xa4, 0x90, 0x00]));
    await vpcd.send(new Uint8Array([0x00, 0xb0, 0x00, 0x00, 0x00]));
    assert.equal((await vpcd.reply()).length, 1002);
    assert.equal(attachment.counters.apdus, 2);
  });

  it('resets the card on power-on and reset, and answers no control code', async () => {
    const { vpcd, card, events } = await setup();
    await vpcd.send(new Uint8Array([0x01]));
    await vpcd.send(new Uint8Array([0x02]));
    await vpcd.send(new Uint8Array([0x00]));
    assert.equal(await vpcd.silent(), true);
    // Power codes reach the card ahead of any later APDU.
    await vpcd.send(new Uint8Array([0x00, 0xa4, 0x04, 0x00]));
    await vpcd.reply();
    assert.equal(card.resets, 2);
    assert.deepEqual(
      events.filter((e) => e.type === 'power').map((e) => (e.type === 'power' ? e.state : '')),
      ['on', 'reset', 'off'],
    );
  });

  it('answers 6F00 when the processor throws, so the reader is never left waiting', async () => {
    const { vpcd } = await setup();
    await vpcd.send(new Uint8Array([0x00, 0xee, 0x00, 0x00]));
    assert.deepEqual(await vpcd.reply(), new Uint8Array([0x6f, 0x00]));
  });

  it('reconnects after vpcd drops the connection (pcscd restart)', async () => {
    const { vpcd, attachment } = await setup();
    (await vpcd.connection()).destroy();
    const deadline = Date.now() + 3000;
    while (attachment.counters.connects < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(attachment.counters.connects, 2);
    await vpcd.send(new Uint8Array([0x04]));
    assert.equal((await vpcd.reply()).length, 4);
  });

  it('keeps retrying while nothing listens, and connects once vpcd appears', async () => {
    const probe = new FakeVpcd();
    const port = await probe.listen();
    await probe.close();
    const ac = new AbortController();
    cleanups.push(() => ac.abort());
    const attachment = attachToVpcd(testCard(), { host: '127.0.0.1', port, signal: ac.signal, retryMs: 30 });
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(attachment.connected, false);
    const late = new FakeVpcd();
    cleanups.push(() => late.close());
    await late.listen(port);
    await attachment.whenConnected();
    assert.equal(attachment.connected, true);
  });

  it('remove() closes the socket and stays out; insert() comes back', async () => {
    const { vpcd, attachment, events } = await setup();
    const first = await vpcd.connection();
    attachment.remove();
    await once(first, 'close');
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(attachment.connected, false);
    assert.equal(attachment.inserted, false);
    assert.equal(attachment.counters.connects, 1, 'no reconnection while removed');
    attachment.insert();
    await attachment.whenConnected();
    assert.equal(attachment.counters.connects, 2);
    await vpcd.send(new Uint8Array([0x04]));
    assert.equal((await vpcd.reply()).length, 4);
    assert.deepEqual(
      events.filter((e) => e.type === 'removed' || e.type === 'inserted').map((e) => e.type),
      ['removed', 'inserted'],
    );
  });

  it('abort detaches for good and rejects whoever waits for a connection', async () => {
    const probe = new FakeVpcd();
    const port = await probe.listen();
    await probe.close();
    const ac = new AbortController();
    const attachment = attachToVpcd(testCard(), { host: '127.0.0.1', port, signal: ac.signal, retryMs: 30 });
    const waiting = attachment.whenConnected();
    ac.abort();
    await assert.rejects(waiting, (e) => e instanceof VpcdError && e.code === 'VPCD_CLOSED');
  });
});
