/** The image error type is shared by every emulated card application (src/card-image.ts). */
export { CardImageError, type CardImageErrorCode } from '../../card-image.js';
