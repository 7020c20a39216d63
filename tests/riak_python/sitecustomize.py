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
