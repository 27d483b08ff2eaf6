"""A relying party on python-openid: discovery of the OP identifier, an association, a checkid_setup
URL with an AX fetch request; then, given the browser's final redirect on stdin, verification of the
assertion (signature, nonce, return_to, re-discovery of the claimed identifier).

Usage: openid2_rp.py BASE_URL. Prints the request URL, reads the return URL, prints
`ok <claimed id> <email>` or `fail <reason>`."""

import sys
from urllib.parse import parse_qsl, urlsplit

from openid.consumer import consumer
from openid.extensions import ax
from openid.store.memstore import MemoryStore

REALM = "http://rp.example.test/"
RETURN_TO = "http://rp.example.test/return?session=abc"


def main():
    base = sys.argv[1]
    store = MemoryStore()
    session = {}
    rp = consumer.Consumer(session, store)
    request = rp.begin(base + "/accounts/o8/id")
    if request.assoc is None:
        print("fail no association")
        return
    fetch = ax.FetchRequest()
    fetch.add(ax.AttrInfo("http://axschema.org/contact/email", alias="email", required=True))
    fetch.add(ax.AttrInfo("http://axschema.org/namePerson/first", alias="first", required=True))
    request.addExtension(fetch)
    print(request.redirectURL(REALM, RETURN_TO), flush=True)
    back = sys.stdin.readline().strip()
    query = dict(parse_qsl(urlsplit(back).query, keep_blank_values=True))
    rp = consumer.Consumer(session, store)
    response = rp.complete(query, back)
    if response.status != consumer.SUCCESS:
        print("fail %s %s" % (response.status, getattr(response, "message", "")))
        return
    fetched = ax.FetchResponse.fromSuccessResponse(response)
    email = fetched.getSingle("http://axschema.org/contact/email") if fetched else None
    print("ok %s %s" % (response.identity_url, email), flush=True)


if __name__ == "__main__":
    main()
