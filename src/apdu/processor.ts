/**
 * The card side of an APDU exchange: what an emulated card implements, and what the in-memory
 * transport (host side) and the vpcd attachment (card side) drive.
 */
export interface CardProcessor {
  process(apdu: Uint8Array): Uint8Array;
  /** Power cycle / warm reset: clears volatile state. */
  reset(): void;
}
