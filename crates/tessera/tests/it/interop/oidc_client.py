"""An OpenID Connect relying party in the Python standard library only, written from the specs,
sharing no code with tessera: discovery, the code flow with PKCE through sign-in and consent
pages, client_secret_basic, RS256 verification of the ID token against the JWKS (plain modular
exponentiation and PKCS#1 v1.5), userinfo, and revocation.

Usage: oidc_client.py BASE CLIENT_ID CLIENT_SECRET REDIRECT_URI EMAIL PASSWORD
Prints one JSON object; exits non-zero on the first failed check.
"""

import base64
import hashlib
import html
import http.cookiejar
import json
import re
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def check(condition, what):
    if not condition:
        print(json.dumps({"ok": False, "failed": what}))
        sys.exit(1)


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def main():
    base, client_id, client_secret, redirect_uri, email, password = sys.argv[1:7]
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)

    def request(method, url, data=None, headers=None):
        if not url.startswith("http"):
            url = base + url
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        try:
            res = opener.open(req)
        except urllib.error.HTTPError as err:
            res = err
        return res.status, res.headers, res.read().decode()

    status, _, text = request("GET", "/.well-known/openid-configuration")
    meta = json.loads(text)
    check(status == 200 and meta["issuer"] == base, "discovery issuer")

    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state, nonce = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    auth = meta["authorization_endpoint"] + "?" + urllib.parse.urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
        "scope": "openid email", "state": state, "nonce": nonce,
        "code_challenge": challenge, "code_challenge_method": "S256",
    })
    status, headers, _ = request("GET", auth)
    check(status == 302 and "/accounts/ServiceLogin" in headers["Location"], "sent to sign-in")
    status, _, form = request("GET", headers["Location"])
    field = lambda page, name: html.unescape(re.search(r'name="%s" value="([^"]*)"' % name, page).group(1))
    continue_url = field(form, "continue")
    status, headers, _ = request("POST", "/accounts/ServiceLoginAuth", {
        "csrf": field(form, "csrf"), "continue": continue_url, "Email": email, "Passwd": password,
    })
    check(status in (302, 303), "signed in")
    status, _, consent = request("GET", headers["Location"])
    check(status == 200 and "Allow" in consent, "consent page")
    status, headers, _ = request("POST", "/o/oauth2/approval", {
        "csrf": field(consent, "csrf"), "request": field(consent, "request"), "decision": "allow",
    })
    check(status in (302, 303), "allowed")
    back = urllib.parse.urlsplit(headers["Location"])
    answer = dict(urllib.parse.parse_qsl(back.query))
    check(headers["Location"].startswith(redirect_uri + "?"), "redirected to the client")
    check(answer.get("state") == state, "state echoed")
    check(answer.get("iss") == meta["issuer"], "RFC 9207 iss")

    basic = base64.b64encode(("%s:%s" % (urllib.parse.quote(client_id, safe=""),
                                          urllib.parse.quote(client_secret, safe=""))).encode()).decode()
    status, headers, text = request("POST", meta["token_endpoint"], {
        "grant_type": "authorization_code", "code": answer["code"],
        "redirect_uri": redirect_uri, "code_verifier": verifier,
    }, {"Authorization": "Basic " + basic})
    tokens = json.loads(text)
    check(status == 200, "token endpoint: %s" % text)
    check(headers.get("Cache-Control") == "no-store", "no-store")
    check(tokens["token_type"] == "Bearer" and isinstance(tokens["expires_in"], int), "token shape")

    # RS256 by hand: m = s^e mod n must be the PKCS#1 v1.5 encoding of SHA-256(header.payload).
    id_token = tokens["id_token"]
    head_b64, body_b64, sig_b64 = id_token.split(".")
    header, claims = json.loads(b64url_decode(head_b64)), json.loads(b64url_decode(body_b64))
    status, _, text = request("GET", meta["jwks_uri"])
    key = next(k for k in json.loads(text)["keys"] if k["kid"] == header["kid"])
    n = int.from_bytes(b64url_decode(key["n"]), "big")
    e = int.from_bytes(b64url_decode(key["e"]), "big")
    size = (n.bit_length() + 7) // 8
    em = pow(int.from_bytes(b64url_decode(sig_b64), "big"), e, n).to_bytes(size, "big")
    digest_info = bytes.fromhex("3031300d060960864801650304020105000420")
    digest = hashlib.sha256((head_b64 + "." + body_b64).encode()).digest()
    expected = b"\x00\x01" + b"\xff" * (size - 3 - len(digest_info) - len(digest)) + b"\x00" + digest_info + digest
    check(header["alg"] == "RS256" and em == expected, "ID token signature")
    check(claims["iss"] == meta["issuer"] and claims["aud"] == client_id, "iss and aud")
    check(claims["nonce"] == nonce and claims["email"] == email, "nonce and email")
    check(claims["email_verified"] is True, "email_verified is a boolean")
    at_hash = base64.urlsafe_b64encode(hashlib.sha256(tokens["access_token"].encode()).digest()[:16]).rstrip(b"=").decode()
    check(claims["at_hash"] == at_hash, "at_hash")

    bearer = {"Authorization": "Bearer " + tokens["access_token"]}
    status, _, text = request("GET", meta["userinfo_endpoint"], headers=bearer)
    check(status == 200 and json.loads(text)["sub"] == claims["sub"], "userinfo")
    status, _, _ = request("POST", meta["revocation_endpoint"], {"token": tokens["access_token"]},
                           {"Authorization": "Basic " + basic})
    check(status == 200, "revoked")
    status, headers, _ = request("GET", meta["userinfo_endpoint"], headers=bearer)
    check(status == 401 and headers.get("WWW-Authenticate", "").startswith("Bearer"), "revoked token refused")
    print(json.dumps({"ok": True, "sub": claims["sub"], "email": claims["email"], "kid": header["kid"]}))


if __name__ == "__main__":
    main()
