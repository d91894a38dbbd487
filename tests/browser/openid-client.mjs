// A Node app on openid-client (a certified relying-party library) signs a user in through
// portcullis: discovery, the authorization URL with PKCE S256, a nonce and a state; a browser
// (fetch, keeping cookies) through the login and consent pages; then openid-client's own checks
// of the callback (state, iss per RFC 9207), the code grant and the ID token (signature from
// the JWKS, iss, aud, exp, nonce), userinfo, a refresh, and the end-session URL. Prints what it
// got as one JSON line.
//
// Usage: node openid-client.mjs BASE_URL CLIENT_ID CLIENT_SECRET REDIRECT_URI LOGOUT_URI EMAIL PASSWORD
import * as client from "openid-client";

const [base, clientId, secret, redirectUri, logoutUri, email, password] = process.argv.slice(2);
const config = await client.discovery(new URL(base), clientId, secret, undefined, {
  execute: [client.allowInsecureRequests],
});
const verifier = client.randomPKCECodeVerifier();
const nonce = client.randomNonce();
const state = client.randomState();
const url = client.buildAuthorizationUrl(config, {
  redirect_uri: redirectUri,
  scope: "openid email profile offline_access",
  code_challenge: await client.calculatePKCECodeChallenge(verifier),
  code_challenge_method: "S256",
  nonce,
  state,
});

const cookies = new Map();
async function visit(target, form) {
  const headers = { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join("; ") };
  let body;
  if (form) {
    headers["content-type"] = "application/x-www-form-urlencoded";
    headers.origin = new URL(target).origin;
    body = new URLSearchParams(form).toString();
  }
  const response = await fetch(target, { method: form ? "POST" : "GET", headers, body, redirect: "manual" });
  for (const line of response.headers.getSetCookie()) {
    const [pair] = line.split(";");
    const at = pair.indexOf("=");
    cookies.set(pair.slice(0, at), pair.slice(at + 1));
  }
  return response;
}
const unescape = (text) => text.replaceAll("&#x2f;", "/").replaceAll("&#x2F;", "/").replaceAll("&quot;", '"').replaceAll("&amp;", "&");
function hidden(html) {
  const fields = {};
  for (const tag of html.match(/<input[^>]*type="hidden"[^>]*>/g) ?? []) {
    fields[unescape(tag.match(/name="([^"]*)"/)[1])] = unescape(tag.match(/value="([^"]*)"/)[1]);
  }
  return fields;
}

const pages = [];
let step = await visit(url.href);
while (!step.headers.get("location")?.startsWith(redirectUri)) {
  if (step.status !== 303) throw new Error(`${step.status}: ${await step.text()}`);
  const page = new URL(step.headers.get("location"), base);
  pages.push(page.pathname);
  const html = await (await visit(page.href)).text();
  const action = unescape(html.match(/<form[^>]*action="([^"]*)"/)[1]);
  const filled = page.pathname === "/login" ? { email, password } : { decision: "allow" };
  step = await visit(new URL(action, base).href, { ...hidden(html), ...filled });
}

const tokens = await client.authorizationCodeGrant(config, new URL(step.headers.get("location")), {
  pkceCodeVerifier: verifier,
  expectedNonce: nonce,
  expectedState: state,
  idTokenExpected: true,
});
const claims = tokens.claims();
const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
const logout = client.buildEndSessionUrl(config, {
  id_token_hint: refreshed.id_token,
  post_logout_redirect_uri: logoutUri,
  state: "bye",
});
const signedOut = await visit(logout.href);
console.log(JSON.stringify({
  pages,
  sub: claims.sub,
  email: claims.email,
  userinfo,
  refreshed: { sub: refreshed.claims().sub, rotated: refreshed.refresh_token !== tokens.refresh_token },
  logout: signedOut.headers.get("location"),
}));
