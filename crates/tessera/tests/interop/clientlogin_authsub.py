#!/usr/bin/env python3
"""An independent client for tessera's ClientLogin and AuthSub, written with the Python standard
library only (urllib), the way gdata-python-client talks to the server. Run by the Rust test
`legacy::python_stdlib_client_interoperates` as:

    clientlogin_authsub.py BASE_URL EMAIL PASSWORD SCOPE

It exits non-zero (with a message) at the first answer that is not what a gdata client expects.
"""

import html
import http.cookiejar
import re
import sys
import urllib.error
import urllib.parse
import urllib.request


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def fail(message):
    print("FAIL: " + message, file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def open_url(opener, url, data=None, headers=None):
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with opener.open(request) as res:
            return res.status, res.headers, res.read().decode("utf-8")
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read().decode("utf-8")


def field(page, name):
    match = re.search(r'name="%s" value="([^"]*)"' % re.escape(name), page)
    check(match is not None, "no field %s in page" % name)
    return html.unescape(match.group(1))


def clientlogin(base, email, password, scope):
    opener = urllib.request.build_opener(NoRedirect)
    body = urllib.parse.urlencode({
        "accountType": "HOSTED_OR_GOOGLE",
        "Email": email,
        "Passwd": password,
        "service": "cl",
        "source": "python-stdlib-interop-1",
    }).encode("ascii")
    status, headers, text = open_url(opener, base + "/accounts/ClientLogin", body,
                                     {"Content-Type": "application/x-www-form-urlencoded"})
    check(status == 200, "ClientLogin status %s: %r" % (status, text))
    check(headers["Content-Type"].startswith("text"), "ClientLogin content type")
    # gdata-python v2: the line that starts with Auth=; upload.py splits on every '='.
    values = dict(line.split("=", 1) for line in text.splitlines())
    check(list(values) == ["SID", "LSID", "Auth"], "ClientLogin keys %r" % list(values))
    check(text.endswith("\n"), "ClientLogin last line ends in LF")
    for line in text.splitlines():
        check(len(line.split("=")) == 2, "a value contains '=': %r" % line)
    auth = values["Auth"]

    status, _, text = open_url(opener, base + "/accounts/ClientLogin", urllib.parse.urlencode({
        "Email": email, "Passwd": "not-the-password", "service": "cl"}).encode("ascii"))
    check(status == 403, "bad password status %s" % status)
    check(text.splitlines()[0] == "Error=BadAuthentication", "bad password body %r" % text)

    import json
    question = json.dumps({"authorization": "GoogleLogin auth=" + auth, "method": "GET", "url": scope}).encode()
    status, _, text = open_url(opener, base + "/accounts/caller", question, {"Content-Type": "application/json"})
    answer = json.loads(text)
    check(status == 200 and answer["protocol"] == "clientlogin" and answer["service"] == "cl",
          "caller check %s %r" % (status, answer))


def authsub(base, email, password, scope):
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(NoRedirect, urllib.request.HTTPCookieProcessor(jar))
    server = urllib.request.build_opener(NoRedirect)
    next_url = "http://app.example.org/authsub?auth_sub_scopes=" + urllib.parse.quote(scope, safe="")
    request_url = base + "/accounts/AuthSubRequest?" + urllib.parse.urlencode(
        {"next": next_url, "scope": scope, "session": 1, "secure": 0, "hd": "default"})

    status, headers, _ = open_url(browser, request_url)
    check(status == 302, "AuthSubRequest before sign-in: %s" % status)
    login = urllib.parse.urljoin(base, headers["Location"])
    status, _, page = open_url(browser, login)
    check(status == 200, "ServiceLogin %s" % status)
    form = urllib.parse.urlencode({"csrf": field(page, "csrf"), "continue": field(page, "continue"),
                                   "Email": email, "Passwd": password}).encode()
    status, headers, _ = open_url(browser, base + "/accounts/ServiceLoginAuth", form)
    check(status == 303, "ServiceLoginAuth %s" % status)
    status, _, page = open_url(browser, urllib.parse.urljoin(base, headers["Location"]))
    check(status == 200 and "not registered" in page, "access page %s" % status)
    form = urllib.parse.urlencode({"csrf": field(page, "csrf"), "authuser": field(page, "authuser"),
                                   "query": field(page, "query"), "action": "allow"}).encode()
    status, headers, _ = open_url(browser, base + "/accounts/AuthSubRequest", form)
    check(status == 303, "allow %s" % status)
    location = headers["Location"]
    check(location.startswith(next_url + "&token="), "redirect %r" % location)
    # gdata-python v1 reads the raw text after token= without decoding.
    single = location.split("token=")[-1]
    check(re.fullmatch(r"[-_0-9A-Za-z]+", single) is not None, "token characters %r" % single)

    status, _, text = open_url(server, base + "/accounts/AuthSubSessionToken",
                               headers={"Authorization": "AuthSub token=%s" % single})
    check(status == 200 and text.startswith("Token=") and text.endswith("\n"), "upgrade %s %r" % (status, text))
    session = text[len("Token="):].strip()
    status, _, text = open_url(server, base + "/accounts/AuthSubSessionToken",
                               headers={"Authorization": "AuthSub token=%s" % single})
    check(status == 401, "second upgrade %s" % status)

    status, _, text = open_url(server, base + "/accounts/AuthSubTokenInfo",
                               headers={"Authorization": 'AuthSub token="%s"' % session})
    check(status == 200, "token info %s" % status)
    info = dict(line.split("=", 1) for line in text.strip().split("\n"))
    check(info == {"Target": "http://app.example.org", "Scope": scope, "Secure": "false"}, "info %r" % info)

    status, _, text = open_url(server, base + "/accounts/AuthSubRevokeToken",
                               headers={"Authorization": 'AuthSub token="%s"' % session})
    check(status == 200 and text == "", "revoke %s" % status)
    status, headers, _ = open_url(server, base + "/accounts/AuthSubTokenInfo",
                                  headers={"Authorization": 'AuthSub token="%s"' % session})
    check(status == 401 and headers["WWW-Authenticate"].startswith("AuthSub realm="), "after revoke %s" % status)


def main():
    base, email, password, scope = sys.argv[1:5]
    clientlogin(base, email, password, scope)
    authsub(base, email, password, scope)
    print("ok")


if __name__ == "__main__":
    main()
