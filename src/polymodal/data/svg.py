"""SVG rasterised with cairosvg, bounded before anything is parsed or drawn.

An SVG is text that a renderer expands three ways, each a bomb of its own: gzip (an
``.svg`` that is really ``.svgz``, which cairosvg inflates whole), XML entities (the
"billion laughs"; refused by cairosvg's defusedxml parser) and ``<use>`` references
(each level drawing the one below ten times). Each is bounded here, in this order:
the bytes read from disk, the bytes a gzip stream may inflate to, the number of
elements the drawing expands to, and the size of the surface. Resources the drawing
pulls in are limited to ``data:`` URLs, whose pictures are checked like any picture.
"""

from __future__ import annotations

import io
import re
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from polymodal.data.errors import MediaError

if TYPE_CHECKING:
    from polymodal.data.media import MediaLimits

GZIP_MAGIC = b"\x1f\x8b"
_DOCTYPE = re.compile(rb"<!DOCTYPE[^\[>]*(\[(?P<subset>.*?)\])?\s*>", re.DOTALL)
_INTERNAL_ENTITY = re.compile(
    rb"<!ENTITY\s+(?P<name>[\w.-]+)\s+(?P<q>[\"'])(?P<value>[^&%<]*?)(?P=q)\s*>")
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"


def read_svg_bytes(path: Path, limits: MediaLimits) -> bytes:
    """The SVG's text: at most ``limits.max_svg_bytes`` read from disk, a gzip stream
    inflated to at most that many bytes (never whole, whatever it claims)."""
    size = path.stat().st_size  # read() of a bound allocates the whole bound first
    with path.open("rb") as fh:
        data = fh.read(min(size, limits.max_svg_bytes) + 1)
    if len(data) > limits.max_svg_bytes:
        raise MediaError(f"SVG file is over the limit of {limits.max_svg_bytes:,} bytes",
                         kind="too_large")
    if data.startswith(GZIP_MAGIC):
        data = inflate_bounded(data, limits.max_svg_bytes, what="gzip-compressed SVG")
    return data


def inflate_bounded(data: bytes, limit: int, *, what: str = "gzip stream") -> bytes:
    """A gzip (or zlib) stream inflated to at most ``limit`` bytes; a stream that would
    inflate further, or that holds another compressed stream, is ``too_large``. The size
    is counted first, 64 KiB at a time, so a bomb costs a few MB however far it would
    inflate; only a stream within the limit is inflated whole."""
    counter = zlib.decompressobj(wbits=47)  # 32 + 15: gzip or zlib header, detected
    size, pending = 0, data
    try:
        while pending and not counter.eof:
            size += len(counter.decompress(pending, 65536))
            pending = counter.unconsumed_tail
            if size > limit:
                raise MediaError(f"{what} inflates past the limit of {limit:,} bytes "
                                 "(a decompression bomb?)", kind="too_large")
        out = zlib.decompressobj(wbits=47).decompress(data, limit + 1)
    except zlib.error as exc:
        raise MediaError(f"{what} is damaged ({exc})", kind="unreadable") from None
    if out.startswith(GZIP_MAGIC):
        raise MediaError(f"{what} holds another compressed stream (a nested bomb?)",
                         kind="too_large")
    return out


def expand_internal_entities(svg: bytes) -> bytes:
    """Expand flat internal entities of an SVG's DOCTYPE and drop the DOCTYPE.

    Illustrator exports declare ``<!ENTITY ns_svg "http://...">``; cairosvg's safe XML
    parser refuses every entity. Entities whose value holds no reference (so no nested
    "billion laughs" expansion) are expanded here; anything else (external, parameter
    or nested entities) is left in place and stays refused.
    """
    match = _DOCTYPE.search(svg)
    if match is None or not match.group("subset"):
        return svg
    subset = match.group("subset")
    entities = {m["name"]: m["value"] for m in _INTERNAL_ENTITY.finditer(subset)}
    leftover = _INTERNAL_ENTITY.sub(b"", subset)
    if b"<!ENTITY" in leftover or not entities:
        return svg
    body = svg[: match.start()] + svg[match.end():]
    for name, value in entities.items():
        body = body.replace(b"&" + name + b";", value)
    return body


def expanded_element_count(root: Any, limit: int) -> int:
    """How many elements drawing ``root`` visits, each ``<use>`` counting the subtree
    it references again (memoised per id, so the count itself costs one pass). Stops
    counting past ``limit``; a reference cycle counts as over it."""
    by_id = {e.get("id"): e for e in root.iter() if e.get("id")}
    memo: dict[int, int] = {}
    visiting: set[int] = set()

    def count(element: Any) -> int:
        key = id(element)
        if key in memo:
            return memo[key]
        if key in visiting:
            return limit + 1
        visiting.add(key)
        total = 1
        for child in element:
            total += count(child)
            if total > limit:
                break
        tag = element.tag.rsplit("}", 1)[-1] if isinstance(element.tag, str) else ""
        href = element.get(_XLINK_HREF) or element.get("href") or ""
        if tag == "use" and href.startswith("#") and href[1:] in by_id:
            total += count(by_id[href[1:]])
        visiting.discard(key)
        memo[key] = min(total, limit + 1)
        return memo[key]

    return count(root)


def _bounded_fetcher(limits: MediaLimits) -> Any:
    """cairosvg's resource fetcher, safe: only ``data:`` URLs (as cairosvg's own safe
    fetcher), a compressed payload inflated within the limit, and a picture whose header
    claims more than the pixel limit refused before cairosvg decodes it."""
    from cairosvg.url import fetch

    def fetcher(url: str, resource_type: str) -> bytes:
        if not (url and url.startswith("data:")):
            return b'<svg width="1" height="1"></svg>'
        data = fetch(url, resource_type)
        if data.startswith(GZIP_MAGIC):
            data = inflate_bounded(data, limits.max_svg_bytes, what="embedded SVG")
        if not data.lstrip().startswith(b"<"):  # a picture, not SVG or XML
            try:
                with Image.open(io.BytesIO(data)) as picture:
                    w, h = picture.size
            except Exception:
                return data  # not a picture Pillow knows: cairosvg decides
            if w * h > limits.max_image_pixels:
                raise MediaError(f"SVG embeds a picture of {w}x{h} pixels, over the limit "
                                 f"of {limits.max_image_pixels:,}", kind="too_large")
        return data

    return fetcher


def decode_svg(path: Path, limits: MediaLimits) -> Image.Image:
    """Rasterise an SVG file within ``limits`` (see the module's docstring)."""
    from cairosvg.helpers import node_format
    from cairosvg.parser import Tree
    from cairosvg.surface import PNGSurface

    svg = expand_internal_entities(read_svg_bytes(path, limits))
    fetcher = _bounded_fetcher(limits)
    try:
        tree = Tree(bytestring=svg, unsafe=False, url_fetcher=fetcher)
        n = expanded_element_count(tree.xml_tree, limits.max_svg_elements)
        if n > limits.max_svg_elements:
            raise MediaError(f"SVG expands to over {limits.max_svg_elements:,} elements "
                             "through <use> references (a bomb?)", kind="too_large")
        # the scale is chosen from the declared size *before* rendering: an SVG that
        # claims 100,000 px a side must not get a surface of that size
        probe = _Probe()
        width, height, _ = node_format(probe, tree)
        scale = min(1.0, limits.max_svg_side / max(float(width or 0), float(height or 0),
                                                    1.0))
        output = io.BytesIO()
        surface = PNGSurface(tree, output, 96, scale=scale)  # the tree parsed above
        surface.finish()
        img = Image.open(io.BytesIO(output.getvalue()))
        if max(img.size) > limits.max_svg_side:  # a size the probe misread: bounded again
            raise MediaError(f"SVG renders at {img.size[0]}x{img.size[1]} px, over the "
                             f"limit of {limits.max_svg_side} px a side", kind="too_large")
        img.load()
    except MediaError:
        raise
    except Exception as exc:  # cairosvg raises many types (XML, value, cairo)
        raise MediaError(f"cannot rasterise SVG ({type(exc).__name__}: {exc})",
                         kind="unreadable") from None
    return img


class _Probe:
    """The few surface attributes cairosvg's ``node_format`` reads."""

    context_width = None
    context_height = None
    dpi = 96
    font_size = 16.0
