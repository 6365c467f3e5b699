/**
 * PEM public keys for JWT verification (SPEC section 11): the SPKI bytes that
 * WebCrypto imports, and which kind of key they hold, read at config load so
 * that a key that cannot verify any listed algorithm is refused at start.
 *
 * @module
 */

/** The kinds of verification key, each serving one family of JWS algorithms. */
export type KeyKind = "hmac" | "rsa" | "ec-p256" | "ec-p384" | "ed25519";

/** A public key read from PEM text. */
export interface PublicKeyInfo {
  /** The DER `SubjectPublicKeyInfo`, as `crypto.subtle.importKey("spki", ...)` takes it. */
  readonly spki: Uint8Array<ArrayBuffer>;
  readonly kind: Exclude<KeyKind, "hmac">;
  /** The RSA modulus size; 0 for other kinds. */
  readonly bits: number;
}

/** PEM text that is not a usable public key; the message says why. */
export class PemError extends Error {
  override readonly name = "PemError";
}

/** Object identifiers (DER content bytes, hex) of SPKI algorithms and curves. */
const Oid = {
  rsaEncryption: "2a864886f70d010101",
  ecPublicKey: "2a8648ce3d0201",
  p256: "2a8648ce3d030107",
  p384: "2b81040022",
  p521: "2b81040023",
  ed25519: "2b6570",
  ed448: "2b6571",
  rsaPss: "2a864886f70d01010a",
} as const;

const Tag = { integer: 0x02, bitString: 0x03, null: 0x05, oid: 0x06, sequence: 0x30 } as const;

/** One DER element: its tag and where its content lies in the input. */
interface Element {
  readonly tag: number;
  readonly start: number;
  readonly end: number;
}

/** Reads the element at `offset`, which must lie within `limit`. */
function element(der: Uint8Array, offset: number, limit: number): Element {
  if (offset + 2 > limit) throw new PemError("truncated DER data");
  const tag = der[offset];
  let length = der[offset + 1];
  let start = offset + 2;
  if (length & 0x80) {
    const octets = length & 0x7f;
    if (octets === 0 || octets > 3 || start + octets > limit) {
      throw new PemError("unsupported DER length");
    }
    length = 0;
    for (let i = 0; i < octets; i++) length = length * 256 + der[start + i];
    start += octets;
  }
  if (start + length > limit) throw new PemError("truncated DER data");
  return { tag, start, end: start + length };
}

function expect(der: Uint8Array, offset: number, limit: number, tag: number): Element {
  const found = element(der, offset, limit);
  if (found.tag !== tag) throw new PemError("not a public key structure");
  return found;
}

function hex(der: Uint8Array, { start, end }: Element): string {
  return Array.from(der.subarray(start, end), (byte) => byte.toString(16).padStart(2, "0"))
    .join("");
}

/** DER of one element with the given tag and content. */
function encode(tag: number, content: Uint8Array): Uint8Array {
  const length = content.length;
  const header = length < 0x80
    ? [tag, length]
    : length < 0x100
    ? [tag, 0x81, length]
    : [tag, 0x82, length >> 8, length & 0xff];
  const out = new Uint8Array(header.length + length);
  out.set(header);
  out.set(content, header.length);
  return out;
}

/** The SPKI of a PKCS#1 `RSAPublicKey`: the same key behind the rsaEncryption identifier. */
function wrapPkcs1(pkcs1: Uint8Array): Uint8Array {
  const oid = Uint8Array.from(Oid.rsaEncryption.match(/../g)!, (pair) => parseInt(pair, 16));
  const identifier = encode(Tag.sequence, new Uint8Array([...encode(Tag.oid, oid), Tag.null, 0]));
  const bits = encode(Tag.bitString, new Uint8Array([0, ...pkcs1]));
  return encode(Tag.sequence, new Uint8Array([...identifier, ...bits]));
}

/** Bits of the modulus of a DER `RSAPublicKey { modulus, publicExponent }`. */
function modulusBits(der: Uint8Array, start: number, end: number): number {
  const key = expect(der, start, end, Tag.sequence);
  const modulus = expect(der, key.start, key.end, Tag.integer);
  let first = modulus.start;
  while (first < modulus.end && der[first] === 0) first++;
  if (first === modulus.end) return 0;
  return (modulus.end - first - 1) * 8 + (32 - Math.clz32(der[first]));
}

/** Reads a DER SPKI and names its kind of key. */
function describe(spki: Uint8Array<ArrayBuffer>): PublicKeyInfo {
  const outer = expect(spki, 0, spki.length, Tag.sequence);
  if (outer.end !== spki.length) throw new PemError("trailing data after the key");
  const identifier = expect(spki, outer.start, outer.end, Tag.sequence);
  const algorithm = expect(spki, identifier.start, identifier.end, Tag.oid);
  const bitString = expect(spki, identifier.end, outer.end, Tag.bitString);
  switch (hex(spki, algorithm)) {
    case Oid.rsaEncryption:
      return { spki, kind: "rsa", bits: modulusBits(spki, bitString.start + 1, bitString.end) };
    case Oid.ed25519:
      return { spki, kind: "ed25519", bits: 0 };
    case Oid.ecPublicKey: {
      const curve = hex(spki, expect(spki, algorithm.end, identifier.end, Tag.oid));
      if (curve === Oid.p256) return { spki, kind: "ec-p256", bits: 0 };
      if (curve === Oid.p384) return { spki, kind: "ec-p384", bits: 0 };
      if (curve === Oid.p521) throw new PemError("an EC P-521 key: ES512 is not supported");
      throw new PemError("an EC key on an unsupported curve (only P-256 and P-384)");
    }
    case Oid.ed448:
      throw new PemError("an Ed448 key: only Ed25519 is supported for EdDSA");
    case Oid.rsaPss:
      throw new PemError(
        "an RSA-PSS-only key: give it as a plain RSA key (BEGIN PUBLIC KEY, rsaEncryption)",
      );
    default:
      throw new PemError("an unsupported kind of public key");
  }
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([^-]*)-----END ([A-Z0-9 ]+)-----/g;

/**
 * Reads one PEM public key: `BEGIN PUBLIC KEY` (SPKI: RSA, EC P-256/P-384 or
 * Ed25519) or `BEGIN RSA PUBLIC KEY` (PKCS#1, wrapped into SPKI). Throws a
 * {@link PemError} saying what the text is instead, e.g. a certificate or a
 * private key.
 *
 * @example
 * ```ts
 * const { kind } = readPublicKey(Deno.readTextFileSync("key.pub.pem"));
 * ```
 */
export function readPublicKey(pem: string): PublicKeyInfo {
  const blocks = [...pem.matchAll(BLOCK)];
  if (blocks.length === 0) {
    throw new PemError('expected PEM text starting with "-----BEGIN PUBLIC KEY-----"');
  }
  if (blocks.length > 1) throw new PemError("expected one PEM block, found several");
  const [, label, body, endLabel] = blocks[0];
  if (label !== endLabel) throw new PemError(`BEGIN ${label} ends with END ${endLabel}`);
  if (label.includes("PRIVATE KEY")) {
    throw new PemError("this is a private key: give Shark only the public key");
  }
  if (label === "CERTIFICATE") {
    throw new PemError(
      "this is a certificate: give its public key (openssl x509 -pubkey -noout -in cert.pem)",
    );
  }
  if (label !== "PUBLIC KEY" && label !== "RSA PUBLIC KEY") {
    throw new PemError(`unsupported PEM block "${label}"`);
  }
  let der: Uint8Array<ArrayBuffer>;
  try {
    der = Uint8Array.from(atob(body.replace(/\s+/g, "")), (char) => char.charCodeAt(0));
  } catch {
    throw new PemError("the PEM body is not valid base64");
  }
  if (label === "PUBLIC KEY") return describe(der);
  const pkcs1 = expect(der, 0, der.length, Tag.sequence);
  if (pkcs1.end !== der.length) throw new PemError("trailing data after the key");
  return describe(new Uint8Array(wrapPkcs1(der)));
}
