"""The WebDataset sink streams: a sample's image is released once it is in a tar, before the next
is pulled, so memory holds one image whatever the table's size; each copy of ``repeats`` pulls the
samples again instead of keeping them."""

from __future__ import annotations

import tarfile
import weakref

from curate_export.sinks import WebDatasetParams, write_shards


class Image(bytearray):
    """Image bytes that can be watched: a weak reference says whether anyone still holds them."""


def test_write_shards_holds_one_image_at_a_time(tmp_path):
    total, repeats = 3_000, 2
    alive: list[weakref.ref] = []
    most_alive = [0]
    calls = [0]

    def samples():
        calls[0] += 1
        for i in range(total):
            most_alive[0] = max(most_alive[0], sum(ref() is not None for ref in alive[-50:]))
            image = Image(b"\xff\xd8" + i.to_bytes(4, "big"))
            alive.append(weakref.ref(image))
            yield {"uid": f"{i:08x}", "caption": f"c{i}"}, image

    facts = write_shards(tmp_path, samples, WebDatasetParams(samples_per_shard=700, repeats=repeats), 0)

    assert facts == {"rows": total, "samples": total * repeats, "shards": 9}
    assert calls[0] == repeats  # each copy reads the images again
    assert most_alive[0] <= 1  # when a sample is pulled, only the previous one may still be referenced
    with tarfile.open(tmp_path / "00008.tar") as tar:
        names = tar.getnames()
    assert len(names) == 3 * (total * repeats - 8 * 700)
    assert names[:3] == ["00000a28_1.jpg", "00000a28_1.txt", "00000a28_1.json"]  # sample 5600: copy 1, row 2600


def test_write_shards_with_nothing_writes_no_tar(tmp_path):
    facts = write_shards(tmp_path, lambda: iter(()), WebDatasetParams(repeats=3), 0)
    assert facts == {"rows": 0, "samples": 0, "shards": 0}
    assert (tmp_path / "sizes.json").read_text() == "{}"
