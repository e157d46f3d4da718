/** Pure formats of the minidriver logical file system and its GIDS mapping: bytes in, values out. */
export { CardFormatError } from './errors.js';
export { CARDID_SIZE, parseCardId, serializeCardId } from './cardid.js';
export { CARDCF_SIZE, bumpCardCf, parseCardCf, serializeCardCf } from './cardcf.js';
export type { CardCf } from './cardcf.js';
export { CARDAPPS_ENTRY_SIZE, parseCardApps, serializeCardApps } from './cardapps.js';
export {
  CMAP_RECORD_SIZE,
  CONTAINER_DEFAULT,
  CONTAINER_VALID,
  MAX_CONTAINER_NAME_LENGTH,
  emptyContainerRecord,
  isDefaultContainer,
  isValidContainer,
  parseCmapfile,
  serializeCmapfile,
  setDefaultContainer,
} from './cmapfile.js';
export type { ContainerRecord } from './cmapfile.js';
export { MAX_COMPRESSED_CERTIFICATE_SIZE, decodeCertificateFile, encodeCertificateFile } from './certfile.js';
export type { CertificateFile } from './certfile.js';
export {
  INITIAL_MASTER_FILE_TABLE,
  MASTER_FILE_RECORD_SIZE,
  MASTER_FILE_TABLE_VERSION,
  parseMasterFileTable,
  serializeMasterFileTable,
} from './mastertable.js';
export type { MasterFileRecord } from './mastertable.js';
export {
  KEY_MAP_RECORD_SIZE,
  KEY_MAP_VERSION,
  KEY_STATE_DELETED,
  KEY_STATE_USED,
  deletedKeyMapRecord,
  parseKeyMap,
  serializeKeyMap,
} from './keymap.js';
export type { KeyMapRecord } from './keymap.js';
export {
  MAX_CERTIFICATE_FILE_INDEX,
  MAX_FILE_NAME_LENGTH,
  MSCP_DIRECTORY,
  certificateFileName,
  fileNameProblem,
  parseCertificateFileName,
  parseFilePath,
} from './names.js';
export type { KeySpec } from './names.js';
