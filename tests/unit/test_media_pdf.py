"""PDFs through PDFium: page count, title and author, the first page's derivatives, and a
clean failure for broken files."""

from __future__ import annotations

import os

from PIL import Image

from tests.media_support import brightness, request
from tornado_files.media.pdf import MAX_RENDER_PIXELS, render_scale
from tornado_files.media.process import process
from tornado_files.media.request import MediaRequest, Sizes


def test_one_page_pdf_metadata_and_derivatives(tmp_path):
    page = Image.new("RGB", (850, 1100), (250, 250, 250))
    page.save(tmp_path / "doc.pdf", "PDF", title="Quarterly Report", author="Ann Author",
              resolution=100.0)
    response = process(request(tmp_path / "doc.pdf", "application/pdf", tmp_path / "out"))
    assert response["ok"] is True, response
    assert response["metadata"] == {"document": {
        "pages": 1, "title": "Quarterly Report", "author": "Ann Author"}}
    sizes = [(d["kind"], d["width"], d["height"]) for d in response["derivatives"]]
    assert sizes == [("thumbnail", 155, 200), ("square_thumbnail", 200, 200),
                     ("fullsize", 618, 800)]
    assert brightness(response["derivatives"][2]["path"]) > 240


def test_broken_and_empty_pdfs_fail_cleanly(tmp_path):
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj <</Type /Catalog" + os.urandom(300))
    response = process(request(tmp_path / "broken.pdf", "application/pdf", tmp_path / "out"))
    assert response == {"ok": False, "metadata": {},
                        "error": "The PDF could not be opened: it is encrypted or broken."}
    (tmp_path / "empty.pdf").write_bytes(b"")
    assert process(request(tmp_path / "empty.pdf", "application/pdf",
                           tmp_path / "out"))["ok"] is False
    assert os.listdir(tmp_path / "out") == []


def test_render_scale_is_bounded_whatever_the_declared_page_size():
    plain = MediaRequest("/a", "application/pdf", "/o", Sizes(200, 200, 800))
    for width, height in ((612, 792), (14400, 14400), (1, 200000), (200000, 3), (0.5, 0.5)):
        scale = render_scale(width, height, plain)
        assert width * scale * height * scale <= MAX_RENDER_PIXELS * 1.0001
        assert max(width, height) * scale <= 1000.0001
    tight = MediaRequest("/a", "application/pdf", "/o", Sizes(200, 200, 800),
                         max_image_pixels=10_000)
    scale = render_scale(612, 792, tight)
    assert 612 * scale * 792 * scale <= 10_000.01
