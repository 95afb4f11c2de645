// Verifies a Tenure offline token with panva's `jose` (Debian package node-jose),
// given only the JWKS: the "another language's standard JOSE library" check.
// Usage: node verify.js JWKS_FILE TOKEN ISSUER AUDIENCE [TYP]  -> prints the claims as JSON.
// TYP defaults to tenure-offline+jwt; tenure-revocations+jwt verifies a revocation list.
'use strict';
const fs = require('fs');
const jose = require(process.env.JOSE_PATH || '/usr/share/nodejs/jose');

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
