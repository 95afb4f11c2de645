// Checks Tenure's conformance vectors (docs/vectors/) with panva's `jose`, the way a
// TypeScript or JavaScript implementer would: jose verifies the JWS and JWE, and this
// file adds the rules of docs/offline.md that a JOSE library does not know (the exact
// header, the device binding, the revocation list's entries, the key set note signed
// by the ledger key, the license file's armor and key derivation).
//
// Usage: node check_vectors.js VECTORS_DIR  -> prints {"<vector id>": outcome, ...}
// for the kinds offline-token, revocation-list, license-file and keyset-note, where
// an outcome is {"verdict": "accept", ...facts} or {"verdict": "reject", "reason",
// "detail"} (detail: the message, for people).
// JOSE_PATH names the jose package (default: Debian's /usr/share/nodejs/jose; a user
// runs `npm install jose` and sets JOSE_PATH=jose).
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const jose = require(process.env.JOSE_PATH || '/usr/share/nodejs/jose');

class Refused extends Error {
  constructor(reason, message) {
    super(message || reason);
    this.reason = reason;
  }
}

// jose's error codes, as the reasons the manifest uses.
const JOSE_REASONS = {
  ERR_JOSE_ALG_NOT_ALLOWED: 'alg_not_allowed',
  ERR_JWKS_NO_MATCHING_KEY: 'unknown_kid',
  ERR_JWS_SIGNATURE_VERIFICATION_FAILED: 'bad_signature',
  ERR_JWT_EXPIRED: 'expired',
  ERR_JWS_INVALID: 'malformed',
  ERR_JWT_INVALID: 'malformed',
};
const CLAIM_REASONS = {
  typ: 'typ_mismatch',
  iss: 'wrong_issuer',
  aud: 'wrong_audience',
  sub: 'wrong_subject',
  nbf: 'not_yet_valid',
  exp: 'expired',
};

function reasonOf(error) {
  if (error instanceof Refused) return error.reason;
  if (error.code === 'ERR_JWT_CLAIM_VALIDATION_FAILED') return CLAIM_REASONS[error.claim] || 'bad_claim';
  return JOSE_REASONS[error.code] || `unmapped ${error.code || error.name}: ${error.message}`;
}

const sha256 = (data) => crypto.createHash('sha256').update(data).digest();
const HEADER_MEMBERS = ['alg', 'kid', 'typ'];
const CLOCK_SKEW = 60; // a token may be signed this long before its key was made

// hex(SHA-256(JCS(["tenure.fingerprint.v1", serial, fingerprint]))); JSON.stringify
// is JCS for an array of strings.
function fingerprintHash(serial, fingerprint) {
  return sha256(JSON.stringify(['tenure.fingerprint.v1', serial, fingerprint])).toString('hex');
}

// ---------------------------------------------------------------- signed notes (C2SP)

function verifierKey(text) {
  // name+hexid+base64: the base64 may hold '+' too
  const match = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/=]+)$/.exec(text.trim());
  if (match === null) throw new Refused('malformed_note', 'not a verifier key');
  const [, name, hexId, b64] = match;
  const raw = Buffer.from(b64, 'base64');
  if (raw.length !== 33 || raw[0] !== 0x01) throw new Refused('malformed_note', 'not an Ed25519 key');
  const id = sha256(Buffer.concat([Buffer.from(`${name}\n`), raw])).subarray(0, 4);
  if (id.toString('hex') !== hexId) throw new Refused('malformed_note', 'key id mismatch');
  const x = raw.subarray(1).toString('base64url');
  const publicKey = crypto.createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
  return { name, id, publicKey };
}

// The text of a signed note once the trusted key's signature holds: signatures by
// other keys are ignored, a bad one by the trusted key rejects the note.
function openNote(note, verifier) {
  const split = note.lastIndexOf('\n\n');
  if (!note.endsWith('\n') || split < 0) throw new Refused('malformed_note', 'no signature block');
  const text = note.slice(0, split + 1);
  const lines = note.slice(split + 2, -1).split('\n');
  if (lines.length === 0 || lines[0] === '') throw new Refused('malformed_note', 'no signatures');
  let verified = false;
  for (const line of lines) {
    const match = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/.exec(line);
    if (match === null) throw new Refused('malformed_note', 'bad signature line');
    const signature = Buffer.from(match[2], 'base64');
    if (signature.length < 5) throw new Refused('malformed_note', 'short signature');
    if (match[1] !== verifier.name || !signature.subarray(0, 4).equals(verifier.id)) continue;
    if (!crypto.verify(null, Buffer.from(text), verifier.publicKey, signature.subarray(4))) {
      throw new Refused('unverified_note', 'the trusted key\'s signature does not verify');
    }
    verified = true;
  }
  if (!verified) throw new Refused('unverified_note', 'not signed by the trusted key');
  return text;
}

function thumbprint(x) {
  return sha256(`{"crv":"Ed25519","kty":"OKP","x":"${x}"}`).toString('base64url');
}

// The key set note (docs/offline.md, "The signed key set"); any flaw is untrusted_keyset.
function openKeyset(note, ledgerKey, account) {
  let text;
  try {
    text = openNote(note, verifierKey(ledgerKey));
  } catch (error) {
    throw new Refused('untrusted_keyset', error.message);
  }
  const lines = text.split('\n');
  lines.pop();
  const refuse = (why) => { throw new Refused('untrusted_keyset', why); };
  if (lines.length < 5 || /\s|\+/.test(lines[0]) || lines[1] !== 'tenure-keyset v2') refuse('not a key set');
  const owner = /^account ([a-z0-9][a-z0-9-]{1,62})$/.exec(lines[2]);
  if (owner === null || owner[1] !== account) refuse(`not account ${account}'s key set`);
  const time = /^time (0|[1-9][0-9]{0,15})$/.exec(lines[3]);
  const lifetime = /^token-lifetime ([1-9][0-9]{0,15})$/.exec(lines[4]);
  if (time === null || lifetime === null) refuse('no time or token-lifetime line');
  const keys = lines.slice(5).map((line) => {
    const m = /^key ([A-Za-z0-9_-]{43}) ([A-Za-z0-9_-]{43}) (0|[1-9][0-9]{0,15}) (-|0|[1-9][0-9]{0,15})$/.exec(line);
    if (m === null) refuse(`bad key line ${line}`);
    const [, kid, x, from, until] = m;
    if (thumbprint(x) !== kid) refuse(`kid ${kid} is not the thumbprint of its key`);
    const key = { kid, x, valid_from: Number(from), valid_until: until === '-' ? null : Number(until) };
    if (key.valid_until !== null && key.valid_until < key.valid_from) refuse('a key ends before it starts');
    return key;
  });
  if (new Set(keys.map((k) => k.kid)).size !== keys.length) refuse('a kid appears twice');
  return { account: owner[1], time: Number(time[1]), token_lifetime: Number(lifetime[1]), keys };
}

// ---------------------------------------------------------------- JWS

function headerOf(text) {
  const head = text.split('.')[0];
  let header;
  try {
    header = JSON.parse(Buffer.from(head, 'base64url').toString('utf8'));
  } catch {
    throw new Refused('malformed');
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw new Refused('bad_header');
  if (Object.keys(header).sort().join() !== HEADER_MEMBERS.join()) {
    throw new Refused('bad_header', 'the header must have exactly alg, kid and typ');
  }
  return header;
}

// The key set a verifier trusts: the JWKS as it is, or the keys a key set note signed
// by the pinned ledger key vouches for, each for the life it gives it.
function trustOf(inputs, files) {
  if (inputs.keyset === undefined) {
    return { keySet: jose.createLocalJWKSet(files.json(inputs.jwks)), vouched: null };
  }
  const vouched = openKeyset(files.text(inputs.keyset), files.text(inputs.ledger_key), inputs.account);
  const jwks = { keys: vouched.keys.map(({ kid, x }) => ({ kty: 'OKP', crv: 'Ed25519', x, kid, alg: 'EdDSA', use: 'sig' })) };
  return { keySet: jose.createLocalJWKSet(jwks), vouched };
}

async function verifyJws(text, trust, expected, now, leeway, life = checkLife) {
  const header = headerOf(text);
  let payload;
  try {
    ({ payload } = await jose.jwtVerify(text, trust.keySet, {
      algorithms: ['EdDSA'],
      ...expected,
      currentDate: new Date(now * 1000),
      clockTolerance: leeway,
    }));
  } catch (error) {
    if (trust.vouched !== null && error.code === 'ERR_JWKS_NO_MATCHING_KEY') throw new Refused('untrusted_key');
    throw error;
  }
  if (header.typ !== expected.typ) throw new Refused('typ_mismatch', 'jose compares typ ignoring case');
  for (const name of ['exp', 'nbf', 'iat']) {
    if ((name === 'exp' || payload[name] !== undefined) && !Number.isInteger(payload[name])) {
      throw new Refused('bad_claim', `${name} must be an integer`);
    }
  }
  if (trust.vouched !== null) life(trust.vouched, header.kid, payload, leeway);
  return payload;
}

// A key still signing ('-') is vouched for until the note's time plus its token
// lifetime; a token lies in its key's life (60 s of leeway at both ends) and lives no
// longer than the token lifetime.
function checkLife(vouched, kid, claims) {
  const key = vouched.keys.find((k) => k.kid === kid);
  const issued = claims.iat !== undefined ? claims.iat : claims.nbf;
  const end = key.valid_until !== null ? key.valid_until : vouched.time + vouched.token_lifetime;
  const inLife = key.valid_from - CLOCK_SKEW <= issued && issued <= claims.exp && claims.exp <= end + CLOCK_SKEW;
  if (!inLife || claims.exp - issued > vouched.token_lifetime) {
    throw new Refused('untrusted_key', 'the token lies outside its key\'s vouched life');
  }
}

// A license file lives on its own terms: under a note it need only have been signed
// in its key's life (its leeway at both ends), whatever its exp.
function checkSigned(vouched, kid, claims, leeway) {
  const key = vouched.keys.find((k) => k.kid === kid);
  const issued = claims.iat !== undefined ? claims.iat : claims.nbf;
  const end = key.valid_until !== null ? key.valid_until : vouched.time + vouched.token_lifetime;
  if (issued < key.valid_from - leeway || issued > end + leeway) {
    throw new Refused('untrusted_key', 'the file was not signed in its key\'s vouched life');
  }
}

// ---------------------------------------------------------------- the kinds

async function verifyList(text, trust, inputs, since, manifest) {
  const claims = await verifyJws(text, trust, {
    typ: manifest.typ['revocation-list'],
    issuer: inputs.issuer,
    audience: inputs.account,
    subject: inputs.subject,
  }, manifest.now, manifest.leeway['revocation-list']);
  if (claims.since !== since) throw new Refused('bad_claim', 'not the list asked for');
  return claims;
}

// What ends a token: its license's latest entry (revoked or suspended), its
// activation, or its jti.
function revokedBy(list, claims) {
  const mine = list.licenses.filter((e) => e.serial === claims.sub).sort((a, b) => a.seq - b.seq);
  const latest = mine[mine.length - 1];
  if (latest !== undefined && (latest.status === 'revoked' || latest.status === 'suspended')) {
    return `license_${latest.status}`;
  }
  if (list.activations.some((e) => e.activation === claims.act)) return 'activation';
  if (list.tokens.some((e) => e.jti === claims.jti)) return 'token';
  return null;
}

async function offlineToken(vector, files, manifest) {
  const inputs = vector.inputs;
  const trust = trustOf(inputs, files);
  const claims = await verifyJws(files.text(vector.file), trust, {
    typ: manifest.typ['offline-token'],
    issuer: inputs.issuer,
    audience: inputs.audience,
    subject: inputs.subject,
  }, manifest.now, manifest.leeway['offline-token']);
  if (claims.fph !== fingerprintHash(inputs.subject, inputs.fingerprint)) throw new Refused('wrong_fingerprint');
  if (inputs.revocations !== undefined) {
    const list = await verifyList(files.text(inputs.revocations), trust, inputs, inputs.revocations_since, manifest);
    const what = revokedBy(list, claims);
    if (what !== null) return { verdict: 'reject', reason: 'revoked', revoked_by: what };
  }
  return { verdict: 'accept', claims };
}

async function revocationList(vector, files, manifest) {
  const inputs = vector.inputs;
  const claims = await verifyList(files.text(vector.file), trustOf(inputs, files), inputs, inputs.since, manifest);
  return { verdict: 'accept', claims };
}

const BEGIN = '-----BEGIN TENURE LICENSE FILE-----';
const END = '-----END TENURE LICENSE FILE-----';

function dearmor(text) {
  const refuse = (why) => { throw new Refused('invalid_license_file', why); };
  const lines = text.trim().split(/\r\n|\r|\n/).map((line) => line.replace(/[ \t]+$/, ''));
  if (lines.length < 3 || lines[0] !== BEGIN || lines[lines.length - 1] !== END) refuse('no armor');
  const body = lines.slice(1, -1);
  const last = body[body.length - 1];
  if (body.slice(0, -1).some((line) => line.length !== 64) || last.length < 1 || last.length > 64) {
    refuse('armor lines must be 64 characters');
  }
  const encoded = body.join('');
  const raw = Buffer.from(encoded, 'base64');
  if (raw.toString('base64') !== encoded) refuse('not canonical base64');
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    return refuse('not UTF-8');
  }
}

// The JWS inside an encrypted body: dir + A256GCM with the content key
// HKDF-SHA256(license key, salt = serial, info = "tenure.license-file.v1", 32 bytes).
async function decrypt(jwe, inputs) {
  const refuse = (why) => { throw new Refused('invalid_license_file', why); };
  if (inputs.license_key === undefined) refuse('the license file is encrypted: the license key is needed');
  const header = JSON.parse(Buffer.from(jwe.split('.')[0], 'base64url').toString('utf8'));
  const expected = { alg: 'dir', enc: 'A256GCM', cty: 'JWT', kid: inputs.serial };
  if (JSON.stringify(Object.entries(header).sort()) !== JSON.stringify(Object.entries(expected).sort())) {
    refuse('not a dir/A256GCM JWE for this serial');
  }
  const key = new Uint8Array(crypto.hkdfSync('sha256', inputs.license_key, inputs.serial, 'tenure.license-file.v1', 32));
  try {
    const { plaintext } = await jose.compactDecrypt(jwe, key, {
      keyManagementAlgorithms: ['dir'],
      contentEncryptionAlgorithms: ['A256GCM'],
    });
    return new TextDecoder('utf-8', { fatal: true }).decode(plaintext);
  } catch (error) {
    return refuse(`does not decrypt: ${error.code || error.message}`);
  }
}

async function licenseFile(vector, files, manifest) {
  const inputs = vector.inputs;
  let body = dearmor(files.text(vector.file));
  if (body.split('.').length === 5) body = await decrypt(body, inputs);
  const trust = trustOf(inputs, files);
  const claims = await verifyJws(body, trust, { typ: manifest.typ['license-file'], subject: inputs.serial },
    manifest.now, manifest.leeway['license-file'], checkSigned);
  if (claims.fph !== fingerprintHash(inputs.serial, inputs.fingerprint)) throw new Refused('wrong_fingerprint');
  return { verdict: 'accept', claims };
}

async function keysetNote(vector, files) {
  const inputs = vector.inputs;
  const opened = openKeyset(files.text(vector.file), files.text(inputs.ledger_key), inputs.account);
  return { verdict: 'accept', ...opened };
}

const KINDS = {
  'offline-token': offlineToken,
  'revocation-list': revocationList,
  'license-file': licenseFile,
  'keyset-note': keysetNote,
};

async function main() {
  const root = process.argv[2];
  const files = {
    text: (name) => fs.readFileSync(path.join(root, name), 'utf8'),
    json: (name) => JSON.parse(fs.readFileSync(path.join(root, name), 'utf8')),
  };
  const manifest = files.json('manifest.json');
  const results = {};
  for (const vector of manifest.vectors) {
    const check = KINDS[vector.kind];
    if (check === undefined) continue;
    try {
      results[vector.id] = await check(vector, files, manifest);
    } catch (error) {
      results[vector.id] = { verdict: 'reject', reason: reasonOf(error), detail: error.message };
    }
  }
  process.stdout.write(`${JSON.stringify(results, null, 1)}\n`);
}

main().catch((error) => {
  process.stderr.write(`check_vectors failed: ${error.stack}\n`);
  process.exit(2);
});
