"""A web app on Authlib signs a user in through portcullis with the authorization code flow and
PKCE: Authlib builds the authorization URL from the discovery document, a browser (requests,
keeping its cookies as a browser keeps them) follows it through the login and consent pages,
and Authlib redeems the code and validates the ID token (signature against the JWKS, iss, aud,
exp, nonce, at_hash) with its own OpenID Connect checks. Prints what it got as one JSON line.

Usage: code_flow.py BASE_URL CLIENT_ID CLIENT_SECRET REDIRECT_URI EMAIL PASSWORD
"""
import json
import sys
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlparse

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken


class Form(HTMLParser):
    """The page's form: its action and every input with a value."""

    def __init__(self):
        super().__init__()
        self.action, self.fields = None, {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = attrs.get("action")
        if tag == "input" and attrs.get("type") == "hidden":
            self.fields[attrs["name"]] = attrs.get("value", "")


class Browser:
    """Follows no redirect by itself; sends back the cookies it was given (they are Secure, and
    a browser sends them to http://localhost; the cookie jar of requests would not)."""

    def __init__(self):
        self.cookies = {}

    def _keep(self, response):
        for name, value in response.raw.headers.items():
            if name.lower() == "set-cookie":
                pair = value.split(";", 1)[0]
                key, _, val = pair.partition("=")
                self.cookies[key] = val

    def _headers(self, origin=None):
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if origin:
            headers["Origin"] = origin
        return headers

    def get(self, url):
        response = requests.get(url, headers=self._headers(), allow_redirects=False, timeout=10)
        self._keep(response)
        return response

    def submit(self, page_url, html, fields):
        form = Form()
        form.feed(html)
        data = dict(form.fields, **fields)
        origin = "{0.scheme}://{0.netloc}".format(urlparse(page_url))
        response = requests.post(
            urljoin(page_url, form.action), data=data, headers=self._headers(origin),
            allow_redirects=False, timeout=10,
        )
        self._keep(response)
        return response


def main():
    base, client_id, secret, redirect_uri, email, password = sys.argv[1:7]
    metadata = requests.get(f"{base.rstrip('/')}/.well-known/openid-configuration", timeout=10).json()
    session = OAuth2Session(
        client_id, secret, scope="openid email profile", redirect_uri=redirect_uri,
        code_challenge_method="S256", token_endpoint_auth_method="client_secret_basic",
    )
    verifier, nonce = generate_token(48), generate_token(20)
    url, state = session.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )

    browser = Browser()
    step = browser.get(url)
    seen = []
    while not step.headers.get("Location", "").startswith(redirect_uri):
        assert step.status_code == 303, (step.status_code, step.text[:500])
        page_url = urljoin(url, step.headers["Location"])
        seen.append(urlparse(page_url).path)
        page = browser.get(page_url)
        assert page.status_code == 200, (page.status_code, page.text[:500])
        if "/login" in page_url:
            step = browser.submit(page_url, page.text, {"email": email, "password": password})
        else:
            step = browser.submit(page_url, page.text, {"decision": "allow"})
    callback = step.headers["Location"]
    answer = parse_qs(urlparse(callback).query)
    assert answer["iss"] == [metadata["issuer"]], answer  # RFC 9207, checked by the app

    token = session.fetch_token(
        metadata["token_endpoint"], authorization_response=callback, code_verifier=verifier,
        state=state,
    )
    jwks = JsonWebKey.import_key_set(requests.get(metadata["jwks_uri"], timeout=10).json())
    claims = jwt.decode(
        token["id_token"], jwks, claims_cls=CodeIDToken,
        claims_options={"iss": {"essential": True, "value": metadata["issuer"]}},
        claims_params={"nonce": nonce, "client_id": client_id, "access_token": token["access_token"]},
    )
    claims.validate(leeway=5)
    userinfo = session.get(metadata["userinfo_endpoint"]).json()
    print(json.dumps({
        "pages": seen,
        "id_token": {k: claims[k] for k in ("sub", "aud", "email", "amr", "sid")},
        "alg": claims.header["alg"],
        "userinfo": userinfo,
    }))


if __name__ == "__main__":
    main()
