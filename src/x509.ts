// @peculiar/x509 resolves its services through tsyringe, which needs the reflect-metadata polyfill
// loaded first. Import X.509 from here, never from '@peculiar/x509' directly.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };
