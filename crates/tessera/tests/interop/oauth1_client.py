"""An OAuth 1.0a consumer on oauthlib: a signed request-token call, then (given the verifier on
stdin) the access-token call and a signed resource call checked at `/accounts/caller`.

Usage: oauth1_client.py BASE_URL METHOD CONSUMER_KEY SECRET_OR_KEY_FILE SCOPE FEED_URL, with
METHOD `HMAC-SHA1` (then a consumer secret) or `RSA-SHA1` (then a PEM private key file). Prints
the request token, reads the verifier, prints the access token and the caller check's JSON answer;
any failure prints `fail <reason>`."""

import json
import sys
from urllib.error import HTTPError
from urllib.parse import parse_qsl, quote
from urllib.request import Request, urlopen

from oauthlib.oauth1 import SIGNATURE_RSA, Client

CALLBACK = "http://app.example.com/cb?x=1"


def call(uri, method, headers, body=None):
    data = body.encode() if isinstance(body, str) else body
    request = Request(uri, data=data, method=method, headers=headers or {})
    try:
        with urlopen(request) as response:
            return response.status, response.read().decode()
    except HTTPError as err:
        return err.code, err.read().decode()


def client(method, key, secret, **kwargs):
    if method == "RSA-SHA1":
        return Client(key, signature_method=SIGNATURE_RSA, rsa_key=secret, **kwargs)
    return Client(key, client_secret=secret, **kwargs)


def main():
    base, method, key, secret, scope, feed = sys.argv[1:7]
    if method == "RSA-SHA1":
        with open(secret) as pem:
            secret = pem.read()
    first = client(method, key, secret, callback_uri=CALLBACK)
    uri, headers, _ = first.sign(
        base + "/accounts/OAuthGetRequestToken?scope=" + quote(scope, safe=""), http_method="GET"
    )
    status, body = call(uri, "GET", headers)
    if status != 200:
        print("fail request token %d %s" % (status, body), flush=True)
        return
    answer = dict(parse_qsl(body))
    print(answer["oauth_token"], flush=True)
    verifier = sys.stdin.readline().strip()

    second = client(
        method,
        key,
        secret,
        resource_owner_key=answer["oauth_token"],
        resource_owner_secret=answer["oauth_token_secret"],
        verifier=verifier,
    )
    uri, headers, _ = second.sign(base + "/accounts/OAuthGetAccessToken", http_method="POST")
    status, body = call(uri, "POST", headers)
    if status != 200:
        print("fail access token %d %s" % (status, body), flush=True)
        return
    access = dict(parse_qsl(body))
    print(access["oauth_token"], flush=True)

    third = client(
        method,
        key,
        secret,
        resource_owner_key=access["oauth_token"],
        resource_owner_secret=access["oauth_token_secret"],
    )
    _, headers, _ = third.sign(feed, http_method="GET")
    check = json.dumps({"authorization": headers["Authorization"], "method": "GET", "url": feed})
    status, body = call(
        base + "/accounts/caller", "POST", {"Content-Type": "application/json"}, check
    )
    print("%d %s" % (status, body), flush=True)


if __name__ == "__main__":
    main()
