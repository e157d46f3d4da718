// The card layer's public surface: what a user thinks in (a card with containers, keys,
// certificates, files, a PIN, check and repair), the minidriver port Windows' side uses, and the
// cache policies a caller may choose. Sessions, the file table and cache items stay inside.
export { MinidriverCard } from './minidriver-card.js';
export type { CreateContainerOptions, LogicalFile, OpenOptions } from './minidriver-card.js';
export type { CardApplication, CardApplicationKind, Curve, PinState } from './card-application.js';
export { PivApplication, parseSlot, PUBLIC_KEY_RECORD } from './piv-application.js';
export type { ManagementKey, ManagementKeySource, PivDataObject } from './piv-application.js';
export { GidsApplication } from './gids-application.js';
export type { ContainerInfo, KeySpec } from './card-files.js';
export type { CardFreshness, MinidriverContainer, MinidriverPort, PinInfo, SignDigestRequest } from './minidriver-port.js';
export { CardError } from './errors.js';
export { MemoryCardCache } from './cache.js';
export type { CardCache } from './cache.js';
export { DiskCardCache } from './disk-cache.js';
export type { BuiltCsr, CsrOptions } from './csr.js';
export { digestInfo, digestInfoOf } from './digest-info.js';
export type { HashName } from './digest-info.js';
export { AdminAuthError, PinError } from '../gids/host/errors.js';
export type { InstallOptions, InstallResult } from './install.js';
export type { CheckReport, Finding, FindingCode, RepairReport } from './check/index.js';
export { parseCertificate } from './certificate.js';
export type { ParsedCertificate } from './certificate.js';
export { PivMinidriver, pivMinidriver, pivContainerName, pivContainerSlotTag } from './piv-minidriver.js';
export type { PivMinidriverOptions } from './piv-minidriver.js';
export { applyPurge, certificatesOnCard, planPurge, supersedes } from './purge.js';
export type { CardCertificate, PurgeCandidate, PurgeCriteria, PurgePlan, PurgeReason, PurgeResult } from './purge.js';
