// Verifies a Tenure offline token with panva's `jose`, given only the JWKS: the
// "another language's standard JOSE library" check.
// Usage: node verify.js JWKS_FILE TOKEN ISSUER AUDIENCE [TYP]  -> prints the claims as JSON.
// TYP defaults to tenure-offline+jwt; tenure-revocations+jwt verifies a revocation list.
// `jose` comes from JOSE_PATH, else from `npm install jose` (a node_modules above this
// file), else from Debian's node-jose package.
'use strict';
const fs = require('fs');

function loadJose() {
  if (process.env.JOSE_PATH) return require(process.env.JOSE_PATH);
  try {
    return require('jose');
  } catch (error) {
    if (error.code !== 'MODULE_NOT_FOUND') throw error;
  }
  return require('/usr/share/nodejs/jose');
}

const jose = loadJose();

async function main() {
  const [jwksFile, token, issuer, audience, typ] = process.argv.slice(2);
  const keySet = jose.createLocalJWKSet(JSON.parse(fs.readFileSync(jwksFile, 'utf8')));
  const { payload, protectedHeader } = await jose.jwtVerify(token, keySet, {
    algorithms: ['EdDSA'],
    typ: typ || 'tenure-offline+jwt',
    issuer,
    audience,
  });
  process.stdout.write(JSON.stringify({ header: protectedHeader, claims: payload }) + '\n');
}

main().catch((error) => {
  process.stderr.write(`rejected: ${error.code || error.name}: ${error.message}\n`);
  process.exit(1);
});
