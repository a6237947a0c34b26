"""PDF documents (pypdfium2, i.e. PDFium; not poppler: GPL): page count, title and author,
and the first page rendered to make the derivatives. Encrypted and broken PDFs fail
cleanly; no JavaScript or forms run (forms are not initialised)."""

from __future__ import annotations

import math
from typing import Any

import pypdfium2

from tornado_files.media.derive import derived
from tornado_files.media.request import MediaFailure, MediaRequest, Outcome
from tornado_files.media.values import compact, text

OVERSAMPLE = 1.25  # render the page's longest side this much above the largest derivative
MAX_RENDER_PIXELS = 25_000_000  # whatever the page's declared size (and max_image_pixels)


def render_scale(width_pt: float, height_pt: float, request: MediaRequest) -> float:
    """Pixels per PDF point: the longest side becomes OVERSAMPLE x the largest derivative
    size, then bounded so width x height ≤ min(MAX_RENDER_PIXELS, max_image_pixels).
    Raises MediaFailure for a page without a usable size.

    >>> from tornado_files.media.request import Sizes
    >>> r = MediaRequest("/a", "application/pdf", "/o", Sizes(200, 200, 800))
    >>> round(render_scale(612, 792, r) * 792)
    1000
    """
    if not (math.isfinite(width_pt) and math.isfinite(height_pt)
            and width_pt > 0 and height_pt > 0):
        raise MediaFailure("The PDF's first page has no usable size.")
    scale = OVERSAMPLE * request.sizes.largest() / max(width_pt, height_pt)
    bound = min(MAX_RENDER_PIXELS, request.max_image_pixels)
    if width_pt * scale * height_pt * scale > bound:
        scale = math.sqrt(bound / (width_pt * height_pt))
    return scale


def document_fields(pdf: pypdfium2.PdfDocument) -> dict[str, Any]:
    """``{"pages", "title", "author"}``, keys only where known."""
    info = pdf.get_metadata_dict(skip_empty=True)
    return compact({"pages": len(pdf), "title": text(info.get("Title")),
                    "author": text(info.get("Author"))})


def process_pdf(request: MediaRequest) -> Outcome:
    """Metadata ``{"document": {...}}`` and the three derivatives of the first page.
    Raises MediaFailure for an encrypted, broken or page-less PDF."""
    try:
        pdf = pypdfium2.PdfDocument(request.source)
    except pypdfium2.PdfiumError as error:
        raise MediaFailure("The PDF could not be opened: it is encrypted or broken.") \
            from error
    try:
        metadata = {"document": document_fields(pdf)}
        if len(pdf) < 1:
            raise MediaFailure("The PDF has no pages.", metadata)
        try:
            page = pdf[0]
            try:
                width, height = page.get_size()
                bitmap = page.render(scale=render_scale(width, height, request))
                picture = bitmap.to_pil()
            finally:
                page.close()
        except pypdfium2.PdfiumError as error:
            raise MediaFailure("The PDF's first page could not be rendered.", metadata) \
                from error
        except MemoryError as error:
            raise MediaFailure("Rendering the PDF ran out of memory.", metadata) from error
        return derived(picture, request, metadata)
    finally:
        pdf.close()
