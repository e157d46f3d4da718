// `npm run bench ocsp`: OCSP responses per second from `cardlink serve`'s plain-HTTP revocation
// listener (POST application/ocsp-request over loopback, keep-alive), at concurrency 1, 16 and
// 64, over distinct serials mixed good / revoked / unknown, in two modes:
//   cached  no nonce: after the first answer per serial, the responder sends the answer it signed
//           (cached until the next CRL);
//   signed  a fresh nonce in every request, so every answer is looked up and signed anew (the
//           cost of a cold cache, and of every nonce-carrying client).
// Next to it, the raw signing rate of the responder's own key (sign only, SHA-256 over an
// answer-sized message), measured in the same run right after the service stopped.
//
//   npm run bench ocsp                     RSA-2048 and P-256 CAs (the responder key follows the CA's)
//   npm run bench ocsp -- --ca p-256
import { createHash, createPrivateKey, randomBytes, sign } from 'node:crypto';
import { Agent, request } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, Extension, SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import { BasicOCSPResponse, CertID, id_pkix_ocsp_nonce, OCSPRequest, OCSPResponse, Request, TBSRequest } from '@peculiar/asn1-ocsp';
import { ServiceClient } from '../src/service/client.js';
import { x509 } from '../src/x509.js';
import { CA_PASSPHRASE, login, makeToken, pool, softKey, spawnServe, tempDir } from '../test/service/helpers.js';

const { values: args } = parseArgs({ options: { ca: { type: 'string', multiple: true } } });
const CA_KEYS = args.ca ?? ['rsa-2048', 'p-256'];
const LEVELS = [1, 16, 64];
const PER_LEVEL: Record<number, number> = { 1: 400, 16: 2000, 64: 4000 };
const MAX_SECONDS = 15;
/** Issued certificates (a third of them revoked) and as many serials never issued. */
const ISSUED = 150;
const UNKNOWN = 150;

type Expect = 'good' | 'revoked' | 'unknown';

interface Row {
  caKey: string;
  mode: 'cached' | 'signed';
  concurrency: number;
  responses: number;
  perSecond: number;
  p50ms: number;
  p99ms: number;
  rawSignPerSecond?: number;
}

function certId(ca: x509.X509Certificate, serialHex: string): CertID {
  const spki = AsnConvert.parse(ca.publicKey.rawData, SubjectPublicKeyInfo);
  return new CertID({
    hashAlgorithm: new AlgorithmIdentifier({ algorithm: '1.3.14.3.2.26', parameters: null }),
    issuerNameHash: new OctetString(createHash('sha1').update(new Uint8Array(ca.subjectName.toArrayBuffer())).digest()),
    issuerKeyHash: new OctetString(createHash('sha1').update(new Uint8Array(spki.subjectPublicKey)).digest()),
    serialNumber: new Uint8Array(Buffer.from(serialHex.length % 2 ? `0${serialHex}` : serialHex, 'hex')).buffer,
  });
}

function ocspRequest(id: CertID, nonce: boolean): Buffer {
  const ext = nonce ? [new Extension({ extnID: id_pkix_ocsp_nonce, critical: false, extnValue: new OctetString(AsnConvert.serialize(new OctetString(randomBytes(16)))) })] : undefined;
  return Buffer.from(AsnConvert.serialize(new OCSPRequest({ tbsRequest: new TBSRequest({ requestList: [new Request({ reqCert: id })], ...(ext ? { requestExtensions: ext } : {}) }) })));
}

/** The certificate status an answer gives, read with the same library a client would use. */
function statusOf(der: Buffer): Expect | 'error' {
  const res = AsnConvert.parse(der, OCSPResponse);
  if (res.responseStatus !== 0 || !res.responseBytes) return 'error';
  const status = AsnConvert.parse(res.responseBytes.response.buffer, BasicOCSPResponse).tbsResponseData.responses[0]!.certStatus;
  return status.good !== undefined ? 'good' : status.revoked ? 'revoked' : 'unknown';
}

function post(agent: Agent, base: URL, body: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = request({ agent, host: base.hostname, port: base.port, method: 'POST', path: '/ocsp', headers: { 'content-type': 'application/ocsp-request', 'content-length': body.length } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Signatures per second with the responder key over an answer-sized message, one core, 2 s. */
function rawSignRate(dataDir: string): number {
  const text = readFileSync(join(dataDir, 'ca', 'ocsp.pem'), 'utf8');
  const keyPem = /-----BEGIN ENCRYPTED PRIVATE KEY-----[\s\S]+?-----END ENCRYPTED PRIVATE KEY-----/.exec(text)![0];
  const key = createPrivateKey({ key: keyPem, passphrase: CA_PASSPHRASE });
  const tbs = Buffer.alloc(250, 7);
  const start = process.hrtime.bigint();
  let runs = 0;
  while (Number(process.hrtime.bigint() - start) < 2e9) {
    sign('sha256', tbs, key);
    runs++;
  }
  return runs / (Number(process.hrtime.bigint() - start) / 1e9);
}

async function measure(caKey: string): Promise<Row[]> {
  const dataDir = tempDir('cardlink-bench-ocsp-');
  const server = await spawnServe(dataDir, undefined, ['--ca-key', caKey, '--revocation-port', '0']);
  const rows: Row[] = [];
  try {
    const caPem = readFileSync(join(dataDir, 'ca', 'cert.pem'), 'utf8');
    const ca = new x509.X509Certificate(caPem);
    const client = new ServiceClient({ server: server.url, ca: caPem, maxSockets: 16 });
    const op = await login(client);
    // Certificates to ask about: issued through the service, every third one revoked.
    const issued = await pool(Array.from({ length: ISSUED }, (_, i) => i), 16, async (i) => {
      const token = await makeToken(client, op, `o${i}@example.com`, 'smartcard-logon-auto');
      const answer = await client.submit(token, { csr: (await softKey()).csrPem });
      if (i % 3 === 2) await client.revoke(op, answer.value.id, 1);
      return { serial: answer.value.serial!, expect: (i % 3 === 2 ? 'revoked' : 'good') as Expect };
    });
    client.close();
    const targets = [...issued, ...Array.from({ length: UNKNOWN }, () => ({ serial: randomBytes(16).toString('hex').replace(/^0+/, ''), expect: 'unknown' as Expect }))];
    // Mixed: good, revoked and unknown interleaved.
    targets.sort(() => Math.random() - 0.5);
    const ids = targets.map((t) => certId(ca, t.serial));
    const base = new URL(server.revocationUrl!);
    for (const mode of ['cached', 'signed'] as const) {
      for (const concurrency of LEVELS) {
        const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
        const n = PER_LEVEL[concurrency]!;
        const bodies = mode === 'cached' ? ids.map((id) => ocspRequest(id, false)) : undefined;
        // Warm the connections and, for `cached`, the responder's cache: one answer per serial.
        if (bodies) await pool(bodies, concurrency, (b) => post(agent, base, b));
        else await pool(Array.from({ length: concurrency }, (_, i) => i), concurrency, (i) => post(agent, base, ocspRequest(ids[i % ids.length]!, true)));
        const latencies: number[] = [];
        const deadline = Date.now() + MAX_SECONDS * 1000;
        const start = process.hrtime.bigint();
        await pool(Array.from({ length: n }, (_, i) => i), concurrency, async (i) => {
          if (Date.now() > deadline) return;
          const k = i % ids.length;
          const body = bodies ? bodies[k]! : ocspRequest(ids[k]!, true);
          const t = process.hrtime.bigint();
          const der = await post(agent, base, body);
          latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
          // Every 25th answer is read back: the bench measures real answers, not errors.
          if (i % 25 === 0 && statusOf(der) !== targets[k]!.expect) throw new Error(`serial ${targets[k]!.serial}: ${statusOf(der)}, expected ${targets[k]!.expect}`);
        });
        const seconds = Number(process.hrtime.bigint() - start) / 1e9;
        agent.destroy();
        latencies.sort((a, b) => a - b);
        const at = (q: number): number => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]! * 100) / 100;
        rows.push({ caKey, mode, concurrency, responses: latencies.length, perSecond: Math.round(latencies.length / seconds), p50ms: at(0.5), p99ms: at(0.99) });
      }
    }
  } finally {
    server.child.kill('SIGTERM');
    await server.exited;
  }
  // The responder key alone, right after its service stopped (so they do not share the CPU).
  const raw = Math.round(rawSignRate(dataDir));
  for (const r of rows) r.rawSignPerSecond = raw;
  return rows;
}

const rows: Row[] = [];
for (const caKey of CA_KEYS) rows.push(...(await measure(caKey)));
console.log('OCSP responses per second from `cardlink serve --revocation-port` (HTTP POST over loopback, keep-alive, SQLite),');
console.log(`${ISSUED} issued serials (a third revoked) and ${UNKNOWN} unknown ones, mixed; cached: no nonce, answers reused until the next CRL;`);
console.log('signed: a fresh nonce each time, every answer signed; rawSignPerSecond: the responder key alone, sign only, same run');
console.table(rows);
