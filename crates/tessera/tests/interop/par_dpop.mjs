// An independent OAuth 2.0 / OpenID Connect client (oauth4webapi) against tessera: discovery,
// a pushed authorization request with PKCE, then the code exchanged with a DPoP proof and
// userinfo called with the DPoP-bound token.
//
//   node par_dpop.mjs push ISSUER CLIENT_ID SECRET REDIRECT
//     prints {"authorize": URL, "verifier": ..., "state": ..., "nonce": ...}
//   node par_dpop.mjs exchange ISSUER CLIENT_ID SECRET REDIRECT CALLBACK VERIFIER STATE NONCE
//     prints {"token_type": ..., "sub": ..., "userinfo": {...}}
//
// The module directory comes from NODE_PATH-less resolution: the caller passes it as
// OAUTH4WEBAPI (a path to the package's entry file).
const oauth = await import(process.env.OAUTH4WEBAPI);

const [phase, issuerText, clientId, secret, redirect, ...rest] = process.argv.slice(2);
const issuer = new URL(issuerText);
const insecure = { [oauth.allowInsecureRequests]: true };

const as = await oauth.processDiscoveryResponse(
  issuer,
  await oauth.discoveryRequest(issuer, { ...insecure, algorithm: 'oidc' }),
);
const client = { client_id: clientId };
const auth = oauth.ClientSecretBasic(secret);

if (phase === 'push') {
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const nonce = oauth.generateRandomNonce();
  const params = new URLSearchParams({
    redirect_uri: redirect,
    response_type: 'code',
    scope: 'openid email',
    state,
    nonce,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  });
  const pushed = await oauth.processPushedAuthorizationResponse(
    as,
    client,
    await oauth.pushedAuthorizationRequest(as, client, auth, params, insecure),
  );
  const authorize = new URL(as.authorization_endpoint);
  authorize.searchParams.set('client_id', clientId);
  authorize.searchParams.set('request_uri', pushed.request_uri);
  console.log(JSON.stringify({ authorize: authorize.href, verifier, state, nonce }));
} else if (phase === 'exchange') {
  const [callback, verifier, state, nonce] = rest;
  const keys = await oauth.generateKeyPair('ES256');
  const DPoP = oauth.DPoP(client, keys);
  const params = oauth.validateAuthResponse(as, client, new URL(callback), state);
  const tokens = await oauth.processAuthorizationCodeResponse(
    as,
    client,
    await oauth.authorizationCodeGrantRequest(as, client, auth, params, redirect, verifier, {
      ...insecure,
      DPoP,
    }),
    { expectedNonce: nonce, requireIdToken: true },
  );
  const claims = oauth.getValidatedIdTokenClaims(tokens);
  const userinfo = await oauth.processUserInfoResponse(
    as,
    client,
    claims.sub,
    await oauth.userInfoRequest(as, client, tokens.access_token, { ...insecure, DPoP }),
  );
  console.log(JSON.stringify({ token_type: tokens.token_type, sub: claims.sub, userinfo }));
} else {
  throw new Error(`unknown phase ${phase}`);
}
