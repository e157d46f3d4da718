/** BER-TLV is shared with PIV: the one implementation is src/ber-tlv.ts. */
export * from '../../ber-tlv.js';
