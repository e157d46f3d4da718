import type { Command } from './io.js';

/** Every CLI command, in the order `cardlink --help` lists them. */
export const commands: Command[] = [];
