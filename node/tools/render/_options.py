"""What to render and how: the choices of dcm2pnm / gdcm2pnm in one value object."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RenderOptions:
    """Options of :func:`node.tools.render.render`.

    VOI, in order of precedence: ``center``/``width`` (dcm2pnm ``+Ww``), ``window`` (the n-th
    window of the file, 1-based, ``+Wi``), ``voi_lut`` (the n-th VOI LUT, ``+Wl``), ``minmax``
    (``+Wm``), ``histogram`` (percent ignored at each end, ``+Wh``).  With none of them the
    file's first window is used, else its first VOI LUT, else the histogram window with
    :data:`DEFAULT_HISTOGRAM_PERCENT`.  ``no_voi`` maps the whole modality range (dcm2pnm's
    default ``-W``).
    """

    frame: int | None = None
    center: float | None = None
    width: float | None = None
    window: int | None = None
    voi_lut: int | None = None
    minmax: bool = False
    histogram: float | None = None
    no_voi: bool = False
    modality_lut: bool = True
    voi_function: str | None = None
    bits16: bool = False
    scale: tuple[int, int] | None = None
    max_size: int | None = None
    overlays: bool = False


#: Percent of pixels ignored at each end by the automatic histogram window.
DEFAULT_HISTOGRAM_PERCENT = 1.0
