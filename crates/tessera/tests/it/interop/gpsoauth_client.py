"""Device login with the gpsoauth client library: its Google key and URL are module constants,
swapped here for the server's. Prints the master login's and the token request's answers as JSON.

argv: site-packages dir, auth URL, base64 public key, email, password, android id, service, app,
client_sig.
"""
import json
import sys

sys.path.insert(0, sys.argv[1])
import gpsoauth  # noqa: E402
from gpsoauth import google  # noqa: E402

url, key, email, password, android_id, service, app, sig = sys.argv[2:10]
gpsoauth.AUTH_URL = url
gpsoauth.ANDROID_KEY_7_3_29 = google.key_from_b64(key)
master = gpsoauth.perform_master_login(email, password, android_id)
token = {}
if "Token" in master:
    token = gpsoauth.perform_oauth(
        email, master["Token"], android_id, service=service, app=app, client_sig=sig
    )
print(json.dumps({"master": master, "token": token}))
