import type { x509 } from '../../x509.js';

/**
 * What a certificate is for; the CA turns it into the matching extensions. A smart card logon
 * certificate names its user by UPN (the service always gives one); tests and benches may add DNS
 * names to grow a certificate to a given size.
 */
export type Template =
  /** `sid`: the user's SID for the SID extension (KB5014754 strong mapping), when the operator gave one. */
  | { kind: 'smartcard-logon'; userPrincipalName?: string; dnsNames?: string[]; sid?: string }
  | { kind: 'tls-server'; dnsNames: string[]; ipAddresses: string[] };

export interface IssueOrder {
  /** Lowercase hex, reserved in storage before signing so it can never be handed out twice. */
  serial: string;
  notBefore: Date;
  notAfter: Date;
  /** A Name built from attributes (never a user's text spliced into a DN string), or a fixed DN. */
  subject: string | x509.Name;
  publicKey: x509.PublicKey;
  template: Template;
}

export interface CrlOrder {
  number: number;
  thisUpdate: Date;
  nextUpdate: Date;
  entries: { serial: string; revokedAt: Date; reason: number }[];
}

/**
 * The certificate authority behind the service. The embedded CA is the first implementation; an
 * enterprise CA would be another (it must honour the serial and validity it is given, so that a
 * retried issuance produces the same certificate rather than a second one).
 */
export interface UpstreamCa {
  readonly name: string;
  /** Issuing CA first, then any intermediates up to (and including) the root. */
  chain(): x509.X509Certificate[];
  issue(order: IssueOrder): Promise<x509.X509Certificate>;
  /** The same certificate as `issue`, as DER: what the service stores and hands out, without parsing it back. */
  issueDer(order: IssueOrder): Promise<Uint8Array>;
  signCrl(order: CrlOrder): Promise<Buffer>;
}
