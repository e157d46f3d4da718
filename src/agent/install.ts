/**
 * How the agent runs as a service: a hardened systemd unit on Linux, and on Windows a Task
 * Scheduler task started at the user's logon (the store it links into is the user's own
 * CurrentUser\My, so it must run as that user, in that user's session).
 */

export interface LaunchCommand {
  /** Absolute path of the Node.js executable. */
  node: string;
  /** Absolute path of cardlink's entry script (bin/cardlink or dist/cli/main.js). */
  script: string;
  /** Absolute path of the agent's config file. */
  config: string;
}

/** systemd wants ExecStart words quoted when they hold spaces or quotes (systemd.service(5)). */
function systemdWord(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word.replace(/%/g, '%%');
  return `"${word.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/%/g, '%%')}"`;
}

/**
 * The unit `cardlink agent install --systemd` writes. Hardening per systemd.exec(5): no new
 * privileges, a read-only system and home, a private /tmp, only the socket families it needs
 * (AF_UNIX for pcscd, IP for the service), and a dedicated state directory for its lock and status
 * (docs/sources.md#systemd-exec). The PIN comes as the credential `cardlink-pin`
 * (LoadCredential=), never through the environment or the command line.
 */
export function systemdUnit(cmd: LaunchCommand, o: { user?: string; pinCredential?: string } = {}): string {
  const exec = [cmd.node, cmd.script, 'agent', 'run', '--config', cmd.config, '--json'].map(systemdWord).join(' ');
  return [
    '[Unit]',
    'Description=cardlink workstation agent: collects, installs and links smart card certificates',
    'Documentation=man:systemd.exec(5)',
    'Wants=pcscd.socket network-online.target',
    'After=pcscd.socket network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${exec}`,
    ...(o.user ? [`User=${o.user}`] : []),
    'Restart=on-failure',
    'RestartSec=5s',
    'StateDirectory=cardlink-agent',
    'StateDirectoryMode=0700',
    'Environment=CARDLINK_HOME=%S/cardlink-agent',
    ...(o.pinCredential ? [`LoadCredential=cardlink-pin:${o.pinCredential}`] : []),
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'ProtectHome=read-only',
    'PrivateTmp=yes',
    'PrivateDevices=yes',
    'ProtectKernelTunables=yes',
    'ProtectKernelModules=yes',
    'ProtectKernelLogs=yes',
    'ProtectControlGroups=yes',
    'ProtectClock=yes',
    'ProtectHostname=yes',
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6',
    'RestrictNamespaces=yes',
    'RestrictRealtime=yes',
    'RestrictSUIDSGID=yes',
    'LockPersonality=yes',
    'SystemCallArchitectures=native',
    'CapabilityBoundingSet=',
    'UMask=0077',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

function xmlText(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Windows command-line quoting for one argument (CommandLineToArgvW rules). */
function windowsArg(arg: string): string {
  if (arg !== '' && !/[\s"]/.test(arg)) return arg;
  return `"${arg.replace(/(\\*)"/g, '$1$1\\"').replace(/(\\+)$/, '$1$1')}"`;
}

/**
 * The task `cardlink agent install --windows-task` writes, for `schtasks /Create /XML FILE /TN
 * cardlink-agent`: Task Scheduler schema 1.2, started by the user's logon (LogonTrigger with the
 * user's id), run as that user with their interactive token and least privilege, never stopped
 * for running long, restarted when it fails, one instance at a time. Shaped after Microsoft's
 * "Logon Trigger Example (XML)" (docs/sources.md#task-scheduler-logon).
 */
export function windowsTaskXml(cmd: LaunchCommand, o: { user: string; now?: Date }): string {
  const args = [cmd.script, 'agent', 'run', '--config', cmd.config, '--json'].map(windowsArg).join(' ');
  const date = (o.now ?? new Date()).toISOString().replace(/\.\d{3}Z$/, '');
  return [
    '<?xml version="1.0" encoding="UTF-16"?>',
    '<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">',
    '  <RegistrationInfo>',
    `    <Date>${date}</Date>`,
    '    <Author>cardlink</Author>',
    '    <Description>cardlink workstation agent: collects, installs and links this user\'s smart card certificates</Description>',
    '  </RegistrationInfo>',
    '  <Triggers>',
    '    <LogonTrigger>',
    '      <Enabled>true</Enabled>',
    `      <UserId>${xmlText(o.user)}</UserId>`,
    '    </LogonTrigger>',
    '  </Triggers>',
    '  <Principals>',
    '    <Principal id="Author">',
    `      <UserId>${xmlText(o.user)}</UserId>`,
    '      <LogonType>InteractiveToken</LogonType>',
    '      <RunLevel>LeastPrivilege</RunLevel>',
    '    </Principal>',
    '  </Principals>',
    '  <Settings>',
    '    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>',
    '    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>',
    '    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>',
    '    <AllowHardTerminate>true</AllowHardTerminate>',
    '    <StartWhenAvailable>true</StartWhenAvailable>',
    '    <AllowStartOnDemand>true</AllowStartOnDemand>',
    '    <Enabled>true</Enabled>',
    '    <Hidden>false</Hidden>',
    '    <ExecutionTimeLimit>PT0S</ExecutionTimeLimit>',
    '    <RestartOnFailure>',
    '      <Interval>PT1M</Interval>',
    '      <Count>999</Count>',
    '    </RestartOnFailure>',
    '  </Settings>',
    '  <Actions Context="Author">',
    '    <Exec>',
    `      <Command>${xmlText(cmd.node)}</Command>`,
    `      <Arguments>${xmlText(args)}</Arguments>`,
    '    </Exec>',
    '  </Actions>',
    '</Task>',
    '',
  ].join('\r\n');
}

/** Task Scheduler reads task files as UTF-16 (as `schtasks /Query /XML` writes them): little-endian with a BOM. */
export function utf16le(text: string): Buffer {
  return Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]);
}
