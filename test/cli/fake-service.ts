import { ServiceClient } from '../../src/service/client.js';

type Methods = Record<string, (...args: never[]) => unknown>;

/**
 * Runs `fn` with ServiceClient methods replaced on the prototype, so a CLI command in process
 * talks to these answers instead of a server: the CLI under test then prints exactly what a
 * (hostile or older) service could send. Login and logout are answered unless given.
 * The originals come back whatever happens.
 */
export async function withFakeService<T>(methods: Methods, fn: () => Promise<T>): Promise<T> {
  const proto = ServiceClient.prototype as unknown as Record<string, unknown>;
  const all: Methods = { login: async () => ({ token: 'cls_fake', expiresAt: '2099-01-01T00:00:00.000Z' }), logout: async () => undefined, ...methods };
  const saved = new Map<string, { had: boolean; value: unknown }>();
  for (const [name, impl] of Object.entries(all)) {
    saved.set(name, { had: Object.prototype.hasOwnProperty.call(proto, name), value: proto[name] });
    proto[name] = impl;
  }
  try {
    return await fn();
  } finally {
    for (const [name, { had, value }] of saved) {
      if (had) proto[name] = value;
      else delete proto[name];
    }
  }
}

/** A server address nothing listens on: the fakes answer before any connection is made. */
export const NOWHERE = ['--server', 'https://127.0.0.1:9', '--operator', 'admin'];
export const OPERATOR_ENV = { CARDLINK_OPERATOR_PASSWORD: 'not used by the fakes' };
