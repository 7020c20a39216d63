"""Lets Basho's Python client (riak 2.7.0, written for Python 2.7 and 3.5)
run on current Python without touching its code: names it imports from
`collections` moved to `collections.abc` in Python 3.10, and `namedtuple`
lost its `verbose` argument in 3.7."""

import collections
import collections.abc

for _name in ("Mapping", "MutableMapping", "Sequence", "MutableSequence",
              "Set", "MutableSet", "Iterable", "Iterator", "Callable",
              "Hashable", "Sized", "Container"):
    if not hasattr(collections, _name):
        setattr(collections, _name, getattr(collections.abc, _name))

_namedtuple = collections.namedtuple


def _namedtuple_without_verbose(*args, **kwargs):
    kwargs.pop("verbose", None)
    return _namedtuple(*args, **kwargs)


collections.namedtuple = _namedtuple_without_verbose


# Its TLS code builds `ssl.SSLSocket(sock=..., certfile=..., ca_certs=...)`
# directly, which Python 3.7 stopped allowing (sockets come from
# SSLContext.wrap_socket). The same arguments, through a context.
import ssl as _ssl


_new = _ssl.SSLSocket.__new__
_init = _ssl.SSLSocket.__init__


def _ssl_socket_new(cls, *args, **kwargs):
    if "sock" not in kwargs:
        return _new(cls, *args, **kwargs)
    ctx = _ssl.SSLContext(_ssl.PROTOCOL_TLS_CLIENT)
    cert_reqs = kwargs.get("cert_reqs", _ssl.CERT_NONE)
    hostname = kwargs.get("server_hostname")
    ctx.check_hostname = bool(hostname) and cert_reqs != _ssl.CERT_NONE
    ctx.verify_mode = cert_reqs
    if kwargs.get("ca_certs"):
        ctx.load_verify_locations(kwargs["ca_certs"])
    if kwargs.get("certfile"):
        ctx.load_cert_chain(kwargs["certfile"], kwargs.get("keyfile"))
    if kwargs.get("ciphers"):
        ctx.set_ciphers(kwargs["ciphers"])
    return ctx.wrap_socket(kwargs["sock"], server_hostname=hostname,
                           do_handshake_on_connect=False)


def _ssl_socket_init(self, *args, **kwargs):
    if "sock" not in kwargs:
        _init(self, *args, **kwargs)


_ssl.SSLSocket.__new__ = _ssl_socket_new
_ssl.SSLSocket.__init__ = _ssl_socket_init
