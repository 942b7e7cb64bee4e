"""Runs and studies: one run to files (:mod:`.runner`), expectations (:mod:`.expect`) and the
scripting API for studies (:mod:`.api`), re-exported here: ``from mpay.study import Study``."""

from mpay.study.api import *  # noqa: F403 (the public scripting API, as documented)
from mpay.study.api import __all__  # noqa: F401
