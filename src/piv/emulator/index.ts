/** The PIV card emulator: APDUs in, APDUs out, with its state in a sealed card image file. */
export { PivCard, type PivCardOptions } from './card.js';
export { DEFAULT_ATR, FACTORY, YUBICO_VERSION } from './constants.js';
export { decodePivCardImage, encodePivCardImage, openPivCardImage, PIV_IMAGE_FORMAT, PIV_IMAGE_VERSION, type OpenPivCardImageOptions } from './image.js';
export type { PivKey, PivState } from './state.js';
