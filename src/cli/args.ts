import { UsageError } from './io.js';

/** The value of a required option (the option tables in catalog.ts say which are). */
export function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new UsageError(`${flag} is required`);
  return value;
}
