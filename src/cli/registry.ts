import { cardCommands } from './commands/card.js';
import { demoCommand } from './commands/demo.js';
import { emulateCommand } from './commands/emulate.js';
import { adminCommands } from './commands/admin.js';
import { collectCommand } from './commands/collect.js';
import { enrollCommand } from './commands/enroll.js';
import { serveCommand } from './commands/serve.js';
import { doctorCommand } from './commands/doctor.js';
import { linkCommand } from './commands/link.js';
import { agentCommands } from './commands/agent.js';
import type { Command } from './io.js';

/** Every CLI command, in the order `cardlink --help` lists them. */
export const commands: Command[] = [demoCommand, ...cardCommands, emulateCommand, serveCommand, ...adminCommands, enrollCommand, collectCommand, ...agentCommands, linkCommand, doctorCommand];
