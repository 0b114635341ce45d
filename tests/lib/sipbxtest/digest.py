"""The client side of SIP digest authentication (RFC 2617, RFC 3261 22.4): reading a
challenge and answering it, with qop=auth (nc, cnonce) or in the older form without qop."""

import hashlib
import re


def md5hex(text):
    return hashlib.md5(text.encode()).hexdigest()


def challenge(value):
    """The parameters of a Digest challenge (the value of WWW-Authenticate or
    Proxy-Authenticate, the scheme word included or not) as a dict with lower-case names,
    quotes taken off."""
    return {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
            for m in re.finditer(r'(\w+)=(?:"([^"]*)"|([^\s,]+))', value)}


def ha1(user, realm, password):
    """H(A1) of MD5: what sipbx stores for a user instead of the password."""
    return md5hex("%s:%s:%s" % (user, realm, password))


def response(user, password, realm, nonce, method, uri, nc=None, cnonce=None):
    """The request-digest; with nc (an int) and cnonce it is the qop=auth form."""
    ha2 = md5hex("%s:%s" % (method, uri))
    if nc is None:
        return md5hex("%s:%s:%s" % (ha1(user, realm, password), nonce, ha2))
    return md5hex("%s:%s:%08x:%s:auth:%s" % (ha1(user, realm, password), nonce, nc, cnonce,
                                             ha2))


def authorization(user, password, chal, uri, method="REGISTER", nc=1, cnonce="0a4f113b",
                  qop=True):
    """An Authorization (or Proxy-Authorization) value answering chal (a parsed challenge) for
    a request of method to uri, in the usual client shape; without qop, the RFC 2069 form."""
    if not qop:
        resp = response(user, password, chal["realm"], chal["nonce"], method, uri)
        return ('Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", '
                'algorithm=MD5' % (user, chal["realm"], chal["nonce"], uri, resp))
    resp = response(user, password, chal["realm"], chal["nonce"], method, uri, nc, cnonce)
    return ('Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", '
            'algorithm=MD5, cnonce="%s", qop=auth, nc=%08x'
            % (user, chal["realm"], chal["nonce"], uri, resp, cnonce, nc))
