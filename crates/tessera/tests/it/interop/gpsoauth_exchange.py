"""Web sign-in exchange with the gpsoauth client library: `exchange_token` trades the
`oauth_token` cookie of the web sign-in page for a master token (ACCESS_TOKEN=1), then
`perform_oauth` uses that master token. Its URL is a module constant, swapped here for the
server's. Prints both answers as JSON.

argv: site-packages dir, auth URL, email, oauth_token, android id, service, app, client_sig.
"""
import json
import sys

sys.path.insert(0, sys.argv[1])
import gpsoauth  # noqa: E402

url, email, oauth_token, android_id, service, app, sig = sys.argv[2:9]
gpsoauth.AUTH_URL = url
master = gpsoauth.exchange_token(email, oauth_token, android_id)
token = {}
if "Token" in master:
    token = gpsoauth.perform_oauth(
        email, master["Token"], android_id, service=service, app=app, client_sig=sig
    )
print(json.dumps({"master": master, "token": token}))
