// The peer that `cargo xtask bench` measures tessera against: node oidc-provider 9 on Node 24,
// configured as close to tessera's scenarios as it allows.
//
//   node server.mjs keys FILE                      writes a JWKS (RS256 for ID tokens, ES256 for
//                                                  JWT access tokens) shared by every process
//   node server.mjs serve --port P --keys FILE     serves on 127.0.0.1:P
//
// - One confidential client (client_secret_post) allowed client_credentials, refresh_token and
//   authorization_code (+ PKCE).
// - client_credentials with `resource=urn:tessera-bench:api` issues ES256 JWT access tokens
//   (features.resourceIndicators); tokens without a resource are opaque (userinfo, introspection).
// - Refresh tokens rotate on every use (rotateRefreshToken: true) and the response carries an
//   RS256 ID token.
// - Fixtures that a browser would normally produce through the interaction pages are minted by
//   helper routes under /bench/ (no interaction, no HTML), each returning JSON:
//     GET /bench/refresh-token          a fresh refresh token (scope openid email profile offline_access)
//     GET /bench/access-token           an opaque access token for userinfo/introspection
//     GET /bench/code?challenge=C       an authorization code bound to the S256 PKCE challenge C
// - Storage is an unbounded in-process Map (the stock memory adapter is an LRU of 1000 entries,
//   which a load test would churn); every process has its own, so only stateless endpoints are
//   run against a multi-process cluster.
import http from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

export const CLIENT_ID = 'tessera-bench-client';
export const CLIENT_SECRET = 'tessera-bench-secret-0123456789abcdef0123456789abcdef';
export const REDIRECT_URI = 'http://127.0.0.1/bench/callback';
export const RESOURCE = 'urn:tessera-bench:api';
const ACCOUNT_ID = 'bench-account';

function writeKeys(file) {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  const keys = [
    { ...rsa, kid: 'bench-rs256', alg: 'RS256', use: 'sig' },
    { ...ec, kid: 'bench-es256', alg: 'ES256', use: 'sig' },
  ];
  writeFileSync(file, JSON.stringify({ keys }));
}

// An unbounded in-memory adapter (one Map per model, plus grant membership for revocation).
const stores = new Map();
const grants = new Map();
const sessionUids = new Map();
class MapAdapter {
  constructor(name) {
    this.name = name;
    if (!stores.has(name)) stores.set(name, new Map());
    this.store = stores.get(name);
  }

  async upsert(id, payload, expiresIn) {
    const expiresAt = expiresIn ? Date.now() + expiresIn * 1000 : undefined;
    this.store.set(id, { payload, expiresAt });
    if (payload.grantId) {
      let members = grants.get(payload.grantId);
      if (!members) grants.set(payload.grantId, (members = []));
      members.push([this.name, id]);
    }
    if (payload.uid && this.name === 'Session') sessionUids.set(payload.uid, id);
  }

  async find(id) {
    const entry = this.store.get(id);
    if (!entry) return undefined;
    if (entry.expiresAt && entry.expiresAt < Date.now()) {
      this.store.delete(id);
      return undefined;
    }
    return entry.payload;
  }

  async findByUid(uid) {
    const id = sessionUids.get(uid);
    return id ? this.find(id) : undefined;
  }

  async findByUserCode() {
    return undefined;
  }

  async consume(id) {
    const entry = this.store.get(id);
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    this.store.delete(id);
  }

  async revokeByGrantId(grantId) {
    for (const [name, id] of grants.get(grantId) ?? []) stores.get(name)?.delete(id);
    grants.delete(grantId);
  }
}

function config(jwks) {
  return {
    adapter: MapAdapter,
    jwks,
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        grant_types: ['client_credentials', 'refresh_token', 'authorization_code'],
        response_types: ['code'],
        redirect_uris: [REDIRECT_URI],
        token_endpoint_auth_method: 'client_secret_post',
        id_token_signed_response_alg: 'RS256',
      },
    ],
    async findAccount(_ctx, sub) {
      return {
        accountId: sub,
        async claims() {
          return { sub, email: 'bench@example.test', email_verified: true, name: 'Bench User' };
        },
      };
    },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    scopes: ['openid', 'offline_access', 'email', 'profile', 'api:read'],
    cookies: { keys: ['tessera-bench-cookie-key-0123456789'] },
    pkce: { required: () => true },
    rotateRefreshToken: true,
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 600,
      ClientCredentials: 3600,
      Grant: 14 * 24 * 3600,
      IdToken: 3600,
      Interaction: 3600,
      RefreshToken: 14 * 24 * 3600,
      Session: 14 * 24 * 3600,
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // The stock policy, minus its "you SHOULD change this" notice.
        allowedPolicy: (_ctx, client, token) => !(token.clientId && token.clientId !== client.clientId),
      },
      userinfo: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => false,
        async getResourceServerInfo(_ctx, resourceIndicator) {
          if (resourceIndicator !== RESOURCE) throw new Provider.errors.InvalidTarget();
          return {
            scope: 'api:read',
            audience: RESOURCE,
            accessTokenTTL: 3600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
  };
}

async function serve(port, keysFile) {
  const jwks = JSON.parse(readFileSync(keysFile, 'utf8'));
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, config(jwks));
  provider.proxy = false;
  // Keep the log quiet: errors that the harness provokes on purpose are counted, not printed.
  provider.on('server_error', (_ctx, err) => console.error('server_error', err));

  const client = await provider.Client.find(CLIENT_ID);
  const newGrant = async () => {
    const grant = new provider.Grant({ accountId: ACCOUNT_ID, clientId: CLIENT_ID });
    grant.addOIDCScope('openid email profile offline_access');
    return grant.save();
  };
  const grantId = await newGrant();

  const helpers = {
    async '/bench/refresh-token'() {
      // One grant per chain: a replayed refresh token revokes its whole grant, and that must not
      // take the other workers' chains (or the shared access token) down with it.
      const rt = new provider.RefreshToken({
        accountId: ACCOUNT_ID,
        client,
        grantId: await newGrant(),
        gty: 'authorization_code',
        scope: 'openid email profile offline_access',
        authTime: Math.floor(Date.now() / 1000),
        expiresWithSession: false,
      });
      return { refresh_token: await rt.save() };
    },
    async '/bench/access-token'() {
      const at = new provider.AccessToken({
        accountId: ACCOUNT_ID,
        client,
        grantId,
        gty: 'authorization_code',
        scope: 'openid email profile',
        expiresWithSession: false,
      });
      return { access_token: await at.save() };
    },
    async '/bench/code'(url) {
      const code = new provider.AuthorizationCode({
        accountId: ACCOUNT_ID,
        client,
        grantId,
        scope: 'openid email profile',
        redirectUri: REDIRECT_URI,
        codeChallenge: url.searchParams.get('challenge'),
        codeChallengeMethod: 'S256',
        authTime: Math.floor(Date.now() / 1000),
        expiresWithSession: false,
      });
      return { code: await code.save() };
    },
  };

  const callback = provider.callback();
  const server = http.createServer((req, res) => {
    if (req.url.startsWith('/bench/')) {
      const url = new URL(req.url, issuer);
      const helper = helpers[url.pathname];
      if (!helper) {
        res.writeHead(404).end();
        return;
      }
      helper(url).then(
        (body) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body)),
        (err) => res.writeHead(500, { 'content-type': 'text/plain' }).end(String(err?.stack ?? err)),
      );
      return;
    }
    callback(req, res);
  });
  // The load generator keeps its connections open between runs.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 130_000;
  server.listen(port, '127.0.0.1', () => console.error(`peer listening on ${issuer} (node ${process.version})`));
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

const [cmd, ...rest] = process.argv.slice(2);
const opt = (name) => {
  const i = rest.indexOf(name);
  return i >= 0 ? rest[i + 1] : undefined;
};
if (cmd === 'keys' && rest[0]) {
  writeKeys(rest[0]);
} else if (cmd === 'serve' && opt('--port') && opt('--keys')) {
  await serve(Number(opt('--port')), opt('--keys'));
} else {
  console.error('usage: node server.mjs keys FILE | serve --port P --keys FILE');
  process.exit(2);
}
