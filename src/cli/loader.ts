import type { CommandSpec, Handler } from './spec.js';

/**
 * The command modules, loaded on demand. Typed loosely on purpose: their handlers' types come
 * from `specs`, so `specs` (catalog.ts) cannot take its type from them; test/cli/help.test.ts loads each one.
 */
export const MODULES: Record<CommandSpec['module'], () => Promise<Record<string, unknown>>> = {
  demo: () => import('./commands/demo.js'),
  card: () => import('./commands/card.js'),
  emulate: () => import('./commands/emulate.js'),
  serve: () => import('./commands/serve.js'),
  admin: () => import('./commands/admin.js'),
  enroll: () => import('./commands/enroll.js'),
  collect: () => import('./commands/collect.js'),
  agent: () => import('./commands/agent.js'),
  link: () => import('./commands/link.js'),
  doctor: () => import('./commands/doctor.js'),
  lifecycle: () => import('./commands/lifecycle.js'),
};

/** The handler of a command, loaded with its module. */
export async function loadHandler(spec: CommandSpec): Promise<Handler> {
  const handler = (await MODULES[spec.module]())[spec.handler];
  if (typeof handler !== 'function') throw new Error(`cardlink: no handler ${spec.module}.${spec.handler}`);
  return handler as Handler;
}

