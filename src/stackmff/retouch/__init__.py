"""Retouching: edit a focus map, then gather the stack again, exactly.

:mod:`~stackmff.retouch.maps` edits the map (paint a layer, prefer the near or far confident
layer), :mod:`~stackmff.retouch.edit` turns an edited map back into an image with the
confidence 0 where the edit decided (and :class:`Retouch` keeps the three consistent), and
:mod:`~stackmff.retouch.halo` is such an edit made by a rule (``--halo``), as is
:mod:`~stackmff.retouch.ties` (``--prefer near|far``). The file-to-file
command lives in :mod:`stackmff.regather`.
"""

from stackmff.retouch.edit import Retouch, regather, regather_edit
from stackmff.retouch.halo import limit_halos, limit_result_halos
from stackmff.retouch.maps import ORDERS, Order, Side, check_focus_map, paint, prefer
from stackmff.retouch.ties import prefer_result, prefer_sharp

__all__ = [
    "ORDERS",
    "Order",
    "Retouch",
    "Side",
    "check_focus_map",
    "limit_halos",
    "limit_result_halos",
    "paint",
    "prefer",
    "prefer_result",
    "prefer_sharp",
    "regather",
    "regather_edit",
]
