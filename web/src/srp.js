// SRP-6a as Amazon Cognito does it for USER_SRP_AUTH: the password never
// leaves the browser. Cognito's choices, which a textbook SRP-6a leaves open:
// the 3072-bit group of RFC 5054 with g = 2; numbers hashed as the hex of
// their shortest two's-complement big-endian bytes (padHex); k = H(N | g);
// u = H(A | B); x = H(salt | H(poolName | userId | ":" | password)); the
// session key is 16 bytes of HKDF-SHA256(ikm = S, salt = u, info =
// "Caldera Derived Key"); the claim is HMAC-SHA256(key, poolName | userId |
// secretBlock | timestamp) in base64. Only Web Platform APIs (BigInt,
// crypto.subtle), so it runs in browsers and in node alike.

export const N = BigInt(
  '0xFFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD' +
    'EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED' +
    'EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F' +
    '83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B' +
    'E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510' +
    '15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7' +
    'ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200C' +
    'BBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF',
);
export const g = 2n;

const encoder = new TextEncoder();

/**
 * Hex of a non-negative integer as Cognito hashes it: even length, and a
 * leading 00 when the top bit is set (so it never reads as negative).
 * @param {bigint} n
 */
export function padHex(n) {
  if (n < 0n) throw new RangeError('padHex takes a non-negative integer');
  let hex = n.toString(16);
  if (hex.length % 2 === 1) hex = `0${hex}`;
  return /^[89a-f]/.test(hex) ? `00${hex}` : hex;
}

/**
 * @param {string} hex
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function hexToBytes(hex) {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** @param {Uint8Array} bytes */
export const bytesToHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

/** @param {Uint8Array} bytes */
export const bytesToBigInt = (bytes) => (bytes.length === 0 ? 0n : BigInt(`0x${bytesToHex(bytes)}`));

/**
 * @param {...Uint8Array} parts
 * @returns {Uint8Array<ArrayBuffer>}
 */
function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** @param {Uint8Array<ArrayBuffer>} bytes */
async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
}

/**
 * @param {Uint8Array<ArrayBuffer>} key
 * @param {Uint8Array<ArrayBuffer>} data
 */
async function hmac(key, data) {
  const k = await crypto.subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return new Uint8Array(await crypto.subtle.sign('HMAC', k, data));
}

/** @param {string} hex */
const hexHash = async (hex) => bytesToHex(await sha256(hexToBytes(hex)));

/**
 * base^exp mod m by square-and-multiply.
 * @param {bigint} base
 * @param {bigint} exp
 * @param {bigint} m
 */
export function modPow(base, exp, m) {
  let result = 1n;
  let b = ((base % m) + m) % m;
  let e = exp;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % m;
    b = (b * b) % m;
    e >>= 1n;
  }
  return result;
}

/**
 * Lenient base64 like Node's Buffer: both alphabets, other characters
 * skipped. Cognito's secret block is standard base64; moto's is a UUID.
 * @param {string} text
 */
export function base64ToBytes(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  /** @type {number[]} */
  const out = [];
  let bits = 0;
  let acc = 0;
  for (const ch of text) {
    if (ch === '=') break;
    let v = alphabet.indexOf(ch);
    if (ch === '-') v = 62;
    if (ch === '_') v = 63;
    if (v < 0) continue;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push((acc >> bits) & 0xff);
    }
  }
  return new Uint8Array(out);
}

/** @param {Uint8Array} bytes */
export const bytesToBase64 = (bytes) => btoa(String.fromCharCode(...bytes));

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * The TIMESTAMP Cognito expects: "Fri Jan 5 03:04:05 UTC 2024" (day of the
 * month not padded).
 * @param {Date} d
 */
export function cognitoTimestamp(d) {
  const two = (/** @type {number} */ n) => String(n).padStart(2, '0');
  return (
    `${DAYS[d.getUTCDay()]} ${MONTHS[d.getUTCMonth()]} ${d.getUTCDate()} ` +
    `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} UTC ${d.getUTCFullYear()}`
  );
}

/** k = H(N | g), the SRP-6a multiplier. */
export const multiplier = async () => BigInt(`0x${await hexHash(padHex(N) + padHex(g))}`);

/**
 * The client's ephemeral pair: a secret a (128 random bytes) and A = g^a.
 * @param {(n: number) => Uint8Array} [random] bytes source (tests pass a fixed one)
 */
export function ephemeral(random = (n) => crypto.getRandomValues(new Uint8Array(n))) {
  for (;;) {
    const a = bytesToBigInt(random(128));
    const A = modPow(g, a, N);
    if (A % N !== 0n && a !== 0n) return { a, A };
  }
}

/**
 * @typedef {object} ClaimInput
 * @property {string} poolName      the part of the user pool id after "_"
 * @property {string} userId        USER_ID_FOR_SRP from the challenge
 * @property {string} password
 * @property {bigint} a
 * @property {bigint} A
 * @property {string} srpB          SRP_B from the challenge (hex)
 * @property {string} salt          SALT from the challenge (hex)
 * @property {string} secretBlock   SECRET_BLOCK from the challenge (base64)
 * @property {string} timestamp     cognitoTimestamp(now)
 */

/**
 * The 16-byte session key both sides derive (HKDF over S with salt u).
 * @param {Omit<ClaimInput, 'secretBlock' | 'timestamp'>} p
 */
export async function sessionKey(p) {
  const B = BigInt(`0x${p.srpB}`);
  if (B % N === 0n) throw new RangeError('SRP: the server sent B = 0 mod N');
  const u = BigInt(`0x${await hexHash(padHex(p.A) + padHex(B))}`);
  if (u === 0n) throw new RangeError('SRP: u = 0');
  const identity = bytesToHex(await sha256(encoder.encode(`${p.poolName}${p.userId}:${p.password}`)));
  const x = BigInt(`0x${await hexHash(padHex(BigInt(`0x${p.salt}`)) + identity)}`);
  const k = await multiplier();
  const S = modPow(B - ((k * modPow(g, x, N)) % N), p.a + u * x, N);
  const prk = await hmac(hexToBytes(padHex(u)), hexToBytes(padHex(S)));
  const okm = await hmac(prk, concat(encoder.encode('Caldera Derived Key'), Uint8Array.of(1)));
  return okm.slice(0, 16);
}

/**
 * PASSWORD_CLAIM_SIGNATURE for the PASSWORD_VERIFIER challenge.
 * @param {ClaimInput} p
 */
export async function passwordClaim(p) {
  const key = await sessionKey(p);
  const message = concat(
    encoder.encode(p.poolName),
    encoder.encode(p.userId),
    base64ToBytes(p.secretBlock),
    encoder.encode(p.timestamp),
  );
  return bytesToBase64(await hmac(key, message));
}
