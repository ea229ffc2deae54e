"""``rkt.errors.named``: an error found inside an image gets the image's name on its line."""

from __future__ import annotations

from rkt.errors import ArchiveError, ImageError, named
from rkt.fetch.http import HttpStatusError


def test_named_puts_the_subject_first_and_keeps_kind_and_hint() -> None:
    got = named(ArchiveError("truncated tar archive", hint="fetch it again"), 'image "a.aci"')
    assert type(got) is ArchiveError
    assert (got.message, got.hint) == ('image "a.aci": truncated tar archive', "fetch it again")


def test_an_error_that_names_an_image_or_takes_more_than_a_message_is_kept() -> None:
    already = ImageError('image "b": has no layers')
    assert named(already, 'image "a"') is already
    status = HttpStatusError("404 Not Found", url="https://x", status_code=404)
    assert named(status, 'image "a"') is status
