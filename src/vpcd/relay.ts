/**
 * The socket side of attachToVpcd, run in a worker thread (see startRelay in vpcd.ts for why):
 * connects to vpcd, reconnects while the card is inserted, answers GET ATR itself and hands power
 * codes and APDUs to the card's thread.
 */
import { connect, type Socket } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import { VPCD_CONTROL, VpcdFrameDecoder, encodeVpcdFrame, type CardMessage, type RelayMessage, type VpcdRelayConfig } from './attach.js';

const port = parentPort;
if (!port) throw new Error('relay runs as a worker thread of attachToVpcd');
const config = workerData as VpcdRelayConfig;
const post = (m: RelayMessage): void => port.postMessage(m);

let socket: Socket | undefined;
let inserted = true;
let retry: NodeJS.Timeout | undefined;
let nextId = 0;
/** The APDU vpcd is waiting for, and on which connection (a reply to a closed one is dropped). */
const waiting = new Map<number, Socket>();

function open(): void {
  if (!inserted || socket) return;
  const decoder = new VpcdFrameDecoder();
  const sock = connect({ host: config.host, port: config.port });
  socket = sock;
  let connected = false;
  sock.setNoDelay(true);
  sock.on('connect', () => {
    connected = true;
    post({ t: 'connected' });
  });
  sock.on('data', (chunk: Buffer) => {
    for (const frame of decoder.push(chunk)) {
      if (frame.length > 1) {
        const id = nextId++;
        waiting.set(id, sock);
        post({ t: 'apdu', id, apdu: frame });
      } else if (frame[0] === VPCD_CONTROL.GET_ATR) {
        sock.write(encodeVpcdFrame(config.atr));
      } else if (frame.length === 1) {
        // Power codes get no reply on the wire.
        post({ t: 'power', code: frame[0]! });
      }
    }
  });
  sock.on('error', () => {
    // 'close' follows every error and decides about reconnecting.
  });
  sock.on('close', () => {
    if (socket === sock) socket = undefined;
    if (connected) post({ t: 'disconnected', reason: inserted ? 'vpcd closed the connection' : 'card removed' });
    if (inserted && !retry) {
      retry = setTimeout(() => {
        retry = undefined;
        open();
      }, config.retryMs);
    }
  });
}

port.on('message', (m: CardMessage) => {
  switch (m.t) {
    case 'response': {
      const sock = waiting.get(m.id);
      waiting.delete(m.id);
      if (sock && sock === socket && !sock.destroyed) sock.write(encodeVpcdFrame(m.response));
      break;
    }
    case 'remove':
      inserted = false;
      if (retry) clearTimeout(retry);
      retry = undefined;
      socket?.destroy();
      break;
    case 'insert':
      inserted = true;
      open();
      break;
  }
});

open();
