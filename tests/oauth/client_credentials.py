"""A backend service on Authlib: fetches a client_credentials token with client_secret_basic
and with client_secret_post, introspects it, and reports what it got as one JSON line.

Usage: client_credentials.py BASE_URL CLIENT_ID CLIENT_SECRET
"""
import json
import sys

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.base_client import OAuthError


def main():
    base, client_id, secret = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    metadata = requests.get(f"{base}/.well-known/oauth-authorization-server", timeout=10).json()
    token_endpoint = metadata["token_endpoint"]
    report = {}

    basic = OAuth2Session(client_id, secret, token_endpoint_auth_method="client_secret_basic")
    token = basic.fetch_token(token_endpoint, grant_type="client_credentials")
    report["basic"] = {"scope": token["scope"], "token_type": token["token_type"]}

    post = OAuth2Session(
        client_id, secret, token_endpoint_auth_method="client_secret_post", scope="billing:read"
    )
    report["post"] = {"scope": post.fetch_token(token_endpoint, grant_type="client_credentials")["scope"]}

    answer = basic.introspect_token(metadata["introspection_endpoint"], token=token["access_token"])
    answer.raise_for_status()
    report["introspection"] = answer.json()

    wrong = OAuth2Session(client_id, secret + "x")
    try:
        wrong.fetch_token(token_endpoint, grant_type="client_credentials")
        report["wrong_secret"] = "accepted"
    except OAuthError as error:
        report["wrong_secret"] = error.error
    print(json.dumps(report))


if __name__ == "__main__":
    main()
