// The CertStoreHost contract against the model store (registry as files in a temporary directory).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { ModelCertStoreHost } from '../../src/windows/model/store.js';
import { CONTRACT_MARKER, defineContractSuite } from './contract.js';
import { makeCertificate } from './fixtures/certs.js';
import type { ReadBack } from './fixtures/json.js';

const dir = mkdtempSync(join(tmpdir(), 'cardlink-contract-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const certificates = await Promise.all([0, 1, 2, 3, 4, 5, 6].map(async (i) => (await makeCertificate(`${CONTRACT_MARKER} ${i}`)).der));

defineContractSuite({
  flavor: 'model',
  certificates,
  openHost: async () => new ModelCertStoreHost({ stateDir: dir }),
  readBack: async (thumbprint): Promise<ReadBack> => {
    const out = join(dir, `readback-${thumbprint}.json`);
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'test/windows/fixtures/read-store.ts', `model:${dir}`, thumbprint, out], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`read-store failed: ${r.stderr}`);
    return JSON.parse(readFileSync(out, 'utf8')) as ReadBack;
  },
});
