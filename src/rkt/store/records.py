"""The image index's rows as records: what ``rkt.store.db`` reads from sqlite and
``rkt.store.names`` from its name files. Imports only ``rkt.records``: a pod start that finds its
images in the name files never loads sqlite."""

from __future__ import annotations

from rkt.records import NamedTuple


class ImageRecord(NamedTuple):
    id: str
    name: str
    labels: dict[str, str]
    manifest: bytes
    import_time: float
    last_used: float
    size: int
    uncompressed_size: int
    compression: str
    source: str
    tree_id: str | None
    tree_size: int


class RemoteRecord(NamedTuple):
    url: str
    sig_url: str | None
    etag: str | None
    image_id: str
    max_age: int
    download_time: float


class TreeRecord(NamedTuple):
    id: str
    image_id: str
    chain: tuple[str, ...]
    hash: str
    size: int
    render_time: float
