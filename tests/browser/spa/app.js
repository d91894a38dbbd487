// A browser app on oidc-client-ts: on "/" it starts the sign-in (the code flow with PKCE), on
// "/callback" it finishes it (state, the code exchange by CORS, the ID token's claims, userinfo)
// and records what it got in `window.__oidcDone` for the test driver.
const config = await (await fetch("/config.json")).json();
const users = new oidc.UserManager({
  authority: config.issuer,
  client_id: config.client_id,
  redirect_uri: `${location.origin}/callback`,
  post_logout_redirect_uri: `${location.origin}/`,
  response_type: "code",
  scope: "openid profile email",
  loadUserInfo: true,
});
if (location.pathname === "/callback") {
  try {
    const user = await users.signinCallback();
    window.__oidcDone = {
      ok: true,
      sub: user.profile.sub,
      email: user.profile.email,
      iss: user.profile.iss,
      scope: user.scope,
      access_token: Boolean(user.access_token),
    };
  } catch (error) {
    window.__oidcDone = { ok: false, error: String(error) };
  }
  document.getElementById("status").textContent = "done";
} else {
  await users.signinRedirect();
}
