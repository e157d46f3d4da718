export { ServiceClient, retryAfterSeconds } from './client.js';
export type { ClientOptions, HttpResult, CallOptions } from './client.js';
export { AgentError } from './errors.js';
export { enroll } from './enroll.js';
export type { EnrollOptions, EnrollResult } from './enroll.js';
export { collect } from './collect.js';
export type { CollectOptions, CollectReport, CollectedItem, CollectAction } from './collect.js';
export { watch } from './watch.js';
export type { WatchOptions } from './watch.js';
