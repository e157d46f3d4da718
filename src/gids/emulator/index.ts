/** The GIDS card emulator: APDUs in, APDUs out, with its state in a sealed card image file. */
export { GidsCard, type GidsCardOptions } from './card.js';
export { DEFAULT_ATR, DEFAULT_CAPACITY_BYTES } from './constants.js';
export { CardImageError, type CardImageErrorCode } from './errors.js';
export { decodeCardImage, encodeCardImage, loadSealKey, lockCardImage, openCardImage, SEAL_KEY_FILE, type CardImageLock, type ImageHolder, type OpenCardImageOptions } from './image.js';
export { CARD_IMAGE_VERSION, type CardImageData, type FileImage, type KeyImage } from './image-format.js';
export type { LifeCycle } from './state.js';
