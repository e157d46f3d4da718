import { command, type CommandSpec, type Handler, type OptionTable } from './spec.js';


/**
 * Every CLI command: its words, what it does, the options it takes (the table that both parses
 * and documents them), the environment it reads, and one example. Implementations load on demand
 * (each `load`), so `cardlink --help` and a typo cost no more than this file.
 */

const TARGET = {
  image: { type: 'string', value: 'FILE', help: "an emulated card's image file (made by 'card init --image FILE')" },
  reader: { type: 'string', value: 'NAME', help: 'the PC/SC reader, by a unique part of its name', default: 'the only reader that holds a GIDS or PIV card' },
} as const satisfies OptionTable;

/** TARGET for the card commands that speak both card applications (docs/piv.md). */
const CARD_TARGET = {
  ...TARGET,
  app: { type: 'string', value: 'APP', help: 'the card application to use', choices: ['gids', 'piv'], default: "an image's own; on a reader GIDS, else PIV" },
} as const satisfies OptionTable;

/** The PIV card management key, for the commands that write a PIV card; the key itself comes from CARDLINK_MGMT_KEY or a prompt. */
const MGMT = {
  'mgmt-alg': { type: 'string', value: 'ALG', help: 'PIV: the management key algorithm', choices: ['3des', 'aes128', 'aes192', 'aes256'], default: '3des' },
  'default-mgmt-key': { type: 'boolean', help: "PIV: use the well-known factory management key (warns: anyone can change such a card)" },
} as const satisfies OptionTable;

const CONNECT = {
  server: { type: 'string', value: 'URL', help: 'the enrollment service, e.g. https://ca.example.com:8443', env: 'CARDLINK_SERVER' },
  cacert: { type: 'string', value: 'FILE', help: "trust this CA for the service's TLS certificate (serve prints its path)", env: 'CARDLINK_CACERT', default: "the system's trust store" },
} as const satisfies OptionTable;

const OPERATOR = {
  ...CONNECT,
  operator: { type: 'string', value: 'NAME', help: 'the operator to log in as', env: 'CARDLINK_OPERATOR', default: 'admin' },
} as const satisfies OptionTable;

const AGENT_CONFIG = {
  config: { type: 'string', value: 'FILE', help: "the agent's configuration file", env: 'CARDLINK_AGENT_CONFIG', default: '$CARDLINK_HOME/agent.json' },
} as const satisfies OptionTable;

const STORE = {
  store: { type: 'string', value: 'SPEC', help: "the certificate store: 'model:DIR' (the Windows model in DIR) or, on Windows, 'native'", default: 'native on Windows' },
} as const satisfies OptionTable;

/** The RSA sizes a GIDS card generates on board (src/gids/protocol/constants.ts ALG_RSA); RSA only, see the README. */
export const KEY_ALGORITHMS = ['rsa2048', 'rsa3072', 'rsa4096', 'rsa1024'] as const;

/** RFC 5280 §5.3.1 CRLReason codes an operator may give (8, removeFromCRL, is for delta CRLs only). */
export const REVOKE_REASONS = ['0 unspecified', '1 keyCompromise', '2 cACompromise', '3 affiliationChanged', '4 superseded', '5 cessationOfOperation', '6 certificateHold', '9 privilegeWithdrawn', '10 aACompromise'] as const;

const REQUEST_STATES = ['pending', 'approved', 'issuing', 'issued', 'delivered', 'rejected', 'revoked'] as const;

/** The card life cycle (src/service/storage/cards.ts CARD_MOVES): states, moves, and the reasons a lost card is revoked with. */
export const CARD_STATES = ['active', 'suspended', 'lost', 'retired'] as const;

/** Operator roles, least first (protocol.ts OPERATOR_ROLES; copied so help loads no service code, test/cli/operators.test.ts compares). */
export const OPERATOR_ROLES = ['viewer', 'approver', 'admin'] as const;
export const CARD_ACTIONS = ['lost', 'suspend', 'resume', 'retire'] as const;
export const LOST_REASONS = ['keyCompromise', 'cessationOfOperation'] as const;

const PIN_ENV = ['CARDLINK_PIN', 'CARDLINK_HOME'] as const;

const RETIRE_OPTIONS = {
  ...TARGET,
  ...OPERATOR,
  ...STORE,
  card: { type: 'string', value: 'CARDID', help: 'the card id (32 hex digits): checked against the card present' },
  yes: { type: 'boolean', help: 'do not ask (needed without a terminal): the keys cannot be recovered' },
} as const satisfies OptionTable;

const RETIRE_DESCRIPTION =
  "With the card in this workstation's reader (or --image): the service marks the card retired, revokes its certificates (cessationOfOperation) and answers its administrator challenge; the card loses every container with its key and certificate, gets the transport key back and the next user's initial PIN (CARDLINK_NEW_PIN, or asked twice); its cardcf counters move so every cache drops the old content; the store (--store) forgets its certificates. It can then be enrolled again by anyone.";

/** `card retire` and its former name `admin retire-card`: one command under two paths. */
const RETIRE = {
  description: RETIRE_DESCRIPTION,
  options: RETIRE_OPTIONS,
  env: ['CARDLINK_OPERATOR_PASSWORD', 'CARDLINK_SESSION', 'CARDLINK_NEW_PIN', 'CARDLINK_HOME'],
  exits: { 1: 'declined at the question: nothing done' },
  module: 'lifecycle',
  handler: 'retire',
} as const;

export const specs = {
  demo: command({
    path: ['demo'],
    summary: 'run the seed story on an emulated card (no reader or server needed)',
    description: 'Runs the whole story (card, service, enrollment, approval, collection, Windows link) on an emulated card and a service on loopback, and prints each step.',
    options: {
      dir: { type: 'string', value: 'DIR', help: 'keep the demo files (card image, service data) in DIR', default: 'a new temporary directory' },
      keep: { type: 'boolean', help: "keep the story's service running afterwards and print the operator console's URL and a one-time operator password, until Ctrl-C" },
    },
    examples: ['cardlink demo --dir /tmp/story', 'cardlink demo --keep'],
    module: 'demo',
    handler: 'demo',
  }),
  cardInit: command({
    path: ['card', 'init'],
    summary: 'initialise a blank card with a PIN and an administrator key',
    description: 'Initialises a blank GIDS card (or makes a new image file): sets the PIN and the administrator key, and creates the minidriver files (cardid, cardcf, cardapps, mscp/cmapfile). The PIN is 4 to 15 characters (OpenSC\'s GIDS driver accepts no more than 15).',
    options: { ...TARGET, serial: { type: 'string', value: 'HEX32', help: 'the card serial (cardid), 32 hex digits', default: 'random' } },
    env: ['CARDLINK_PIN', 'CARDLINK_ADMIN_KEY', 'CARDLINK_HOME'],
    examples: ['CARDLINK_PIN=123456 CARDLINK_ADMIN_KEY=$(openssl rand -hex 24) cardlink card init --image card.json'],
    module: 'card',
    handler: 'init',
  }),
  cardInfo: command({
    path: ['card', 'info'],
    summary: 'card identity, freshness counters and PIN status (PIV: CHUID GUID, slots, PIN and PUK)',
    options: CARD_TARGET,
    env: ['CARDLINK_HOME'],
    examples: ['cardlink card info --image card.json'],
    module: 'card',
    handler: 'info',
  }),
  cardLs: command({
    path: ['card', 'ls'],
    summary: 'list containers and their certificates (subject, issuer, validity, thumbprint)',
    description: 'Lists the key containers (index, name, key spec, key size, default) and, for each certificate, its subject, issuer, validity and SHA-1 thumbprint, as certutil -scinfo shows them. On a PIV card the containers are its key slots, named as Windows\' PIV minidriver names them (docs/piv.md).',
    options: CARD_TARGET,
    env: ['CARDLINK_HOME'],
    examples: ['cardlink card ls --image card.json', 'cardlink card ls --reader Yubico --app piv'],
    module: 'card',
    handler: 'ls',
  }),
  cardGen: command({
    path: ['card', 'gen'],
    summary: 'create a container (GIDS) or a slot key (PIV) and generate it on the card',
    description: 'Creates a key container and has the card generate its key pair (the private key never leaves the card). GIDS keys are RSA only in cardlink. On a PIV card --container names the slot (9a, 9c, 9d, 9e, 82-95, or its container name), the key is RSA-2048 or ECC (--curve p256|p384), and the management key is needed instead of the PIN. Status goes to stderr; the public key (PEM) goes to --out, or to stdout with --out -.',
    options: {
      ...CARD_TARGET,
      ...MGMT,
      container: { type: 'string', value: 'NAME', help: 'the container name', default: "a Windows-style 'lr-<GUID>' name" },
      alg: { type: 'string', value: 'ALG', help: 'RSA key size (rsa1024 is weak: only for tests; PIV slots take rsa2048)', choices: KEY_ALGORITHMS, default: 'rsa2048' },
      keyspec: { type: 'string', value: 'SPEC', help: 'kx: AT_KEYEXCHANGE (sign and decrypt), sig: AT_SIGNATURE', choices: ['kx', 'sig'], default: 'kx' },
      curve: { type: 'string', value: 'CURVE', help: 'PIV: an ECC key on this curve instead of RSA (SP 800-78-4)', choices: ['p256', 'p384'] },
      default: { type: 'boolean', help: "make it the card's default container" },
      out: { type: 'string', value: 'FILE', help: "write the public key (PEM) to FILE; '-' for stdout" },
    },
    env: ['CARDLINK_PIN', 'CARDLINK_MGMT_KEY', 'CARDLINK_HOME'],
    examples: ['cardlink card gen --image card.json --container alice --out alice.pub.pem', 'CARDLINK_MGMT_KEY=... cardlink card gen --image piv.json --container 9a --curve p256'],
    module: 'card',
    handler: 'gen',
  }),
  cardCsr: command({
    path: ['card', 'csr'],
    summary: 'build a PKCS#10 request signed by a container key on the card',
    description: 'Builds a PKCS#10 certificate request for a container\'s key and has the card sign it. --subject is an RFC 4514 name as openssl -nameopt RFC2253 and certreq show it: the first RDN is the most specific (CN=Alice,O=Example,C=DE).',
    options: {
      ...CARD_TARGET,
      container: { type: 'string', value: 'NAME', help: 'the container whose key is certified' },
      subject: { type: 'string', value: 'DN', help: 'the subject, RFC 4514: CN, O, OU, L, ST, C (2 letters), E, UID, SERIALNUMBER, DC, ...' },
      out: { type: 'string', value: 'FILE', help: 'where the request (PEM) is written' },
    },
    env: PIN_ENV,
    examples: ['cardlink card csr --image card.json --container alice --subject "CN=Alice,O=Example,C=DE" --out alice.csr'],
    module: 'card',
    handler: 'csr',
  }),
  cardInstall: command({
    path: ['card', 'install'],
    summary: 'load a certificate into the container that holds its key, Windows-ready',
    description: 'Loads a certificate onto the card, into the container whose key it certifies. CERT may be PEM, DER, bare base64, PKCS#7 (.p7b, PEM or DER) or a chain in any order: the certificate whose key is on the card is installed, the others are named and left out (--roots puts CA certificates into msroots). PKCS#12 is refused: keys never come from files. The same certificate again is "unchanged" and writes nothing. On a PIV card the certificate goes into the slot whose key it certifies (checked against the key cardlink recorded at gen, or the certificate there), with the management key; a card without a CHUID gets one first, and Windows sees the certificate once the card is re-inserted.',
    positionals: [{ name: 'CERT', help: 'the certificate file (PEM, DER, base64, PKCS#7 or a chain)' }],
    options: {
      ...CARD_TARGET,
      ...MGMT,
      container: { type: 'string', value: 'NAME', help: 'the container (checked against the key)', default: 'the container that holds the key' },
      default: { type: 'boolean', help: "make it the card's default container" },
      force: { type: 'boolean', help: 'install even an expired, not yet valid or CA certificate, or one older than the one it replaces' },
      roots: { type: 'boolean', help: 'also put the CA certificates of the file into mscp/msroots' },
      verify: { type: 'boolean', help: "read the file back and compare it byte for byte (the card's answer to the write is the proof otherwise)" },
    },
    env: ['CARDLINK_PIN', 'CARDLINK_MGMT_KEY', 'CARDLINK_HOME'],
    examples: ['cardlink card install alice.p7b --image card.json'],
    module: 'card',
    handler: 'install',
  }),
  cardExport: command({
    path: ['card', 'export'],
    summary: "write a container's certificate (PEM, or DER with --der)",
    options: {
      ...CARD_TARGET,
      container: { type: 'string', value: 'NAME', help: 'the container whose certificate is exported' },
      der: { type: 'boolean', help: 'DER instead of PEM' },
      out: { type: 'string', value: 'FILE', help: 'write to FILE', default: 'stdout' },
    },
    env: ['CARDLINK_HOME'],
    examples: ['cardlink card export --image card.json --container alice --out alice.pem'],
    module: 'card',
    handler: 'exportCert',
  }),
  cardRmCert: command({
    path: ['card', 'rm-cert'],
    summary: "delete a container's certificate (the key stays)",
    options: { ...CARD_TARGET, ...MGMT, container: { type: 'string', value: 'NAME', help: 'the container' } },
    env: ['CARDLINK_PIN', 'CARDLINK_MGMT_KEY', 'CARDLINK_HOME'],
    examples: ['cardlink card rm-cert --image card.json --container alice'],
    module: 'card',
    handler: 'rmCert',
  }),
  cardRmContainer: command({
    path: ['card', 'rm-container'],
    summary: 'delete a container, its key and its certificate (asks first)',
    options: { ...TARGET, container: { type: 'string', value: 'NAME', help: 'the container' }, yes: { type: 'boolean', help: 'do not ask (needed without a terminal): the key cannot be recovered' } },
    env: PIN_ENV,
    exits: { 1: 'declined at the question: nothing deleted' },
    examples: ['cardlink card rm-container --image card.json --container old --yes'],
    module: 'card',
    handler: 'rmContainer',
  }),
  cardCheck: command({
    path: ['card', 'check'],
    summary: 'find (and with --repair fix) inconsistencies in the minidriver files (GIDS) or PIV objects',
    options: { ...CARD_TARGET, ...MGMT, repair: { type: 'boolean', help: 'fix what can be fixed (GIDS: PIN, CARDLINK_ADMIN_KEY for what needs the administrator; PIV: the management key)' } },
    env: ['CARDLINK_PIN', 'CARDLINK_ADMIN_KEY', 'CARDLINK_MGMT_KEY', 'CARDLINK_HOME'],
    exits: { 1: 'findings (after --repair: findings left)', 2: 'could not check' },
    examples: ['cardlink card check --image card.json --repair'],
    module: 'card',
    handler: 'check',
  }),
  cardPin: command({
    path: ['card', 'pin'],
    summary: 'PIN verify | change | unblock | status',
    description: 'verify checks the PIN (costs a try when wrong); change sets CARDLINK_NEW_PIN after the PIN; unblock sets a new PIN with the administrator key (GIDS) or the PUK (PIV, CARDLINK_PUK); status shows the tries left.',
    positionals: [{ name: 'ACTION', help: 'what to do', choices: ['verify', 'change', 'unblock', 'status'] }],
    options: CARD_TARGET,
    env: ['CARDLINK_PIN', 'CARDLINK_NEW_PIN', 'CARDLINK_ADMIN_KEY', 'CARDLINK_PUK', 'CARDLINK_HOME'],
    examples: ['cardlink card pin unblock --image card.json'],
    module: 'card',
    handler: 'pin',
  }),
  cardUnblock: command({
    path: ['card', 'unblock'],
    summary: 'unblock the PIN by challenge/response: --challenge (the help desk reads back a response) or --online (the service, with an unblock ticket)',
    description:
      "Windows' way of unblocking (CardGetChallenge, CardAuthenticateChallenge, CardUnblockPin): the card's challenge is answered by whoever holds this card's administrator key, then the new PIN is set, in one card session. With --challenge the card id and challenge are shown and the response is asked on the terminal; with --online the service answers, given a one-time ticket ('cardlink admin unblock-ticket'). The new PIN comes from CARDLINK_NEW_PIN or is asked twice.",
    options: {
      ...TARGET,
      ...CONNECT,
      challenge: { type: 'boolean', help: 'show the challenge for the help desk and ask for their response (needs a terminal)' },
      online: { type: 'boolean', help: 'ask the service for the response, with the ticket in CARDLINK_UNBLOCK_TICKET (or asked)' },
    },
    env: ['CARDLINK_NEW_PIN', 'CARDLINK_UNBLOCK_TICKET', 'CARDLINK_HOME'],
    examples: ['cardlink card unblock --challenge --image card.json', 'CARDLINK_UNBLOCK_TICKET=... cardlink card unblock --online --server https://ca.example.com:8443'],
    module: 'card',
    handler: 'unblock',
  }),
  cardFiles: command({
    path: ['card', 'files'],
    summary: 'the logical file system with sizes (PIV: its data objects, read-only)',
    options: CARD_TARGET,
    env: ['CARDLINK_HOME'],
    examples: ['cardlink card files --image card.json'],
    module: 'card',
    handler: 'files',
  }),
  cardFilesRead: command({
    path: ['card', 'files', 'read'],
    summary: 'read a logical file (to --out, or hex on stdout)',
    positionals: [{ name: 'PATH', help: 'the file, e.g. mscp/cmapfile' }],
    options: { ...TARGET, out: { type: 'string', value: 'FILE', help: 'write the bytes to FILE', default: 'hex on stdout' } },
    env: ['CARDLINK_HOME'],
    examples: ['cardlink card files read mscp/cmapfile --image card.json'],
    module: 'card',
    handler: 'fileRead',
  }),
  cardFilesWrite: command({
    path: ['card', 'files', 'write'],
    summary: 'write a logical file from a local file (moves the cardcf files counter)',
    positionals: [{ name: 'PATH', help: 'the file, e.g. mscp/msroots' }],
    options: {
      ...TARGET,
      in: { type: 'string', value: 'FILE', help: 'the local file to write' },
      force: { type: 'boolean', help: 'needed for the minidriver core files (cardid, cardcf, cardapps, mscp/cmapfile)' },
    },
    env: PIN_ENV,
    examples: ['cardlink card files write mscp/msroots --in roots.sst --image card.json'],
    module: 'card',
    handler: 'fileWrite',
  }),
  cardFilesRm: command({
    path: ['card', 'files', 'rm'],
    summary: 'delete a logical file (moves the cardcf files counter)',
    positionals: [{ name: 'PATH', help: 'the file' }],
    options: { ...TARGET, force: { type: 'boolean', help: 'needed for the minidriver core files (cardid, cardcf, cardapps, mscp/cmapfile)' } },
    env: PIN_ENV,
    examples: ['cardlink card files rm mscp/msroots --image card.json'],
    module: 'card',
    handler: 'fileRm',
  }),
  emulate: command({
    path: ['emulate'],
    summary: 'put an emulated card (image file) into pcscd through vpcd, until stopped',
    description: 'Puts the card of an image file into a real reader (vpcd\'s virtual slot inside pcscd) until SIGTERM or SIGINT. SIGUSR2 removes the card and the next one re-inserts it. While it runs, other commands cannot write the same image. The card application is GIDS or PIV (--app, for a new image; an existing image records which it holds).',
    options: {
      image: { type: 'string', value: 'FILE', help: 'the card image (made blank when missing)' },
      app: { type: 'string', value: 'APP', help: 'the card application of a new image (an existing one keeps its own)', choices: ['gids', 'piv'], default: 'gids' },
      vpcd: { type: 'string', value: 'HOST:PORT', help: "vpcd's address", default: '127.0.0.1:35963' },
    },
    env: ['CARDLINK_HOME'],
    examples: ['cardlink emulate --image card.json &'],
    module: 'emulate',
    handler: 'emulate',
  }),
  serve: command({
    path: ['serve'],
    summary: 'run the enrollment service (EST + JSON API over HTTPS, embedded CA)',
    options: {
      data: { type: 'string', value: 'DIR', help: 'CA, TLS key and SQLite database', env: 'CARDLINK_DATA', default: '$CARDLINK_HOME/service' },
      db: { type: 'string', value: 'URL', help: 'postgres://user@host:port/db, or sqlite:/path/file.db', default: 'DIR/cardlink.db' },
      listen: { type: 'string', value: 'HOST:PORT', help: 'address to listen on', default: '127.0.0.1:8443' },
      'public-url': { type: 'string', value: 'URL', help: 'the URL clients use, when not the listening address' },
      'revocation-port': { type: 'string', value: 'PORT', help: 'also serve the CRL, CA certificate and OCSP over plain HTTP on this port (relying parties fetch them over HTTP); issued certificates then point there' },
      'revocation-url': { type: 'string', value: 'URL', help: 'the base URL relying parties reach /crl, /ocsp and /ca.crt at, when not the revocation listener (e.g. http://pki.example.com)' },
      'retry-after': { type: 'string', value: 'SECONDS', help: 'how long clients wait before asking again about a pending request' },
      'issue-lease': { type: 'string', value: 'SECONDS', help: 'how long one service process holds a request it is issuing' },
      'ca-key': { type: 'string', value: 'KEY', help: 'the key of the embedded CA, when it is made on first start', choices: ['rsa-2048', 'p-256'], default: 'rsa-2048' },
      operator: { type: 'string', value: 'NAME', help: 'the operator created from CARDLINK_OPERATOR_PASSWORD', default: 'admin' },
    },
    env: ['CARDLINK_CA_PASSPHRASE', 'CARDLINK_OPERATOR_PASSWORD', 'CARDLINK_TRANSPORT_KEY', 'CARDLINK_HOME'],
    examples: ['CARDLINK_OPERATOR_PASSWORD=... cardlink serve --listen 127.0.0.1:8443'],
    module: 'serve',
    handler: 'serve',
  }),
  adminLogin: command({
    path: ['admin', 'login'],
    summary: "start an operator session for this shell: eval \"$(cardlink admin login)\" (one login in the audit log, not one per command)",
    description:
      "Logs in once and prints 'export CARDLINK_SESSION=…' for the shell to evaluate; admin commands then use that session (kept only in the shell's environment, never on disk) until 'cardlink admin logout' or its expiry. Without it every admin command logs in and out, and the audit log records a session for each.",
    options: { ...OPERATOR },
    env: ['CARDLINK_OPERATOR_PASSWORD'],
    examples: ['eval "$(cardlink admin login --server https://127.0.0.1:8443 --cacert ca.pem)"'],
    module: 'admin',
    handler: 'login',
  }),
  adminLogout: command({
    path: ['admin', 'logout'],
    summary: 'end the operator session in CARDLINK_SESSION: eval "$(cardlink admin logout)"',
    options: { ...CONNECT },
    env: ['CARDLINK_SESSION'],
    examples: ['eval "$(cardlink admin logout)"'],
    module: 'admin',
    handler: 'logout',
  }),
  adminOperatorAdd: command({
    path: ['admin', 'operator', 'add'],
    summary: 'create an operator with a role (viewer: reads; approver: decides requests, tokens, unblocks, card moves; admin: everything)',
    description:
      "Creates an operator who can sign in to the console (/console/) and use the admin commands. The password (12 characters or more) comes from CARDLINK_NEW_OPERATOR_PASSWORD or is asked twice on a terminal; it is never an option. Only an admin may create operators.",
    positionals: [{ name: 'NAME', help: 'the new operator\'s name (letters, digits, . _ -)' }],
    options: {
      ...OPERATOR,
      role: { type: 'string', value: 'ROLE', help: 'what the operator may do', choices: OPERATOR_ROLES, default: 'viewer' },
    },
    env: ['CARDLINK_OPERATOR_PASSWORD', 'CARDLINK_SESSION', 'CARDLINK_NEW_OPERATOR_PASSWORD'],
    examples: ['cardlink admin operator add helpdesk1 --role approver'],
    module: 'admin',
    handler: 'addOperator',
  }),
  adminToken: command({
    path: ['admin', 'token'],
    summary: 'make a one-time enrollment token for a user (printed once)',
    options: {
      ...OPERATOR,
      user: { type: 'string', value: 'UPN', help: 'the user the token enrolls, e.g. alice@example.com' },
      profile: { type: 'string', value: 'NAME', help: 'the certificate profile: smartcard-logon (an operator approves) or smartcard-logon-auto (issued at once), or one the operators made', default: 'smartcard-logon' },
      ttl: { type: 'string', value: 'SECONDS', help: 'how long the token is valid' },
      sid: { type: 'string', value: 'SID', help: "the user's security identifier (S-1-5-21-…, from Get-ADUser): the certificates carry it in the SID extension, the strong mapping domain controllers require (KB5014754); renewals keep it" },
    },
    env: ['CARDLINK_OPERATOR_PASSWORD', 'CARDLINK_SESSION'],
    examples: ['cardlink admin token --server https://127.0.0.1:8443 --cacert ca.pem --user alice@example.com --sid S-1-5-21-1004336348-1177238915-682003330-1105'],
    module: 'admin',
    handler: 'token',
  }),
  adminTokenRevoke: command({
    path: ['admin', 'token', 'revoke'],
    summary: 'revoke an enrollment token that has not been used',
    positionals: [{ name: 'ID', help: "the token's id (in the answer of 'admin token')" }],
    options: OPERATOR,
    env: ['CARDLINK_OPERATOR_PASSWORD', 'CARDLINK_SESSION'],
    examples: ['cardlink admin token revoke 3f2a…'],
    module: 'admin',
    handler: 'tokenRevoke',
  }),
  adminRequests: command({
    path: ['admin', 'requests'],
    summary: 'list enrollment requests (says when more match)',
    options: {
      ...OPERATOR,
      state: { type: 'string', value: 'STATE', help: 'only requests in this state', choices: REQUEST_STATES },
      user: { type: 'string', value: 'UPN', help: "only this user's requests" },
      limit: { type: 'string', value: 'N', help: 'show at most N rows', default: '100' },
      all: { type: 'boolean', help: 'show every row' },
    },
    env: ['CARDLINK_OPERATOR_PASSWORD', 'CARDLINK_SESSION'],
    examples: ['cardlink admin requests --state pending'],
    module: 'admin',
    handler: 'requests',
  }),
  adminCards: command({
    path: ['admin', 'cards'],
    summary: 'list the cards the service knows: user, state, since when (says when more match)',
    options: {
      ...OPERATOR,
      user: { type: 'string', value: 'UPN', help: "only this user's cards" },
      state: { type: 'string', value: 'STATE', help: 'only cards in this state', choices: CARD_STATES },
      limit: { type: 'string', value: 'N', help: 'show at most N rows', default: '100' },
      all: { type: 'boolean', help: 'show every row' },
    },
    env: ['CARDLINK_OPERATOR_PASSWORD'],
    examples: ['cardlink admin cards --user alice@example.com'],
    module: 'admin',
    handler: 'cards',
  }),
  adminCard: command({
    path: ['admin', 'card'],
    summary: 'show a card (its credentials, strong mappings and history), or move it: lost, suspend, resume, retire',
    description:
      "Without ACTION: the card's record, each credential (request, certificate serial, status, validity, container) with either the SID its certificate carries or the X509:<I>…<SR>… mapping to put in the user's altSecurityIdentities, and the card's history. lost revokes every certificate of the card (--reason) and prints the user's replacement enrollment token, once (--temporary: the short-lived temporary-card profile); suspend puts its certificates on hold (certificateHold) and resume takes the hold off; retire revokes them for good (cessationOfOperation). lost and retire ask first (--yes without a terminal).",
    positionals: [
      { name: 'ID', help: 'the card id (32 hex digits, as admin cards lists it)' },
      { name: 'ACTION', help: 'what to do with the card', choices: CARD_ACTIONS, optional: true },
    ],
    options: {
      ...OPERATOR,
      reason: { type: 'string', value: 'REASON', help: 'lost: the RFC 5280 revocation reason', choices: LOST_REASONS, default: 'keyCompromise' },
      temporary: { type: 'boolean', help: 'lost: the replacement token is for the temporary-card profile (14 days, issued at once, not renewed)' },
      yes: { type: 'boolean', help: 'lost, retire: do not ask (needed without a terminal)' },
    },
    env: ['CARDLINK_OPERATOR_PASSWORD'],
    exits: { 1: 'declined at the question: nothing done' },
    examples: ['cardlink admin card 0123456789abcdef0123456789abcdef lost --reason cessationOfOperation --temporary --yes'],
    module: 'admin',
    handler: 'card',
  }),
  adminExpiring: command({
    path: ['admin', 'expiring'],
    summary: 'certificates valid now that expire within N days, with card, user, profile, days left and renewal state',
    options: { ...OPERATOR, days: { type: 'string', value: 'N', help: 'the horizon in days (0 to 3650)', default: '30' } },
    env: ['CARDLINK_OPERATOR_PASSWORD'],
    examples: ['cardlink admin expiring --days 30 --json'],
    module: 'admin',
    handler: 'expiring',
  }),
  adminApprove: command({
    path: ['admin', 'approve'],
    summary: 'approve a pending request (the CA issues at once)',
    positionals: [{ name: 'ID', help: 'the request id, or a unique prefix of it' }],
    options: OPERATOR,
    env: ['CARDLINK_OPERATOR_PASSWORD', 'CARDLINK_SESSION'],
    examples: ['cardlink admin approve 55e00b71'],
    module: 'admin',
    handler: 'approve',
  }),
  adminReject: command({
    path: ['admin', 'reject'],
    summary: 'reject a pending request',
    positionals: [{ name: 'ID', help: 'the request id, or a unique prefix of it' }],
    options: { ...OPERATOR, reason: { type: 'string', value: 'TEXT', help: 'why (shown to the user by collect)' } },
    env: ['CARDLINK_OPERATOR_PASSWORD', 'CARDLINK_SESSION'],
    examples: ['cardlink admin reject 55e00b71 --reason "wrong user"'],
    module: 'admin',
    handler: 'reject',
  }),
  adminRevoke: command({
    path: ['admin', 'revoke'],
    summary: "revoke a request's certificate (CRL updated)",
    positionals: [{ name: 'ID', help: 'the request id, or a unique prefix of it' }],
    options: { ...OPERATOR, reason: { type: 'string', value: 'CODE', help: `the RFC 5280 reason, by number or name: ${REVOKE_REASONS.join(', ')}`, default: '0 unspecified' } },
    env: ['CARDLINK_OPERATOR_PASSWORD', 'CARDLINK_SESSION'],
    examples: ['cardlink admin revoke 55e00b71 --reason keyCompromise'],
    module: 'admin',
    handler: 'revoke',
  }),
  adminAudit: command({
    path: ['admin', 'audit'],
    summary: 'query the audit log (who, when, what)',
    options: {
      ...OPERATOR,
      subject: { type: 'string', value: 'S', help: 'only entries about this subject (request id, user, ...)' },
      actor: { type: 'string', value: 'A', help: 'only entries by this actor' },
      action: { type: 'string', value: 'A', help: 'only this action, e.g. request.approved' },
      since: { type: 'string', value: 'ISO', help: 'only entries at or after this time (ISO 8601)' },
      sessions: { type: 'boolean', help: 'include operator logins and logouts (session.started/ended: every admin command makes one, so they are left out unless asked for)' },
    },
    env: ['CARDLINK_OPERATOR_PASSWORD', 'CARDLINK_SESSION'],
    examples: ['cardlink admin audit --since 2026-12-01T00:00:00Z'],
    module: 'admin',
    handler: 'audit',
  }),
  adminUnblockResponse: command({
    path: ['admin', 'unblock-response'],
    summary: "the response to a card's unblock challenge, to read back to the user (audited; a few per card per hour)",
    options: {
      ...OPERATOR,
      card: { type: 'string', value: 'CARDID', help: 'the card id the user reads out (32 hex digits)' },
      challenge: { type: 'string', value: 'HEX', help: "the challenge 'card unblock --challenge' shows (16 hex digits)" },
    },
    env: ['CARDLINK_OPERATOR_PASSWORD', 'CARDLINK_SESSION'],
    examples: ['cardlink admin unblock-response --card 0123456789ABCDEF0123456789ABCDEF --challenge "1A2B 3C4D 5E6F 7081"'],
    module: 'admin',
    handler: 'unblockResponse',
  }),
  adminUnblockTicket: command({
    path: ['admin', 'unblock-ticket'],
    summary: "a one-time ticket for the user's 'card unblock --online' (printed once)",
    options: {
      ...OPERATOR,
      card: { type: 'string', value: 'CARDID', help: 'the card the ticket unblocks (32 hex digits)' },
      ttl: { type: 'string', value: 'SECONDS', help: 'how long the ticket is valid' },
    },
    env: ['CARDLINK_OPERATOR_PASSWORD', 'CARDLINK_SESSION'],
    examples: ['cardlink admin unblock-ticket --card 0123456789ABCDEF0123456789ABCDEF --ttl 900'],
    module: 'admin',
    handler: 'unblockTicket',
  }),
  adminRotateAdminKey: command({
    path: ['admin', 'rotate-admin-key'],
    summary: 'a new administrator master key version; cards move to it on their next enrollment',
    options: OPERATOR,
    env: ['CARDLINK_OPERATOR_PASSWORD', 'CARDLINK_SESSION'],
    examples: ['cardlink admin rotate-admin-key'],
    module: 'admin',
    handler: 'rotateAdminKey',
  }),
  adminRetireCard: command({
    ...RETIRE,
    path: ['admin', 'retire-card'],
    summary: "the same as 'card retire' (its former name, kept working)",
    examples: ['cardlink admin retire-card --card 0123456789ABCDEF0123456789ABCDEF --reader Gemalto --yes'],
  }),
  cardRetire: command({
    ...RETIRE,
    path: ['card', 'retire'],
    summary: "retire a card handed back: the service revokes its certificates; every key, container and certificate is deleted; the store forgets them; asks first",
    examples: ['cardlink card retire --card 0123456789ABCDEF0123456789ABCDEF --reader Gemalto --store native'],
  }),
  cardPurge: command({
    path: ['card', 'purge'],
    summary: 'remove expired, revoked or superseded certificates from the card (a dry run unless --yes)',
    description:
      "Lists the certificates that are expired, revoked (the service is asked: each container's key proves itself, as collect does) or superseded by a newer certificate of the same user and issuer on the card, and which stay. With --yes: the default container moves to the newest valid certificate first, then they are removed (with --keys, with their keys and containers) and their store entries go. Without any of --expired, --revoked, --superseded: all that apply (--revoked when a service is given).",
    options: {
      ...TARGET,
      ...CONNECT,
      ...STORE,
      expired: { type: 'boolean', help: 'certificates past their end' },
      revoked: { type: 'boolean', help: 'certificates the service revoked (needs --server and the PIN)' },
      superseded: { type: 'boolean', help: 'certificates a newer one of the same user and issuer on the card replaces' },
      keys: { type: 'boolean', help: 'delete their keys and containers too (cannot be undone)' },
      yes: { type: 'boolean', help: 'act (without it: only list what would go)' },
    },
    env: ['CARDLINK_PIN', 'CARDLINK_HOME'],
    examples: ['cardlink card purge --image card.json --expired --superseded --keys --yes'],
    module: 'lifecycle',
    handler: 'purge',
  }),
  enroll: command({
    path: ['enroll'],
    summary: 'generate a key on the card and request its certificate from the service',
    description: "Checks the token and the service, generates a key on the card (an lr-<GUID> container unless --container) and sends a request signed by it. Then run collect. On a PIV card the key goes into a free slot (9A, else 9D, 82-95) with the management key (CARDLINK_MGMT_KEY, a prompt, or --default-mgmt-key), the card id is the CHUID GUID, and there is no administrator key to re-key (the PUK unblocks).",
    options: {
      ...TARGET,
      ...CONNECT,
      ...MGMT,
      container: { type: 'string', value: 'NAME', help: 'the container name (PIV: the slot, e.g. 9d)', default: "a Windows-style 'lr-<GUID>' name; PIV: the first free of 9A, 9D, 82-95" },
      bits: { type: 'string', value: 'N', help: 'RSA key size (PIV: 2048)', choices: ['2048', '3072', '4096'], default: '2048' },
      token: { type: 'string', value: 'TOKEN', help: 'refused: a command line is visible to every user; set CARDLINK_TOKEN' },
    },
    env: ['CARDLINK_TOKEN', 'CARDLINK_PIN', 'CARDLINK_ADMIN_KEY', 'CARDLINK_MGMT_KEY', 'CARDLINK_HOME'],
    examples: ['CARDLINK_TOKEN=... cardlink enroll --server https://ca.example.com:8443 --cacert ca.pem'],
    module: 'enroll',
    handler: 'enroll',
  }),
  renew: command({
    path: ['renew'],
    summary: 'renew certificates in their last days: new key in a new container, then the old one removed',
    description:
      "For each certificate on the card this service issued that ends within --days: a new key in a new 'lr-<GUID>' container, a request bound to the card and signed by the current key (POST /api/v1/renewals), and once issued (at once, or on a later run after approval) the new certificate installed, linked, made the default; then the old certificate and container are deleted with the key, and unlinked. The service's profile decides the window; its refusals are shown. A card pulled half-way is finished by the next run. Asks before the first key is made or deleted unless --yes.",
    options: {
      ...TARGET,
      ...CONNECT,
      ...STORE,
      days: { type: 'string', value: 'N', help: 'renew what ends within N days (the service has the last word)', default: '30' },
      yes: { type: 'boolean', help: 'do not ask (needed without a terminal)' },
    },
    env: ['CARDLINK_PIN', 'CARDLINK_HOME'],
    exits: { 1: 'declined at the question: nothing renewed' },
    examples: ['cardlink renew --server https://ca.example.com:8443 --cacert ca.pem --yes --json'],
    module: 'lifecycle',
    handler: 'renew',
  }),
  collect: command({
    path: ['collect'],
    summary: "load what the service issued for the inserted card's keys, link it, report delivery",
    options: {
      ...TARGET,
      ...CONNECT,
      ...STORE,
      ...MGMT,
      watch: { type: 'boolean', help: "keep running: collect on every card insertion and after the service's Retry-After; a wrong PIN is never tried twice" },
    },
    env: ['CARDLINK_PIN', 'CARDLINK_MGMT_KEY', 'CARDLINK_HOME'],
    examples: ['cardlink collect --server https://ca.example.com:8443 --cacert ca.pem --watch'],
    module: 'collect',
    handler: 'collect',
  }),
  agentRun: command({
    path: ['agent', 'run'],
    summary: 'run the workstation agent in the foreground: collect and link on every card insertion',
    description:
      'Waits on PC/SC reader events; on an insertion collects what the service issued for the card, installs and links it. Logs one line per event on stdout (JSON lines with --json). Stops on SIGINT or SIGTERM. One agent per state directory. The PIN comes from CARDLINK_PIN, the systemd credential cardlink-pin, or a prompt.',
    options: AGENT_CONFIG,
    env: ['CARDLINK_PIN', 'CREDENTIALS_DIRECTORY', 'CARDLINK_HOME'],
    examples: ['cardlink agent run --config ~/.cardlink/agent.json'],
    module: 'agent',
    handler: 'run',
  }),
  agentInstall: command({
    path: ['agent', 'install'],
    summary: "write the agent's service definition: a systemd unit, or a Windows Task Scheduler task for the user's logon",
    description:
      "--systemd writes a hardened unit (enable it with 'systemctl daemon-reload && systemctl enable --now cardlink-agent'); --windows-task a task started at the user's logon, as that user (register it with 'schtasks /Create /XML FILE /TN cardlink-agent').",
    options: {
      ...AGENT_CONFIG,
      systemd: { type: 'boolean', help: 'a systemd unit' },
      'windows-task': { type: 'boolean', help: "a Windows Task Scheduler task for the user's logon" },
      output: { type: 'string', value: 'FILE', help: 'where the definition is written', default: '/etc/systemd/system/cardlink-agent.service, or cardlink-agent.xml' },
      user: { type: 'string', value: 'NAME', help: 'the account the agent runs as', default: 'the current user' },
      'pin-credential': { type: 'string', value: 'FILE', help: 'the file systemd hands the agent as the credential cardlink-pin (LoadCredential=)' },
      force: { type: 'boolean', help: 'replace an existing file without asking' },
    },
    env: ['CARDLINK_HOME'],
    examples: ['cardlink agent install --systemd --pin-credential /etc/cardlink/pin'],
    module: 'agent',
    handler: 'install',
  }),
  agentConfigCheck: command({
    path: ['agent', 'config', 'check'],
    summary: "check the agent's configuration file and say what is wrong with it",
    description:
      'The file is JSON: {"server": "https://…", "caFile": "ca.pem", "store": "native" | "model:DIR", "readers": ["…"], "schedule": {"recheckHours": 24, "backoffFirstSeconds": 1, "backoffMaxSeconds": 300}, "stateDir": "…"}.',
    options: AGENT_CONFIG,
    env: ['CARDLINK_HOME'],
    exits: { 1: 'the file has problems (each named)' },
    examples: ['cardlink agent config check --config agent.json'],
    module: 'agent',
    handler: 'configCheck',
  }),
  agentStatus: command({
    path: ['agent', 'status'],
    summary: 'what the agent did last, what is due when, and its errors (from its status file)',
    options: AGENT_CONFIG,
    env: ['CARDLINK_HOME'],
    examples: ['cardlink agent status --json'],
    module: 'agent',
    handler: 'showStatus',
  }),
  link: command({
    path: ['link'],
    summary: "put the card's certificates into CurrentUser\\My, linked to their keys, and prove each link",
    options: { ...TARGET, ...STORE, ksp: { type: 'boolean', help: 'link through the Smart Card Key Storage Provider' }, csp: { type: 'boolean', help: 'link through the Base Smart Card CSP' } },
    env: ['CARDLINK_PIN', 'CARDLINK_HOME'],
    examples: ['cardlink link --image card.json --store model:./machine'],
    module: 'link',
    handler: 'link',
  }),
  doctor: command({
    path: ['doctor'],
    summary: 'the card as Windows sees it, and why a certificate has no working private key in CurrentUser\\My, with the fix',
    description:
      "Reads the card (as certutil -scinfo reports it) and releases it, then asks Windows' providers, which open their own connection. With CARDLINK_PIN the key proof signs; it is never prompted for. --repair moves the cardcf counters when a stale cache is found, and checks again. With a service (--server or CARDLINK_SERVER) the certificates on the card and in the store are checked against its CRL: a revoked one still offered is a finding.",
    options: { ...TARGET, ...STORE, ...CONNECT, repair: { type: 'boolean', help: 'move the cardcf counters when Windows serves a stale cache (needs the PIN), then check again' } },
    env: ['CARDLINK_PIN', 'CARDLINK_HOME', 'CARDLINK_SERVER', 'CARDLINK_CACERT'],
    exits: { 1: 'findings' },
    examples: ['cardlink doctor --image card.json --store model:./machine'],
    module: 'doctor',
    handler: 'doctor',
  }),
};

/** Every command, in the order `cardlink --help` lists them. */
export const commands: readonly CommandSpec[] = Object.values(specs) as unknown as CommandSpec[];

/** The handler type of one spec, for the command modules. */
export type HandlerOf<S> = S extends CommandSpec<infer O> ? Handler<O> : never;
