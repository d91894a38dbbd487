"""A resource server that trusts portcullis access tokens the way standard verifiers do.

It finds the keys through the discovery document (checked with authlib's OpenID provider
metadata validators, those that apply to a service that issues access tokens and no ID tokens), fetches the JWKS and keeps it for the `max-age` the server gives, never
refetching on an unknown `kid` (the strictest kind of cache), and verifies each token it reads
on standard input with PyJWT, printing one JSON line per token.

Usage: verifier.py ISSUER AUDIENCE
"""

import json
import sys
import time

import jwt
import requests
from authlib.oidc.discovery import OpenIDProviderMetadata


def main() -> None:
    issuer, audience = sys.argv[1], sys.argv[2]
    document = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=5).json()
    metadata = OpenIDProviderMetadata(document)
    metadata.validate_issuer()
    metadata.validate_jwks_uri()
    metadata.validate_subject_types_supported()
    metadata.validate_claims_supported()
    if document["issuer"] != issuer:
        raise SystemExit(f"issuer {document['issuer']!r} is not {issuer!r}")
    algorithms = document["id_token_signing_alg_values_supported"]
    cache = {"keys": None, "until": 0.0, "fetches": 0}

    def keys() -> jwt.PyJWKSet:
        if cache["keys"] is None or time.monotonic() >= cache["until"]:
            response = requests.get(document["jwks_uri"], timeout=5)
            control = response.headers.get("cache-control", "")
            max_age = 0
            for part in control.split(","):
                name, _, value = part.strip().partition("=")
                if name == "max-age":
                    max_age = int(value)
            cache["keys"] = jwt.PyJWKSet.from_dict(response.json())
            cache["until"] = time.monotonic() + max_age
            cache["fetches"] += 1
        return cache["keys"]

    print(json.dumps({"ready": True, "discovery": document}), flush=True)
    for line in sys.stdin:
        token = line.strip()
        kid = jwt.get_unverified_header(token).get("kid")
        matching = [key for key in keys().keys if key.key_id == kid]
        if not matching:
            result = {"ok": False, "kid": kid, "error": "no matching key in the cached JWKS"}
        else:
            try:
                claims = jwt.decode(
                    token,
                    matching[0].key,
                    algorithms=algorithms,
                    audience=audience,
                    issuer=issuer,
                )
                result = {"ok": True, "kid": kid, "claims": claims}
            except jwt.PyJWTError as error:
                result = {"ok": False, "kid": kid, "error": repr(error)}
        result["fetches"] = cache["fetches"]
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
